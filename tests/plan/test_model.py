import errno
import json

import pytest

from gafu.errors import GafuError
from gafu.plan import PLAN_VERSION, load_plan, plan_from_dict, resolve_plan, save_plan
from gafu.plan import model as plan_model
from tests.conftest import small_network_summary


@pytest.fixture
def plans(prepared_project):
    project = prepared_project(n_target=6, n_reg=4, size=(512, 512), family="noob-vpred")
    return project, [
        resolve_plan(project, 16.0, describe=lambda s: None),
        resolve_plan(project, 16.0, describe=lambda s: small_network_summary()),
    ]


def test_json_round_trip_gives_an_equal_plan(plans):
    _, found = plans
    for plan in found:
        data = json.loads(json.dumps(plan.to_dict()))
        assert plan_from_dict(data) == plan
        assert plan_from_dict(data).to_dict() == data


def test_json_holds_the_module_list_and_totals(plans):
    _, (_, with_summary) = plans
    network = with_summary.to_dict()["network"]
    summary = small_network_summary()
    assert [m["name"] for m in network["summary"]["modules"]] == [m.name for m in summary.modules]
    assert network["summary"]["modules"][2]["weight_shape"] == [1280, 1280, 3, 3]
    assert network["summary"]["trainable_parameters"] == summary.trainable_parameters
    assert network["summary"]["file_mb"]["fp16"] == round(summary.file_bytes("fp16") / 1e6, 1)
    assert network["summary"]["full_matrix_modules"] == 3
    assert network["settings"] == {
        "dim": 128,
        "conv_dim": 64,
        "factor": 8,
        "alpha": 128.0,
        "conv_alpha": 64.0,
        "preset": "full",
        "train_text_encoder": True,
    }


def test_save_and_load(plans, tmp_path):
    _, (plan, _) = plans
    path = tmp_path / "output" / "plan.json"
    save_plan(plan, path)
    assert load_plan(path) == plan
    assert not [p for p in path.parent.iterdir() if p.name != "plan.json"]  # no temporary files left


def test_save_on_a_full_disk_is_a_clear_error_and_keeps_the_old_plan(plans, tmp_path, write_failure):
    _, (plan, other) = plans
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    before = path.read_bytes()
    write_failure.under(tmp_path, errno.ENOSPC)
    with pytest.raises(GafuError, match="disk full"):
        save_plan(other, path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.update(version=PLAN_VERSION + 1), "written by a newer gafu"),
        (lambda d: d.pop("version"), "`version` must be a whole number"),
        (lambda d: d["batch"].update(epochs="many"), "batch.epochs must be int"),
        (lambda d: d["batch"].update(epoch=3), "unknown key 'epoch' in batch"),
        (lambda d: d["dataset"]["target"].update(name="other"), "dataset.target.name"),
    ],
)
def test_bad_plan_data_is_a_one_line_error(plans, change, needle):
    _, (plan, _) = plans
    data = plan.to_dict()
    change(data)
    with pytest.raises(GafuError, match=needle) as caught:
        plan_from_dict(data, source="output/plan.json")
    assert "output/plan.json" in str(caught.value) and "\n" not in str(caught.value)


def test_not_json_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(GafuError, match=r"plan\.json is not valid JSON"):
        load_plan(path)


def test_older_plans_are_migrated(plans, monkeypatch):
    _, (plan, _) = plans
    old = plan.to_dict()
    old["version"] = PLAN_VERSION
    old["batch"]["num_epochs"] = old["batch"].pop("epochs")  # pretend version N called it num_epochs

    def rename(data):
        data["batch"]["epochs"] = data["batch"].pop("num_epochs")
        return data

    monkeypatch.setattr(plan_model, "PLAN_VERSION", PLAN_VERSION + 1)
    monkeypatch.setitem(plan_model.MIGRATIONS, PLAN_VERSION, rename)
    migrated = plan_model.plan_from_dict(old)
    assert migrated.batch.epochs == plan.batch.epochs


def test_a_version_1_plan_gets_the_samples_per_bucket_it_counted(plans):
    """Version 1 gave every target picture the set's repeats and each reg bucket a share rounded up."""
    _, (plan, _) = plans
    old = plan.to_dict()
    old["version"] = 1
    for name in ("target", "reg"):
        del old["dataset"][name]["bucket_samples"]
    old["dataset"]["reg"]["buckets"] = {"512x512": 3, "576x448": 1}  # 12 reg samples over 4 pictures
    migrated = plan_from_dict(old)
    assert migrated.version == PLAN_VERSION
    assert migrated.dataset.target.bucket_samples == {"512x512": 6 * 2}
    assert migrated.dataset.reg.bucket_samples == {"512x512": 9, "576x448": 3}  # ⌈12 × 3/4⌉, ⌈12 × 1/4⌉
