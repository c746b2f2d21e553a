import pytest

from gafu.captions.text import (
    contains_tag,
    format_caption,
    parse_caption,
    read_caption,
    remove_tags,
    tag_key,
    tag_to_text,
    with_trigger_first,
    write_caption,
)
from gafu.errors import GafuError


@pytest.mark.parametrize(
    ("raw", "text", "escaped"),
    [
        ("long_hair", "long hair", "long hair"),
        ("^_^", "^_^", "^_^"),
        (">_<", ">_<", ">_<"),
        ("ganyu_(genshin_impact)", "ganyu (genshin impact)", r"ganyu \(genshin impact\)"),
        (r"ganyu \(genshin impact\)", "ganyu (genshin impact)", r"ganyu \(genshin impact\)"),
        ("  extra   spaces_here ", "extra spaces here", "extra spaces here"),
    ],
)
def test_tag_text(raw, text, escaped):
    assert tag_to_text(raw) == text
    assert tag_to_text(raw, escape_parentheses=True) == escaped


def test_tag_key_ignores_spelling():
    assert tag_key("Long_Hair") == tag_key("long hair")
    assert tag_key(r"a \(b\)") == tag_key("a_(b)")
    assert tag_key("^_^") != tag_key("^ ^")


def test_parse_and_edit():
    tags = parse_caption("mzh_style, long hair,, long_hair , 1girl,\r\nsmile,")
    assert tags == ["mzh_style", "long hair", "1girl", "smile"]
    assert format_caption(tags) == "mzh_style, long hair, 1girl, smile"
    assert contains_tag(tags, "LONG_HAIR")
    assert remove_tags(tags, ["long_hair", "smile"]) == ["mzh_style", "1girl"]
    assert with_trigger_first(["a", "mzh style", "b"], "mzh_style") == ["mzh_style", "a", "b"]


def test_read_caption_repairs_and_reports(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffa, b,, a,\r\nc,".encode())
    caption = read_caption(path)
    assert caption.tags == ["a", "b", "c"]
    joined = "; ".join(caption.problems)
    for needle in ["byte-order mark", "CRLF", "2 lines", "ends with a comma", "empty tags", "repeats a tag"]:
        assert needle in joined


def test_clean_caption_has_no_problems(tmp_path):
    path = tmp_path / "a.txt"
    write_caption(path, ["mzh_style", "1girl", "^_^"])
    assert path.read_bytes() == b"mzh_style, 1girl, ^_^\n"
    assert read_caption(path).problems == []


def test_caption_in_a_bad_encoding_names_the_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("café, 1girl".encode("cp1252"))
    with pytest.raises(GafuError) as err:
        read_caption(path)
    assert str(path) in str(err.value) and "UTF-8" in str(err.value)
