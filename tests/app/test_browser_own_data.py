"""The Discover and Edit pages in a real browser, on a model a user trained from their own image folder.

The model directory is made the way the "Your own data" section (docs/own-data.md) makes it, through the CLI
(``cbm embed`` of a class-folder manifest with ``split``/``site`` columns, then ``cbm train --method
knobo --concepts BANK``), from a small Fashion-MNIST folder where most Shirts at site A carry a stripe
no concept names (as in ``tests/cli/test_find_and_fix_a_shortcut.py``, smaller). The ``server`` fixture
of ``conftest.py`` serves it (``browser_model`` is overridden here); Chromium then finds groups on the
Discover page, previews making one a concept, and opens the Edit page.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from browser_pages import WAIT_MS, nav, open_app, settle, shot
from own_data_folders import run_cli, write_stripe_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

K = "Shirt"
SLOW_MS = 4 * WAIT_MS  # this machine may be loaded: the search and the previews get two minutes


@pytest.fixture(scope="module")
def own_model(tmp_path_factory) -> Path:
    """A user's folder of Fashion-MNIST PNGs + manifest, embedded and trained with the CLI."""
    root = tmp_path_factory.mktemp("own-browser")
    write_stripe_folder(root, K)
    cache = root / "cache"
    t0 = time.perf_counter()
    run_cli(["embed", root / "manifest.csv", "--image-size", "64", "--cache-dir", cache, "--no-progress"])
    t1 = time.perf_counter()
    store = next(p.parent for p in cache.rglob("manifest.json"))
    run_cli(["train", "--method", "knobo", "--concepts", root / "bank", "--data", store,
              "--out", root / "model", "--quiet"])
    print(f"own-data model: embed {t1 - t0:.0f} s, train {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    return root / "model"


@pytest.fixture
def browser_model(own_model, tmp_path) -> tuple[Path, tuple[str, str]]:
    """Overrides conftest's: a fresh copy of the user's model (edits write into it)."""
    from cbm.io import load_model

    path = tmp_path / "own-model"
    shutil.copytree(own_model, path)
    model = load_model(path)
    return path, (K, model.concept_names_[0])


def test_discover_and_edit_pages_on_a_model_trained_from_an_image_folder(server, browser, browser_model):
    model_dir = browser_model[0]
    with np.load(model_dir / "data.npz", allow_pickle=False) as z:
        has_images = any(f.startswith("images_") for f in z.files)
    page = open_app(browser, server, height=2200, timeout_ms=SLOW_MS)

    # Discover: nothing runs until asked; then ranked cards, with thumbnails when data.npz has images
    nav(page, "Discover")
    page.wait_for_selector("text=Press Find groups to search", timeout=WAIT_MS)
    page.get_by_role("button", name="Find groups").click()
    page.wait_for_selector("text=#1 ·", timeout=SLOW_MS)
    settle(page)
    body = page.inner_text('[data-testid="stMain"]')
    assert "The search cannot run" not in body, body
    first = page.locator('[data-testid="stVerticalBlockBorderWrapper"]', has_text="#1 ·").last
    if has_images:
        assert first.locator('[data-testid="stImage"] img, [data-testid="stImageContainer"] img').count() >= 1
    else:
        assert "data.npz holds no images of this split" in body
    shot(page, "own-data-discover")

    page.get_by_role("button", name="Make this a concept").first.click()
    page.wait_for_selector("text=Make group #1 a concept", timeout=SLOW_MS)
    page.wait_for_selector("text=Verdict.", timeout=SLOW_MS)
    settle(page)
    body = page.inner_text('[data-testid="stMain"]')
    assert "cannot be fitted" not in body and "cannot be applied" not in body, body
    shot(page, "own-data-discover-make")

    # Edit: accuracy tiles for this model's own splits, and the default edit's preview (asked for) has a verdict
    nav(page, "Edit")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=SLOW_MS)
    settle(page)
    page.locator(".st-key-edit_preview button").first.click()
    page.wait_for_selector("text=Verdict.", timeout=SLOW_MS)
    settle(page)
    tiles = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    assert any("Accuracy (val)" in t for t in tiles), tiles
    assert any("test@A" in t for t in tiles) or any("test" in t for t in tiles), tiles
    body = page.inner_text('[data-testid="stMain"]')
    assert "cannot be applied" not in body and "Traceback" not in body, body
    shot(page, "own-data-edit")
    print(f"own-data browser test: tiles {tiles}", file=sys.stderr)
