"""Page pieces shared by Explore and Upload: one prediction with the concepts behind it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm.app import _charts, _state


def prediction_panel(model, preds: _state.Predictions, i: int, image, caption: str, note: str = ""):
    """Image, predicted class with probability, and the top-10 concept contributions for sample ``i``.

    Returns the right-hand column, so a page can add more below the contribution chart.
    """
    k = int(preds.proba[i].argmax())
    name = model.class_names_[k]
    left, right = st.columns([1, 2])
    with left:
        if image is not None:
            st.image(image, caption=caption, width=240)
        st.markdown(f"### Predicted: {name}\n{preds.proba[i, k]:.0%} sure{', ' + note if note else ''}")
        st.plotly_chart(_charts.probability_bars(model.class_names_, preds.proba[i], name))
    with right:
        contrib, residual = _state.explain_sample(model, preds, i, k)
        top = np.argsort(-np.abs(contrib))[:10]
        st.plotly_chart(_charts.contribution_bars(
            [model.concept_names_[j] for j in top], contrib[top], residual=residual,
            title=f"Why {name}: concepts pushing toward (blue) and against (orange)"))
        st.caption("Each bar is the concept's score in this image times its weight for the class: "
                   "how much it adds to (or takes from) the class's score.")
    return right


def concept_map_panel(model, X, image, key: str) -> None:
    """For token models (``cct``): one concept's attention map drawn over the image."""
    if image is None or not hasattr(model, "concept_maps") or np.ndim(X) != 3:
        return
    from cbm.concept_maps import overlay

    maps = model.concept_maps(X)[0]
    names = model.concept_names_
    default = int(np.argmax(maps.max(axis=(1, 2)) - maps.mean(axis=(1, 2))))
    j = names.index(st.selectbox("Where in the image is this concept?", names, index=default, key=key))
    st.image(overlay(image, maps[j]), width=240,
             caption=f"attention of the patches to '{names[j]}' (red = most; peak {maps[j].max():.2f})")
