"""README "Your own data", run exactly: folders -> cbm embed -> cbm concepts generate -> cbm train -> cbm explain.

A local open_clip checkpoint (a tiny random-init CLIP saved to a file) stands in for real weights;
class folders have non-ASCII names, and every step must carry them by name.
"""

import contextlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from cbm.cli import main
from cbm.io import load_model

CLASSES = ("chemise à manches", "pantalon", "robe d'été")
CONCEPTS = {  # deliberately not in the folders' (sorted) order: matched by name, never by position
    "robe d'été": ["flowing skirt", "thin straps"],
    "chemise à manches": ["long sleeves", "buttoned collar"],
    "pantalon": ["two trouser legs", "belt loops"],
}
ARCH = "openclip:cbm-tiny-clip"


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """Photos in <folder>/<class>/, a local checkpoint and a LaBo concept file."""
    from cbm.encoders import create_encoder

    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(CLASSES):
        (root / "photos" / cls).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            img[:, :, k] += 150  # one colour per class
            Image.fromarray(img).save(root / "photos" / cls / f"{i}.png")
    ckpt = create_encoder(ARCH, device="cpu").save_checkpoint(root / "tiny-clip.safetensors")
    (root / "concepts.json").write_text(json.dumps(CONCEPTS, ensure_ascii=False), encoding="utf-8")
    return root, ckpt


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def trained(own_data, tmp_path_factory):
    """The README's commands, in order; returns (root, checkpoint, embedding folder, model dir)."""
    root, ckpt = own_data

    def run(argv):  # capsys is per test; this fixture is per module
        buf, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
        assert rc == 0, err.getvalue()
        return buf.getvalue()

    out = run(["embed", root / "photos", "--encoder", ARCH, "--pretrained", ckpt,
               "--cache-dir", root / "cache", "--device", "cpu", "--no-progress"])
    entry = next((root / "cache" / "embeddings").iterdir())
    assert str(entry) in out  # the folder `cbm train --data` takes is printed
    run(["concepts", "generate", "--source", "labo", "--input", root / "concepts.json", "--encoder", ARCH,
         "--pretrained", ckpt, "--out", root / "bank"])
    run(["train", "--method", "labo", "--concepts", root / "bank", "--data", entry, "--out", root / "model",
         "--param", "max_epochs=2", "--quiet"])
    return root, ckpt, entry, root / "model"


def test_the_model_has_the_folders_class_names(trained):
    *_, model_dir = trained
    model = load_model(model_dir)
    assert model.class_names_ == sorted(CLASSES)
    assert model.fingerprints_["encoder"]["pretrained"].endswith("tiny-clip.safetensors")


def test_labo_learns_each_class_its_own_concepts(trained):
    *_, model_dir = trained
    model = load_model(model_dir)
    for cls, concepts in CONCEPTS.items():
        row = model.coef_[model.class_names_.index(cls)]
        top = {model.concept_names_[j] for j in np.argsort(row)[::-1][:2]}
        assert top == set(concepts), (cls, top)


def test_explain_a_new_image_rebuilds_the_local_checkpoint_and_names_classes(trained, capsys):
    root, *_, model_dir = trained
    out = _run(["explain", model_dir, "--image", root / "photos" / "pantalon" / "3.png"], capsys)
    predicted = re.search(r"predicted '([^']+)'", out) or re.search(r'predicted "([^"]+)"', out)
    assert predicted and predicted.group(1) in CLASSES, out
    assert not re.search(r"predicted '\d+'", out)


def test_explain_a_sample_shows_the_true_class_name(trained, capsys):
    *_, model_dir = trained
    out = _run(["explain", model_dir, "--sample", "0"], capsys)
    assert "true class" in out and any(repr(c) in out for c in CLASSES), out


def test_eval_reads_the_data_npz_train_wrote(trained, capsys):
    *_, model_dir = trained
    out = _run(["eval", model_dir], capsys)
    assert "test" in out and "val" in out
