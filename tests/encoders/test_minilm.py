"""The bundled all-MiniLM-L6-v2 text encoder."""

import numpy as np
import pytest

from cbm.encoders import NoTextTowerError, create_encoder


@pytest.fixture(scope="module")
def minilm():
    return create_encoder("minilm", device="cpu")


def test_texts_become_unit_384d_vectors(minilm):
    T = minilm.encode_text(["has stripes", "is striped", "made of metal"])
    assert T.shape == (3, 384) and T.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1.0, atol=1e-5)
    assert T[0] @ T[1] > T[0] @ T[2]  # paraphrases are closer than unrelated texts


def test_model_is_loaded_once_per_process(minilm):
    assert create_encoder("minilm", device="cpu").model is minilm.model


def test_images_are_refused(minilm):
    with pytest.raises(NoTextTowerError, match="text-only"):
        minilm.encode_images(np.zeros((1, 8, 8), np.uint8))


def test_a_single_string_is_refused(minilm):
    with pytest.raises(TypeError, match="list of texts"):
        minilm.encode_text("has stripes")
