"""`cbm embed --tokens` then `cbm train --method cct` on a tiny image folder."""

import re

import numpy as np
from PIL import Image

from cbm.bank import ConceptBank
from cbm.cli import main
from cbm.explain import concept_map
from cbm.io import load_model
from cbm.store import EmbeddingCache


def test_embed_tokens_then_train_cct_on_a_tiny_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for cls, value in (("dark", 40), ("light", 210)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            img = np.clip(rng.normal(value, 20, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / cls / f"{i}.png")
    assert main(["embed", str(tmp_path / "imgs"), "--image-size", "64", "--tokens", "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    entry = re.search(r"cache: (\S+)", capsys.readouterr().out).group(1)
    cache = EmbeddingCache(entry)
    assert cache.kind == "tokens" and cache.as_array().shape == (20, 4, 1280)
    ConceptBank(["dark", "light", "tag"]).save(tmp_path / "bank")
    assert main(["train", "--method", "cct", "--concepts", str(tmp_path / "bank"), "--data", entry,
                 "--out", str(tmp_path / "m"), "--device", "cpu", "--quiet",
                 "--param", "dim=8", "--param", "max_epochs=3", "--param", 'spatial_concepts=["tag"]']) == 0
    assert "saved cct with 3 concepts" in capsys.readouterr().out
    model = load_model(tmp_path / "m")
    maps = model.concept_maps(cache.as_array())
    assert maps.shape == (20, 3, 2, 2) and model.spatial_concepts == ["tag"]
    # a new image: embedded as tokens by the encoder the model records, mapped like the cached ones
    i = cache.ids.index("dark/0.png")
    one = concept_map(model, image=Image.open(tmp_path / "imgs" / "dark" / "0.png"))
    np.testing.assert_allclose(one[0], maps[i], atol=2e-2)
