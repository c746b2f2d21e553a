"""Finding the WD tagger: a local folder, or a hub repo id fetched into huggingface_hub's cache.

A tagger is two files, `model.onnx` and `selected_tags.csv`. `[tag] tagger` (or `--tagger`)
names a folder holding them, or a hub repo id such as `SmilingWolf/wd-vit-large-tagger-v3`,
which huggingface_hub downloads once into its cache (HF_HOME) and reuses from there; its
offline mode (`HF_HUB_OFFLINE=1`) is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gafu.errors import GafuError
from gafu.tagging.labels import LABELS_FILE

MODEL_FILE = "model.onnx"
TAGGER_FILES = (MODEL_FILE, LABELS_FILE)


@dataclass(frozen=True)
class TaggerFiles:
    """Where a tagger's two files are, and the reference the user gave for it."""

    reference: str
    model: Path
    labels: Path


def locate_tagger(reference: str, *, base: Path | None = None) -> TaggerFiles:
    """The tagger's files: from a local folder (relative to `base`), or the hub (cache first).

    Raises GafuError naming both files and how to point gafu at a folder when they cannot
    be had (no such folder, no network and no cached copy, a repo without them).
    """
    folder = _local_folder(reference, base)
    if folder is not None:
        missing = [name for name in TAGGER_FILES if not (folder / name).is_file()]
        if missing:
            raise GafuError(
                f"the tagger folder {folder} has no {' and no '.join(missing)}",
                path=folder,
                hint=f"a WD tagger folder holds {MODEL_FILE} and {LABELS_FILE} (from the model's hub page)",
            )
        return TaggerFiles(reference, folder / MODEL_FILE, folder / LABELS_FILE)
    if not _is_hub_id(reference):
        raise GafuError(
            f"the tagger {reference!r} is neither a folder nor a hub repo id (owner/name)",
            hint=_POINT_AT_FOLDER,
        )
    return _from_hub(reference)


def find_labels_on_disk(reference: str, *, base: Path | None = None) -> Path | None:
    """The tagger's `selected_tags.csv` if it is already on disk (folder or hub cache); never downloads."""
    folder = _local_folder(reference, base)
    if folder is not None:
        return folder / LABELS_FILE if (folder / LABELS_FILE).is_file() else None
    if not _is_hub_id(reference):
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(reference, LABELS_FILE)
    return Path(cached) if isinstance(cached, str) else None


_POINT_AT_FOLDER = (
    f"download {MODEL_FILE} and {LABELS_FILE} from the tagger's hub page into a folder and pass "
    "--tagger FOLDER, or set `tagger = 'FOLDER'` under [tag] in gafu.toml"
)


def _local_folder(reference: str, base: Path | None) -> Path | None:
    """The folder `reference` names, if it exists (a path to model.onnx names its folder)."""
    path = Path(reference).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    return path.resolve() if path.is_dir() else None


def _is_hub_id(reference: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if reference.count("/") != 1 or "\\" in reference:
        return False
    try:
        validate_repo_id(reference)
    except HFValidationError:
        return False
    return True


def _from_hub(repo_id: str) -> TaggerFiles:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    paths = {}
    for name in TAGGER_FILES:
        try:
            paths[name] = Path(hf_hub_download(repo_id, name))
        except LocalEntryNotFoundError as exc:  # offline or no network, and nothing cached
            offline = "offline mode is on: HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else "no network"
            raise GafuError(
                f"the tagger {repo_id} is not in the hub cache ({constants.HF_HUB_CACHE}) and cannot be "
                f"downloaded ({offline})",
                hint=_POINT_AT_FOLDER,
            ) from exc
        except EntryNotFoundError as exc:
            raise GafuError(
                f"the hub repo {repo_id} has no {name}, so it is not a WD tagger in ONNX format",
                hint=_POINT_AT_FOLDER,
            ) from exc
        except RepositoryNotFoundError as exc:  # also gated and private repos
            raise GafuError(
                f"the hub has no tagger {repo_id} that gafu may download (not found, private or gated)",
                hint=_POINT_AT_FOLDER,
            ) from exc
        except (HfHubHTTPError, OSError) as exc:
            raise GafuError(
                f"cannot download {name} of the tagger {repo_id} ({exc.__class__.__name__}: {exc})",
                hint="check the network and run again, or " + _POINT_AT_FOLDER,
            ) from exc
    return TaggerFiles(repo_id, paths[MODEL_FILE], paths[LABELS_FILE])
