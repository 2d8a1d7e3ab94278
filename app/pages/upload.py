"""Upload page: drop in an image, get the model's prediction and the concepts behind it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm.app import _args, _cache, _findings, _images, _keys, _panels
from cbm.exceptions import CBMError, DataError
from cbm.explain import embed_image


def embed(path, image) -> np.ndarray:
    """(1, d) embedding of a PIL image with the model's encoder; stops with a message on failure."""
    try:
        encoder = _cache.model_encoder(path)
        with st.spinner("Embedding the image..."):
            return embed_image(_cache.current_model(path), image, encoder=encoder)
    except (CBMError, ImportError, ValueError, KeyError, FileNotFoundError, OSError) as e:
        st.error(f"**The model's image encoder cannot be used here.** {e}")
        st.stop()


def render() -> None:
    """Draw the Upload page: embed an uploaded image and explain the model's prediction."""
    st.title("Upload")
    path = _args.require_model_dir()
    model = _cache.current_model(path)
    spec = _cache.encoder_spec(path)
    if spec is None:
        st.info("This model's config does not name the image encoder it was trained with "
                "(`fingerprints.encoder`), so new images cannot be embedded. Retrain with `cbm train`, "
                "which records it.")
        st.stop()
    st.caption(f"Images are embedded with `{_cache.encoder_label(path)}`, the encoder the model was trained on.")
    up = st.file_uploader("Drop an image (PNG, JPEG, 16-bit TIFF or DICOM)", type=None, key=_keys.UPLOAD_FILE)
    if up is None:
        st.info("Upload an image to see what the model predicts and why.")
        st.stop()
    try:
        image = _images.load_upload(up.getvalue(), up.name)
    except DataError as e:
        st.error(str(e))
        st.stop()
    X = embed(path, image)
    preds = _cache.predict_embeddings(model, X)
    ood = _panels.out_of_distribution(path, X)
    if _cache.multilabel(model):
        _findings.findings_panel(model, preds, 0, image, up.name, key="upload", path=path,
                                 raw_image=np.asarray(image.convert("RGB")))
        return
    _panels.prediction_panel(model, preds, 0, image, up.name, key="upload", path=path,
                             raw_image=np.asarray(image.convert("RGB")), ood=ood,
                             title=f"Why the model predicts {preds.pred[0]} for {up.name}")
    _panels.concept_map_panel(model, X, image, key="upload_concept_map")


if __name__ == "__main__":
    render()
