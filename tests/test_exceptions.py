"""Error messages name the bad value, suggest the closest names and list what is available."""

import pytest

from cbm.exceptions import unknown_name_message


@pytest.mark.parametrize("kind, plural", [("class", "classes"), ("concept", "concepts"),
                                          ("demo class", "demo classes"),
                                          ("pretrained tag for ViT-B-32", "pretrained tags for ViT-B-32")])
def test_the_available_list_is_named_in_plural(kind, plural):
    msg = unknown_name_message(kind, "catt", ["cat", "dog"])
    assert msg.startswith(f"Unknown {kind} 'catt'. Did you mean 'cat'?")
    assert msg.endswith(f"Available {plural} (2): 'cat', 'dog'")
    assert "classs" not in msg
