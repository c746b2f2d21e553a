from gafu.plan import resolve_plan
from gafu.plan.model import TABLE_VALUES, value_names
from gafu.plan.render import format_value, render_plan, source_of
from tests.conftest import small_network_summary

SECTIONS = ("model", "dataset", "network", "batch", "optimizer", "loss", "run", "memory", "sample")


def _leaf_values(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and key not in TABLE_VALUES:
            yield from _leaf_values(value, f"{prefix}{key}.")
        elif key != "summary":
            yield prefix + key, value


def test_printed_plan_shows_every_value_and_its_source(prepared_project):
    project = prepared_project(n_target=6, n_reg=6, size=(512, 512), family="noob-vpred")
    plan = resolve_plan(project, 12.0, describe=lambda s: small_network_summary())
    text = render_plan(plan)
    data = plan.to_dict()
    for section in SECTIONS:
        for name, value in _leaf_values(data[section], f"{section}."):
            label = name.rsplit(".", 1)[1].replace("_", " ")
            if name.endswith(".breakdown"):
                assert all(part in text for part in value), name
                continue
            assert f"{label} " in text, name
            assert format_value(value) in text, (name, format_value(value))
            assert source_of(name, plan.sources) in text, name
    assert all(source in text for source in plan.sources.values())
    assert "recipe P1" in text and "family noob-vpred (P9)" in text and "memory model (estimate)" in text
    for note in plan.notes + plan.warnings:
        assert note in text


def test_printed_network_summary(prepared_project):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    summary = small_network_summary()
    text = render_plan(resolve_plan(project, 12.0, describe=lambda s: summary))
    for block, (count, parameters) in summary.by_block().items():
        assert any(
            line.split()[:3] == [block, str(count), f"{parameters:,}"] for line in text.splitlines()
        ), block
    assert f"{summary.trainable_parameters:,}" in text
    assert f"{summary.file_bytes('fp16') / 1e6:.1f} MB in fp16/bf16" in text
    assert f"{summary.file_bytes('fp32') / 1e6:.1f} MB in fp32" in text
    assert "full-matrix modules (alpha ignored, scale 1): 3 of 4" in text
    without = render_plan(resolve_plan(project, 12.0, describe=lambda s: None))
    assert "not available in this gafu build" in without


def test_value_names_cover_the_plan(prepared_project):
    project = prepared_project(n_target=2, n_reg=2, size=(256, 256))
    names = value_names(resolve_plan(project, 12.0, describe=lambda s: None).to_dict())
    assert "batch.total_steps" in names and "network.settings.factor" in names
    assert "dataset.target.buckets" in names and not any(
        n.startswith("dataset.target.buckets.") for n in names
    )
