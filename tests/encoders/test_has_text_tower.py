"""Whether a recorded encoder can embed text, known without building it (the app's "from text")."""

import pytest

from cbm.encoders import has_text_tower


@pytest.mark.parametrize("name, expected", [
    ("mobilenet_v2", False),
    ("mobilenet_v2|weights=sha256:ab|size=96", False),
    ("minilm", True),
    ("aligned", True),
    ("openclip:ViT-B-32|weights=tag:laion2b|preprocess=x", True),
    ("openclip:ViT-B-32|weights=tag:laion2b|kind=tokens", False),
    ("synthetic", False),
])
def test_text_tower_is_known_from_the_recorded_name(name, expected):
    assert has_text_tower(name) is expected
