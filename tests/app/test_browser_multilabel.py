"""A multi-label model in a real browser: Explore shows each finding's probability, and picking a
finding shows the concepts behind it. Same server and Chromium fixtures as ``test_browser.py``;
the screenshot goes to the ignored ``test-artifacts/screenshots/``."""

from __future__ import annotations

import numpy as np
import pytest
from browser_pages import WAIT_MS, choose, settle, shot, timed
from findings_model import build_findings_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser_model(tmp_path):
    """The server fixture's model: a multi-label PCBM on the synthetic findings world."""
    return build_findings_dir(tmp_path / "findings-model"), ("nodule", "round spot")


def test_explore_explains_the_finding_picked(server, browser, browser_model, app_timings):
    from cbm.io import load_model

    model_dir = browser_model[0]
    with np.load(model_dir / "data.npz") as z:
        x, y = z["X_test"][:1], z["y_test"][0]  # Explore opens on the test split's first scan
    proba = load_model(model_dir).predict_proba(x)[0]
    page = browser.new_page(viewport={"width": 1366, "height": 1600})
    with timed(app_timings, "multi-label: open Explore"):
        page.goto(f"{server}/explore")
        page.wait_for_selector("text=Findings called present", timeout=WAIT_MS)
        settle(page)
    absent = "cardiomegaly"
    assert y.tolist() == [1, 0, 1] and proba[1] < 0.5  # effusion and nodule, not cardiomegaly
    with timed(app_timings, "multi-label: explain another finding"):
        choose(page, "explore_finding", absent)
        page.wait_for_selector(f"text=Why {absent}", timeout=WAIT_MS)
    body = page.inner_text("body")
    assert f"{absent}: {proba[1]:.0%}, not called present" in body
    assert "Findings called present: effusion, nodule" in body
    assert "Out-of-distribution score" in body
    shot(page, "explore-findings")
