"""The pages in headless Chromium: filter, edit and undo, a threshold, a plan override, a training run.

Each test saves a screenshot of its page (see the `screenshot_dir` fixture). Training runs the
stand-in trainer of `fake_trainer.py`, which writes progress, honours output/STOP and holds the
lock as `gafu train` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gafu.captions.text import read_caption
from gafu.config import load_config

pytestmark = pytest.mark.slow

TIMEOUT = 30


@pytest.fixture(autouse=True)
def no_script_errors(browser):
    """Fail a test whose page logged a script error (a syntax error shows only as a page that stays empty)."""
    browser.get_log("browser")  # drop what earlier tests left
    yield
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not [e for e in errors if "Uncaught" in e or "app.js" in e], errors


def wait(driver, condition, timeout: float = TIMEOUT):
    """Wait until `condition(driver)` is truthy and return it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The pages re-render lists as data arrives: an element may go stale between finding and reading.
    waiter = WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    return waiter.until(condition)


def by_css(driver, selector: str) -> list:
    """Elements matching a CSS selector."""
    return driver.find_elements("css selector", selector)


def text_of(driver, element_id: str) -> str:
    """The visible text of the element with that id."""
    return driver.find_element("id", element_id).text


def open_page(driver, client, page: str) -> None:
    """Load the app on one page."""
    driver.get(f"http://127.0.0.1:{client.port}/#{page}")


def shoot(driver, folder: Path, name: str) -> None:
    """Save a screenshot of the whole page."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, max(900, min(height + 40, 1600)))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def test_dataset_filter_edit_undo_and_check(browser, ui_project, serve, screenshot_dir):
    client = serve(ui_project.root)
    open_page(browser, client, "dataset")
    wait(browser, lambda d: len(by_css(d, ".card")) == 7)
    looking = [p for p in client.get("/api/pictures?tags=looking_at_viewer").json["pictures"]]
    browser.find_element("id", "filter-tags").send_keys("looking at viewer")
    browser.find_element("id", "filter-apply").click()
    wait(browser, lambda d: len(by_css(d, ".card")) == len(looking))
    browser.find_element("id", "filter-clear").click()
    wait(browser, lambda d: len(by_css(d, ".card")) == 7)

    target_cards = [c for c in by_css(browser, ".card") if "/train/" in c.get_attribute("data-name")][:2]
    for card in target_cards:
        card.click()
    wait(browser, lambda d: text_of(d, "selected-count") == "2 selected")
    browser.find_element("id", "edit-tags").send_keys("red scarf")
    browser.find_element("id", "edit-apply").click()
    wait(browser, lambda d: "2 of 2 caption(s) changed" in text_of(d, "message"))
    wait(browser, lambda d: len([t for t in by_css(d, ".card .tag") if t.text == "red scarf"]) == 2)
    chosen = [ui_project.root / c.get_attribute("data-name") for c in by_css(browser, ".card.selected")]
    assert all("red scarf" in read_caption(p.with_suffix(".txt")).tags for p in chosen)

    browser.find_element("id", "undo").click()
    wait(browser, lambda d: "2 caption(s) restored" in text_of(d, "message"))
    wait(browser, lambda d: not [t for t in by_css(d, ".card .tag") if t.text == "red scarf"])
    assert all("red scarf" not in read_caption(p.with_suffix(".txt")).tags for p in chosen)

    browser.find_element("id", "check-run").click()
    wait(browser, lambda d: d.find_elements("id", "coverage"))
    assert text_of(browser, "coverage").endswith("%")
    assert len(by_css(browser, "#stats tr")) > 3  # the frequency table, one row per tag
    shoot(browser, screenshot_dir, "dataset")


def test_tagging_threshold_slider_previews_then_writes(browser, ui_project, serve, screenshot_dir):
    client = serve(ui_project.root)
    open_page(browser, client, "tagging")
    wait(browser, lambda d: len(by_css(d, "#preview tr[data-name]")) == 7)
    assert "target: 0 caption(s) would change" in text_of(browser, "th-summary")
    slider = browser.find_element("id", "th-target")
    browser.execute_script(
        "arguments[0].value = '0.40'; arguments[0].dispatchEvent(new Event('input'));", slider
    )
    wait(browser, lambda d: "target: 4 caption(s) would change" in text_of(d, "th-summary"))
    assert len(by_css(browser, "#preview tr.changed")) == 4
    assert text_of(browser, "th-target-value") == "0.40"
    first = ui_project.pictures("target")[0].caption_path
    assert "looking at viewer" not in read_caption(first).tags  # previewed, not written
    shoot(browser, screenshot_dir, "tagging")
    browser.find_element("id", "th-apply").click()
    wait(browser, lambda d: "gafu.toml updated" in text_of(d, "message"))
    assert "looking at viewer" in read_caption(first).tags


def test_plan_values_and_an_override_with_its_error(browser, ui_project, serve, screenshot_dir):
    client = serve(ui_project.root)
    open_page(browser, client, "plan")
    wait(browser, lambda d: d.find_elements("id", "plan-steps"), timeout=60)
    assert text_of(browser, "plan-file-size").endswith("MB")
    assert len(by_css(browser, "#plan-blocks tr")) > 2  # the LoKr modules by block
    assert by_css(browser, 'tr[data-name="batch.epochs"]')[0].text.endswith("recipe P1")
    shoot(browser, screenshot_dir, "plan")
    epochs = browser.find_element("id", "o-train-epochs")
    epochs.clear()
    epochs.send_keys("0")
    browser.find_element("id", "overrides-save").click()
    field = '.field[data-field="train.epochs"] .field-error'
    wait(browser, lambda d: "at least 1 epoch" in by_css(d, field)[0].text)
    epochs.clear()
    epochs.send_keys("20")
    browser.find_element("id", "overrides-save").click()
    wait(browser, lambda d: text_of(d, "overrides-status") == "saved to gafu.toml")
    wait(
        browser,
        lambda d: (
            by_css(d, 'tr[data-name="batch.epochs"]')
            and "gafu.toml [train] epochs" in by_css(d, 'tr[data-name="batch.epochs"]')[0].text
        ),
        timeout=60,
    )


def test_train_shows_live_progress_and_grids_then_the_epochs_side_by_side(
    browser, ui_project, serve, screenshot_dir, monkeypatch
):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.2")
    client = serve(ui_project.root)
    open_page(browser, client, "train")
    wait(browser, lambda d: d.find_element("id", "train-start").is_enabled())
    browser.find_element("id", "train-start").click()
    wait(browser, lambda d: "/ 6" in text_of(d, "m-step"))  # a step event arrived while it runs
    wait(browser, lambda d: text_of(d, "m-step") == "6 / 6")
    wait(browser, lambda d: len(by_css(d, "#train-grids img")) == 2)
    wait(browser, lambda d: text_of(d, "train-state").startswith("done"))
    assert len(by_css(browser, "#train-saves div")) == 2
    assert float(text_of(browser, "m-loss")) > 0
    assert browser.execute_script(
        "return document.getElementById('loss-chart').getContext('2d').getImageData(0, 0, 900, 220)"
        ".data.some((v, i) => i % 4 === 0 && v === 180)"
    )  # the loss curve is drawn in the accent red
    assert browser.execute_script(
        "const d = document.getElementById('style-chart').getContext('2d').getImageData(0, 0, 900, 220).data;"
        "return d.some((v, i) => i % 4 === 0 && v === 47 && d[i + 1] === 125 && d[i + 2] === 74)"
    )  # the style probe's trigger share, per saved epoch, in green
    assert browser.execute_script("return run.style.map((p) => p.epoch)") == [1, 2]
    wait(
        browser,
        lambda d: all(img.get_attribute("naturalWidth") != "0" for img in by_css(d, "#train-grids img")),
    )
    wait(browser, lambda d: by_css(d, '.badge[data-stage="train"]')[0].text == "done")  # the lock is gone
    shoot(browser, screenshot_dir, "train-contract")

    open_page(browser, client, "sample")
    wait(browser, lambda d: len(by_css(d, "#lokr-files tr")) == 3)  # two epochs and the final file
    wait(browser, lambda d: len(by_css(d, "#compare > div")) == 2)  # the last two epochs side by side
    assert [g.get_attribute("data-group") for g in by_css(browser, "#compare > div")] == [
        "e000001",
        "e000002",
    ]
    by_css(browser, "#epoch-choice input")[0].click()
    wait(browser, lambda d: len(by_css(d, "#compare > div")) == 1)
    by_css(browser, "#epoch-choice input")[0].click()
    wait(browser, lambda d: len(by_css(d, "#compare > div")) == 2)


def test_sample_page_renders_epochs_side_by_side_with_gafu_sample(
    browser, sample_project, serve, screenshot_dir
):
    client = serve(sample_project.root)
    open_page(browser, client, "sample")
    wait(browser, lambda d: len(by_css(d, "#lokr-files tr")) == 2)
    for box in by_css(browser, ".epoch-pick"):
        box.click()
    browser.find_element("id", "sample-weights").send_keys("1")
    browser.find_element("id", "sample-epochs").click()
    wait(browser, lambda d: "rendered epochs 1,2" in text_of(d, "sample-status"), timeout=240)
    wait(
        browser,
        lambda d: [g.get_attribute("data-group") for g in by_css(d, "#compare > div")] == ["epochs-1-2-w1"],
    )
    images = by_css(browser, "#compare img")
    assert len(images) == 2  # a grid per default prompt: rows are the epochs
    wait(
        browser, lambda d: all(img.get_attribute("naturalWidth") != "0" for img in by_css(d, "#compare img"))
    )
    shoot(browser, screenshot_dir, "sample")


def start_on_train_page(browser, client) -> None:
    """Open the Train page and press Start training."""
    open_page(browser, client, "train")
    wait(browser, lambda d: d.find_element("id", "train-start").is_enabled())
    browser.find_element("id", "train-start").click()


def test_a_saved_run_is_resumed_or_started_over_from_the_train_page(browser, ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    monkeypatch.setenv("FAKE_EPOCHS", "20")  # 60 steps: long enough to be stopped
    start_on_train_page(browser, serve(ui_project.root))
    wait(browser, lambda d: text_of(d, "m-step") != "–")  # a step is done
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.02")  # the runs started next go fast
    browser.find_element("id", "train-stop").click()
    wait(browser, lambda d: text_of(d, "train-state").startswith("stopped"))
    # The page says what output/ holds and offers what can be done with it, not a start that fails.
    wait(browser, lambda d: d.find_element("id", "train-resume").is_displayed())
    assert not browser.find_element("id", "train-start").is_displayed()
    assert "holds a run stopped at step" in text_of(browser, "train-saved")
    wait(browser, lambda d: by_css(d, '.badge[data-stage="train"]')[0].text == "partial")
    browser.find_element("id", "train-resume").click()
    wait(browser, lambda d: text_of(d, "train-state").startswith("done"))
    wait(browser, lambda d: "holds a finished run" in text_of(d, "train-saved"))
    assert not browser.find_element("id", "train-resume").is_displayed()
    browser.find_element("id", "train-restart").click()
    wait(browser, lambda d: text_of(d, "train-state").startswith("started"))  # the new run's first event
    wait(browser, lambda d: text_of(d, "train-state").startswith("done"))
    assert len(list((ui_project.root / "output" / "runs").iterdir())) == 1  # the previous run, moved aside


def test_a_start_that_fails_shows_why(browser, ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "the model file is truncated")
    start_on_train_page(browser, serve(ui_project.root))
    wait(browser, lambda d: "gafu train failed: the model file is truncated" in text_of(d, "message"))
    assert "bad" in browser.find_element("id", "message").get_attribute("class")


def test_the_heading_needs_no_cjk_font(browser, ui_project, serve):
    client = serve(ui_project.root)
    open_page(browser, client, "dataset")
    kanji = wait(browser, lambda d: by_css(d, ".brand .kanji"))[0]
    # 画風 is drawn as outlines, so it shows where no installed font has these characters.
    assert kanji.tag_name == "svg" and kanji.get_attribute("aria-label") == "画風"
    assert by_css(browser, ".brand .kanji path") and kanji.size["width"] > 10
    shown = browser.execute_script(
        "const walk = document.createTreeWalker(document.querySelector('header'), NodeFilter.SHOW_TEXT);"
        "let text = ''; while (walk.nextNode()) if (!walk.currentNode.parentElement.closest('svg'))"
        " text += walk.currentNode.textContent; return text;"
    )
    assert "gafu" in shown and not {"画", "風"} & set(shown)  # no text left that needs a CJK font


def test_dataset_outliers_set_aside_and_undo(browser, drift_project, serve, screenshot_dir):
    client = serve(drift_project.root)
    open_page(browser, client, "dataset")
    wait(browser, lambda d: len(by_css(d, ".card")) == 12)
    browser.find_element("id", "check-run").click()
    button = wait(browser, lambda d: by_css(d, ".style-finding button.set-aside"))[0]
    assert button.text == "Set aside these 4"
    assert len(by_css(browser, ".style-finding .strip img")) == 4 + 8  # these 4 beside 8 of the rest
    shoot(browser, screenshot_dir, "dataset-outliers")
    button.click()
    wait(browser, lambda d: "4 picture(s) set aside" in text_of(d, "message"))
    wait(browser, lambda d: len(by_css(d, "#aside-list .aside-item")) == 4)
    wait(browser, lambda d: len(by_css(d, ".card")) == 8)
    assert all(not (drift_project.root / name).exists() for name in drift_project.drifted)
    browser.find_element("id", "aside-undo").click()
    wait(browser, lambda d: "4 picture(s) back in the dataset" in text_of(d, "message"))
    wait(browser, lambda d: len(by_css(d, ".card")) == 12)
    assert all((drift_project.root / name).is_file() for name in drift_project.drifted)


def test_regularization_panel_picks_with_progress_and_writes(browser, drift_project, serve, screenshot_dir):
    client = serve(drift_project.root)
    open_page(browser, client, "reg")
    browser.find_element("id", "reg-pool").send_keys(str(drift_project.pool))
    browser.find_element("id", "reg-count").send_keys("6")
    browser.find_element("id", "reg-run").click()
    wait(browser, lambda d: len(by_css(d, "#reg-picks tr[data-name]")) == 6, timeout=120)
    assert text_of(browser, "reg-after").split("%")[0].isdigit()
    assert browser.find_element("id", "reg-progress").get_attribute("value") == "12"
    pool = browser.find_element("id", "reg-pool")  # the screenshot shows a pool path as a user types it
    browser.execute_script("arguments[0].value = 'D:/art/other-styles'", pool)
    shoot(browser, screenshot_dir, "regularization")
    browser.find_element("id", "reg-write").click()
    wait(browser, lambda d: "gafu.toml: [sources] reg" in text_of(d, "message"))
    assert len(load_config(drift_project.config_path).sources.include.reg) == 6
