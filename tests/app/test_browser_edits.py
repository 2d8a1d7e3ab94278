"""The editor's new views in a real browser: add a concept from gallery images, then download that
edit's before/after report and open it offline.

Same server and Chromium as ``test_browser.py`` (the fixtures in ``conftest.py``); screenshots go to the
ignored ``test-artifacts/screenshots/``; nothing is written into tracked files.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from browser_pages import WAIT_MS, nav, open_app, settle, shot, timed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "tag in the corner (picked)"
PAGE = 12  # gallery tiles on the first page: training rows 0..11 when every class is shown


def _examples(model_dir) -> tuple[list[int], list[int]]:
    """Two gallery rows that show the tag and two that don't (the demo records which images are
    stamped); the synthetic model has no such record: its first four rows then."""
    import numpy as np

    with np.load(model_dir / "data.npz", allow_pickle=False) as z:
        stamped = z["stamped_train"][:PAGE].astype(bool) if "stamped_train" in z.files else None
    if stamped is None or stamped.sum() < 2 or (~stamped).sum() < 2:
        return [0, 1], [2, 3]
    return np.flatnonzero(stamped)[:2].tolist(), np.flatnonzero(~stamped)[:2].tolist()


def _mark(page, row: int, choice: str) -> None:
    page.locator(f".st-key-edit_ex_{row} button").get_by_text(choice, exact=True).click()
    settle(page)


def test_add_a_concept_from_examples_and_download_the_edit_report(server, browser, browser_model,
                                                                   tmp_path, app_timings):
    from cbm.edits.history import EditSession

    model_dir = browser_model[0]
    page = open_app(browser, server, height=2200)
    nav(page, "Edit")
    with timed(app_timings, "choose 'add a concept from example images'"):
        page.locator(".st-key-edit_kind label", has_text="Add a concept from example images").click()
        page.wait_for_selector(".st-key-edit_ex_0", timeout=WAIT_MS)
        settle(page)
    page.locator(".st-key-edit_ex_name input").fill(NAME)
    page.keyboard.press("Enter")
    settle(page)
    pos, neg = _examples(model_dir)
    for row in pos:
        _mark(page, row, "yes")
    _mark(page, neg[0], "no")
    with timed(app_timings, "mark an example (fit)"):
        _mark(page, neg[1], "no")
        page.wait_for_selector("text=Picked: 2 image(s) that show it, 2 that don't.", timeout=WAIT_MS)
    with timed(app_timings, "preview the added concept"):
        page.locator(".st-key-edit_preview button").first.click()
        page.wait_for_selector("text=Verdict.", timeout=WAIT_MS)
        settle(page)
    shot(page, "edit-examples")

    page.locator(".st-key-edit_why input").fill("the tag marks one hospital")
    page.keyboard.press("Enter")
    settle(page)
    page.locator(".st-key-edit_apply button").click()
    page.wait_for_selector("text=Applied: add the concept", timeout=WAIT_MS)
    settle(page)
    assert EditSession(model_dir).model.concept_names_[-1] == NAME

    with page.expect_download(timeout=120_000) as dl:
        page.locator(".st-key-edit_report button").first.click()
    report = tmp_path / "edit.html"
    dl.value.save_as(str(report))
    offline = browser.new_page()
    outside = []
    offline.on("request", lambda r: None if urlparse(r.url).scheme in ("data", "file") else outside.append(r.url))
    offline.goto(report.as_uri())
    body = offline.inner_text("body")
    assert "Verdict" in body and "Recall per class, before → after" in body
    assert NAME in body and "the tag marks one hospital" in body
    assert outside == []
    shot(offline, "edit-report")
