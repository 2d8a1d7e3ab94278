"""Explore draws a token model's (cct) concept map over the sample's image."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY
from cbm.bank import ConceptBank
from cbm.io import save_model
from cbm.models import create_model


def test_explore_shows_the_concept_map_of_a_cct_model(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n, grid, d = 60, 3, 8
    X = rng.normal(0, 0.3, (n, grid * grid, d)).astype(np.float32)
    y = rng.integers(0, 2, n)
    X[y == 1, 0, 0] += 3.0
    names = np.asarray(["plain", "tagged"])
    model = create_model("cct", concepts=ConceptBank(["tag", "other"]), spatial_concepts=["tag"], dim=8,
                         max_epochs=2, device="cpu").fit(X, names[y])
    save_model(model, tmp_path / "m")
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "m" / "data.npz", X_test=X, y_test=names[y], images_test=images,
             ids_test=np.asarray([f"t{i}" for i in range(n)]))
    monkeypatch.setenv("CBM_MODEL_DIR", str(tmp_path / "m"))
    at = AppTest.from_file(str(ENTRY), default_timeout=60).run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    at.button(key="explore_open_0").click().run()
    assert not at.exception, at.exception
    box = at.selectbox(key="explore_concept_map")
    assert set(box.options) == {"tag", "other"}
    box.select("other").run()
    assert not at.exception and at.selectbox(key="explore_concept_map").value == "other"
