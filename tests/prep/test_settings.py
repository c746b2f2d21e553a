import pytest

from gafu.errors import ConfigError
from gafu.prep.settings import resolve_settings


def test_defaults_come_from_the_family(make_project):
    project = make_project(family="illustrious")
    settings = resolve_settings(project)
    assert (settings.mode, settings.background, settings.side) == ("pad", "white", 1536)
    assert settings.max_area == 1536 * 1536
    project.config.project.family = "sdxl"
    sdxl = resolve_settings(project, mode="bucket")
    assert sdxl.side == 1024 and sdxl.max_area == 1024 * 1024 and sdxl.max_side == 1536


def test_overrides_win_over_gafu_toml(make_project):
    project = make_project()
    project.config.prep.mode = "bucket"
    settings = resolve_settings(project, mode="pad", background="black", side=1088, on_reg_duplicate="drop")
    assert (settings.mode, settings.background, settings.side, settings.on_reg_duplicate) == (
        "pad",
        "black",
        1088,
        "drop",
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"side": 512}, "prep.side"),
        ({"side": 2048}, "prep.side"),
        ({"side": 1100}, "multiple of 64"),
        ({"mode": "bucket", "max_side": 2048}, "prep.max_side"),
        ({"mode": "bucket", "max_side": 1000}, "multiple of 64"),
        ({"mode": "bucket", "side": 1024}, "--side is for pad mode"),
        ({"max_side": 1024}, "--max-side is for bucket mode"),
    ],
)
def test_sides_outside_the_recipe_are_refused(make_project, overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve_settings(make_project(), **overrides)


def test_the_key_changes_only_with_what_shapes_the_output(make_project):
    project = make_project()
    pad = resolve_settings(project)
    assert pad.key(transparent=False) != resolve_settings(project, side=1024).key(transparent=False)
    assert pad.key(transparent=False) != resolve_settings(project, background="black").key(transparent=False)
    bucket_white = resolve_settings(project, mode="bucket")
    bucket_black = resolve_settings(project, mode="bucket", background="black")
    # in bucket mode the background shows only through transparency
    assert bucket_white.key(transparent=False) == bucket_black.key(transparent=False)
    assert bucket_white.key(transparent=True) != bucket_black.key(transparent=True)
    assert bucket_black.matches(bucket_white.key(transparent=False))
    assert not bucket_black.matches(bucket_white.key(transparent=True))
    assert not pad.matches(bucket_white.key(transparent=False))
