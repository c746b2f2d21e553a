"""The progress bar's lines for people: the style probe's figures under the bar at every save."""

from gafu.train.progress import ProgressBar, style_line


def test_the_style_probes_figures_are_printed_under_the_bar(capsys):
    bar = ProgressBar(True)
    bar({"event": "start", "total_steps": 4, "resumed_from": None})
    event = {"event": "eval", "epoch": 2, "fit": 0.0412, "leakage": 0.0061, "trigger_share": 0.852,
             "drift": -0.002, "seconds": 2.13, "share_of_training": 0.0134}  # fmt: skip
    bar(event)
    bar({"event": "done"})
    expected = (
        "epoch 2: fit +4.12 %, leakage +0.61 %, trigger share 85 %, drift -0.20 % "
        "(style probe 2.1 s, 1.3 % of the training since the last save)"
    )
    assert expected in capsys.readouterr().err
    no_fit = {**event, "fit": -0.01, "trigger_share": None, "share_of_training": None}
    assert (
        style_line(no_fit)
        == "fit -1.00 %, leakage +0.61 %, trigger share –, drift -0.20 % (style probe 2.1 s)"
    )
