"""The checks, one function per RECIPE rule group, each turning what was found into findings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gafu import recipe
from gafu.captions.dataset import CaptionedPicture, relative_name
from gafu.captions.text import contains_tag, tag_key
from gafu.check.coverage import Coverage
from gafu.check.pictures import FactsResult
from gafu.check.report import Finding, Severity, count_of
from gafu.check.scan import SetScan
from gafu.config import Config, SetName
from gafu.errors import GafuError
from gafu.images import near_duplicate_pairs
from gafu.prep.manifest import Manifest
from gafu.project import Project

SET_WORDS = {"target": "target", "reg": "regularization"}


@dataclass
class CheckInput:
    """Everything the rules look at, gathered once."""

    project: Project
    scans: dict[SetName, SetScan]
    facts: FactsResult
    manifest: Manifest
    coverage: Coverage

    @property
    def config(self) -> Config:
        """The project's `gafu.toml`."""
        return self.project.config

    def name(self, path: Path) -> str:
        """A file as findings name it: relative to the project folder."""
        return relative_name(self.project, path)

    def names(self, paths: list[Path]) -> list[str]:
        """`name` of each path."""
        return [self.name(p) for p in paths]

    def about(
        self, paths: list[Path], severity: Severity, rule: str, code: str, message: str, hint: str
    ) -> list[Finding]:
        """One finding naming `paths`, or none when `paths` is empty."""
        return [Finding(severity, rule, code, message, self.names(paths), hint)] if paths else []

    def captioned(self, which: SetName) -> list[CaptionedPicture]:
        """The pictures of one set with their captions."""
        return self.scans[which].captioned


# --- D1/D2: how many pictures ------------------------------------------------------------
def check_counts(inp: CheckInput) -> list[Finding]:
    """D1: a target set of 40 or more; D2: a regularization set of about as many."""
    n_target, n_reg = len(inp.captioned("target")), len(inp.captioned("reg"))
    found = []
    if n_target == 0:
        found.append(
            Finding(
                "error",
                "D1",
                "no-target-pictures",
                f"no prepared target pictures in {inp.name(inp.project.set_dir('target'))}",
                hint="run `gafu prep`",
            )
        )
    elif n_target < recipe.TARGET_MIN_PICTURES:
        found.append(
            Finding(
                "warning",
                "D1",
                "few-target-pictures",
                f"the target set has {count_of(n_target, 'picture')}; the recipe expects "
                f"{recipe.TARGET_MIN_PICTURES} or more (RECIPE D1)",
                hint="add more pictures of the same style and period",
            )
        )
    if n_reg == 0:
        configured = inp.project.has_sources("reg")
        found.append(
            Finding(
                "warning",
                "D2",
                "no-regularization",
                "no regularization set: without one the style leaks into every tag of the target set "
                "and its strength at generation time depends on which tags the prompt uses (RECIPE D2)",
                hint="run `gafu prep` to prepare the configured regularization folder"
                if configured
                else "set [sources] reg in gafu.toml to a folder of other styles' pictures, then `gafu prep`",
            )
        )
    elif n_target:
        low, high = recipe.REG_TO_TARGET_RATIO
        if not low <= n_reg / n_target <= high:
            found.append(
                Finding(
                    "warning",
                    "D2",
                    "regularization-count",
                    f"the regularization set has {count_of(n_reg, 'picture')} for "
                    f"{count_of(n_target, 'target picture')}; the "
                    f"recipe wants about as many ({low:g}–{high:g}× the target, RECIPE D2)",
                    hint="add or remove regularization pictures",
                )
            )
    return found


# --- D2 (and D1): the same picture twice --------------------------------------------------
def check_duplicates(inp: CheckInput) -> list[Finding]:
    """D2: no target picture in the regularization set; D1: no picture twice in the target set."""
    hashes: dict[SetName, dict] = {"target": {}, "reg": {}}
    for which, by_name in hashes.items():
        for c in inp.captioned(which):
            facts = inp.facts.facts.get(c.picture.path)
            if facts is not None:
                by_name[inp.name(c.picture.path)] = facts.phash
    found = [
        Finding(
            "error",
            "D2",
            "target-in-regularization",
            f"{a} is also in the regularization set as {b} (perceptual-hash distance {d}); the "
            "regularization set must not contain target pictures (RECIPE D2)",
            files=[a, b],
            hint="remove it from the regularization folder of originals and run `gafu prep` again",
        )
        for a, b, d in near_duplicate_pairs(hashes["target"], hashes["reg"])
    ]
    found += [
        Finding(
            "warning",
            "D1",
            "target-duplicate",
            f"{a} and {b} are the same picture (perceptual-hash distance {d}): it is trained twice as often",
            files=[a, b],
            hint="remove one of them from the target folder of originals",
        )
        for a, b, d in near_duplicate_pairs(hashes["target"])
    ]
    return found


# --- D3: coverage -------------------------------------------------------------------------
def check_coverage(inp: CheckInput) -> list[Finding]:
    """D3: every target tag should also appear in the regularization set."""
    coverage = inp.coverage
    if coverage.share is None or not coverage.uncovered or not inp.captioned("reg"):
        return []  # no captions yet, full coverage, or no regularization set (its own finding)
    uncovered = sum(u.count for u in coverage.uncovered)
    return [
        Finding(
            "warning",
            "D3",
            "uncovered-tags",
            f"the regularization set never has {count_of(len(coverage.uncovered), 'target tag')} "
            f"({count_of(uncovered, 'occurrence')}), so the style leaks through them "
            f"(coverage {coverage.share:.0%}, RECIPE D3)",
            hint="add regularization pictures that carry these tags (see `gafu tags stats`)",
        )
    ]


# --- T3: the trigger ------------------------------------------------------------------------
def check_trigger(inp: CheckInput) -> list[Finding]:
    """T3: the trigger first in every target caption, in no regularization caption."""
    trigger = inp.config.project.trigger
    if not trigger.strip():
        return [
            Finding(
                "error", "T3", "no-trigger", "gafu.toml sets no trigger word", hint="set [project] trigger"
            )
        ]
    target = [c for c in inp.captioned("target") if c.has_caption]
    missing = [c.picture.path for c in target if not contains_tag(c.tags, trigger)]
    not_first = [
        c.picture.path
        for c in target
        if contains_tag(c.tags, trigger) and tag_key(c.tags[0]) != tag_key(trigger)
    ]
    in_reg = [c.picture.path for c in inp.captioned("reg") if contains_tag(c.tags, trigger)]
    fix_target = f"`gafu tags add {trigger} --set target` puts it first"
    return [
        *inp.about(
            missing,
            "error",
            "T3",
            "trigger-missing",
            f"{count_of(len(missing), 'target caption')} without the trigger {trigger!r} (RECIPE T3)",
            fix_target,
        ),
        *inp.about(
            not_first,
            "error",
            "T3",
            "trigger-not-first",
            f"the trigger {trigger!r} is not the first tag in {count_of(len(not_first), 'target caption')}; "
            "trainers keep only the first tag in place (keep_tokens = 1, RECIPE T3/P7)",
            fix_target,
        ),
        *inp.about(
            in_reg,
            "error",
            "T3",
            "trigger-in-regularization",
            f"the trigger {trigger!r} is in {count_of(len(in_reg), 'regularization caption')}; "
            "it must be in none, or it learns the other styles too (RECIPE T3)",
            f"`gafu tags remove {trigger} --set reg`",
        ),
    ]


# --- T4: unwanted features ----------------------------------------------------------------
def check_bars(inp: CheckInput) -> list[Finding]:
    """T4: pictures prep added bars to carry `letterboxed` / `pillarboxed`, and only those.

    After prep switches from pad to bucket mode, captions keep the tag gafu tag gave the padded
    picture. A picture whose current version the tagger itself scored as having bars, or that
    gafu never tagged, is left alone: its bars may be the original's own.
    """
    found = []
    for bars in (recipe.LETTERBOXED, recipe.PILLARBOXED):
        untagged = _captioned_where(
            inp,
            lambda which, c, bars=bars: (
                inp.manifest.bars_for(inp.name(c.picture.path)) == bars and not contains_tag(c.tags, bars)
            ),
        )
        stale = _captioned_where(
            inp,
            lambda which, c, bars=bars: (
                contains_tag(c.tags, bars)
                and (entry := inp.manifest.entries.get(inp.name(c.picture.path))) is not None
                and entry.bars != bars
                and not _tagger_saw(inp, which, c.picture.path, bars)
            ),
        )
        sides = "top/bottom" if bars == recipe.LETTERBOXED else "left/right"
        found += inp.about(
            untagged,
            "warning",
            "T4",
            f"{bars}-untagged",
            f"prep added {sides} bars to {count_of(len(untagged), 'picture')} whose caption lacks "
            f"{bars!r}: the bars get learned as style (RECIPE T4)",
            _tags_command(f"add {bars}", inp.names(untagged)),
        )
        found += inp.about(
            stale,
            "warning",
            "T4",
            f"{bars}-without-bars",
            f"{count_of(len(stale), 'caption')} hold {bars!r}, but prep made the picture without such "
            "bars (prepared again since, e.g. in bucket mode): the tag now describes nothing in the "
            "picture (RECIPE T4)",
            _tags_command(f"remove {bars}", inp.names(stale)),
        )
    return found


def _captioned_where(inp: CheckInput, keep: Callable[[SetName, CaptionedPicture], bool]) -> list[Path]:
    """Pictures of both sets that have a caption and pass `keep(set, picture)`."""
    return [
        c.picture.path
        for which in ("target", "reg")
        for c in inp.captioned(which)
        if c.has_caption and keep(which, c)
    ]


def _tagger_saw(inp: CheckInput, which: SetName, path: Path, bars: str) -> bool:
    """True unless the kept tag scores are of another version of the picture, or rate `bars` low."""
    from gafu.fsio import sha256_file
    from gafu.tagging.scores import load_scores, scores_path

    try:
        scores = load_scores(scores_path(inp.project.tag_scores_dir, which), which)
    except GafuError:
        return True  # unreadable bookkeeping: say nothing rather than guess
    entry = scores.pictures.get(inp.name(path))
    if entry is None:
        return True  # never tagged by gafu: the caption is the user's own
    if entry.picture_sha256 != sha256_file(path):
        return False  # scored on the picture as it was before prep remade it
    threshold = (inp.config.tag.target if which == "target" else inp.config.tag.reg).threshold
    return entry.scores.general.get(bars, 0.0) >= threshold


def _tags_command(action: str, names: list[str]) -> str:
    """The `gafu tags ACTION --picture …` hint for pictures (the first ten; --json lists them all)."""
    more = " (and the rest, listed in --json)" if len(names) > 10 else ""
    return f"`gafu tags {action} --picture {' '.join(_short_names(names[:10]))}`{more}"


def _short_names(names: list[str]) -> list[str]:
    """`<folder>/<file>` of each project-relative name: what `--picture` takes."""
    return ["/".join(n.split("/")[-2:]) for n in names]


def unwanted_counts(inp: CheckInput) -> dict[str, dict[str, int]]:
    """T4: how many captions of each set hold each `[check] unwanted` tag."""
    return {
        tag: {
            which: sum(1 for c in inp.captioned(which) if contains_tag(c.tags, tag))
            for which in ("target", "reg")
        }
        for tag in inp.config.check.unwanted
    }


# --- D4: sizes ------------------------------------------------------------------------------
def check_sizes(inp: CheckInput) -> list[Finding]:
    """D4: pad mode wants squares of 1024–1536; bucket mode multiples of 64, longest side ≤ 1536."""
    mode = inp.config.prep.mode
    problems: dict[str, list[Path]] = {}
    for which in ("target", "reg"):
        for c in inp.captioned(which):
            facts = inp.facts.facts.get(c.picture.path)
            if facts is not None:
                for problem in size_problems(facts.size, mode, inp.config.prep.max_side):
                    problems.setdefault(problem, []).append(c.picture.path)
    limit = (
        recipe.PAD_SIDE_RANGE[1] if mode == "pad" else min(inp.config.prep.max_side, recipe.BUCKET_MAX_SIDE)
    )
    messages = {
        "not-square": "not square",
        "too-small": f"longest side under {recipe.PAD_SIDE_RANGE[0]}, the size SDXL was trained at",
        "too-large": f"a side over {limit}",
        "not-multiple-of-64": f"a side not a multiple of {recipe.BUCKET_STEP}, which bucketing crops",
    }
    again = "run `gafu prep` again (it remakes pictures whose settings changed)"
    settings = {  # the gafu.toml setting behind each finding, named in its hint
        "not-square": f'[prep] mode = "pad" makes squares: {again}',
        "too-large": (
            f"[prep] max_side = {inp.config.prep.max_side} sets this limit: {again}, or raise max_side"
            if mode == "bucket"
            else f"[prep] side sets the square's side ({recipe.PAD_SIDE_RANGE[0]}–{limit}): {again}"
        ),
        "not-multiple-of-64": f'[prep] mode = "bucket" makes sides multiples of 64: {again}',
    }
    found = [
        Finding(
            "warning",
            "D4",
            code,
            f"{messages[code]}: {count_of(len(paths), 'picture')} ({mode} mode, RECIPE D4)",
            inp.names(paths),
            settings.get(code, again),
        )
        for code, paths in problems.items()
    ]
    found += [
        Finding(
            "error",
            "D5",
            "unreadable-picture",
            str(exc),
            [inp.name(path)],
            "remove it or run `gafu prep` again",
        )
        for path, exc in inp.facts.failed.items()
    ]
    return found


def size_problems(size: tuple[int, int], mode: str, max_side: int = recipe.BUCKET_MAX_SIDE) -> list[str]:
    """D4 problems of a picture of `size` in prep `mode` (codes: not-square, too-small, too-large, …)."""
    width, height = size
    low, high = recipe.PAD_SIDE_RANGE
    problems = []
    if mode == "pad" and width != height:
        problems.append("not-square")
    if max(size) < low:
        problems.append("too-small")
    if max(size) > (high if mode == "pad" else min(max_side, recipe.BUCKET_MAX_SIDE)):
        problems.append("too-large")
    if mode == "bucket" and (width % recipe.BUCKET_STEP or height % recipe.BUCKET_STEP):
        problems.append("not-multiple-of-64")
    return problems


# --- D5: layout -----------------------------------------------------------------------------
def check_layout(inp: CheckInput) -> list[Finding]:
    """D5: `<repeats>_<name>` folders of picture + caption pairs, captions readable and not empty."""
    found = []
    for which in ("target", "reg"):
        scan, word = inp.scans[which], SET_WORDS[which]
        found += _folder_findings(inp, scan, word)
        found += _caption_findings(inp, scan.captioned, word)
    return found


def _folder_findings(inp: CheckInput, scan: SetScan, word: str) -> list[Finding]:
    return [
        *inp.about(
            scan.misnamed_folders,
            "warning",
            "D5",
            "folder-name",
            f"trainers skip {word} folders not named <repeats>_<name> (RECIPE D5)",
            "rename them, e.g. 2_name, or move their pictures",
        ),
        *inp.about(
            scan.stray_pictures,
            "warning",
            "D5",
            "stray-picture",
            f"trainers skip pictures directly in {inp.name(scan.outer)}; they belong in a "
            "<repeats>_<name> folder (RECIPE D5)",
            "move them into the concept folder",
        ),
        *inp.about(
            scan.orphan_captions,
            "warning",
            "D5",
            "caption-without-picture",
            f"{count_of(len(scan.orphan_captions), word + ' caption')} with no picture beside it",
            "delete them, or put their pictures back",
        ),
    ]


def _caption_findings(inp: CheckInput, captioned: list[CaptionedPicture], word: str) -> list[Finding]:
    readable = [c for c in captioned if c.error is None]
    uncaptioned = [c.picture.path for c in readable if not c.has_caption]
    found = [
        Finding(
            "error",
            "D5",
            "caption-unreadable",
            str(c.error),
            [inp.name(c.picture.caption_path)],
            "re-save it as UTF-8, or delete it and run `gafu tag` for that picture",
        )
        for c in captioned
        if c.error is not None
    ]
    if uncaptioned and len(uncaptioned) == len(captioned):
        found += inp.about(
            [captioned[0].picture.path.parent], "error", "D5", "no-captions",
            f"no {word} picture has a caption yet ({count_of(len(captioned), 'picture')})",
            "run `gafu tag`",
        )  # fmt: skip
    else:
        found += inp.about(
            uncaptioned, "error", "D5", "caption-missing",
            f"{count_of(len(uncaptioned), word + ' picture')} without a caption (a .txt beside it)",
            "run `gafu tag` (it captions only pictures without one)",
        )  # fmt: skip
    empty = [c.picture.path for c in readable if c.has_caption and not c.tags]
    found += inp.about(
        empty, "error", "D5", "caption-empty", count_of(len(empty), f"empty {word} caption"),
        "run `gafu tag --overwrite` for them, or write their tags",
    )  # fmt: skip
    by_problem: dict[str, list[Path]] = {}
    for c in readable:
        for problem in c.caption.problems if c.caption else []:
            by_problem.setdefault(problem, []).append(c.picture.path)
    for problem, paths in by_problem.items():
        found += inp.about(
            paths, "warning", "D5", "caption-text", f"{count_of(len(paths), word + ' caption')}: {problem}",
            "`gafu tags tidy` rewrites them cleanly (and can be undone)",
        )  # fmt: skip
    return found


# --- P7: caption dropout ----------------------------------------------------------------------
def check_dropout(inp: CheckInput) -> list[Finding]:
    """P7: no caption or tag dropout; the first tag (the trigger) kept in place."""
    train = inp.config.train
    reason = (
        "caption and tag dropout must stay off (RECIPE P7): a dropped tag stops soaking up its "
        "feature, which then flows into the trigger and the tags left, and a dropped caption "
        "trains the style with no trigger, so it leaks into every prompt"
    )
    found = [
        Finding(
            "error",
            "P7",
            "caption-dropout",
            f"[train] {name} = {value}: {reason}",
            hint=f"set [train] {name} = 0 in gafu.toml",
        )
        for name, value in [
            ("caption_dropout_rate", train.caption_dropout_rate),
            ("caption_tag_dropout_rate", train.caption_tag_dropout_rate),
            ("caption_dropout_every_n_epochs", train.caption_dropout_every_n_epochs),
        ]
        if value
    ]
    if train.shuffle_caption and train.keep_tokens != recipe.KEEP_TOKENS:
        found.append(
            Finding(
                "warning",
                "P7",
                "keep-tokens",
                f"[train] keep_tokens = {train.keep_tokens}: with shuffled tags the recipe keeps "
                f"exactly {recipe.KEEP_TOKENS} tag (the trigger) in place (RECIPE P7)",
                hint=f"set [train] keep_tokens = {recipe.KEEP_TOKENS}",
            )
        )
    return found


RULES: tuple[Callable[[CheckInput], list[Finding]], ...] = (
    check_counts,
    check_duplicates,
    check_coverage,
    check_trigger,
    check_bars,
    check_sizes,
    check_layout,
    check_dropout,
)
