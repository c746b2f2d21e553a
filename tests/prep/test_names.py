from pathlib import PurePath

from gafu.prep.names import output_names


def _names(paths, kept=None):
    sources = [PurePath(p) for p in paths]
    result = output_names(sources, {PurePath(k): v for k, v in (kept or {}).items()})
    return {source.as_posix(): result[source].stem for source in sources}


def test_unique_stems_are_kept_including_non_ascii():
    assert _names(["絵 ñ.png", "b.jpg", "sub/c.webp"]) == {
        "絵 ñ.png": "絵 ñ",
        "b.jpg": "b",
        "sub/c.webp": "c",
    }


def test_same_stem_different_extension_both_survive():
    assert _names(["a.jpg", "a.png"]) == {"a.jpg": "a_jpg", "a.png": "a_png"}


def test_same_name_in_subfolders_gets_the_folder():
    names = _names(["a.png", "x/a.png", "x/y/a.png", "z/a.png"])
    assert names == {"a.png": "a", "x/a.png": "x_a", "x/y/a.png": "x_y_a", "z/a.png": "z_a"}


def test_mixed_collisions_and_case_are_told_apart():
    names = _names(["a.jpg", "a.png", "sub/a.png", "B.png", "b.png"])
    assert names["a.jpg"] == "a_jpg" and names["a.png"] == "a_png" and names["sub/a.png"] == "sub_a"
    assert {names["B.png"].casefold(), names["b.png"].casefold()} == {"b_png", "b_png_2"}
    assert len({name.casefold() for name in names.values()}) == len(names)


def test_names_do_not_depend_on_listing_order():
    paths = ["a.jpg", "sub/a.png", "a.png", "c.png"]
    assert _names(paths) == _names(list(reversed(paths)))


def test_existing_outputs_keep_their_names_when_a_colliding_original_arrives():
    # a.png was prepared as "a"; then a.jpg is added: a.png keeps "a" (its caption stays paired)
    names = _names(["a.jpg", "a.png"], kept={"a.png": "a"})
    assert names == {"a.png": "a", "a.jpg": "a_jpg"}
    result = output_names([PurePath("a.jpg"), PurePath("a.png")], {PurePath("a.png"): "a"})
    assert result[PurePath("a.png")].reason is None and "a.png" in result[PurePath("a.jpg")].reason


def test_a_new_name_never_takes_a_kept_one():
    names = _names(["a_jpg.png", "a.jpg", "a.png"], kept={"a.png": "a_jpg"})
    assert names["a.png"] == "a_jpg"
    assert len({n.casefold() for n in names.values()}) == 3
