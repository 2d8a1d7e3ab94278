"""Page pieces shared by Explore and Upload: one prediction with the concepts behind it.

Below the prediction: "why this class and not that one" with a class picker, one concept's
evidence (its raw score, its percentile among training images and where in the image it fires),
and a download of the whole explanation as a self-contained HTML report.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm import explain
from cbm.app import _cache, _charts, _keys
from cbm.exceptions import CBMError
from cbm.ood import describe_score, image_level
from cbm.report import explanation_html, heat_overlay


def prediction_panel(model, preds: _cache.Predictions, i: int, image, caption: str, note: str = "", *,
                     key: str = "explore", path=None, true: str | None = None, raw_image=None,
                     ood: tuple[float, float] | None = None, title: str = "Explanation"):
    """Image, predicted class with probability, and the top-10 concept contributions for sample ``i``.

    With ``path`` (the model directory) it adds "why not", concept evidence and the report
    download. Returns the right-hand column, so a page can add more below the contribution chart.
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
        contrib, residual = _cache.explain_sample(model, preds, i, k)
        top = np.argsort(-np.abs(contrib))[:10]
        st.plotly_chart(_charts.contribution_bars(
            [model.concept_names_[j] for j in top], contrib[top], residual=residual,
            title=f"Why {name}: concepts pushing toward (blue) and against (orange)"))
        st.caption("Each bar is the concept's score in this image times its weight for the class: "
                   "how much it adds to (or takes from) the class's score.")
    if path is not None:
        ref = _cache.reference_activations(model, path)[0]
        c = why_not(model, preds, i, key, true, ref)
        concept, pct, heat = evidence(model, preds, i, key, path, raw_image, contrib)
        res = None if preds.residual is None else preds.residual[i]
        page = explanation_html(model, preds.activations[i], residual=res, image=raw_image, title=title,
                                true=true, versus=c.b, concept=concept, percentile=pct, occlusion=heat,
                                ood_score=None if ood is None else ood[0],
                                ood_threshold=None if ood is None else ood[1], reference=ref)
        st.download_button("Download this explanation (HTML)", page, file_name="explanation.html",
                           mime="text/html", key=f"{key}_{_keys.REPORT}",
                           help="One self-contained page with the image, numbers and text; opens offline.")
    return right


def out_of_distribution(path, X: np.ndarray) -> tuple[float, float] | None:
    """How unusual one image is (:func:`cbm.ood.describe_score`): a warning above the threshold, a
    caption below it; returns (score, threshold), or None when the model's data cannot tell."""
    try:
        det = _cache.ood_detector(path)
        if det is None:
            st.caption("data.npz holds no images of the training sites, so how unusual this image is "
                       "cannot be checked.")
            return None
        score = float(det.score(image_level(X))[0])
    except (CBMError, ValueError) as e:
        st.caption(f"How unusual this image is cannot be checked: {e}")
        return None
    text = describe_score(score, det.threshold_, det.flag_rate)
    if score > det.threshold_:
        st.warning(f"**This image is unlike the images the model was trained on.** {text} "
                   "The prediction below may be meaningless.")
    else:
        st.caption(text)
    return score, det.threshold_


def why_not(model, preds: _cache.Predictions, i: int, key: str, true: str | None,
            reference: np.ndarray | None = None) -> explain.Contrast:
    """"Why <predicted> and not <class>": a class picker, the separating concepts and the smallest feasible flip."""
    classes = model.class_names_
    pred = classes[int(preds.proba[i].argmax())]
    others = [c for c in classes if c != pred] or classes
    res = None if preds.residual is None else preds.residual[i]
    default = explain.contrast(model, preds.activations[i], pred, None, residual=res, true=true).b
    wkey = f"{key}_{_keys.WHY_NOT}"
    sample = f"{i}|{true}|{pred}|{preds.activations[i].sum():.6g}"  # a new sample gets the new default
    if st.session_state.get(f"_{wkey}_sample") != sample or st.session_state.get(wkey) not in others:
        st.session_state[wkey] = default if default in others else others[0]
        st.session_state[f"_{wkey}_sample"] = sample
    st.subheader(f"Why {pred} and not another class?")
    b = st.selectbox("Why not", others, key=wkey, help="Default: the true class when the prediction is "
                     "wrong, else the runner-up.")
    c = explain.contrast(model, preds.activations[i], pred, b, residual=res, reference=reference)
    t = c.table.head(10)
    st.plotly_chart(_charts.contribution_bars(
        list(t["concept"]), t["contribution"].to_numpy(),
        title=f"Concepts favouring {pred} (blue) over {b} (orange)",
        axis=f"(weight for {pred} - weight for {b}) x score"))
    st.markdown("  \n".join(c.summary().splitlines()))
    return c


def evidence(model, preds: _cache.Predictions, i: int, key: str, path, raw_image, contrib: np.ndarray):
    """One concept's raw score, its percentile among training images and (on request) where it fires."""
    names = model.concept_names_
    ckey = f"{key}_{_keys.EVIDENCE}"
    if st.session_state.get(ckey) not in names:
        st.session_state[ckey] = names[int(np.argmax(np.abs(contrib)))]
    st.subheader("Evidence for a concept")
    concept = st.selectbox("Concept", names, key=ckey, help="Default: the concept that contributes most.")
    j = names.index(concept)
    ref, where = _cache.reference_activations(model, path)
    value = float(preds.activations[i, j])
    pct = explain.concept_percentile(ref[:, j], value) if len(ref) else None
    st.markdown(f"Score of **{concept}** in this image: **{value:.3f}**"
                + ("" if pct is None else f", higher than **{pct:.0f}%** of the {where} images."))
    heat = None
    if raw_image is None:
        return concept, pct, None
    okey = f"{key}_{_keys.OCCLUDE}_{concept}"
    if st.button("Show where it fires in the image", key=f"{key}_{_keys.OCCLUDE}"):
        st.session_state[okey] = True
    if st.session_state.get(okey):
        try:
            heat = _cache.occlusion(model, path, raw_image, concept)
        except (CBMError, ImportError, ValueError, OSError) as e:
            st.info(f"The concept map needs the model's image encoder, which cannot be used here: {e}")
            return concept, pct, None
        st.image(heat_overlay(raw_image, heat).resize((240, 240)), width=240,
                 caption=f"Red: hiding this region lowers “{concept}” (it fires there); blue: raises it.")
    return concept, pct, heat


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
