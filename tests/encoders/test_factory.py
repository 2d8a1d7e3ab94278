"""create_encoder / list_encoders: names, defaults and messages."""

import pytest

from cbm.encoders import create_encoder, list_encoders


def test_list_encoders_names_builtins_and_openclip_archs():
    names = list_encoders()
    assert {"mobilenet_v2", "minilm", "openclip:ViT-B-32", "openclip:cbm-tiny-clip"} <= set(names)
    assert list_encoders(include_openclip=False) == ["mobilenet_v2", "minilm", "aligned"]


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Unknown encoder 'mobilenet'. Did you mean 'mobilenet_v2'"):
        create_encoder("mobilenet")


def test_bare_open_clip_architecture_name_works():
    enc = create_encoder("cbm-tiny-clip", device="cpu")
    assert enc.fingerprint.startswith("openclip:cbm-tiny-clip|")


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match=r"image_size must be a whole number of pixels in 8\.\.\d+; got 4"):
        create_encoder("mobilenet_v2", image_size=4)
    with pytest.raises(ValueError, match="image_size must be an int >= 16 pixels; got 12"):
        create_encoder("mobilenet_v2", image_size=12)  # in the factory's range, below MobileNetV2's
