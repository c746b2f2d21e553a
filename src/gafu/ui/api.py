"""The UI's JSON endpoints: each reads its arguments, calls the library once, returns plain data.

Every write goes through the library: caption edits through `gafu.captions.edit` (journaled,
undoable), thresholds and overrides through `gafu.config` (validated, atomic), captions from
new thresholds through `rethreshold_project`. The project is opened afresh on every request,
so an edit made in a terminal meanwhile is seen at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from gafu.config import Config, save_config
from gafu.errors import ConfigError, GafuError
from gafu.fsio import write_bytes_atomic
from gafu.project import Project
from gafu.ui import state
from gafu.ui.curation import CurationEndpoints, RegPicker
from gafu.ui.files import OutsideProject, project_file, relative_url, url_of_name
from gafu.ui.jobs import JobConflict, Sampler, Tagger, Trainer
from gafu.ui.overrides import FieldErrors, apply_overrides, field_errors, override_fields

FILTER_MODES = ("all", "any", "none")
TRAIN_MODES = {"new": [], "resume": ["--resume"], "restart": ["--restart"]}  # → `gafu train` options
THUMB_SIDE = 320  # px: the dataset grid's thumbnails
_EPOCH = re.compile(r"e(\d{3,})$")


class NotFound(GafuError):
    """Something the request names does not exist (HTTP 404)."""


@dataclass
class Api(CurationEndpoints):
    """The endpoints over one project folder (the curation ones in `gafu.ui.curation`)."""

    root: Path
    trainer: Trainer = field(init=False)
    sampler: Sampler = field(init=False)
    tagger: Tagger = field(init=False)
    reg_picker: RegPicker = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.trainer, self.sampler, self.tagger = Trainer(self.root), Sampler(self.root), Tagger(self.root)
        self.reg_picker = RegPicker(self.root)

    def project(self) -> Project:
        """The project as it is on disk now."""
        return Project.open(self.root)

    # --- the whole project -------------------------------------------------------------------
    def get_state(self, query: dict[str, str]) -> dict[str, Any]:
        """Name, trigger, family and each stage's state."""
        project = self.project()
        return {
            "name": project.root.name,
            "trigger": project.config.project.trigger,
            "family": project.family.title,
            "stages": state.project_state(project, training=self.trainer.running_pid() is not None),
        }

    # --- dataset -------------------------------------------------------------------------------
    def get_pictures(self, query: dict[str, str]) -> dict[str, Any]:
        """The prepared pictures with their captions, filtered by tags (all / any / none of them)."""
        from gafu.captions.dataset import chosen_sets, load_captions

        project = self.project()
        captioned = load_captions(project, chosen_sets(query.get("set", "both")))  # type: ignore[arg-type]
        keep = _tag_filter(_split(query.get("tags", "")), query.get("mode", "all"))
        names = set(_split(query.get("pictures", "")))
        shown = []
        for item in captioned:
            name = item.picture.path.relative_to(project.root).as_posix()
            if (keep is None or keep.matches(item.tags)) and (not names or name in names):
                shown.append(_picture_data(project, item, name))
        return {"total": len(captioned), "pictures": shown}

    def post_tags_edit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add, remove or replace tags on the chosen pictures: `gafu tags` (journaled; undo reverts it)."""
        from gafu.captions import edit

        action = body.get("action")
        pictures = _string_list(body.get("pictures"), "pictures")
        if not pictures:
            raise GafuError("no pictures chosen", hint="select pictures in the grid first")
        selection = edit.Selection(sets=body.get("set", "both"), pictures=pictures)
        project = self.project()
        dry_run = bool(body.get("dry_run"))
        if action == "add":
            result = edit.tags_add(
                project, _string_list(body.get("tags"), "tags"), selection, dry_run=dry_run
            )
        elif action == "remove":
            tags = _string_list(body.get("tags"), "tags")
            result = edit.tags_remove(project, tags, selection, dry_run=dry_run)
        elif action == "replace":
            old, new = str(body.get("old", "")), str(body.get("new", ""))
            result = edit.tags_replace(project, old, new, selection, dry_run=dry_run)
        else:
            raise GafuError(f"unknown edit {action!r}", hint="use add, remove or replace")
        return result.to_dict()

    def post_tags_undo(self, body: dict[str, Any]) -> dict[str, Any]:
        """Revert the latest caption edit (`gafu tags undo`)."""
        from gafu.captions.journal import undo_last

        result = undo_last(self.project(), force=bool(body.get("force")))
        entry = result.entry
        return {
            "entry": entry.id if entry else None,
            "action": entry.action if entry else None,
            "restored": result.restored,
            "missing": result.missing,
        }

    def get_tags_history(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """The edits undo can revert, newest first."""
        from gafu.captions.journal import list_entries

        entries = reversed(list_entries(self.project()))
        return [
            {"id": e.id, "action": e.action, "written_at": e.written_at, "captions": len(e.changes)}
            for e in entries
        ]

    def get_tags_stats(self, query: dict[str, str]) -> dict[str, Any]:
        """Tag frequencies per set, side by side (`gafu tags stats`)."""
        from gafu.captions.stats import tag_stats

        return tag_stats(self.project()).to_dict(int(_number(query.get("top") or 0, "top")))

    def get_check(self, query: dict[str, str]) -> dict[str, Any]:
        """The `gafu check` report (also written to reports/check.json)."""
        from gafu.check import run_check

        return run_check(self.project()).to_dict()

    # --- tagging --------------------------------------------------------------------------------
    def post_tag_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start the tagger on the pictures that need a caption (mode: skip, overwrite, merge)."""
        from gafu.tagging.tag import MODES

        mode = body.get("mode", "skip")
        if mode not in MODES:
            raise GafuError(f"unknown mode {mode!r}", hint=f"use one of {', '.join(MODES)}")
        self.project()  # a broken gafu.toml is reported now, not from the thread
        self.tagger.start(mode)
        return self.tagger.progress

    def get_tag_status(self, query: dict[str, str]) -> dict[str, Any]:
        """The tagger's progress."""
        return self.tagger.progress

    def get_tag_preview(self, query: dict[str, str]) -> dict[str, Any]:
        """Captions the stored scores give at the thresholds asked, beside the current ones (no writes)."""
        from gafu.ui.rethreshold import preview_captions

        project = self.project()
        values = {key: _number(query[key], key) for key in ("target", "reg", "character") if query.get(key)}
        config = _with_thresholds(project.config, values)
        return preview_captions(Project(project.root, config))

    def post_tag_thresholds(self, body: dict[str, Any]) -> dict[str, Any]:
        """Write the thresholds to gafu.toml and rewrite the captions from the stored scores."""
        from gafu.tagging.tag import rethreshold_project

        project = self.project()
        values = {key: _number(body[key], key) for key in ("target", "reg", "character") if key in body}
        config = _with_thresholds(project.config, values)
        save_config(config, project.config_path)
        mode = "overwrite" if body.get("overwrite_edited") else "skip"
        return rethreshold_project(Project(project.root, config), mode).to_dict()

    # --- plan ----------------------------------------------------------------------------------------
    def get_plan(self, query: dict[str, str]) -> dict[str, Any]:
        """The resolved plan with its sources, the editable overrides, and any error resolving it.

        Like `gafu plan`, it writes reports/plan.json.
        """
        from gafu.plan import resolve_plan, write_plan_report
        from gafu.plan.memory import detect_gpu
        from gafu.plan.render import render_plan

        project = self.project()
        fields = override_fields(project.config)
        vram = _number(query["vram"], "vram") if query.get("vram") else None
        try:
            plan = resolve_plan(project, vram, gpu=detect_gpu())
        except GafuError as exc:
            return {"plan": None, "error": str(exc), "fields": fields}
        write_plan_report(project.reports_dir, plan)
        return {"plan": plan.to_dict(), "text": render_plan(plan), "error": None, "fields": fields}

    def post_plan_overrides(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate overrides `{"train.epochs": "10", …}` as the plan would and write gafu.toml."""
        from gafu.plan import resolve_plan

        project = self.project()
        values = body.get("values")
        if not isinstance(values, dict):
            raise GafuError('send {"values": {"train.epochs": "10", …}}')
        config = apply_overrides(project.config, values)
        try:
            resolve_plan(Project(project.root, config))
        except ConfigError as exc:
            raise field_errors(str(exc), values) from exc
        except GafuError:
            pass  # not about the values (no pictures yet …): the plan page shows it after saving
        save_config(config, project.config_path)
        return {"saved": str(project.config_path.name), "fields": override_fields(config)}

    # --- training and sampling --------------------------------------------------------------------
    def post_train_start(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start `gafu train` in its own process: `{"mode": "new" | "resume" | "restart"}`.

        Refused at once, with `gafu train`'s own message, while a run holds output/train.lock,
        for a new run over a saved one, and for a resume of nothing or of a finished run.
        """
        from gafu.train.runs import check_start

        project = self.project()
        mode = body.get("mode") or ("resume" if body.get("resume") else "new")
        if mode not in TRAIN_MODES:
            raise GafuError(f"unknown mode {mode!r}", hint=f"use one of {', '.join(TRAIN_MODES)}")

        def check() -> None:
            try:
                check_start(project.output_dir, resume=mode == "resume", restart=mode == "restart")
            except GafuError as exc:
                raise JobConflict(str(exc)) from exc

        return {"pid": self.trainer.start(TRAIN_MODES[mode], check=check), "mode": mode}

    def post_train_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ask the running trainer to save and stop (output/STOP)."""
        return {"stop": self.trainer.stop().relative_to(self.root).as_posix()}

    def get_train_status(self, query: dict[str, str]) -> dict[str, Any]:
        """Whether a run is going, how our last child ended, and the run saved in output/."""
        from gafu.train.runs import current_run

        project = self.project()
        run = current_run(project.output_dir, project.output_name)
        latest = run.latest
        return {
            **self.trainer.status(),
            "run": {
                "saved_step": run.saved_step,
                "total_steps": run.total_steps,
                "finished": run.finished,
                "resumable": run.resumable,
                "latest": latest.path.name if latest else None,
            },
        }

    def get_outputs(self, query: dict[str, str]) -> dict[str, Any]:
        """LoKr files (with the style probe's figures) and sample grids, by epoch."""
        project = self.project()
        index = project.output_dir / "samples" / "index.html"
        return {
            "lokr": _lokr_files(project),
            "grids": _grid_groups(project),
            "index": relative_url(project.root, index) if index.is_file() else None,
        }

    def post_sample(self, body: dict[str, Any]) -> dict[str, Any]:
        """Render grids with `gafu sample`: one LoKr file at several weights, or saved epochs side by side.

        `{"lokr": "name-e000010.safetensors", "weights": "0,0.5,1"}`, or `{"epochs": [50, 100]}`.
        """
        weights = str(body.get("weights") or "").replace(" ", "")
        if weights:
            for part in weights.split(","):
                _number(part, "weights")
        extra = ["--weights", weights] if weights else []
        if body.get("epochs"):
            epochs = body["epochs"]
            if not isinstance(epochs, list) or not all(isinstance(e, int) and e >= 0 for e in epochs):
                raise GafuError("epochs must be a list of epoch numbers")
            listed = ",".join(str(e) for e in epochs)
            return {"pid": self.sampler.start(["--epochs", listed, *extra], f"epochs {listed}")}
        path = self._lokr_file(str(body.get("lokr", "")))
        return {"pid": self.sampler.start(["--lokr", str(path), *extra], path.name)}

    def _lokr_file(self, name: str) -> Path:
        """A `.safetensors` file directly in output/ (nothing else may be named)."""
        try:
            path = project_file(self.root, f"output/{name}")
        except OutsideProject as exc:
            raise NotFound(f"no LoKr file output/{name}", hint="pick one from the list") from exc
        if path.suffix != ".safetensors" or path.parent != self.root / "output":
            raise NotFound(f"no LoKr file output/{name}", hint="pick one from the list")
        return path

    def get_sample_status(self, query: dict[str, str]) -> dict[str, Any]:
        """The sampler's state and log."""
        return self.sampler.status()

    # --- pictures ------------------------------------------------------------------------------------
    def thumbnail(self, relative: str) -> bytes:
        """A small JPEG of a project picture, cached under .gafu/cache/thumbs (safe to delete)."""
        from PIL import Image

        path = project_file(self.root, relative)
        stat = path.stat()
        key = hashlib.sha256(f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{THUMB_SIDE}".encode()).hexdigest()
        cached = self.root / ".gafu" / "cache" / "thumbs" / f"{key[:32]}.jpg"
        if cached.is_file():
            return cached.read_bytes()
        out = BytesIO()
        try:
            with Image.open(path) as image:
                image.thumbnail((THUMB_SIDE, THUMB_SIDE))
                image.convert("RGB").save(out, "JPEG", quality=85)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise NotFound(f"{relative} is not a picture gafu can show ({exc})") from exc
        data = out.getvalue()
        with contextlib.suppress(GafuError, OSError):  # a cache that cannot be written only costs time
            write_bytes_atomic(cached, data)
        return data


# --- helpers ---------------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _string_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = _split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GafuError(f"{name} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GafuError(f"{name} must be a number, not {value!r}") from None


def _tag_filter(tags: list[str], mode: str):
    """The `--where` filter for `tags` under `mode`: all of them, any of them, none of them."""
    from gafu.captions.where import parse_where

    if mode not in FILTER_MODES:
        raise GafuError(f"unknown filter mode {mode!r}", hint="use all, any or none")
    if not tags:
        return None
    words = [tag.replace(" ", "_") for tag in tags]
    if mode == "all":
        return parse_where(" ".join(words))
    if mode == "any":
        return parse_where(" or ".join(words))
    return parse_where(" ".join(f"no:{w}" for w in words))


def _picture_data(project: Project, item, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "set": item.set,
        "url": relative_url(project.root, item.picture.path),
        "thumb": url_of_name(name, "thumb"),
        "tags": item.tags,
        "captioned": item.has_caption,
        "error": str(item.error) if item.error else None,
    }


def _with_thresholds(config: Config, values: dict[str, float]) -> Config:
    """`config` with new T2 thresholds, checked as `gafu tag` checks them (errors by field)."""
    from gafu.tagging.tag import threshold_problems

    tag = config.tag
    target = dataclasses.replace(tag.target, threshold=values.get("target", tag.target.threshold))
    reg = dataclasses.replace(tag.reg, threshold=values.get("reg", tag.reg.threshold))
    character = values.get("character", tag.character_threshold)
    changed = dataclasses.replace(
        config, tag=dataclasses.replace(tag, target=target, reg=reg, character_threshold=character)
    )
    problems = threshold_problems(changed)
    if problems:
        raise FieldErrors(problems)
    return changed


def _epoch_of(stem: str) -> int | None:
    match = _EPOCH.search(stem)
    return int(match.group(1)) if match else None


def _lokr_files(project: Project) -> list[dict[str, Any]]:
    """The current run's LoKr files in saving order (epochs, stops, the final file), then any other."""
    from gafu.eval.evaluate import file_epoch
    from gafu.eval.report import known_figures
    from gafu.train.runs import current_run

    run = current_run(project.output_dir, project.output_name)
    mine = {f.path: f for f in run.lokr_files}
    others = sorted(p for p in project.output_dir.glob("*.safetensors") if p not in mine)
    return [
        {
            "name": path.name,
            "kind": item.kind if item else "other",
            "label": item.label if item else path.stem,
            "epoch": item.number if item and item.kind == "epoch" else None,
            "trained_epoch": file_epoch(path),  # the final file's too (its metadata)
            "mb": round(path.stat().st_size / 1e6, 1),
            "url": relative_url(project.root, path),
            # the style probe's figures: at its save (weight 1) and from the last `gafu eval`
            "figures": [
                {"weight": weight, "source": source, **figures.to_dict()}
                for weight, figures, source in known_figures(project, path)
            ],
        }
        for path, item in [*((f.path, f) for f in run.lokr_files), *((p, None) for p in others)]
    ]


def _grid_groups(project: Project) -> list[dict[str, Any]]:
    """Grids under output/samples/<folder>/ (a training epoch `e000010` or a LoKr file's stem)."""
    from gafu.sample.grid import GRID_PREFIX

    samples = project.output_dir / "samples"
    groups: dict[str, list[Path]] = {}
    for grid in sorted(samples.rglob(f"{GRID_PREFIX}*.png")) if samples.is_dir() else []:
        folder = grid.relative_to(samples).parts[0] if len(grid.relative_to(samples).parts) > 1 else ""
        groups.setdefault(folder, []).append(grid)
    items = [
        {
            "name": folder or "samples",
            "epoch": _epoch_of(folder),
            "grids": [relative_url(project.root, g) for g in grids],
        }
        for folder, grids in groups.items()
    ]
    return sorted(items, key=lambda item: (item["epoch"] is None, item["epoch"] or 0, item["name"]))
