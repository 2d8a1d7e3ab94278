"""The text-aligned stand-in for CLIP: a fitted map from image features into MiniLM's space."""

import numpy as np
import pytest

from cbm.encoders import EncoderLoadError, create_encoder
from cbm.encoders.aligned import TextAlignment, class_captions, fit_text_alignment

CLASSES = ["striped cloth", "dotted cloth", "plain cloth"]


@pytest.fixture(scope="module")
def minilm():
    return create_encoder("minilm")


@pytest.fixture(scope="module")
def toy(minilm):
    """Three clusters of 64-d 'image features', one per class, and their captions."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64)) * 3
    y = np.repeat(np.arange(3), 40)
    X = (centers[y] + rng.normal(size=(120, 64))).astype(np.float32)
    captions = [f"a photo of a {CLASSES[k]}" for k in y]
    alignment = fit_text_alignment(X, captions, minilm, image_encoder={"name": "mobilenet_v2",
                                   "image_size": 32}, image_fingerprint="toy-features", epochs=150)
    return X, y, alignment


def test_projected_images_land_nearest_their_own_caption(toy, minilm):
    X, y, alignment = toy
    T = minilm.encode_text([f"a photo of a {c}" for c in CLASSES])
    Z = alignment.project(X)
    assert Z.shape == (120, 384) and np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)
    assert ((Z @ T.T).argmax(1) == y).mean() > 0.95
    assert alignment.info["train_caption_top1"] > 0.95


def test_save_and_load_give_the_same_map_and_fingerprint(toy, tmp_path):
    X, _, alignment = toy
    loaded = TextAlignment.load(alignment.save(tmp_path / "aligned"))
    assert loaded.fingerprint == alignment.fingerprint
    np.testing.assert_array_equal(loaded.project(X), alignment.project(X))


def test_a_changed_map_file_is_detected(toy, tmp_path):
    from safetensors.numpy import load_file, save_file

    _, _, alignment = toy
    folder = alignment.save(tmp_path / "aligned")
    arrays = load_file(str(folder / "alignment.safetensors"))
    arrays["weight"][0, 0] += 1.0
    save_file(arrays, str(folder / "alignment.safetensors"))
    with pytest.raises(EncoderLoadError, match="changed after saving"):
        TextAlignment.load(folder)


def test_wrong_feature_width_is_refused(toy):
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        toy[2].project(np.zeros((2, 10)))


def test_factory_refuses_a_folder_that_is_not_an_alignment(tmp_path):
    with pytest.raises(EncoderLoadError, match="not a text alignment folder"):
        create_encoder("aligned", pretrained=tmp_path)


def test_encoder_embeds_images_and_texts_in_one_space(minilm, tmp_path):
    """Fitted on real MobileNetV2 features of two synthetic patterns, loaded through the factory."""
    mobilenet = create_encoder("mobilenet_v2", image_size=32)
    rng = np.random.default_rng(0)
    stripes = np.tile((np.arange(32) % 8 < 4)[:, None] * 255, (1, 32)).astype(np.uint8)
    images = [np.clip(stripes.T if i % 2 else stripes + rng.integers(0, 30, (32, 32)), 0, 255)
              .astype(np.uint8) for i in range(20)]
    X = mobilenet.encode_images(images)
    captions = ["vertical stripes" if i % 2 else "horizontal stripes" for i in range(20)]
    alignment = fit_text_alignment(X, captions, minilm, image_encoder={"name": "mobilenet_v2",
                                   "image_size": 32}, image_fingerprint=mobilenet.fingerprint)
    enc = create_encoder("aligned", pretrained=alignment.save(tmp_path / "a"))
    assert enc.fingerprint == alignment.fingerprint and enc.dim == 384
    Z, T = enc.encode_images(images[:4]), enc.encode_text(["horizontal stripes", "vertical stripes"])
    assert list((Z @ T.T).argmax(1)) == [0, 1, 0, 1]


def test_class_captions_add_one_caption_per_yes_concept():
    from cbm.bank import ConceptBank

    bank = ConceptBank(["stripes", "dots"], ["stripes", "dots"], classes=CLASSES[:2],
                       prior=np.array([[1.0, -1.0], [0.0, 1.0]], np.float32))
    caps = class_captions(CLASSES[:2], bank)
    assert caps["striped cloth"] == ["a photo of a striped cloth", "a photo of a striped cloth with stripes"]
    assert caps["dotted cloth"] == ["a photo of a dotted cloth", "a photo of a dotted cloth with dots"]
