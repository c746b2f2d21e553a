"""Fixtures of the UI's tests: a tagged project, a running server and an HTTP client for it."""

from __future__ import annotations

import http.client
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gafu.config import load_config, save_config
from gafu.project import Project
from gafu.ui.server import UiServer, make_server
from tests.drawings import STYLES, drawing_set

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")


@pytest.fixture
def ui_project(untagged_project) -> Project:
    """4 target and 3 regularization pictures, captioned by the tiny tagger (so tag scores are stored)."""
    from gafu.tagging.tag import tag_project

    project = untagged_project(4, 3)
    tag_project(project)
    return Project.open(project.root)


@pytest.fixture
def drift_project(make_project, tiny_tagger, tmp_path) -> Project:
    """12 target originals in one style, 4 of them desaturated (another period); prepared and tagged."""
    project = make_project(n_target=0, n_reg=0, family="sdxl")
    flat = STYLES[0]
    pictures, drifted = drawing_set(flat, 12, seed=6, drift=flat.but(saturation=0.15), drifted=4)
    folder = project.source_dir("target")
    for i, picture in enumerate(pictures):
        picture.save(folder / f"t{i:03d}.png")
    config = load_config(project.config_path)
    config.tag.tagger = str(tiny_tagger)
    save_config(config, project.config_path)
    project = Project.open(project.root)
    from gafu.prep.prepare import prepare
    from gafu.tagging.tag import tag_project

    prepare(project, workers=1)
    tag_project(project)
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, style in enumerate(STYLES[1:7]):
        for j, picture in enumerate(drawing_set(style, 2, seed=40 + i)[0]):
            picture.save(pool / f"{i}_{j}.png")
    project.drifted = [f"dataset/train/2_mzh_style/t{i:03d}.png" for i in drifted]  # type: ignore[attr-defined]
    project.pool = pool  # type: ignore[attr-defined]
    return project


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Client:
    """Raw HTTP to a test server (http.client sends paths exactly as given, unnormalised)."""

    server: UiServer

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.server_address[1]

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request; a dict body goes as JSON."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        data = body
        if isinstance(body, dict | list):
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        reply = Reply(response.status, dict(response.getheaders()), response.read())
        connection.close()
        return reply

    def get(self, path: str, **kwargs) -> Reply:
        """GET `path`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Reply:
        """POST a JSON body."""
        return self.request("POST", path, {} if body is None else body, **kwargs)


@pytest.fixture
def serve() -> Iterator[Callable[..., Client]]:
    """Factory: a running server for a project folder, stopped afterwards.

    Training runs `fake_trainer.py` unless `real_trainer=True` (then `python -m gafu train`).
    """
    servers: list[UiServer] = []

    def start(root: Path, *, remote: bool = False, real_trainer: bool = False) -> Client:
        server = make_server(root, "127.0.0.1", 0, remote=remote)
        if not real_trainer:
            server.api.trainer.program = [sys.executable, str(FAKE_TRAINER)]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return Client(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
        process = server.api.trainer.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


# --- the browser (headless Chromium through Selenium) ------------------------------------------------
BROWSER_PACKAGES = ("chromium", "chromium-driver")  # Debian's; chromedriver comes with the second


def _find_chromium() -> tuple[str, str] | None:
    import shutil

    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _install_chromium() -> str:
    """apt-get install Debian's chromium and its driver where that is possible (root, apt); why not, else."""
    import os
    import shutil
    import subprocess

    if not shutil.which("apt-get"):
        return "no apt-get on this system"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *BROWSER_PACKAGES]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Selenium: apt-get installs it when missing; skipped where it cannot."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("browser tests need selenium: pip install -e '.[test]'")
    found = _find_chromium()
    if found is None:
        why = _install_chromium()
        found = _find_chromium()
        if found is None:
            packages = " ".join(BROWSER_PACKAGES)
            pytest.skip(f"browser tests need Chromium and chromedriver (apt-get install {packages}): {why}")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to fail on script errors
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=Service(found[1]))
    except Exception as exc:  # a browser that cannot start here: say why and skip
        pytest.skip(f"headless Chromium did not start: {exc}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where the browser tests save a screenshot of each page (printed; GAFU_UI_SCREENSHOTS overrides it)."""
    import os

    folder = Path(os.environ.get("GAFU_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    SCREENSHOT_FOLDERS.append(folder)
    return folder


SCREENSHOT_FOLDERS: list[Path] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Say where the screenshots are (kept as test artifacts)."""
    for folder in SCREENSHOT_FOLDERS:
        terminalreporter.write_line(f"gafu ui screenshots: {folder}")
