"""Did the demo's LoKr learn the style? The judge's verdict on pictures drawn with and without the trigger.

For each LoKr weight the demo draws the same scene prompts (the target captions' kind: subject,
sky, scene tags) twice, with the trigger first and without it, and the judge (`gafu.demo.judge`)
gives each picture's probability of being in the target style. The mean per weight and column
goes into `judge.json` and the report; `judge.png` shows the pictures, a row per weight.

The recipe works when the trigger calls the style up (≥ 0.7 at weight 1) and the same prompts
without it still draw what the base model drew (within 0.1 of the base): the style is in the
trigger, not in the ordinary tags.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from gafu.demo.world import SKIES, SUBJECTS
from gafu.fsio import atomic_path, write_json_atomic

VERDICT_FILE = "judge.json"
SHEET_FILE = "judge.png"
WITH_TRIGGER_AT_LEAST = 0.7  # at weight 1
WITHOUT_TRIGGER_WITHIN = 0.1  # of the base model's score, at weights up to 1
CLEARLY_RAISED = 0.2  # "partly": the trigger adds at least this at weight 1, without leaking
SCENE_TAGS = "no humans, scenery"  # what the demo tagger puts on every target caption


@dataclass
class Verdict:
    """The judge's mean target-style probability per weight, with and without the trigger."""

    rows: list[dict]  # {"weight", "base", "with_trigger", "without_trigger"}
    pictures_per_cell: int
    prompts: list[str] = field(default_factory=list)

    def at(self, weight: float) -> dict:
        """The row of `weight`."""
        return next(row for row in self.rows if row["weight"] == weight)

    @property
    def learned(self) -> bool:
        """The trigger draws the style at weight 1 and the prompts without it stay as the base drew them."""
        return self.at(1.0)["with_trigger"] >= WITH_TRIGGER_AT_LEAST and all(
            abs(row["without_trigger"] - row["base"]) <= WITHOUT_TRIGGER_WITHIN
            for row in self.rows
            if row["weight"] <= 1
        )

    @property
    def trigger_raises(self) -> bool:
        """Weaker than `learned`: at weight 1 the trigger clearly raises the style and nothing leaks."""
        row = self.at(1.0)
        return (
            row["with_trigger"] >= row["without_trigger"] + CLEARLY_RAISED
            and abs(row["without_trigger"] - row["base"]) <= WITHOUT_TRIGGER_WITHIN
        )

    def answer(self) -> str:
        """The verdict in words, for the console and the report."""
        row = self.at(1.0)
        figures = (
            f"at weight 1 the judge scores the target style {row['with_trigger']:.2f} with the trigger, "
            f"{row['without_trigger']:.2f} without (base model {row['base']:.2f})"
        )
        if self.learned:
            return f"yes: {figures}"
        if self.trigger_raises:
            return f"partly: {figures}; the recipe's bar is {WITH_TRIGGER_AT_LEAST:g} with the trigger"
        return f"no: {figures}"

    def to_dict(self) -> dict:
        """Plain data for `judge.json`."""
        return {**asdict(self), "learned": self.learned, "answer": self.answer()}


def judge_prompts(count: int, seed: int) -> list[str]:
    """`count` scene prompts without the trigger, every subject and sky in turn, in a seeded order."""
    rng = random.Random(seed)
    pairs = [(subject, sky) for sky in SKIES for subject in SUBJECTS]
    rng.shuffle(pairs)
    return [f"{subject}, {sky}, {SCENE_TAGS}" for subject, sky in (pairs * count)[:count]]


def judge_lokr(
    project, lokr: Path, judge_file: Path, *, weights: list[float], count: int, folder: Path
) -> Verdict:
    """Draw `count` prompts at each weight with and without the trigger, score them, write the results."""
    from dataclasses import replace

    from gafu.demo.judge import Judge
    from gafu.sample.prompts import plan_prompts
    from gafu.sample.render import network_at
    from gafu.sample.samples import load_sampling_model, network_loader, sampling_plan
    from gafu.sample.training import renderer_for

    plan, _ = sampling_plan(project)
    judge = Judge.load(judge_file)
    base = load_sampling_model(project, plan, None)
    renderer = renderer_for(base, plan)
    network = network_loader(base, plan)(lokr)
    defaults = plan_prompts(plan.sample, plan.trigger)[0]
    texts = judge_prompts(count, plan.sample.seed)
    prompts = [replace(defaults, text=text, seed=plan.sample.seed + i) for i, text in enumerate(texts)]

    def draw(weight: float, trigger: bool) -> list[Image.Image]:
        with network_at(network, weight):
            return renderer.render_batch(
                prompts, [p.with_trigger(plan.trigger) if trigger else p.text for p in prompts]
            )

    base_pictures = draw(0.0, trigger=False)
    base_score = float(judge.target_probability(base_pictures).mean())
    rows, sheet = [], []
    for weight in weights:
        with_trigger = draw(weight, True)
        without = base_pictures if weight == 0 else draw(weight, False)
        rows.append(
            {
                "weight": weight,
                "base": round(base_score, 4),
                "with_trigger": round(float(judge.target_probability(with_trigger).mean()), 4),
                "without_trigger": round(float(judge.target_probability(without).mean()), 4),
            }
        )
        sheet.append((weight, with_trigger, without))
    verdict = Verdict(rows=rows, pictures_per_cell=count, prompts=texts)
    write_json_atomic(folder / VERDICT_FILE, verdict.to_dict())
    _write_sheet(sheet, folder / SHEET_FILE)
    return verdict


def _write_sheet(
    rows: list[tuple[float, list[Image.Image], list[Image.Image]]], path: Path, shown: int = 6
) -> None:
    """A row per weight: `shown` pictures with the trigger, a gap, the same prompts without it."""
    side = rows[0][1][0].size[0]
    label, gap = 64, side // 2
    width = label + 2 * shown * side + gap
    sheet = Image.new("RGB", (width, 20 + len(rows) * side), "white")
    pen = ImageDraw.Draw(sheet)
    pen.text((label, 4), "with the trigger", fill="black")
    pen.text((label + shown * side + gap, 4), "without the trigger", fill="black")
    for r, (weight, with_trigger, without) in enumerate(rows):
        y = 20 + r * side
        pen.text((4, y + side // 2 - 6), f"w {weight:g}", fill="black")
        for i, picture in enumerate(with_trigger[:shown]):
            sheet.paste(picture, (label + i * side, y))
        for i, picture in enumerate(without[:shown]):
            sheet.paste(picture, (label + shown * side + gap + i * side, y))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
