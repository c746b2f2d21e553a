import dataclasses
import tomllib

import pytest

from gafu import recipe
from gafu.config import (
    CONFIG_VERSION,
    ConceptSource,
    Config,
    config_from_dict,
    default_text,
    load_config,
    render_config,
    save_config,
)
from gafu.errors import ConfigError


def test_defaults_come_from_the_recipe():
    config = Config()
    assert config.train.epochs == recipe.EPOCHS == 200
    assert config.project.repeats == recipe.REPEATS == 2
    assert config.train.unet_lr == recipe.UNET_LR == 1.3e-3
    assert config.tag.target.threshold == recipe.TARGET_THRESHOLD == 0.5
    assert config.tag.reg.threshold == recipe.REG_THRESHOLD == 0.35
    assert (config.network.dim, config.network.conv_dim, config.network.factor) == (128, 64, 8)
    assert config.train.keep_tokens == 1 and config.train.shuffle_caption
    assert config.train.caption_dropout_rate == 0 == config.train.caption_tag_dropout_rate


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"trian": {}}, "unknown key 'trian'; did you mean 'train'?"),
        ({"train": {"epoch": 3}}, "did you mean 'train.epochs'?"),
        ({"tag": {"target": {"treshold": 0.4}}}, "did you mean 'tag.target.threshold'?"),
        ({"project": {"zzzzzz": 1}}, "valid keys here: trigger, family, repeats"),
    ],
)
def test_unknown_keys_are_rejected_with_the_closest_valid_key(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"train": {"epochs": "200"}}, "train.epochs must be a whole number"),
        ({"train": {"epochs": 2.5}}, "train.epochs must be a whole number"),
        ({"train": {"shuffle_caption": 1}}, "must be true or false"),
        ({"prep": {"mode": "square"}}, "prep.mode = 'square' is not one of 'pad', 'bucket'"),
        ({"sample": {"weights": [0, "x"]}}, "sample.weights[1] must be a number"),
        ({"check": {"unwanted": "censored"}}, "check.unwanted must be a list"),
        ({"train": 3}, "[train] must be a table"),
    ],
)
def test_wrong_types_are_rejected(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in str(err.value)


def test_a_partial_table_keeps_the_other_defaults():
    config = config_from_dict({"tag": {"reg": {"exclude": ["a"]}}, "train": {"epochs": 10}})
    assert config.tag.reg.threshold == 0.35  # the reg default, not the bare section's
    assert config.tag.reg.exclude == ["a"]
    assert config.train.epochs == 10 and config.train.unet_lr == recipe.UNET_LR


def test_ints_are_accepted_for_floats():
    assert config_from_dict({"train": {"unet_lr": 1}}).train.unet_lr == 1.0


def test_render_round_trips_and_comments_defaults(tmp_path):
    config = Config()
    config.project.trigger = "mzh_style"
    config.sources.target = "D:/art/mizuha"
    config.tag.reg.exclude = ["long_hair", "^_^"]
    config.network.alpha = 4.0
    config.train.v_parameterization = True
    path = tmp_path / "gafu.toml"
    save_config(config, path)
    text = path.read_text(encoding="utf-8")
    assert load_config(path) == config
    assert 'trigger = "mzh_style"' in text
    assert "# epochs = 200" in text  # defaults shown, commented, so the recipe can evolve
    assert tomllib.loads(text)["version"] == CONFIG_VERSION
    assert "epochs" not in tomllib.loads(text).get("train", {})


def test_every_field_is_documented():
    def walk(obj):
        for f in dataclasses.fields(obj):
            if dataclasses.is_dataclass(getattr(obj, f.name)):
                yield from walk(getattr(obj, f.name))
            elif f.name != "version":
                yield f

    undocumented = [f.name for f in walk(Config()) if not f.metadata.get("doc")]
    assert undocumented == []


def test_versions(tmp_path):
    with pytest.raises(ConfigError, match="newer gafu"):
        config_from_dict({"version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="whole number"):
        config_from_dict({"version": "one"})
    assert config_from_dict({}).version == CONFIG_VERSION  # a file without a version is version 1


def test_migrations_run_in_order(monkeypatch):
    import gafu.config as cfg

    monkeypatch.setattr(cfg, "CONFIG_VERSION", 3)
    monkeypatch.setattr(
        cfg,
        "MIGRATIONS",
        {1: lambda d: {**d, "a": 1}, 2: lambda d: {**d, "b": d["a"] + 1}},
    )
    assert cfg.migrate({"version": 1}) == {"version": 3, "a": 1, "b": 2}


def test_bad_toml_names_the_file_and_windows_paths(tmp_path):
    path = tmp_path / "gafu.toml"
    path.write_text('[sources]\ntarget = "C:\\Users\\me\\art"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "forward slashes" in str(err.value)


def test_config_in_a_bad_encoding(tmp_path):
    path = tmp_path / "gafu.toml"
    path.write_bytes('[project]\ntrigger = "é"\n'.encode("latin-1"))
    with pytest.raises(Exception, match="not UTF-8"):
        load_config(path)


def test_concept_folders_are_an_array_of_tables_that_round_trips(tmp_path):
    config = Config()
    config.project.trigger = "mzh_style"  # gafu.toml is read back only with a trigger
    config.sources.concepts = [
        ConceptSource(folder="D:/art/10_mzh", repeats=10),
        ConceptSource(folder="D:/other", set="reg", repeats=1, name="other styles"),
    ]
    path = tmp_path / "gafu.toml"
    save_config(config, path)
    text = path.read_text(encoding="utf-8")
    assert text.count("[[sources.concepts]]") == 2 and 'set = "reg"' in text
    assert load_config(path) == config
    assert "# concepts = []" in render_config(Config())


@pytest.mark.parametrize(
    ("concepts", "needle"),
    [
        ([{"folder": "x", "repeat": 1}], "did you mean 'sources.concepts[0].repeats'?"),
        ([{"folder": "x", "set": "both"}], "sources.concepts[0].set = 'both' is not one of 'target', 'reg'"),
        ([{"folder": "x"}, 3], "[sources.concepts[1]] must be a table"),
        ("x", "sources.concepts must be a list"),
    ],
)
def test_bad_concept_folders_are_rejected(concepts, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"sources": {"concepts": concepts}})
    assert needle in str(err.value)


def test_the_kohya_section_is_written_only_for_an_imported_project(tmp_path):
    assert "[kohya]" not in render_config(Config())
    config = Config()
    config.project.trigger = "mzh_style"  # gafu.toml is read back only with a trigger
    config.kohya.config = "D:/kohya/config.toml"
    config.kohya.values = ["train.unet_lr = 0.001", 'prep.caption_extensions = [".txt"]']
    path = tmp_path / "gafu.toml"
    save_config(config, path)
    assert "[kohya]" in path.read_text(encoding="utf-8") and load_config(path) == config


def test_defaults_as_people_read_them():
    assert default_text("train", "unet_lr") == "0.0013"
    assert default_text("train", "batch_size") == "0 = largest that fits the GPU"
    assert default_text("network", "alpha").startswith("unset = dim")
    assert default_text("train", "shuffle_caption") == "true"
    assert default_text("model", "path") == "not set"


@pytest.mark.parametrize(
    ("trigger", "needle"),
    [
        ("zz, style", "comma"),
        ("zz\nstyle", "line break"),
        ("smile", "ordinary tag"),
        ("", "empty"),
    ],
)
def test_a_trigger_gafu_refuses_is_refused_wherever_gafu_toml_is_read(tmp_path, trigger, needle):
    config = Config()
    config.project.trigger = trigger
    path = tmp_path / "gafu.toml"
    save_config(config, path)  # as if edited by hand after `gafu init`
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: [project] trigger") and needle in message


def test_the_cli_refuses_a_trigger_edited_into_gafu_toml_before_touching_the_dataset(make_project):
    import subprocess
    import sys

    from tests.conftest import gafu_env

    project = make_project(n_target=2, n_reg=0)
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(text.replace('"mzh_style"', '"zz, style"'), encoding="utf-8")
    for command in (["prep"], ["check"], ["tags", "add", "x", "-p"]):
        done = subprocess.run(
            [sys.executable, "-m", "gafu", *command, str(project.root)],
            env=gafu_env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "[project] trigger" in lines[0] and "comma" in lines[0]
    assert not project.dataset_dir.exists()  # no `2_zz,_style` folder, no caption written


def test_source_lists_round_trip_and_a_long_list_is_written_one_item_a_line(tmp_path):
    config = Config()
    config.project.trigger = "mzh_style"  # gafu.toml is read back only with a trigger
    config.sources.exclude.target = ["old/*", "t003.png"]
    config.sources.include.reg = [f"artist_{i:02d}/picture {i:04d}.png" for i in range(12)]
    path = tmp_path / "gafu.toml"
    save_config(config, path)
    text = path.read_text(encoding="utf-8")
    assert 'target = ["old/*", "t003.png"]' in text and "[sources.exclude]" in text
    assert '\n  "artist_03/picture 0003.png",\n' in text  # one a line: diffs show what a pick changed
    assert load_config(path) == config
    with pytest.raises(ConfigError, match=r"sources.exclude.target must be a list"):
        config_from_dict({"sources": {"exclude": {"target": "old/*"}}})
