"""A short real `gafu train` on the tiny model, started and followed from the Train page."""

from __future__ import annotations

import dataclasses

import pytest

from gafu.config import save_config
from gafu.project import Project
from tests.ui.test_browser import by_css, open_page, shoot, text_of, wait

pytestmark = pytest.mark.slow


def test_a_real_training_run_shows_progress_and_a_sample_grid(browser, train_project, serve, screenshot_dir):
    from tests.conftest import SAMPLE_SETTINGS

    project = train_project(n_target=2, n_reg=2, epochs=2, sample_every_epochs=1)
    config = project.config
    config = dataclasses.replace(
        config, sample=dataclasses.replace(config.sample, weights=[0.0, 1.0], **SAMPLE_SETTINGS)
    )
    save_config(config, project.config_path)
    project = Project.open(project.root)
    client = serve(project.root, real_trainer=True)
    open_page(browser, client, "train")
    wait(browser, lambda d: d.find_element("id", "train-start").is_enabled())
    browser.find_element("id", "train-start").click()
    wait(browser, lambda d: text_of(d, "train-state").startswith("started"), timeout=240)
    wait(browser, lambda d: text_of(d, "m-step") != "–", timeout=240)
    wait(browser, lambda d: by_css(d, "#train-grids img"), timeout=300)
    wait(browser, lambda d: text_of(d, "train-state").startswith("done"), timeout=300)
    total = int(text_of(browser, "m-step").split("/")[1])
    assert text_of(browser, "m-step") == f"{total} / {total}"
    assert len(by_css(browser, "#train-saves div")) == 2
    # the style probe at both saves (the final file's included), from the trainer's `eval` events
    assert browser.execute_script("return run.style.map((p) => p.epoch)") == [1, 2]
    assert sorted(
        int(e.get_attribute("data-epoch")) for e in by_css(browser, "#train-grids [data-epoch]")
    ) == [1, 2]
    wait(
        browser,
        lambda d: all(img.get_attribute("naturalWidth") != "0" for img in by_css(d, "#train-grids img")),
    )
    final = project.output_dir / f"{project.output_name}.safetensors"
    assert final.is_file()
    wait(browser, lambda d: by_css(d, '.badge[data-stage="train"]')[0].text == "done")  # the lock is gone
    shoot(browser, screenshot_dir, "train")
