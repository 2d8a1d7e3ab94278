"""Multi-label findings from the command line: `cbm train` on an indicator-matrix .npz, `cbm eval`
per finding, `cbm explain` per finding, `cbm edit` previewed per finding with apply/undo/save, and
`cbm predict` with one probability per finding and the out-of-distribution columns."""

import csv
import json

import numpy as np
import pytest
from findings_world import ENCODER, FINDINGS, PLANTED, LookupEncoder, Rows, prior_bank, world
from own_data import fail_cli, run_cli

from cbm.io import list_versions, load_model
from cbm.models.multilabel import MultiLabelCBM


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """splits.npz (y_<split>: 0/1 matrices, class_names: the findings) and a bank with a prior."""
    root = tmp_path_factory.mktemp("findings")
    arrays = {"class_names": np.asarray(FINDINGS), "encoder": np.asarray(ENCODER)}
    for split, n, seed in (("train", 500, 1), ("val", 150, 2), ("test", 300, 3)):
        X, Y, bank = world(n, seed)
        arrays |= {f"X_{split}": X, f"y_{split}": Y, f"ids_{split}": np.asarray([f"{split}-{i}" for i in range(n)])}
    np.savez(root / "splits.npz", **arrays)
    prior_bank(bank).save(root / "bank")
    return root


@pytest.fixture(scope="module")
def trained(data):
    out = run_cli(["train", "--method", "pcbm", "--concepts", data / "bank", "--data", data / "splits.npz",
                   "--out", data / "model", "--quiet"])
    return data / "model", out


def test_train_learns_one_sigmoid_per_finding_and_reports_each(trained):
    model_dir, out = trained
    assert "saved multi-label pcbm (3 findings" in out
    for finding in FINDINGS:
        assert finding in out
    model = load_model(model_dir)
    assert isinstance(model, MultiLabelCBM) and model.class_names_ == FINDINGS
    for j, finding in enumerate(FINDINGS):
        assert {model.concept_names_[i] for i in np.argsort(-model.coef_[j])[:2]} == PLANTED[finding]


def test_eval_prints_auroc_ap_and_sensitivity_per_finding(trained, tmp_path):
    model_dir, _ = trained
    out = run_cli(["eval", model_dir, "--specificity", "0.95", "--json", tmp_path / "m.json"])
    assert "AUROC" in out and "AP" in out and "sens@0.95spec" in out
    rep = json.loads((tmp_path / "m.json").read_text())
    assert rep["multilabel"] and rep["specificity"] == 0.95
    test = rep["splits"]["test"]["findings"]
    assert list(test) == FINDINGS
    assert all(f["auroc"] > 0.95 and f["average_precision"] > 0.9 and f["sensitivity"] > 0.7
               for f in test.values())


def test_eval_refuses_single_label_data_for_a_multi_label_model(trained, tmp_path):
    model_dir, _ = trained
    X, Y, _ = world(50, 4)
    np.savez(tmp_path / "single.npz", X_test=X, y_test=np.asarray(FINDINGS)[Y.argmax(1)])
    assert "multi-label" in fail_cli(["eval", model_dir, "--data", tmp_path / "single.npz"])


def test_explain_lists_each_finding_with_its_planted_concepts(trained, data):
    model_dir, _ = trained
    with np.load(data / "splits.npz") as z:
        row = int(np.flatnonzero((z["y_test"] == [0, 0, 1]).all(1))[0])
    out = run_cli(["explain", model_dir, "--sample", f"test-{row}", "--top", "2"])
    lines = out.splitlines()
    assert "true findings ['nodule']" in lines[0] and "nodule (" in lines[0]
    first = next(i for i, line in enumerate(lines) if line.startswith("finding "))
    assert lines[first].startswith("finding 'nodule'") and "present" in lines[first]
    assert any(c in lines[first + 1] for c in PLANTED["nodule"])  # the "for" line
    assert sum(line.startswith("finding ") for line in lines) == 3
    one = run_cli(["explain", model_dir, "--sample", f"test-{row}", "--class", "effusion"])
    assert sum(line.startswith("finding ") for line in one.splitlines()) == 1


def test_edit_previews_per_finding_applies_undoes_and_saves(trained, data):
    model_dir, _ = trained
    prune = ["edit", model_dir, "prune", "--class", "nodule", "--concept", "round spot", "--user", "dr-a"]
    dry = run_cli([*prune, "--dry-run"])
    table = dry.splitlines()[dry.splitlines().index("  per finding, before -> after (most affected first):") + 2:]
    assert table[0].split()[0] == "nodule"  # the most affected finding first
    auc0, auc1 = float(table[0].split()[2]), float(table[0].split()[4])
    assert auc1 < auc0
    other = next(line for line in table if line.split()[0] == "effusion")
    assert other.split()[2] == other.split()[4]  # other findings untouched
    assert "the other findings are unchanged" in dry and "dry run" in dry
    before = load_model(model_dir).coef_.copy()
    applied = run_cli([*prune, "--why", "round spot is a marker artifact"])
    assert "applied as unsaved edit #1" in applied
    assert "undo: edit #1" in run_cli(["edit", model_dir, "undo"])
    run_cli([*prune, "--why", "round spot is a marker artifact"])
    trail = json.loads(run_cli(["edit", model_dir, "history", "--format", "json"]))
    effect = next(r for r in trail if r["action"] == "edit" and r["effect"])["effect"]
    assert effect["test"]["nodule"]["auroc_after"] < effect["test"]["nodule"]["auroc_before"]
    assert "saved version 2" in run_cli(["edit", model_dir, "save", "--note", "drop round spot"])
    assert list_versions(model_dir) == [1, 2]
    v2, v1 = load_model(model_dir), load_model(model_dir, 1)
    j = v2.concept_names_.index("round spot")
    assert v2.coef_[2, j] == 0 and v1.coef_[2, j] == before[2, j] != 0
    np.testing.assert_array_equal(np.delete(v2.coef_, 2, 0), np.delete(before, 2, 0))


def test_edit_suggest_ranks_finding_concept_weights_across_splits(trained):
    model_dir, _ = trained
    out = run_cli(["edit", model_dir, "suggest", "--top", "3"])
    assert "no suspicious concepts found" in out or any(f"{f} / " in out for f in FINDINGS)


def test_train_refuses_methods_that_cannot_learn_findings(data, tmp_path):
    msg = fail_cli(["train", "--method", "labo", "--concepts", data / "bank", "--data", data / "splits.npz",
                    "--out", tmp_path / "m"])
    assert "multi-label" in msg and "pcbm, knobo, linear-probe" in msg


@pytest.mark.parametrize("method", ["knobo", "linear-probe"])
def test_knobo_and_the_linear_probe_train_on_findings_too(method, data, tmp_path):
    args = ["--concepts", data / "bank"] if method == "knobo" else []
    run_cli(["train", "--method", method, *args, "--data", data / "splits.npz", "--out", tmp_path / "m",
             "--quiet"])
    model = load_model(tmp_path / "m")
    assert isinstance(model, MultiLabelCBM) and model.method == method
    X, Y, _ = world(200, 5)
    from cbm.models.multilabel import finding_report

    assert (finding_report(Y, model.predict_proba(X), FINDINGS)["auroc"] > 0.9).all()


def test_predict_writes_a_probability_per_finding_and_the_ood_columns(trained, tmp_path):
    from cbm.store import EmbeddingStore

    model_dir, _ = trained
    X, _, bank = world(40, 6)
    basis, _ = np.linalg.qr(np.concatenate([bank.vectors.T, np.eye(X.shape[1])[:, :20]], 1))
    X[-5:] = basis[:, len(bank):len(bank) + 5].T  # unlike the training scans: no concept, only noise directions
    cache = EmbeddingStore(tmp_path / "cache").get_or_compute(LookupEncoder(X), Rows(len(X)), progress=False)
    out = run_cli(["predict", model_dir, cache.path, "--out", tmp_path / "p.csv", "--no-progress"])
    assert "wrote 40 prediction(s)" in out and "ood_flag marks ood_score above" in out
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "findings", *[f"p:{f}" for f in FINDINGS], "explained", "concepts_for",
                             "concepts_against", "ood_score", "ood_flag", "model_version"]
    model = load_model(model_dir)
    proba, logits = model.predict_proba(cache.as_array()), model.decision_function(cache.as_array())
    np.testing.assert_allclose([[float(r[f"p:{f}"]) for f in FINDINGS] for r in rows], proba, atol=1e-3)
    for r, p, z in zip(rows, proba, logits, strict=True):
        assert r["findings"] == "; ".join(f for f, q in zip(FINDINGS, p, strict=True) if q >= 0.5)
        assert r["explained"] == FINDINGS[int(z.argmax())]  # the most likely finding
    flags = [r["ood_flag"] for r in rows]
    assert flags[-5:] == ["1"] * 5 and flags[:35].count("1") <= 5
    assert "ood_score" not in run_cli(["predict", model_dir, cache.path, "--out", tmp_path / "q.csv",
                                       "--no-progress", "--no-ood"])
    with open(tmp_path / "q.csv", newline="") as fh:
        assert "ood_score" not in next(csv.reader(fh))


@pytest.mark.parametrize("method", ["pcbm", "linear-probe"])
def test_an_indicator_matrix_without_finding_columns_is_one_clear_error(data, tmp_path, method):
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    np.savez(tmp_path / "none.npz", X_train=X, y_train=np.zeros((40, 0), np.int8),
             X_test=X[:10], y_test=np.zeros((10, 0), np.int8))
    err = fail_cli(["train", "--method", method, "--concepts", data / "bank", "--data", tmp_path / "none.npz",
                    "--out", tmp_path / "m"])
    assert "none.npz' y_train is a multi-label indicator matrix with no finding columns (shape (40, 0))" in err
    with pytest.raises(ValueError, match=r"no finding columns \(shape \(40, 0\)\)"):
        MultiLabelCBM().fit(X, np.zeros((40, 0), np.int8))
