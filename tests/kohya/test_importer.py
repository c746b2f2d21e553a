"""`gafu init --from-kohya`: the project it writes, what it lists, and its one-line errors."""

import json
import tomllib

import pytest

from gafu.cli import main
from gafu.config import load_config, save_config
from gafu.errors import GafuError
from gafu.kohya import init_from_kohya
from gafu.plan import resolve_plan
from gafu.plan.render import render_plan
from gafu.prep.prepare import prepare
from gafu.project import Project
from tests.conftest import snapshot_files
from tests.kohya import kohya_files
from tests.kohya.kohya_files import write_concept


def _toml(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _dataset(root, *subsets, general=""):
    """A dataset TOML with `(image_dir, num_repeats, is_reg)` subsets."""
    body = "".join(
        f'\n[[datasets.subsets]]\nimage_dir = "{d}"\nnum_repeats = {n}\nis_reg = {str(r).lower()}\n'
        for d, n, r in subsets
    )
    return _toml(root / "dataset.toml", f"[general]\n{general}\n[[datasets]]\nresolution = 1024\n{body}")


def test_the_project_holds_what_the_files_say_and_the_originals_are_untouched(tmp_path):
    config, _ = kohya_files.write_flat_config(tmp_path / "kohya")
    before = snapshot_files(tmp_path / "kohya")
    result = init_from_kohya(tmp_path / "p", config)
    written = load_config(tmp_path / "p" / "gafu.toml")
    assert written == result.config
    assert [(c.folder.rsplit("/", 1)[1], c.set, c.repeats) for c in written.sources.concepts] == [
        ("10_mzh_style", "target", 10),
        ("5_mzh_style sketches", "target", 5),
        ("1_reg", "reg", 1),
    ]
    assert written.project.trigger == "mzh_style" and written.project.repeats == 10
    assert written.kohya.config.endswith("config.toml") and written.kohya.dataset.endswith("dataset.toml")
    assert "train.unet_lr = 0.001" in written.kohya.values
    assert "datasets[0].subsets[2].keep_tokens = 0" in written.kohya.unused  # the reg subset's own value
    assert "datasets[0].min_bucket_reso = 512" in written.kohya.unused
    assert written.sample.prompts == [
        "1girl, smile",
        "landscape, night",
    ]  # the prompts file, trigger left out
    report = json.loads((tmp_path / "p" / "reports" / "kohya-import.json").read_text(encoding="utf-8"))
    assert {row["line"] for row in report["unused"]} == set(written.kohya.unused)
    assert snapshot_files(tmp_path / "kohya") == before


def test_values_gafu_cannot_train_with_are_listed_not_imported(tmp_path):
    img = write_concept(tmp_path / "img" / "4_art", 2, seed=1, caption="mzh_style, 1girl")
    dataset = _dataset(tmp_path, (img.as_posix(), 4, False), general="caption_dropout_rate = 0.1\n")
    config = _toml(
        tmp_path / "config.toml",
        'network_module = "lycoris.kohya"\nnetwork_args = ["algo=lokr", "factor=6"]\n'
        'lr_scheduler = "constant"\noptimizer_type = "AdamW"\nunet_lr = 2e-3\n',
    )
    result = init_from_kohya(tmp_path / "p", config, dataset)
    unused = {u.option: u.reason for u in result.unused}
    assert "P7" in unused["caption_dropout_rate"] and "network_args factor" in unused
    assert "does not divide" in unused["network_args factor"]
    assert result.config.train.caption_dropout_rate == 0 and result.config.network.factor == 8
    assert result.config.train.unet_lr == 2e-3  # off-recipe but trainable: imported (the plan warns)
    project = Project.open(tmp_path / "p")
    prepare(project, workers=1)
    plan = resolve_plan(project, 24.0, describe=lambda s: None)  # the imported project plans
    assert any("outside the recipe's range" in w for w in plan.warnings)


def test_the_plan_shows_imported_values_as_from_kohya_with_the_recipes_beside(tmp_path):
    config, _ = kohya_files.write_flat_config(tmp_path / "kohya")
    init_from_kohya(tmp_path / "p", config)
    project = Project.open(tmp_path / "p")
    prepare(project, workers=1)
    plan = resolve_plan(project, 24.0, describe=lambda s: None)
    assert plan.sources["optimizer.unet_lr"] == "gafu.toml (from kohya) [train] unet_lr; recipe P4: 0.0013"
    assert plan.sources["batch.epochs"] == "gafu.toml (from kohya) [train] epochs; recipe P1: 200"
    assert plan.sources["dataset.resolution"].startswith("gafu.toml (from kohya) [train] resolution")
    assert plan.sources["batch.batch_size"].startswith("gafu.toml (from kohya) [train] batch_size")
    assert plan.sources["network.settings.preset"] == "gafu default"  # the files said "full", the recipe's
    assert "gafu.toml (from kohya) [network] factor; recipe P6: 8" in render_plan(plan)
    config = project.config
    config.train.unet_lr = 1.2e-3  # changed by the user after the import: theirs now
    save_config(config, project.config_path)
    plan = resolve_plan(Project.open(project.root), 24.0, describe=lambda s: None)
    assert plan.sources["optimizer.unet_lr"] == "gafu.toml [train] unet_lr"


def test_the_trigger_comes_from_the_captions_the_folder_or_the_command_line(tmp_path):
    img = tmp_path / "img"
    write_concept(img / "10_zzq_style", 2, seed=1, caption="1girl, smile")  # first tag: an ordinary tag
    write_concept(tmp_path / "reg" / "1_reg", 2, seed=9, caption="1girl")
    config = _toml(
        tmp_path / "c.toml",
        f'train_data_dir = "{img.as_posix()}"\nreg_data_dir = "{(tmp_path / "reg").as_posix()}"\n',
    )
    result = init_from_kohya(tmp_path / "p1", config)
    assert result.config.project.trigger == "zzq_style"  # '1girl' is refused as a trigger
    assert init_from_kohya(tmp_path / "p2", config, trigger="my_art").config.project.trigger == "my_art"
    (img / "10_zzq_style").rename(img / "10_1girl")
    with pytest.raises(GafuError, match=r"no trigger word found in c\.toml.*pass --trigger WORD"):
        init_from_kohya(tmp_path / "p3", config)


def test_the_family(tmp_path):
    config = kohya_files.write_sectioned_vpred_config(tmp_path / "kohya")
    assert init_from_kohya(tmp_path / "p1", config).config.project.family == "noob-vpred"
    with pytest.raises(GafuError, match=r"v_parameterization.*--family illustrious is an epsilon model"):
        init_from_kohya(tmp_path / "p2", config, family="illustrious")
    text = config.read_text(encoding="utf-8").replace(
        "v_parameterization = true", "v_parameterization = false"
    )
    text = text.replace("zero_terminal_snr = true", "").replace(
        "scale_v_pred_loss_like_noise_pred = true", ""
    )
    named_vpred = init_from_kohya(tmp_path / "p3", _toml(tmp_path / "named.toml", text))
    assert named_vpred.config.project.family == "noob-vpred"  # the file name says v-pred: P9 wins
    assert any(u.option == "v_parameterization" and "(P9" in u.reason for u in named_vpred.unused)
    plain = _toml(tmp_path / "eps.toml", text.replace("vPred10Version", "epsilonPred11Version"))
    assert init_from_kohya(tmp_path / "p4", plain).config.project.family == "noob-eps"
    assert init_from_kohya(tmp_path / "p5", plain, family="sdxl").config.project.family == "sdxl"


def test_a_lora_config_imports_with_a_warning_that_the_recipe_trains_lokr(tmp_path):
    img = write_concept(tmp_path / "img" / "3_art", 2, seed=1, caption="mzh_style, 1girl")
    config = _toml(
        tmp_path / "lora.toml",
        f'train_data_dir = "{img.parent.as_posix()}"\nnetwork_module = "networks.lora"\n'
        "network_dim = 32\nnetwork_alpha = 16\nunet_lr = 1e-4\nmax_train_epochs = 10\n",
    )
    result = init_from_kohya(tmp_path / "p", config)
    assert any("a LoRA config: the recipe trains LoKr (P6)" in w for w in result.warnings)
    assert any("no regularization" in w for w in result.warnings)
    assert (result.config.network.dim, result.config.network.factor) == (128, 8)
    assert {u.option for u in result.unused} >= {"network_dim", "network_alpha", "network_module"}
    assert result.config.train.epochs == 10 and result.config.train.unet_lr == 1e-4


@pytest.mark.parametrize(
    ("write", "needle"),
    [
        (lambda root: _toml(root / "c.toml", "network_dim = 32\n"), "names no dataset"),
        (
            lambda root: _toml(root / "c.toml", 'dataset_config = "gone.toml"\n'),
            "dataset_config gone.toml does not exist",
        ),
        (lambda root: _toml(root / "c.toml", "network_dim = [\n"), "is not valid TOML"),
        (lambda root: _toml(root / "c.json", "{ nope"), "is not valid JSON"),
        (
            lambda root: _toml(root / "c.toml", f'train_data_dir = "{root.as_posix()}"\n'),
            "holds no `<repeats>_<name>`",
        ),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, write, needle):
    with pytest.raises(GafuError, match=needle) as err:
        init_from_kohya(tmp_path / "p", write(tmp_path))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "p" / "gafu.toml").exists()


def test_bad_datasets_are_one_line_errors(tmp_path):
    config = _toml(tmp_path / "c.toml", "")
    with pytest.raises(GafuError, match=r"subsets\[0\]: the folder .*missing does not exist here"):
        init_from_kohya(
            tmp_path / "p", config, _dataset(tmp_path, ((tmp_path / "missing").as_posix(), 2, False))
        )
    reg = write_concept(tmp_path / "reg" / "1_reg", 1, seed=1, caption=None)
    with pytest.raises(GafuError, match="no training pictures"):
        init_from_kohya(tmp_path / "p", config, _dataset(tmp_path, (reg.as_posix(), 1, True)))
    _toml(tmp_path / "ft.toml", '[[datasets]]\n[[datasets.subsets]]\nmetadata_file = "meta.json"\n')
    with pytest.raises(GafuError, match="fine-tuning or ControlNet subset"):
        init_from_kohya(tmp_path / "p", config, tmp_path / "ft.toml")
    with pytest.raises(GafuError, match="overlap"):
        init_from_kohya(
            tmp_path / "p", config, _dataset(tmp_path, (reg.as_posix(), 1, False), (reg.as_posix(), 1, True))
        )


def test_relative_image_dirs_are_read_from_the_dataset_tomls_folder(tmp_path):
    write_concept(tmp_path / "kohya" / "img" / "2_art", 2, seed=1, caption="mzh_style, 1girl")
    dataset = _dataset(tmp_path / "kohya", ("img/2_art", 2, False))
    result = init_from_kohya(tmp_path / "p", _toml(tmp_path / "c.toml", ""), dataset)
    assert result.config.sources.concepts[0].folder == (tmp_path / "kohya" / "img" / "2_art").as_posix()


def test_an_existing_project_needs_force(tmp_path):
    config, _ = kohya_files.write_flat_config(tmp_path / "kohya")
    init_from_kohya(tmp_path / "p", config)
    with pytest.raises(GafuError, match="--force"):
        init_from_kohya(tmp_path / "p", config)
    init_from_kohya(tmp_path / "p", config, force=True)


def test_the_command_prints_what_was_imported_and_what_is_not_used(tmp_path, capsys):
    path = kohya_files.write_gui_config(tmp_path / "kohya")
    assert main(["init", str(tmp_path / "p"), "--from-kohya", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "values from kohya that differ from the recipe" in out
    assert "[train] epochs = 120   (kohya max_train_epochs; recipe 200)" in out
    assert "[train] batch_size = 3   (kohya train_batch_size; recipe 0 = largest that fits the GPU)" in out
    assert "kohya options gafu does not use" in out and "min_bucket_reso = 256" in out
    assert "is not on this machine" in err  # the GUI's model path
    data = tomllib.loads((tmp_path / "p" / "gafu.toml").read_text(encoding="utf-8"))
    assert data["sources"]["target"].endswith("/img") and data["train"]["epochs"] == 120
    assert main(["init", str(tmp_path / "q"), "--from-kohya", str(path), "--target", str(tmp_path)]) == 2
    assert "--target cannot be used with --from-kohya" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "q")]) == 2
    assert "needs --target and --trigger (or --from-kohya CONFIG)" in capsys.readouterr().err
