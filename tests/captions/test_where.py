import pytest

from gafu.captions.where import parse_where
from gafu.errors import GafuError

CAPTION = ["mzh_style", "1girl", "long hair", "white dress", r"ganyu \(genshin impact\)"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("long_hair", True),
        ("Long_Hair 1girl", True),  # all of; case and _ ignored
        ("long_hair,1girl", True),  # commas separate terms too
        ("long_hair short_hair", False),
        ("black_dress or white_dress", True),  # any of
        ("black_dress or red_dress", False),
        ("no:chibi no:sketch", True),  # none of
        ("no:chibi no:white_dress", False),
        ("not:chibi and long_hair", True),  # `not:` and `and` accepted
        ("ganyu_(genshin_impact)", True),  # escaped and plain parentheses match
        ("long_hair no:chibi black_dress or white_dress", True),
        ("1girl no:long_hair or chibi", False),  # a clause of a negated and a plain tag
        ("1girl no:short_hair or chibi", True),
    ],
)
def test_where_matches(expression, expected):
    assert parse_where(expression).matches(CAPTION) is expected


def test_several_expressions_are_all_required():
    assert parse_where(["long_hair", "no:chibi"]).matches(CAPTION)
    assert not parse_where(["long_hair", "no:white_dress"]).matches(CAPTION)
    assert parse_where(["long_hair", "no:white_dress"]).keys == {"long hair", "white dress"}


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("or", "`or` needs a tag on each side"),
        ("a or", "`or` needs a tag on each side"),
        ("or a", "`or` needs a tag on each side"),
        ("a or or b", "`or` needs a tag on each side"),
        ("no: chibi", "`no:` needs a tag right after it"),
        ("   ", "--where is empty"),
    ],
)
def test_malformed_where_is_a_clear_error(expression, needle):
    with pytest.raises(GafuError) as err:
        parse_where(expression)
    message = str(err.value)
    assert needle in message and "no:TAG" in message  # the reason, and the syntax to use
    assert "\n" not in message
