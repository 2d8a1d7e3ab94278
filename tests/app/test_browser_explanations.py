"""The clinician's questions in a real browser: "why not Shirt", where the tag fires, a report, revert.

Same server and Chromium as ``test_browser.py`` (the fixtures in ``conftest.py``); screenshots go to the
ignored ``test-artifacts/screenshots/``; nothing is written into tracked files.
"""

from __future__ import annotations

import os
import re

import pytest
from browser_pages import WAIT_MS, choose, nav, open_app, settle, shot, timed

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_why_not_concept_map_report_and_revert(server, browser, browser_model, tmp_path,
                                               app_timings):
    from cbm.edits import Prune
    from cbm.edits.history import EditSession
    from cbm.io import read_pointer

    model_dir, (cls, concept) = browser_model
    if os.environ.get("CBM_BROWSER_MODEL") == "synthetic":
        pytest.skip("the concept map needs the quick demo's real image encoder")
    page = open_app(browser, server, height=1800)

    nav(page, "Explore")
    with timed(app_timings, "filter Explore by class"):
        choose(page, "explore_class", cls)
    with timed(app_timings, "filter Explore to wrong predictions (why not)"):
        choose(page, "explore_correct", "wrong")
        page.wait_for_selector(f"text=and not {cls}", timeout=WAIT_MS)  # "why not" defaults to the true class

    settle(page)
    shown = page.inner_text('[data-testid="stMain"]')
    assert "Out-of-distribution score" in shown  # how unusual the image is, beside its prediction
    _assert_the_suggested_change_is_feasible(shown, model_dir)
    page.locator(".st-key-explore_evidence input").click()
    page.keyboard.type(concept)  # long option lists are virtualised: type to filter
    page.keyboard.press("Enter")
    settle(page)
    with timed(app_timings, "concept map (occlusion through the encoder, first time)"):
        page.locator(".st-key-explore_occlude button").click()
        page.wait_for_selector("text=Red: hiding this region", timeout=120_000)
        settle(page)
    page.wait_for_timeout(1000)
    shot(page, "explore-why-not")

    with page.expect_download(timeout=WAIT_MS) as dl:
        page.locator(".st-key-explore_report button").first.click()
    report = tmp_path / "report.html"
    dl.value.save_as(str(report))
    offline = browser.new_page()
    offline.goto(report.as_uri())
    assert "The model predicts" in offline.inner_text("body")
    assert f"not {cls}" in offline.inner_text("body")
    assert "Out-of-distribution score" in offline.inner_text("body")
    assert offline.locator("img").count() == 2  # the image and the concept map, inline

    session = EditSession(model_dir)
    session.apply(Prune(cls, concept), why="the tag is a site artifact")
    session.save(note="pruned the tag")
    nav(page, "Versions")
    page.wait_for_selector("text=Compare two versions", timeout=WAIT_MS)
    choose(page, "version_revert", "1")
    with timed(app_timings, "revert to version 1"):
        page.locator(".st-key-version_revert_go button").first.click()
        page.wait_for_selector("text=Version 1 is current again", timeout=WAIT_MS)
    shot(page, "versions")
    assert read_pointer(model_dir)["current"] == 3


def _assert_the_suggested_change_is_feasible(shown: str, model_dir) -> None:
    """"Smallest single change ... from a to b" names a value the concept can take (its range, else training's)."""
    from cbm.data.evalfile import load_eval_data
    from cbm.explain import concept_bounds
    from cbm.io import load_model

    change = re.search(r"Smallest single change that makes .+? score as high: (.+?) from (-?[\d.]+) to (-?[\d.]+)",
                       shown)
    if change is None:
        assert "No single concept change within its possible range" in shown
        return
    model = load_model(model_dir)
    reference = model.transform(load_eval_data(model_dir / "data.npz")["train"]["X"])
    lo, hi = concept_bounds(model, reference)
    j = list(model.concept_names_).index(change.group(1))
    assert lo[j] - 0.005 <= float(change.group(3)) <= hi[j] + 0.005, (change.group(0), lo[j], hi[j])
