"""The app in a real browser: Debian's Chromium driven by Playwright against a live Streamlit server.

Walks the path a user takes: open Explore, open a sample, go to Edit, prune a concept, see the
shifted-split accuracy change, undo. Screenshots of every page go to test-artifacts/screenshots/
(ignored by git). Only an explicit ``make screenshots`` (``CBM_UPDATE_SCREENSHOTS=1``) copies the
README's pictures (:data:`README_SHOTS`) to docs/screenshots/, and only ``benchmarks/bench_app.py``
(which ``make screenshots`` runs) writes the measured load and interaction times
(``CBM_APP_TIMINGS``, see :func:`_timed`) to benchmarks/results/app.json.

``CBM_BROWSER_MODEL=synthetic`` walks the small synthetic model instead of the quick demo (fast).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from cbm.app import streamlit_command

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 30_000
#: Screenshots the README shows, copied to docs/screenshots/ by `make screenshots` only.
README_SHOTS = ("explore-why-not", "versions", "edit", "edit-examples")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"streamlit at {url} was not healthy after {timeout:.0f} s")


@pytest.fixture
def browser_model(request, tmp_path) -> tuple[Path, tuple[str, str]]:
    """The quick demo's model (real Fashion-MNIST images) and its spurious (class, concept) when the
    data is installed; else the synthetic fixture model and a prune that moves its shifted accuracy."""
    try:
        if os.environ.get("CBM_BROWSER_MODEL") == "synthetic":
            pytest.skip("CBM_BROWSER_MODEL=synthetic")
        demo = request.getfixturevalue("quick_demo")
    except pytest.skip.Exception:
        return request.getfixturevalue("model_dir"), request.getfixturevalue("moving_prune")
    from cbm.demo import ARTIFACT

    path = tmp_path / "demo-model"
    shutil.copytree(demo.model_dir, path)
    black_box = demo.model_dir.parent / "models" / "linear-probe"  # the edit preview's baselines
    if black_box.is_dir():
        shutil.copytree(black_box, tmp_path / "models" / "linear-probe")
    return path, (demo.config.confound.confounded_class, ARTIFACT)


@pytest.fixture
def server(browser_model, tmp_path):
    """A Streamlit server for the model on a free port; stopped by its own PID afterwards."""
    model_dir = browser_model[0]
    port = _free_port()
    cmd = streamlit_command(model_dir, port=port, extra=[
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"])
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    env = dict(os.environ, CBM_MODEL_DIR=str(model_dir), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser():
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the current script run (no status widget, nothing stale)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT_MS)
    page.wait_for_selector('[data-stale="true"]', state="detached", timeout=WAIT_MS)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('[data-testid=stMain]')?.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if name in README_SHOTS and os.environ.get("CBM_UPDATE_SCREENSHOTS") == "1":  # `make screenshots` only
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / f"{name}.png", DOCS / f"{name}.png")


@contextmanager
def _timed(timings: dict, name: str):
    """Seconds from the action to the page settled again (Streamlit's status widget gone), kept in
    ``timings[name]``; measured, never asserted (benchmarks/bench_app.py writes them out)."""
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'h1:has-text("{title}")', timeout=WAIT_MS)
    _settle(page)


def _choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} input").click()
    page.keyboard.type(option)  # long option lists are virtualised: type to filter, then pick
    page.get_by_role("option", name=option, exact=True).click()
    _settle(page)


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text()


def test_explore_edit_undo_in_chromium(server, browser, browser_model, app_timings):
    cls, concept = browser_model[1]
    page = browser.new_page(viewport={"width": 1366, "height": 1500})
    outside = []  # the app must ask nothing of outside hosts (favicon, fonts, statistics)
    page.on("request", lambda r: None if urlparse(r.url).scheme in ("data", "blob") or urlparse(
        r.url).hostname in ("127.0.0.1", "localhost") else outside.append(r.url))
    with _timed(app_timings, "cold first load"):
        page.goto(server)
        page.wait_for_selector('h1:has-text("Model")', timeout=WAIT_MS)
        _settle(page)
    _shot(page, "model")
    warm = browser.new_page(viewport={"width": 1366, "height": 1500})
    with _timed(app_timings, "warm first load"):  # a new tab on a running server: the caches are warm
        warm.goto(server)
        warm.wait_for_selector('h1:has-text("Model")', timeout=WAIT_MS)
        _settle(warm)
    warm.close()

    with _timed(app_timings, "open Explore"):
        _nav(page, "Explore")
    with _timed(app_timings, "open a sample"):
        page.locator(".st-key-explore_open_0 button").click()
        page.wait_for_selector("text=Predicted:", timeout=WAIT_MS)
        _settle(page)
    _shot(page, "explore")

    with _timed(app_timings, "open Concepts"):
        _nav(page, "Concepts")
    _shot(page, "concepts")
    with _timed(app_timings, "open Upload"):
        _nav(page, "Upload")
    _shot(page, "upload")

    with _timed(app_timings, "open Edit"):
        _nav(page, "Edit")
    before = _metric(page, "Accuracy (shifted)")
    with _timed(app_timings, "pick the class to edit"):
        _choose(page, "edit_class", cls)
    with _timed(app_timings, "pick the concept (preview with baselines)"):
        _choose(page, "edit_concept", concept)
    page.wait_for_selector("text=change their prediction", timeout=WAIT_MS)  # this edit's preview, not a stale one
    _settle(page)
    page.set_viewport_size({"width": 1366, "height": 2000})  # the baselines sit below the recall table
    _shot(page, "edit")  # the preview: verdict, recall per class, baselines, before committing it
    with _timed(app_timings, "apply the edit"):
        page.locator(".st-key-edit_apply button").click()
        page.wait_for_function(
            "([label, old]) => [...document.querySelectorAll('[data-testid=stMetric]')]"
            ".some(m => m.innerText.includes(label) && !m.innerText.includes(old))",
            arg=["Accuracy (shifted)", before], timeout=WAIT_MS)
        _settle(page)
    after = _metric(page, "Accuracy (shifted)")
    assert after != before
    _shot(page, "edit-applied")

    with _timed(app_timings, "undo"):
        page.locator(".st-key-edit_undo button").click()
        page.wait_for_function(
            "([label, old]) => [...document.querySelectorAll('[data-testid=stMetric]')]"
            ".some(m => m.innerText.includes(label) && m.innerText.includes(old))",
            arg=["Accuracy (shifted)", before], timeout=WAIT_MS)
        _settle(page)
    assert _metric(page, "Accuracy (shifted)") == before
    assert outside == []
