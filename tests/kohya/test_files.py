"""Reading kohya's files: flattened training configs, dataset TOMLs with sd-scripts' fallbacks."""

from gafu.kohya.files import read_kohya_files, read_training_config
from tests.kohya.kohya_files import write_concept


def test_a_training_configs_tables_are_flattened(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n[network]\nnetwork_dim = 8\n[saving]\noutput_name = "x"\n', encoding="utf-8")
    assert read_training_config(path) == ({"seed": 3, "network_dim": 8, "output_name": "x"}, False)


def test_a_subsets_values_fall_back_to_its_dataset_general_and_the_config(tmp_path):
    target = write_concept(tmp_path / "a", 1, seed=1, caption=None)
    reg = write_concept(tmp_path / "b", 1, seed=2, caption=None)
    dataset = tmp_path / "d.toml"
    dataset.write_text(
        "[general]\nkeep_tokens = 2\nshuffle_caption = true\ncaption_extension = '.caption'\n"
        "[[datasets]]\nshuffle_caption = false\nresolution = [1024, 1024]\n"
        f"[[datasets.subsets]]\nimage_dir = '{target.as_posix()}'\nkeep_tokens = 1\n"
        f"[[datasets.subsets]]\nimage_dir = '{reg.as_posix()}'\nis_reg = true\nnum_repeats = 3\n"
        "keep_tokens = 0\n",
        encoding="utf-8",
    )
    config = tmp_path / "c.toml"
    config.write_text("caption_extension = '.txt'\nflip_aug = true\nseed = 5\n", encoding="utf-8")
    files = read_kohya_files(config, dataset)
    assert [(s.image_dir, s.is_reg, s.num_repeats) for s in files.subsets] == [
        (target, False, 1),
        (reg, True, 3),
    ]
    options = files.options
    assert (options["keep_tokens"], options["shuffle_caption"], options["caption_extension"]) == (
        1,
        False,
        ".caption",
    )
    assert options["resolution"] == [1024, 1024] and options["seed"] == 5 and options["flip_aug"] is True
    assert files.origin["keep_tokens"] == "datasets[0].subsets[0]"
    assert files.origin["shuffle_caption"] == "datasets[0]" and files.origin["caption_extension"] == "general"
    assert "seed" not in files.origin  # from the training config
    assert [(s.key, s.value, s.where) for s in files.settings if s.is_reg] == [
        ("keep_tokens", 0, "datasets[0].subsets[1]")
    ]


def test_a_config_names_its_dataset_config_relative_to_itself(tmp_path):
    write_concept(tmp_path / "kohya" / "img" / "2_x", 1, seed=1, caption=None)
    (tmp_path / "kohya" / "d.toml").write_text(
        "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'img/2_x'\nnum_repeats = 2\n", encoding="utf-8"
    )
    config = tmp_path / "kohya" / "c.toml"
    config.write_text('dataset_config = "d.toml"\n', encoding="utf-8")
    files = read_kohya_files(config)
    assert files.dataset_path == (tmp_path / "kohya" / "d.toml").resolve()
    assert files.subsets[0].image_dir == (tmp_path / "kohya" / "img" / "2_x").resolve()
    assert files.describe() == "c.toml + d.toml"
