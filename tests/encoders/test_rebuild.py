"""Rebuilding a recorded image encoder: from a spec with a local checkpoint, from a fingerprint, and for
a model, whose concepts must come from the same encoder."""

import numpy as np
import pytest

from cbm.data import make_concept_world
from cbm.encoders.rebuild import encoder_for, rebuild_encoder, recorded_fingerprint
from cbm.exceptions import CBMError
from cbm.models.baselines import LinearProbe


@pytest.fixture
def fitted():
    world = make_concept_world(n_classes=3, n_concepts=9, n_samples=150, dim=16, random_state=0)
    names = np.asarray(world.class_names)
    return LinearProbe().fit(world["train"].X, names[world["train"].y])


def test_recorded_fingerprint_reads_a_spec_or_a_bare_string():
    assert recorded_fingerprint({"name": "minilm", "fingerprint": "minilm|x"}) == "minilm|x"
    assert recorded_fingerprint("mobilenet_v2|size=96") == "mobilenet_v2|size=96"
    assert recorded_fingerprint(None) is None and recorded_fingerprint({"name": "minilm"}) is None


def test_importing_the_rebuilder_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, cbm.encoders.rebuild, cbm.explain; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_explaining_an_image_needs_a_recorded_encoder(fitted):
    fitted.fingerprints_ = {}
    with pytest.raises(CBMError, match="no image encoder"):
        encoder_for(fitted)


def test_rebuild_encoder_from_a_spec_loads_a_local_checkpoint(tmp_path):
    from cbm.encoders import create_encoder

    enc = create_encoder("openclip:cbm-tiny-clip", device="cpu")
    ckpt = enc.save_checkpoint(tmp_path / "tiny.safetensors")
    loaded = create_encoder("openclip:cbm-tiny-clip", pretrained=str(ckpt), device="cpu")
    again = rebuild_encoder(loaded.spec)
    assert again.fingerprint == loaded.fingerprint and loaded.spec["pretrained"] == str(ckpt.resolve())
    with pytest.raises(CBMError, match="--pretrained PATH"):
        rebuild_encoder(loaded.fingerprint)  # a bare fingerprint does not say where the file is
    assert rebuild_encoder(loaded.fingerprint, pretrained=str(ckpt)).fingerprint == loaded.fingerprint


def test_encoder_for_refuses_a_model_whose_concepts_come_from_another_encoder(fitted, tmp_path):
    from cbm.encoders import create_encoder
    from cbm.exceptions import EncoderMismatchError

    enc = create_encoder("openclip:cbm-tiny-clip", pretrained=str(
        create_encoder("openclip:cbm-tiny-clip", device="cpu").save_checkpoint(tmp_path / "t.pt")), device="cpu")
    fitted.fingerprints_ = {"encoder": enc.spec}
    fitted.concepts_ = fitted.concepts_.with_vectors(np.ones((len(fitted.concepts_), 64)), None, "other-encoder")
    with pytest.raises(EncoderMismatchError, match="other-encoder"):
        encoder_for(fitted)
