"""Model page: concept AUC, leakage and intervention curves when data.npz carries concept labels."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY
from cbm.data import make_concept_world

TIMEOUT = 60


def test_without_labels_the_page_says_how_to_check(model_dir):
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert any("--annotations" in i.value for i in at.info)


def test_concept_labels_give_auc_leakage_and_curves(model_dir):
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=32, spurious=True, random_state=0)
    with np.load(model_dir / "data.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for s in ("test", "shifted", "train"):
        arrays[f"concepts_{s}"] = world[s].concepts  # the fixture's data come from the same world
    np.savez(model_dir / "data.npz", **arrays)
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Concept AUC (mean)"]) > 0.7 and labels["Concepts annotated"] == "9 / 9"
    assert "Leakage" in labels
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Setting k concepts" in t for t in titles)
