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
