"""`cbm eval --annotations/--interventions/--plots`: concept-level metrics and intervention curves."""

import json

import numpy as np
import pytest
from world_models import one_torch_thread

from cbm.cli import main
from cbm.data import make_concept_world
from cbm.io import save_model
from cbm.models import create_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalc")
    world = make_concept_world(n_classes=3, n_concepts=8, n_samples=150, dim=16, random_state=0)
    arrays = world.arrays()
    arrays.update({f"ids_{s}": np.asarray([f"{s}-{i:03d}" for i in range(len(world[s]))]) for s in world.splits})
    np.savez(root / "data.npz", **arrays)
    with one_torch_thread():
        model = create_model("pcbm", concepts=world.bank, n_lambdas=1, max_iter=200, device="cpu")
        model.fit(world["train"].X, world["train"].y)
    save_model(model, root / "m")
    return world, root


def test_annotations_stored_with_the_data(model_dir, tmp_path, capsys):
    _, root = model_dir
    rc = main(["eval", str(root / "m"), "--data", str(root / "data.npz"), "--annotations", "data",
               "--interventions", "random,coop", "--json", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert rc == 0 and "concept AUC" in out and "intervention curves" in out and "leakage" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["concepts"]) == {"val", "test", "shifted"}  # train is not evaluated
    test = metrics["concepts"]["test"]
    assert test["n_annotated_concepts"] == 8 and set(test["interventions"]["policies"]) == {"random", "coop"}
    assert (tmp_path / "p" / "interventions_test.svg").is_file() and (tmp_path / "p" / "concepts_test.html").is_file()


def test_annotation_file_matched_by_image_id(model_dir, tmp_path, capsys):
    world, root = model_dir
    ids = [f"test-{i:03d}" for i in range(len(world["test"]))]
    rows = ["image_id,concept,value"] + [f"{i},{c},{int(world['test'].concepts[n, j])}"
                                         for n, i in enumerate(ids) for j, c in enumerate(world.bank.names[:3])]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    rc = main(["eval", str(root / "m"), "--data", str(root / "data.npz"), "--annotations", str(tmp_path / "labels.csv"),
               "--interventions", "all", "--json", str(tmp_path / "m.json")])
    assert rc == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics["concepts"]) == ["test"]  # only test images are annotated
    assert metrics["concepts"]["test"]["n_annotated_concepts"] == 3
    assert len(metrics["concepts"]["test"]["interventions"]["policies"]) == 4
    assert "test" in capsys.readouterr().out


def test_interventions_need_annotations(model_dir, capsys):
    _, root = model_dir
    assert main(["eval", str(root / "m"), "--data", str(root / "data.npz"), "--interventions", "random"]) == 2
    assert "--interventions needs --annotations" in capsys.readouterr().err


def test_unknown_policy_is_named(model_dir, capsys):
    _, root = model_dir
    assert main(["eval", str(root / "m"), "--data", str(root / "data.npz"), "--annotations", "data",
                 "--interventions", "cost"]) == 2
    assert "Unknown intervention policy 'cost'" in capsys.readouterr().err
