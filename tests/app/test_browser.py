"""The app in a real browser: Debian's Chromium driven by Playwright against a live Streamlit server.

Walks the path a user takes: open Explore, open a sample, go to Edit, preview pruning a concept,
prune it, see the shifted-split accuracy change, undo. Screenshots of every page go to test-artifacts/screenshots/
(ignored by git). Only an explicit ``make screenshots`` (``CBM_UPDATE_SCREENSHOTS=1``) copies the
README's and docs/app.md's pictures (:data:`browser_pages.README_SHOTS`) to docs/screenshots/, and only ``benchmarks/bench_app.py``
(which ``make screenshots`` runs) writes the measured load and interaction times
(``CBM_APP_TIMINGS``, see :func:`browser_pages.timed`) to benchmarks/results/app.json.

``CBM_BROWSER_MODEL=synthetic`` walks the small synthetic model instead of the quick demo (fast).
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from browser_pages import WAIT_MS, choose, metric, nav, settle, shot, timed, wait_metric

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_explore_edit_undo_in_chromium(server, browser, browser_model, app_timings):
    cls, concept = browser_model[1]
    page = browser.new_page(viewport={"width": 1366, "height": 1500})
    outside = []  # the app must ask nothing of outside hosts (favicon, fonts, statistics)
    page.on("request", lambda r: None if urlparse(r.url).scheme in ("data", "blob") or urlparse(
        r.url).hostname in ("127.0.0.1", "localhost") else outside.append(r.url))
    with timed(app_timings, "cold first load"):
        page.goto(server)
        page.wait_for_selector('h1:has-text("Model")', timeout=WAIT_MS)
        settle(page)
    shot(page, "model")
    warm = browser.new_page(viewport={"width": 1366, "height": 1500})
    with timed(app_timings, "warm first load"):  # a new tab on a running server: the caches are warm
        warm.goto(server)
        warm.wait_for_selector('h1:has-text("Model")', timeout=WAIT_MS)
        settle(warm)
    warm.close()

    with timed(app_timings, "open Explore"):
        nav(page, "Explore")
    with timed(app_timings, "open a sample"):
        page.locator(".st-key-explore_open_0 button").click()
        page.wait_for_selector("text=Predicted:", timeout=WAIT_MS)
        settle(page)
    shot(page, "explore")

    with timed(app_timings, "open Concepts"):
        nav(page, "Concepts")
    shot(page, "concepts")
    with timed(app_timings, "open Upload"):
        nav(page, "Upload")
    shot(page, "upload")

    with timed(app_timings, "open Edit"):
        nav(page, "Edit")
    before = metric(page, "Accuracy (shifted)")
    with timed(app_timings, "pick the class to edit"):
        choose(page, "edit_class", cls)
    with timed(app_timings, "pick the concept"):
        choose(page, "edit_concept", concept)
    assert page.locator("text=Verdict.").count() == 0  # nothing measured until asked
    with timed(app_timings, "preview (with baselines)"):
        page.locator(".st-key-edit_preview button").first.click()
        page.wait_for_selector("text=change their prediction", timeout=WAIT_MS)  # this edit's preview
        settle(page)
    page.set_viewport_size({"width": 1366, "height": 2000})  # the baselines sit below the recall table
    shot(page, "edit")  # the preview: verdict, recall per class, baselines, before committing it
    with timed(app_timings, "apply the edit"):
        page.locator(".st-key-edit_apply button").click()
        wait_metric(page, "Accuracy (shifted)", before, changed=True)
    after = metric(page, "Accuracy (shifted)")
    assert after != before
    shot(page, "edit-applied")

    with timed(app_timings, "undo"):
        page.locator(".st-key-edit_undo button").click()
        wait_metric(page, "Accuracy (shifted)", before, changed=False)
    assert metric(page, "Accuracy (shifted)") == before
    assert outside == []
