"""Sample prompts (P10): the dataset's own typical captions by default, or a kohya-style prompts file.

A prompt is kept without the trigger; every prompt is rendered twice, with the trigger first (as
in the target captions, P7) and without it, so a grid shows whether the style stays behind the
trigger or leaks into ordinary tags (the regularization set's job, D2/D3).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from gafu.captions.text import parse_caption, remove_tags, tag_key
from gafu.errors import GafuError
from gafu.fsio import read_text_utf8

# gafu's choices for the default prompts (P10 leaves them to the tool): two prompts, each a real
# target caption (coherent, unlike a list of the most frequent tags, which can contradict itself)
# of the most typical pictures, cut to its most common tags.
DEFAULT_PROMPT_COUNT = 2
PROMPT_TAGS = 20
DISTINCT_OVERLAP = 0.5  # a later prompt shares less than half its tags with earlier ones
FALLBACK_PROMPT = "1girl, solo, upper body, looking at viewer"  # a dataset without captions yet

# kohya's prompt-file options (sd-scripts `line_to_prompt_dict`), plus `--ss` for the sampler.
PROMPT_OPTIONS = {
    "n": "negative prompt",
    "w": "width",
    "h": "height",
    "s": "steps",
    "l": "CFG scale",
    "d": "seed",
    "ss": "sampler",
}
_OPTION = re.compile(r"^([a-z]+)(?:\s+(.*))?$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class SamplePrompt:
    """One prompt and the settings it renders with."""

    text: str  # without the trigger
    negative: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    scheduler: str
    source: str = ""  # where it came from, for messages: "prompts.txt line 3"

    def with_trigger(self, trigger: str) -> str:
        """The prompt with the trigger first, as the target captions have it (P7)."""
        return f"{trigger}, {self.text}" if self.text else trigger


# --- defaults: from the dataset's captions ----------------------------------------------------------
def typical_prompts(
    captions: Iterable[list[str]], *, trigger: str, unwanted: Iterable[str], count: int = DEFAULT_PROMPT_COUNT
) -> list[str]:
    """Prompts from the most typical target captions (tags by how many captions hold them).

    The trigger and the T4 unwanted tags (bars, censoring, watermarks) are left out.
    """
    skipped = {tag_key(t) for t in [trigger, *unwanted] if t.strip()}
    tag_lists = [[t for t in tags if tag_key(t) not in skipped] for tags in captions]
    tag_lists = [tags for tags in tag_lists if tags]
    counts = Counter(tag_key(t) for tags in tag_lists for t in tags)

    def typicality(tags: list[str]) -> float:
        return sum(counts[tag_key(t)] for t in tags) / len(tags)

    ranked = sorted(tag_lists, key=typicality, reverse=True)  # stable: file order breaks ties
    chosen: list[list[str]] = []
    for tags in ranked:
        if len(chosen) == count:
            break
        common = sorted(tags, key=lambda t: -counts[tag_key(t)])[:PROMPT_TAGS]
        if all(_overlap(common, earlier) < DISTINCT_OVERLAP for earlier in chosen):
            chosen.append(common)
    for tags in ranked:  # too few distinct captions: take the next most typical ones
        common = sorted(tags, key=lambda t: -counts[tag_key(t)])[:PROMPT_TAGS]
        if len(chosen) < count and common not in chosen:
            chosen.append(common)
    return [", ".join(tags) for tags in chosen]


def _overlap(a: list[str], b: list[str]) -> float:
    keys_a, keys_b = {tag_key(t) for t in a}, {tag_key(t) for t in b}
    return len(keys_a & keys_b) / len(keys_a | keys_b)


def dataset_prompts(project, count: int = DEFAULT_PROMPT_COUNT) -> list[str]:
    """Default prompts from a project's target captions (empty when none are readable)."""
    from gafu.captions.dataset import load_captions

    captions = [c.tags for c in load_captions(project, ("target",)) if c.has_caption]
    config = project.config
    return typical_prompts(
        captions, trigger=config.project.trigger, unwanted=config.check.unwanted, count=count
    )


# --- from the plan and from a prompts file ---------------------------------------------------------
def plan_prompts(sample, trigger: str) -> list[SamplePrompt]:
    """The plan's prompts (`plan.sample`) with its sampler settings; a generic one when it has none."""
    texts = sample.prompts or [FALLBACK_PROMPT]
    source = "gafu.toml [sample] prompts / the dataset's captions" if sample.prompts else "gafu's fallback"
    base = _plan_defaults(sample, source)
    return [replace(base, text=_without_trigger(text, trigger)) for text in texts]


def read_prompts_file(path: Path, sample, trigger: str) -> list[SamplePrompt]:
    """Prompts from a kohya-style file: one per line, `prompt --n negative --w 1024 --h 1024 --s 28
    --l 7 --d 1234` (`--ss` names the sampler); blank lines and `#` comments are skipped.

    Unset options come from the plan. A line gafu cannot read is an error naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise GafuError(
            f"prompts file {path} does not exist", path=path, hint="give a text file, one prompt a line"
        )
    prompts = []
    text = read_text_utf8(path, what="prompts file")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            prompts.append(
                parse_prompt_line(line, _plan_defaults(sample, f"{path.name} line {number}"), trigger)
            )
    if not prompts:
        raise GafuError(
            f"{path} holds no prompts", path=path, hint="write one prompt a line (# starts a comment)"
        )
    return prompts


def parse_prompt_line(line: str, defaults: SamplePrompt, trigger: str) -> SamplePrompt:
    """One prompts-file line over `defaults` (whose `source` names the line in errors)."""
    text, *options = line.split(" --")
    if text.startswith("--"):  # a line of options only
        text, options = "", [text[2:], *options]
    values: dict = {}
    for option in options:
        match = _OPTION.match(option.strip())
        name = match.group(1).lower() if match else option.strip().split(" ", 1)[0]
        if not match or name not in PROMPT_OPTIONS:
            valid = ", ".join(f"--{k} ({v})" for k, v in PROMPT_OPTIONS.items())
            raise GafuError(f"{defaults.source}: unknown option --{name}", hint=f"options are {valid}")
        values[name] = _option_value(name, (match.group(2) or "").strip(), defaults.source)
    prompt = replace(
        defaults,
        text=_without_trigger(text.strip(), trigger),
        negative=values.get("n", defaults.negative),
        width=values.get("w", defaults.width),
        height=values.get("h", defaults.height),
        steps=values.get("s", defaults.steps),
        cfg=values.get("l", defaults.cfg),
        seed=values.get("d", defaults.seed),
        scheduler=values.get("ss", defaults.scheduler),
    )
    if not prompt.text:
        raise GafuError(f"{defaults.source}: no prompt before the options", hint="write the prompt first")
    return prompt


def _option_value(name: str, raw: str, source: str):
    if name in ("n", "ss"):
        if name == "ss" and not raw:
            raise GafuError(f"{source}: --ss needs a sampler name")
        return raw
    try:
        value = float(raw) if name == "l" else int(raw)
    except ValueError:
        kind = "a number" if name == "l" else "a whole number"
        raise GafuError(f"{source}: --{name} {raw!r} is not {kind} ({PROMPT_OPTIONS[name]})") from None
    if name in ("w", "h") and (value < 8 or value % 8):
        raise GafuError(f"{source}: --{name} {value} must be a positive multiple of 8 (the VAE's scale)")
    if name == "s" and value < 1:
        raise GafuError(f"{source}: --s {value}: at least one step is needed")
    if value < 0:
        raise GafuError(f"{source}: --{name} {raw} must not be negative")
    return value


def _plan_defaults(sample, source: str) -> SamplePrompt:
    return SamplePrompt(
        text="",
        negative=sample.negative,
        width=sample.width,
        height=sample.height,
        steps=sample.steps,
        cfg=sample.cfg,
        seed=sample.seed,
        scheduler=sample.scheduler,
        source=source,
    )


def _without_trigger(text: str, trigger: str) -> str:
    """The prompt's tags without the trigger (a kohya prompts file usually has it first)."""
    tags = parse_caption(text)
    return ", ".join(remove_tags(tags, [trigger]) if trigger else tags)
