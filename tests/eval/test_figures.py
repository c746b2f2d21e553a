"""The four figures of the style probe and the suggestion: the formulas of the docs, exactly."""

import pytest

from gafu.eval.figures import StyleFigures, format_figure, style_figures, suggest, trigger_share


def test_figures_follow_the_documented_formulas():
    base = {"trigger": 0.20, "plain": 0.25, "reg": 0.30}
    model = {"trigger": 0.15, "plain": 0.24, "reg": 0.33}
    figures = style_figures(base, model)
    assert figures.fit == pytest.approx((0.20 - 0.15) / 0.20)  # 25 %
    assert figures.leakage == pytest.approx((0.25 - 0.24) / 0.25)  # 4 %
    assert figures.trigger_share == pytest.approx((0.25 - 0.04) / 0.25)  # 84 % of the fit needs the trigger
    assert figures.drift == pytest.approx((0.33 - 0.30) / 0.30)  # other styles' loss rose 10 %


def test_the_base_model_against_itself_is_all_zero_with_no_share():
    base = {"trigger": 0.2, "plain": 0.2, "reg": 0.3}
    figures = style_figures(base, dict(base))
    assert (figures.fit, figures.leakage, figures.drift) == (0.0, 0.0, 0.0)
    assert figures.trigger_share is None  # no fit: nothing to share out
    assert figures.text() == "fit +0.00 %, leakage +0.00 %, trigger share –, drift +0.00 %"


@pytest.mark.parametrize(
    ("fit", "leakage", "share"),
    [
        (0.10, 0.10, 0.0),  # all of the fit shows without the trigger: the style leaked
        (0.10, 0.0, 1.0),  # none of it does
        (0.10, -0.05, 1.0),  # the loss without the trigger rose: all of it needs the trigger (clipped)
        (0.10, 0.20, 0.0),  # more fell without the trigger than with it (clipped)
        (0.0, 0.01, None),
        (-0.02, -0.01, None),
    ],
)
def test_trigger_share_is_clipped_and_undefined_without_fit(fit, leakage, share):
    assert trigger_share(fit, leakage) == share


def test_no_regularization_pictures_means_no_drift():
    figures = style_figures({"trigger": 0.2, "plain": 0.2, "reg": None}, {"trigger": 0.1, "plain": 0.2})
    assert figures.drift is None and figures.fit == pytest.approx(0.5)


def test_format():
    assert format_figure("fit", 0.0412) == "+4.12 %"
    assert format_figure("drift", -0.003) == "-0.30 %"
    assert format_figure("trigger_share", 0.856) == "86 %"
    assert format_figure("leakage", None) == "–"


def _figures(fit, share):
    return StyleFigures(
        fit=fit, leakage=None if share is None else fit * (1 - share), trigger_share=share, drift=0
    )


def test_suggestion_is_the_highest_trigger_share_at_the_fit_asked():
    rows = [_figures(0.02, 0.95), _figures(0.05, 0.80), _figures(0.06, 0.70), _figures(0.08, 0.60)]
    default = suggest(rows, None, 0.8)  # at least 80 % of the largest fit, 0.064
    assert default.index == 3 and default.min_fit == pytest.approx(0.064)
    assert "80 %" in default.min_fit_source
    assert suggest(rows, 0.05, 0.8).index == 1
    assert suggest(rows, 0.01, 0.8).index == 0
    assert suggest(rows, 0.2, 0.8) is None  # no file fits that much


def test_no_suggestion_without_any_fit():
    assert suggest([_figures(0.0, None), _figures(-0.01, None)], None, 0.8) is None
