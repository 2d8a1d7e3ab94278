"""open_clip for real: a tiny random-init CLIP, local checkpoint round trips, offline errors."""

import os
import pickle

import numpy as np
import pytest
import torch
from skimage import data

from cbm.encoders import EncoderLoadError, create_encoder
from cbm.encoders.openclip import OpenCLIPEncoder


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_encoder("openclip:cbm-tiny-clip", device="cpu")


def test_random_init_embeds_images_and_texts_in_one_space(tiny):
    assert isinstance(tiny, OpenCLIPEncoder)
    X = tiny.encode_images([data.chelsea(), data.camera()])
    T = tiny.encode_text(["a photo of a cat", "a cup of coffee", "stripes"])
    assert X.shape == (2, tiny.dim) and T.shape == (3, tiny.dim) and tiny.dim == 64
    assert X.dtype == T.dtype == np.float32
    assert not np.allclose(T[0], T[1])


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_round_trip_gives_identical_embeddings(tiny, tmp_path, suffix):
    path = tiny.save_checkpoint(tmp_path / f"tiny{suffix}")
    again = create_encoder("openclip:cbm-tiny-clip", pretrained=str(path), device="cpu")
    imgs = [data.chelsea()]
    np.testing.assert_array_equal(again.encode_images(imgs), tiny.encode_images(imgs))
    np.testing.assert_array_equal(again.encode_text(["stripes"]), tiny.encode_text(["stripes"]))
    assert "sha256:" in again.fingerprint and again.fingerprint != tiny.fingerprint


def test_random_init_fingerprint_follows_the_weights(tiny):
    torch.manual_seed(0)
    same = create_encoder("openclip:cbm-tiny-clip", device="cpu")
    torch.manual_seed(1)
    other = create_encoder("openclip:cbm-tiny-clip", device="cpu")
    assert same.fingerprint == tiny.fingerprint
    np.testing.assert_array_equal(same.encode_text(["stripes"]), tiny.encode_text(["stripes"]))
    assert other.fingerprint != tiny.fingerprint


def test_image_size_override_changes_fingerprint_and_preprocess():
    enc = create_encoder("openclip:cbm-tiny-clip", image_size=48, device="cpu")
    assert enc.image_size == 48 and enc.preprocess(data.chelsea()).shape == (3, 48, 48)
    assert '"size":[48,48]' in enc.fingerprint


def test_offline_tag_without_cache_fails_fast_naming_both_remedies(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderLoadError, match=r"offline.*go online.*local checkpoint path"):
        create_encoder("openclip:ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path))


def test_unknown_tag_lists_tags():
    with pytest.raises(ValueError, match="Did you mean 'laion2b_s34b_b79k'"):
        create_encoder("openclip:ViT-B-32", pretrained="laion2b_s34b")


def test_checkpoint_for_wrong_architecture_is_named(tiny, tmp_path):
    path = tmp_path / "mnv2.pt"
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)
    with pytest.raises(EncoderLoadError, match=r"mnv2\.pt.*cbm-tiny-clip.*missing keys"):
        create_encoder("openclip:cbm-tiny-clip", pretrained=path, device="cpu")


def test_missing_checkpoint_file():
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        create_encoder("openclip:cbm-tiny-clip", pretrained="/nowhere.safetensors")


@pytest.mark.parametrize("content, why", [
    (pickle.dumps({"run": os.system}), "pickled Python objects besides tensors"),  # would run code
    (b"these are not weights\n", "is not a torch checkpoint or a .safetensors file"),
    (b"", "is not a torch checkpoint .*EOFError"),
], ids=["pickle", "text", "empty"])
def test_a_checkpoint_that_is_not_weights_is_one_clear_error_naming_it(tmp_path, content, why):
    import warnings

    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning text either
        with pytest.raises(EncoderLoadError, match=rf"Cannot load checkpoint '.*weights\.pt'.*{why}") as err:
            create_encoder("openclip:cbm-tiny-clip", pretrained=path, device="cpu")
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
