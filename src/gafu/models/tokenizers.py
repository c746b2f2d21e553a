"""SDXL's two CLIP tokenizers: where they come from, and a check of what training depends on.

A single-file checkpoint holds no tokenizers. gafu takes SDXL base's whole tokenizer folders
(`tokenizer_config.json`, `special_tokens_map.json`, `vocab.json`, `merges.txt`) from
`[model] tokenizers`, the model's own folder or the hub cache of SDXL base; with none of those it
builds them from the CLIP BPE vocabulary the `openai-clip` package ships (the file every CLIP
tokenizer, SDXL's two included, was made from), and only then asks the hub.

Whatever the source, the loaded pair is checked against the text encoders before training
depends on it: a window of 77 tokens, `<|startoftext|>` and `<|endoftext|>` as BOS and EOS (49406
and 49407), a vocabulary of 49408 — and padding: the first encoder pads with `<|endoftext|>`, the
second with `!` (id 0), as SDXL was trained. A folder with only `vocab.json` and `merges.txt`
gets those settings applied (and says so): transformers alone would give it a window of 1e30
tokens and the wrong padding for the second encoder.
"""

from __future__ import annotations

import gzip
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gafu.errors import GafuError

SDXL_BASE_REPO = "stabilityai/stable-diffusion-xl-base-1.0"  # where SDXL's tokenizers live on the hub
TOKENIZERS = ("tokenizer", "tokenizer_2")
VOCABULARY_FILES = ("vocab.json", "merges.txt")
SETTINGS_FILES = ("tokenizer_config.json", "special_tokens_map.json")
TOKENIZER_FILES = VOCABULARY_FILES + SETTINGS_FILES
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
PAD = {"tokenizer": EOS, "tokenizer_2": "!"}  # SDXL: CLIP ViT-L pads with EOS, OpenCLIP bigG with "!"
CLIP_WINDOW = 77
CLIP_VOCABULARY = 49408
# The hub repos SDXL base's tokenizers were copied from (their `name_or_path`).
ORIGINS = {
    "tokenizer": "openai/clip-vit-large-patch14",
    "tokenizer_2": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
}
CLIP_BPE_PACKAGE, CLIP_BPE_FILE = "openai-clip", "clip/bpe_simple_vocab_16e6.txt.gz"


@dataclass
class Tokenizers:
    """Both tokenizers, where they came from, and what gafu had to assume about them."""

    tokenizer: Any  # transformers CLIPTokenizer for the first text encoder (CLIP ViT-L)
    tokenizer_2: Any  # … for the second (OpenCLIP bigG)
    source: str  # the folder, or how they were built
    notes: list[str] = field(default_factory=list)

    @property
    def tokenizers(self) -> tuple[Any, Any]:
        """Both, in SDXL's order."""
        return self.tokenizer, self.tokenizer_2


def load_tokenizers(
    *, explicit: Path | None, candidates: list[Path], text_encoders: tuple[Any, Any] | None = None
) -> Tokenizers:
    """SDXL's tokenizers: `explicit`, else a candidate folder, the hub cache, CLIP's BPE file, the hub.

    `text_encoders` (their configs give the vocabulary and window) are what the pair is checked
    against; without them, SDXL's own sizes.
    """
    if explicit is not None:
        explicit = Path(explicit)
        missing = missing_files(explicit)
        if missing:
            raise GafuError(
                f"tokenizer files missing in {explicit}: {', '.join(missing)}",
                path=explicit,
                hint="[model] tokenizers must hold tokenizer/ and tokenizer_2/ (vocab.json and merges.txt "
                "at least) as an SDXL diffusers folder does",
            )
        return _checked(_load_folder(explicit, str(explicit)), text_encoders)
    # Only from folders known to hold the files: transformers' CLIPTokenizer silently builds an
    # empty tokenizer when they are missing.
    found = next((f for f in candidates if f.is_dir() and not missing_files(f)), None)
    found = found or hub_tokenizer_folder(download=False)
    if found is not None:
        return _checked(_load_folder(found, str(found)), text_encoders)
    bpe = clip_bpe_file()
    if bpe is not None:
        return _checked(_built_from(bpe), text_encoders)
    found = hub_tokenizer_folder(download=True)
    if found is not None:
        return _checked(_load_folder(found, str(found)), text_encoders)
    looked = ", ".join(str(f) for f in candidates if f.is_dir())
    raise GafuError(
        f"SDXL's tokenizer files (tokenizer/ and tokenizer_2/: vocab.json, merges.txt) were not found "
        f"in {looked or 'the model folder'} nor in the hub cache of {SDXL_BASE_REPO}",
        hint=f"set [model] tokenizers to a folder holding them (any SDXL diffusers folder has them), "
        f"`pip install {CLIP_BPE_PACKAGE}` to build them offline, or download them once while online: "
        f"hf download {SDXL_BASE_REPO} --include 'tokenizer*/*'",
    )


def missing_files(folder: Path) -> list[str]:
    """The vocabulary files a tokenizer folder lacks (`tokenizer_2/merges.txt` …); settings may be absent."""
    return [
        f"{name}/{file}"
        for name in TOKENIZERS
        for file in VOCABULARY_FILES
        if not (folder / name / file).is_file()
    ]


def _load_folder(folder: Path, source: str) -> Tokenizers:
    """Both tokenizers of a folder; one with only vocab.json + merges.txt gets SDXL's settings."""
    from transformers import CLIPTokenizer

    loaded, notes = [], []
    for name in TOKENIZERS:
        path = folder / name
        if any((path / file).is_file() for file in SETTINGS_FILES):
            loaded.append(CLIPTokenizer.from_pretrained(path))
            continue
        loaded.append(CLIPTokenizer.from_pretrained(path, **sdxl_settings(name)))
        notes.append(
            f"{path} has only {' and '.join(VOCABULARY_FILES)}: SDXL's settings applied (window "
            f"{CLIP_WINDOW}, BOS {BOS}, EOS {EOS}, padding with {PAD[name]!r})"
        )
    return Tokenizers(loaded[0], loaded[1], source, notes)


def _built_from(bpe: Path) -> Tokenizers:
    """Both tokenizers as SDXL base has them, written from CLIP's BPE file into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="gafu-tokenizers-") as tmp:
        write_sdxl_tokenizers(Path(tmp), *clip_vocabulary(bpe))
        built = _load_folder(Path(tmp), f"built from {bpe.name} ({CLIP_BPE_PACKAGE})")
    built.notes.append(
        f"SDXL's tokenizers were built from CLIP's BPE vocabulary ({bpe.name} of the "
        f"{CLIP_BPE_PACKAGE} package): no tokenizer folder was given or found"
    )
    return built


def sdxl_settings(name: str) -> dict[str, Any]:
    """The special tokens and window SDXL base's `tokenizer/` or `tokenizer_2/` declares."""
    return {
        "model_max_length": CLIP_WINDOW,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": PAD[name],
    }


# --- the check ------------------------------------------------------------------------------------
def _checked(tokenizers: Tokenizers, text_encoders: tuple[Any, Any] | None) -> Tokenizers:
    for name, tokenizer, encoder in zip(
        TOKENIZERS, (tokenizers.tokenizer, tokenizers.tokenizer_2), text_encoders or (None, None), strict=True
    ):
        problems = tokenizer_problems(tokenizer, name, encoder.config if encoder is not None else None)
        if problems:
            where = Path(tokenizers.source) / name if Path(tokenizers.source).is_dir() else tokenizers.source
            raise GafuError(
                f"the tokenizer in {where} does not fit SDXL's {_encoder_name(name)}: {'; '.join(problems)}",
                path=where if isinstance(where, Path) else None,
                hint="use SDXL base's tokenizer folders "
                f"(hf download {SDXL_BASE_REPO} --include 'tokenizer*/*'), or remove "
                f"{' and '.join(SETTINGS_FILES)} from it to have SDXL's settings applied",
            )
    return tokenizers


def tokenizer_problems(tokenizer: Any, name: str, encoder_config: Any = None) -> list[str]:
    """What in a loaded tokenizer differs from what SDXL's training and sampling depend on (empty: none).

    `encoder_config` is its text encoder's config: the vocabulary and window it expects (SDXL's:
    49408 and 77). BOS and EOS are the vocabulary's last two ids, as in CLIP.
    """
    vocabulary = getattr(encoder_config, "vocab_size", CLIP_VOCABULARY)
    window = getattr(encoder_config, "max_position_embeddings", CLIP_WINDOW)
    pad_id = vocabulary - 1 if PAD[name] == EOS else 0
    expected = {
        "window": (tokenizer.model_max_length, window),
        "vocabulary": (len(tokenizer), vocabulary),
        "BOS": ((tokenizer.bos_token, tokenizer.bos_token_id), (BOS, vocabulary - 2)),
        "EOS": ((tokenizer.eos_token, tokenizer.eos_token_id), (EOS, vocabulary - 1)),
        # "!" is the first byte character (id 0) in every CLIP vocabulary; EOS is the last id.
        "padding": ((tokenizer.pad_token, tokenizer.pad_token_id), (PAD[name], pad_id)),
    }
    return [
        f"{what} {_shown(found)} (SDXL's: {_shown(wanted)})"
        for what, (found, wanted) in expected.items()
        if found != wanted
    ]


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]!r} ({value[1]})"
    return f"{value:.0e}" if isinstance(value, int) and value > 10**9 else str(value)  # 1e+30: "no limit"


def _encoder_name(name: str) -> str:
    return "first text encoder (CLIP ViT-L)" if name == "tokenizer" else "second text encoder (OpenCLIP bigG)"


# --- sources --------------------------------------------------------------------------------------
def hub_tokenizer_folder(*, download: bool) -> Path | None:
    """SDXL base's snapshot folder in the hub cache once its tokenizer vocabularies are there.

    With `download`, missing files are fetched (when online); the settings files are taken when
    present, and a snapshot without them loads with SDXL's settings applied.
    """
    from huggingface_hub import hf_hub_download

    snapshot = None
    for name in TOKENIZERS:
        for file in TOKENIZER_FILES:
            try:
                path = Path(hf_hub_download(SDXL_BASE_REPO, f"{name}/{file}", local_files_only=not download))
            except Exception:  # not cached (or offline, or no network)
                if file in VOCABULARY_FILES:
                    return None  # the caller says how to supply them
                continue
            snapshot = path.parent.parent
    return snapshot


def clip_bpe_file() -> Path | None:
    """CLIP's BPE vocabulary (`bpe_simple_vocab_16e6.txt.gz`) from the openai-clip package, if installed."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution(CLIP_BPE_PACKAGE).locate_file(CLIP_BPE_FILE)))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def clip_vocabulary(bpe_file: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """CLIP's 49408 tokens (in id order) and 48894 merges from its BPE file, as CLIP's tokenizer reads it."""
    lines = gzip.decompress(Path(bpe_file).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : CLIP_VOCABULARY - 512 - 2 + 1]]
    characters = byte_characters()
    tokens = [*characters, *(c + "</w>" for c in characters), *("".join(m) for m in merges), BOS, EOS]
    return tokens, merges  # type: ignore[return-value]


def byte_characters() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for bytes, in id order (GPT-2's table)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable + [256 + i for i in range(len(extra))]]


def write_sdxl_tokenizers(folder: Path, tokens: list[str], merges: list[tuple[str, str]]) -> None:
    """Write `tokenizer/` and `tokenizer_2/` as SDXL base has them: the four files, its settings."""
    from gafu.fsio import write_json_atomic, write_text_atomic

    for name in TOKENIZERS:
        target = Path(folder) / name
        write_json_atomic(target / "vocab.json", {token: i for i, token in enumerate(tokens)})
        write_text_atomic(target / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        settings = sdxl_settings(name)
        special = {key: value for key, value in settings.items() if key.endswith("_token")}
        write_json_atomic(target / "special_tokens_map.json", special)
        write_json_atomic(
            target / "tokenizer_config.json",
            {
                "tokenizer_class": "CLIPTokenizer",
                "name_or_path": ORIGINS[name],
                "do_lower_case": True,
                "errors": "replace",
                "add_prefix_space": False,
                **settings,
            },
        )
