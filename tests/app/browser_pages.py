"""Driving the app in Chromium: where screenshots go, waiting for Streamlit to settle, timing an
interaction, navigating and reading metrics. Shared by the browser tests (``test_browser*.py``); the
server, browser and model fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WAIT_MS = 30_000
#: Screenshots the README and docs/app.md show, copied to docs/screenshots/ by `make screenshots` only,
#: each with the page file that draws it
README_SHOTS = {"explore-why-not": "app/pages/explore.py", "versions": "app/pages/versions.py",
                "edit": "app/pages/edit.py", "edit-examples": "app/pages/edit.py"}
#: what every picture also depends on: the app's frame, and the demo code that made the model it shows
DRAWN_BY_ALL = ("app/streamlit_app.py", "cbm/demo/pipeline.py")
#: docs/screenshots/screenshots.json: per README picture, the sha256 of the files that drew it
MANIFEST = DOCS / "screenshots.json"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the Streamlit server at ``url`` answers its health check (fail early if it exits)."""
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


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def settle(page) -> None:
    """Wait until Streamlit has finished the current script run (no status widget, nothing stale)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT_MS)
    page.wait_for_selector('[data-stale="true"]', state="detached", timeout=WAIT_MS)


def open_app(browser, server: str, height: int, timeout_ms: int = WAIT_MS):
    """A new tab, 1366 px wide and ``height`` tall, on the app's Model page once it has settled."""
    page = browser.new_page(viewport={"width": 1366, "height": height})
    page.goto(server)
    page.wait_for_selector('h1:has-text("Model")', timeout=timeout_ms)
    settle(page)
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('[data-testid=stMain]')?.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if name in README_SHOTS and os.environ.get("CBM_UPDATE_SCREENSHOTS") == "1":  # `make screenshots` only
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / f"{name}.png", DOCS / f"{name}.png")
        recorded = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
        MANIFEST.write_text(json.dumps({**recorded, name: drawn_by(name)}, indent=1, sort_keys=True) + "\n")


def drawn_by(name: str) -> dict[str, str]:
    """sha256 of each file that draws the README picture ``name``: its page, the app's frame, the demo."""
    files = (README_SHOTS[name], *DRAWN_BY_ALL)
    return {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in files}


@contextmanager
def timed(timings: dict, name: str):
    """Seconds from the action to the page settled again (Streamlit's status widget gone), kept in
    ``timings[name]``; measured, never asserted (benchmarks/bench_app.py writes them out)."""
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)


def nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'h1:has-text("{title}")', timeout=WAIT_MS)
    settle(page)


def choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} input").click()
    page.keyboard.type(option)  # long option lists are virtualised: type to filter, then pick
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]', has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text()


def wait_metric(page, label: str, value: str, *, changed: bool) -> None:
    """Wait until the metric ``label`` no longer shows ``value`` (``changed``) or shows it again."""
    test = "!m.innerText.includes(old)" if changed else "m.innerText.includes(old)"
    page.wait_for_function(
        "([label, old]) => [...document.querySelectorAll('[data-testid=stMetric]')]"
        f".some(m => m.innerText.includes(label) && {test})", arg=[label, value], timeout=WAIT_MS)
    settle(page)
