"""The end-to-end demo on a small configuration: the CBM leans on the tag, and pruning it helps
on the shifted site. Runs on real Fashion-MNIST images (Debian's dataset-fashion-mnist)."""

import numpy as np
import pytest

from cbm.demo import ARTIFACT


@pytest.fixture(scope="module")
def demo(quick_demo):
    return quick_demo


def test_report_compares_black_box_pcbm_pcbm_h_and_knobo(demo):
    names = [r["model"] for r in demo.rows]
    assert len(names) == 11 and "black box" in names[0]
    assert any("PCBM-h" in n for n in names) and any("sparse" in n for n in names)
    sparse = next(r for r in demo.rows if "sparse" in r["model"])
    dense = next(r for r in demo.rows if r["model"].startswith("knowledge-prior"))
    assert sparse["nonzero"] <= dense["nonzero"]  # the proximal step only ever zeroes weights
    image_rows = [r for r in demo.rows if "stand-in" not in r["model"] and not r["model"].startswith("reference")]
    for r in image_rows:
        assert 0.5 < r["in_domain"] <= 1.0
        assert r["shifted"] < r["in_domain"]  # the confounder hurts after the shift
    text_rows = [r for r in demo.rows if "stand-in" in r["model"]]
    assert [r["model"].split(" (")[0] for r in text_rows] == [
        "LaBo", "Label-free CBM", "Sparse-CBM", "Concept Matrix Search"]
    for r in text_rows:  # trained on the same real images through the offline CLIP stand-in
        assert r["in_domain"] > 0.2  # chance is 0.1; CMS learns nothing from the labels
    assert "in-domain" in demo.table() and "shifted" in demo.report()


def test_reference_trained_without_the_tag_bounds_the_repair(demo):
    from cbm.demo.pipeline import REFERENCE_ROWS

    by = {r["model"]: r for r in demo.rows}
    knobo, reference = by["knowledge-prior CBM (KnoBo)"], by[REFERENCE_ROWS[0]]
    # never having seen the tag, the reference loses less to the shift than the model that leans on it
    assert reference["in_domain"] - reference["shifted"] < knobo["in_domain"] - knobo["shifted"]
    summary = demo.summary()
    assert summary["tag_free_cbm_shifted"] == reference["shifted"]
    assert summary["headroom_points"] == pytest.approx(100 * (reference["shifted"] - knobo["shifted"]))
    assert "trained without the tag" in demo.report() and "reference rows" in demo.report()


def test_cbm_puts_weight_on_the_artifact_for_the_confounded_class(demo):
    from cbm.io import load_model

    model = load_model(demo.model_dir)
    k = model.class_names_.index(demo.config.confound.confounded_class)
    assert model.coef_[k, model.concept_names_.index(ARTIFACT)] > 0
    top = demo.suggestions.iloc[0]
    assert (top["class"], top["concept"]) == (demo.config.confound.confounded_class, ARTIFACT)


def test_the_repair_chosen_on_validation_data_never_costs_shifted_accuracy(demo):
    table = demo.repairs
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen.index[0] == 0  # the chosen row comes first
    if demo.edit_effect is None:  # nothing beat "no edit" beyond the noise: the model is left as it is
        assert chosen.iloc[0]["edit"] is None
        assert (table["gain_low"].dropna() <= 0).all()
        assert "no edit beat the model beyond the noise" in demo.report()
    else:
        assert chosen.iloc[0]["gain_low"] > 0
        assert demo.edit_effect.delta("shifted") > -0.01


def test_model_directory_holds_evaluation_data_for_the_app(demo):
    with np.load(demo.model_dir / "data.npz", allow_pickle=False) as z:
        for split in ("val", "test", "shifted"):
            assert z[f"X_{split}"].shape[1] == 1280
            assert z[f"images_{split}"].shape[1:] == (28, 28)
            assert set(z[f"domains_{split}"]) <= {"site A", "site B"}
    from cbm.data.evalfile import load_eval_data
    from cbm.io import load_model
    from cbm.research.evaluation import stored_annotations

    model = load_model(demo.model_dir)  # per-image concept labels, named by the bank: no demo knowledge needed
    ann = stored_annotations(model, load_eval_data(demo.model_dir / "data.npz"))
    assert set(ann) == {"train", "val", "test", "shifted"}
    assert ann["shifted"].concepts == list(model.concepts.names)
    assert ann["shifted"].values.shape == (len(ann["shifted"].ids), len(model.concepts.names))


def test_each_stage_is_announced_as_it_starts(demo):
    steps = [line for line in demo.log_lines if line.startswith("[")]
    assert len(steps) >= 8 and steps[-1].endswith("] done")
    assert any("embedding the images" in s for s in steps) and any("KnoBo" in s for s in steps)
    seconds = [float(s[1:s.index(" s]")]) for s in steps]
    assert seconds == sorted(seconds) and seconds[0] < 5


def test_second_run_is_a_cache_hit(demo):
    from cbm.demo.pipeline import build_splits, embed_splits

    _, _, summary = embed_splits(build_splits(demo.config), demo.config, progress=False)
    assert summary.startswith("embeddings: 4 of 4 splits from the cache")
