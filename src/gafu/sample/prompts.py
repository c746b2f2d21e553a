"""Sample prompts (P10): the plan's (by default the dataset's typical captions), or a kohya-style file.

A prompt is kept without the trigger; every prompt is rendered twice, with the trigger first (as
in the target captions, P7) and without it, so a grid shows whether the style stays behind the
trigger or leaks into ordinary tags (the regularization set's job, D2/D3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from gafu.captions.text import parse_caption, remove_tags
from gafu.errors import GafuError
from gafu.fsio import read_text_utf8

# a dataset without captions yet (the default prompts are its typical captions: gafu.captions.typical)
FALLBACK_PROMPT = "1girl, solo, upper body, looking at viewer"

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
