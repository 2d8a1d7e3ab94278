"""Patch tokens: MobileNetV2's last feature map and open_clip ViT patch tokens, as (N, T, d)."""

import numpy as np
import pytest
from skimage import data

from cbm.encoders import create_encoder


@pytest.fixture(scope="module")
def mobilenet():
    return create_encoder("mobilenet_v2", image_size=224, device="cpu")


def test_mobilenet_at_224px_gives_7x7_tokens_whose_mean_is_the_pooled_embedding(mobilenet):
    images = [data.chelsea()]
    tokens = mobilenet.encode_tokens(images)
    view = mobilenet.tokens()
    assert tokens.shape == (1, 49, 1280) and tokens.dtype == np.float32
    assert view.token_grid == (7, 7) and view.dim == 1280 and view.row_shape == (49, 1280)
    np.testing.assert_allclose(tokens.mean(1), mobilenet.encode_images(images), rtol=1e-4, atol=1e-4)


def test_token_fingerprint_names_the_kind_and_grid(mobilenet):
    fp = mobilenet.tokens().fingerprint
    assert fp.startswith(mobilenet.fingerprint) and fp.endswith("|kind=tokens|grid=7x7")
    assert mobilenet.tokens() is mobilenet.tokens()  # probed once
    small = create_encoder("mobilenet_v2", image_size=64, device="cpu")
    assert small.tokens().token_grid == (2, 2)


def test_openclip_vit_patch_tokens_leave_the_model_as_it_was():
    enc = create_encoder("openclip:cbm-tiny-clip", device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    pooled = enc.encode_images([img])
    tokens = enc.encode_tokens([img, img])
    assert tokens.shape == (2, 4, 64) and enc.tokens().token_grid == (2, 2)   # 32 px / 16 px patches
    assert enc.model.visual.output_tokens is False
    np.testing.assert_allclose(enc.encode_images([img]), pooled)


def test_a_text_only_encoder_has_no_tokens():
    from cbm.encoders._base import TokenView

    class TextOnly:
        supports_images = False
        name = "text"

    with pytest.raises(TypeError, match="no image tower"):
        TokenView(TextOnly())
