"""docs/own-data.md "Your own data: find and fix a shortcut", run as a new user would, on a small generated folder.

Fashion-MNIST images get a stripe nobody named (most Shirts at site A, most other garments at site B);
the manifest has ``split`` and ``site`` columns; the concept bank is the garment textbook's, without
anything about stripes. Every step is a ``cbm`` command.
"""


import pytest
from own_data import run_cli
from own_data_folders import write_stripe_folder

from cbm.io import load_model

pytestmark = pytest.mark.slow

K = "Shirt"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-shortcut")
    write_stripe_folder(root, K)
    cache = root / "cache"
    out = {"root": root}
    out["embed"] = run_cli(["embed", root / "manifest.csv", "--image-size", "48", "--cache-dir", cache,
                            "--no-progress"])
    store = next(p.parent for p in cache.rglob("manifest.json"))
    out["train"] = run_cli(["train", "--method", "knobo", "--concepts", root / "bank", "--data", store,
                            "--out", root / "model", "--quiet"])
    out["eval"] = run_cli(["eval", root / "model"])
    out["discover"] = run_cli(["discover", root / "model", "--out", root / "found", "--top", "5"])
    out["add"] = run_cli(["edit", root / "model", "add-concept", "--name", "found 1", "--from-candidate",
                          f"{root / 'found' / 'candidates.json'}#1"])
    run_cli(["edit", root / "model", "save", "--note", "named the shortcut"])
    from cbm.edits.discover import load_candidates

    cls = load_candidates(f"{root / 'found' / 'candidates.json'}#1")[0].class_name  # as discover printed it
    out["repair"] = run_cli(["edit", root / "model", "repair", "--class", cls, "--concept", "found 1", "--apply"])
    return out


def test_training_honours_the_manifests_splits_and_sites(walkthrough):
    from cbm.data.evalfile import npz_splits

    splits = npz_splits(walkthrough["root"] / "model" / "data.npz")
    assert {"train", "val", "test@A", "test@B"} <= set(splits)


def test_eval_reports_each_site_and_per_class_recall(walkthrough):
    text = walkthrough["eval"]
    assert "test@A" in text and "test@B" in text and K in text


def test_discover_writes_ranked_candidates_that_add_concept_reads(walkthrough):
    from cbm.edits.discover import load_candidates

    cands = load_candidates(walkthrough["root"] / "found" / "candidates.json")
    assert [c.rank for c in cands] == sorted(c.rank for c in cands) and len(cands) >= 1
    model = load_model(walkthrough["root"] / "model")
    assert "found 1" in model.concept_names_


def test_repair_prints_its_choice_and_verdict(walkthrough):
    text = walkthrough["repair"]
    assert "group-balanced accuracy" in text and "Chosen:" in text
    assert "verdict:" in text or "Chosen: no edit" in text
