"""Class and encoder identity through the command line: names from folders, manifests and caches
reach every model and explanation; a bank meets data by class name and by encoder fingerprint."""

import json

import numpy as np
from own_data import ARCH, CLASSES, CONCEPTS, fail_cli, run_cli

from cbm.bank import ConceptBank
from cbm.data import make_concept_world
from cbm.io import load_model


# -- LaBo's 'coffee' learned another class's concepts: banks are matched by name ------------------
def test_labo_reads_each_class_prior_by_name_whatever_the_banks_class_order(world_files, tmp_path):
    world, root = world_files
    coefs = {}
    for bank in ("bank", "bank-reordered"):
        run_cli(["train", "--method", "labo", "--concepts", root / bank, "--data", root / "splits.npz",
                 "--out", tmp_path / bank, "--param", "max_epochs=3", "--quiet"])
        model = load_model(tmp_path / bank)
        coefs[bank] = {c: model.coef_[model.class_names_.index(c)] for c in world.class_names}
    for c in world.class_names:
        np.testing.assert_allclose(coefs["bank"][c], coefs["bank-reordered"][c], rtol=1e-5, atol=1e-6)


def test_a_bank_for_other_classes_is_refused_listing_both_sides(world_files, tmp_path):
    world, root = world_files
    other = ConceptBank.load(root / "bank")
    other = other.with_prior([f"class {k}" for k in range(len(other.classes))], other.prior)
    other.save(tmp_path / "other")
    err = fail_cli(["train", "--method", "labo", "--concepts", tmp_path / "other", "--data", root / "splits.npz",
                    "--out", tmp_path / "m", "--quiet"])
    assert "by name" in err and repr(world.class_names[0]) in err and "'class 0'" in err and "--class-map" in err
    assert err.count("\n") == 1
    mapping = ",".join(f"{c}=class {k}" for k, c in enumerate(world.class_names))
    run_cli(["train", "--method", "labo", "--concepts", tmp_path / "other", "--data", root / "splits.npz",
             "--class-map", mapping, "--out", tmp_path / "m", "--param", "max_epochs=2", "--quiet"])
    assert load_model(tmp_path / "m").concepts_.classes == sorted(world.class_names)


def test_synthetic_world_models_have_the_banks_class_names(tmp_path):
    world = make_concept_world(random_state=0)
    run_cli(["train", "--method", "pcbm", "--world", "--out", tmp_path / "m", "--quiet"])
    model = load_model(tmp_path / "m")
    assert model.class_names_ == sorted(world.class_names) and set(model.class_names_) == set(world.bank.classes)


# -- class names survive caches and CSV manifests ----------------------------------------------
def test_class_names_survive_a_csv_manifest_and_its_cache(own_data, tmp_path):
    root, ckpt = own_data
    rows = [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted((root / "photos").rglob("*.png"))]
    (root / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    run_cli(["embed", root / "manifest.csv", "--encoder", ARCH, "--pretrained", ckpt,
             "--cache-dir", tmp_path / "cache", "--device", "cpu", "--no-progress"])
    entry = next((tmp_path / "cache" / "embeddings").iterdir())
    run_cli(["train", "--method", "linear-probe", "--data", entry, "--out", tmp_path / "m", "--quiet"])
    assert load_model(tmp_path / "m").class_names_ == sorted(CLASSES)
    out = run_cli(["explain", tmp_path / "m", "--sample", "0", "--class", "chemise à manches"])
    assert "class 'chemise à manches'" in out


def test_cms_trains_from_an_embedding_folder_with_its_encoders_class_text_embeddings(own_model, tmp_path):
    run_cli(["train", "--method", "cms", "--concepts", own_model["bank"], "--data", own_model["embeddings"],
             "--out", tmp_path / "cms", "--quiet"])
    assert load_model(tmp_path / "cms").class_names_ == sorted(CLASSES)


# -- encoders: --pretrained everywhere, fingerprints checked wherever a bank meets embeddings -----
def test_a_bank_embedded_without_pretrained_is_refused_by_train(own_model, tmp_path):
    root = own_model["root"]
    run_cli(["concepts", "generate", "--source", "labo", "--input", root / "concepts.json", "--encoder", ARCH,
             "--out", tmp_path / "random-bank"])
    err = fail_cli(["train", "--method", "labo", "--concepts", tmp_path / "random-bank", "--data",
                    own_model["embeddings"], "--out", tmp_path / "m", "--quiet"])
    assert "weights=random" in err and "sha256:" in err and "--pretrained" in err


def test_eval_refuses_data_with_other_class_names(world_files, own_model):
    _, root = world_files
    err = fail_cli(["eval", own_model["model"], "--data", root / "splits.npz"])
    assert "by name" in err and "cardinal" in err and "pantalon" in err


def test_explain_image_finds_a_moved_checkpoint_with_pretrained(own_model, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(own_model["model"], model_dir)
    cfg_file = next(model_dir.glob("v*/config.json"))
    cfg = json.loads(cfg_file.read_text())
    cfg["fingerprints"]["encoder"]["pretrained"] = str(tmp_path / "gone.safetensors")
    cfg_file.write_text(json.dumps(cfg))
    image = own_model["root"] / "photos" / "robe d'été" / "0.png"
    assert "--pretrained" in fail_cli(["explain", model_dir, "--image", image])
    out = run_cli(["explain", model_dir, "--image", image, "--pretrained", own_model["checkpoint"]])
    assert "predicted" in out


# -- CLI parity: LaBo banks, select/filter on what train accepts ---------------------------------
def test_labo_source_keeps_class_prior_and_the_images_encoder(own_model):
    bank = ConceptBank.load(own_model["bank"])
    manifest = json.loads((own_model["embeddings"] / "manifest.json").read_text())
    assert bank.encoder_fingerprint == manifest["encoder"] and bank.vectors.shape[1] == manifest["dim"]
    for cls, concepts in CONCEPTS.items():
        k = bank.classes.index(cls)
        assert {bank.names[j] for j in np.flatnonzero(bank.prior[k] > 0)} == set(concepts)


def test_source_text_refuses_a_class_to_concepts_json(own_model, tmp_path):
    err = fail_cli(["concepts", "generate", "--source", "text", "--input", own_model["root"] / "concepts.json",
                    "--encoder", ARCH, "--out", tmp_path / "b"])
    assert "--source labo" in err
    assert not (tmp_path / "b").exists()


def test_select_and_filter_take_the_embedding_folder_train_takes(own_model, tmp_path):
    out = run_cli(["concepts", "select", own_model["bank"], "--per-class", "1", "--embeddings",
                   own_model["embeddings"], "--out", tmp_path / "sel"])
    assert "Selected 3 of 6" in out
    assert set(ConceptBank.load(tmp_path / "sel").classes) == set(CLASSES)
    out = run_cli(["concepts", "filter", own_model["bank"], "--images", own_model["embeddings"],
                   "--max-length", "100", "--out", tmp_path / "filt"])
    assert "Kept" in out


def test_search_refuses_a_cache_from_another_encoder(own_model, world_files):
    _, root = world_files
    err = fail_cli(["concepts", "search", root / "bank", "--embeddings", own_model["embeddings"],
                    "--concept", ConceptBank.load(root / "bank").names[0]])
    assert "encoder" in err
