"""Upload page: drop in an image, get the model's prediction and the concepts behind it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm.app import _charts, _images, _state
from cbm.exceptions import CBMError, DataError


def embed(path, image) -> np.ndarray:
    """(1, d) embedding of a PIL image with the model's encoder; stops with a message on failure."""
    from cbm.explain import embed_image

    try:
        encoder = _state.model_encoder(path)
        with st.spinner("Embedding the image..."):
            return embed_image(_state.current_model(path), image, encoder=encoder)
    except (CBMError, ImportError, ValueError, KeyError, FileNotFoundError, OSError) as e:
        st.error(f"**The model's image encoder cannot be used here.** {e}")
        st.stop()


def render() -> None:
    st.title("Upload")
    path = _state.require_model_dir()
    model = _state.current_model(path)
    spec = _state.encoder_spec(path)
    if spec is None:
        st.info("This model's config does not name the image encoder it was trained with "
                "(`fingerprints.encoder`), so new images cannot be embedded. Retrain with `cbm train`, "
                "which records it.")
        st.stop()
    st.caption(f"Images are embedded with `{_state.encoder_label(path)}`, the encoder the model was trained on.")
    up = st.file_uploader("Drop an image (PNG or JPEG)", type=None, key=_state.UPLOAD_FILE)
    if up is None:
        st.info("Upload an image to see what the model predicts and why.")
        st.stop()
    try:
        image = _images.load_upload(up.getvalue(), up.name)
    except DataError as e:
        st.error(str(e))
        st.stop()
    X = embed(path, image)
    preds = _state.predict_embeddings(model, X)
    proba, k = preds.proba[0], int(preds.proba[0].argmax())
    left, right = st.columns([1, 2])
    with left:
        st.image(image, caption=up.name, width=240)
        st.markdown(f"### Predicted: {model.class_names_[k]}\n{proba[k]:.0%} sure")
        st.plotly_chart(_charts.probability_bars(model.class_names_, proba, model.class_names_[k]))
    with right:
        contrib, residual = _state.explain_sample(model, preds, 0, k)
        top = np.argsort(-np.abs(contrib))[:10]
        st.plotly_chart(_charts.contribution_bars(
            [model.concept_names_[j] for j in top], contrib[top], residual=residual,
            title=f"Why {model.class_names_[k]}: concepts pushing toward (blue) and against (orange)"))


if __name__ == "__main__":
    render()
