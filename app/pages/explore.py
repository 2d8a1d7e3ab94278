"""Explore page: browse images by class, prediction, correctness and domain; see why each was predicted."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm import explain
from cbm.app import _args, _cache, _findings, _images, _keys, _panels

ALL = "(all)"
GALLERY = 12


def correct(d: _cache.SplitData, p: _cache.Predictions) -> np.ndarray:
    """Per sample, whether the prediction is right (multi-label: every finding called right)."""
    if p.present is not None:
        return (p.present == d.y.astype(bool)).all(1)
    return p.pred == d.y


def filters(d: _cache.SplitData, p: _cache.Predictions, classes: list[str]) -> np.ndarray:
    """Filter widgets; returns the indices of the samples that pass."""
    multi = p.present is not None
    noun = "finding" if multi else "class"
    c1, c2, c3, c4 = st.columns(4)
    true = c1.selectbox(f"True {noun}", [ALL, *classes], key=_keys.EXPLORE_CLASS,
                        help="images where this finding is truly present" if multi else None)
    pred = c2.selectbox(f"Predicted {noun}", [ALL, *classes], key=_keys.EXPLORE_PRED,
                        help="images where the model calls this finding present" if multi else None)
    right = c3.selectbox("Prediction is", [ALL, "correct", "wrong"], key=_keys.EXPLORE_CORRECT,
                         help="correct: every finding called right (present or absent)" if multi else None)
    domains = [ALL, *sorted(set(d.domains.astype(str)))] if d.domains is not None else [ALL]
    dom = c4.selectbox("Site (domain)", domains, key=_keys.EXPLORE_DOMAIN,
                       help="where the image was taken; the shifted split holds the new site")
    ok = np.ones(len(d), bool)
    if true != ALL:
        ok &= d.y[:, classes.index(true)] == 1 if multi else d.y == true
    if pred != ALL:
        ok &= p.present[:, classes.index(pred)] if multi else p.pred == pred
    if right != ALL:
        ok &= correct(d, p) == (right == "correct")
    if dom != ALL:
        ok &= d.domains.astype(str) == dom
    return np.flatnonzero(ok)


def truth(d: _cache.SplitData, p: _cache.Predictions, i: int, classes: list[str] | None = None) -> str:
    """Sample ``i``'s true class, or for a multi-label model its true findings, as words."""
    return _cache.findings_text(classes, d.y[i]) if p.present is not None else str(d.y[i])


def label(d: _cache.SplitData, p: _cache.Predictions, i: int, classes: list[str] | None = None) -> str:
    """One line naming a sample, its true and predicted class (or findings), the confidence and right/WRONG."""
    name = str(d.ids[i]) if d.ids is not None else f"#{i}"
    if p.present is not None:
        mark = "right" if (p.present[i] == d.y[i].astype(bool)).all() else "WRONG"
        return f"{name}: {truth(d, p, i, classes)} -> {p.pred[i]} ({mark})"
    mark = "right" if p.pred[i] == d.y[i] else "WRONG"
    return f"{name}: {d.y[i]} -> {p.pred[i]} ({p.confidence[i]:.0%}, {mark})"


def gallery(d: _cache.SplitData, p: _cache.Predictions, idx: np.ndarray, classes: list[str] | None = None) -> None:
    """Thumbnails of one page of matches, each with an Open button, and a page picker."""
    pages = max(1, -(-len(idx) // GALLERY))
    if not 1 <= int(st.session_state.get(_keys.EXPLORE_PAGE, 1)) <= pages:
        st.session_state[_keys.EXPLORE_PAGE] = 1
    if pages > 1:
        page = st.number_input(f"Gallery page (of {pages})", 1, pages, key=_keys.EXPLORE_PAGE,
                               help=f"{GALLERY} images per page")
    else:
        page = 1
    start = (int(page) - 1) * GALLERY
    st.caption(f"Showing images {start + 1}-{min(start + GALLERY, len(idx))} of {len(idx)}.")
    cols = st.columns(6)
    for pos, i in enumerate(idx[start:start + GALLERY]):
        with cols[pos % 6]:
            if d.images is not None:
                st.image(_images.thumbnail(d.images[i], 96))
            st.caption(f"{truth(d, p, i, classes)} -> **{p.pred[i]}**")
            if st.button("Open", key=f"explore_open_{pos}"):
                st.session_state[_keys.EXPLORE_SAMPLE] = int(i)


def detail(model, d: _cache.SplitData, p: _cache.Predictions, i: int, path=None) -> None:
    """One sample: image, prediction, what pushed toward and against it, and a counterfactual."""
    classes = model.class_names_
    image = None if d.images is None else _images.thumbnail(d.images[i], 240)
    if p.present is not None:
        detail_findings(model, d, p, i, image, path)
        return
    verdict = "correct" if p.pred[i] == d.y[i] else f"wrong (true class: {d.y[i]})"
    name = str(d.ids[i]) if d.ids is not None else f"{d.name} #{i}"
    ood = None if path is None else _panels.out_of_distribution(path, d.X[i:i + 1])
    right = _panels.prediction_panel(model, p, i, image, f"true class: {d.y[i]}", verdict, key="explore",
                                     path=path, true=str(d.y[i]), ood=ood,
                                     raw_image=None if d.images is None else d.images[i],
                                     title=f"Why the model predicts {p.pred[i]} for {name}")
    with right:
        off = st.multiselect("What if these concepts were switched off?", model.concept_names_,
                             key=_keys.EXPLORE_OFF, placeholder="pick concepts")
        if off:
            q = _cache.counterfactual(model, p, i, off)
            new = classes[int(np.argmax(q))]
            change = "unchanged" if new == p.pred[i] else f"changes from {p.pred[i]}"
            st.markdown(f"**New prediction: {new}** ({q.max():.0%} sure), {change}.")
            res = None if p.residual is None else p.residual[i]
            eff = explain.intervention_effects(model, p.activations[i], {c: 0.0 for c in off}, residual=res)
            lines = [f"- switching off **{concept}** ({before:.2f} -> 0) moves {cls}'s score by {change:+.2f}"
                     for concept, before, _, cls, change in eff.head(6).itertuples(index=False, name=None)]
            st.markdown("What changed:\n" + ("\n".join(lines) if lines else
                                             "- nothing: these concepts carry no weight here."))
    if d.images is not None:
        _panels.concept_map_panel(model, d.X[i:i + 1], d.images[i], key="explore_concept_map")


def detail_findings(model, d: _cache.SplitData, p: _cache.Predictions, i: int, image, path=None) -> None:
    """One sample of a multi-label model: how unusual it is, each finding's probability, the concepts
    behind the finding picked, and each finding's probability with concepts switched off."""
    name = str(d.ids[i]) if d.ids is not None else f"{d.name} #{i}"
    st.subheader(f"Findings for {name}")
    if path is not None:
        _panels.out_of_distribution(path, d.X[i:i + 1])
    _findings.findings_panel(model, p, i, image, f"true findings: {truth(d, p, i, model.class_names_)}",
                             key="explore", truth=d.y[i], path=path,
                             raw_image=None if d.images is None else d.images[i])
    _findings.what_if(model, p, i)


def render() -> None:
    """Draw the Explore page: filter samples, pick one, see its contributions and switch concepts off."""
    st.title("Explore")
    _keys.restore()
    path = _args.require_model_dir()
    model = _cache.current_model(path)
    data = _cache.require_eval_data(path)
    split = _keys.split_picker(data)
    d, p = data[split], _cache.predictions(model, path, split)
    idx = filters(d, p, model.class_names_)
    _keys.remember()
    st.caption(f"{len(idx)} of {len(d)} images match.")
    if not len(idx):
        st.info("No image matches these filters; widen them.")
        st.stop()
    gallery(d, p, idx, model.class_names_)
    current = st.session_state.get(_keys.EXPLORE_SAMPLE)
    if current not in idx:
        current = int(idx[0])
    st.session_state[_keys.EXPLORE_SAMPLE] = current
    st.selectbox("Sample", [int(i) for i in idx], key=_keys.EXPLORE_SAMPLE,
                 format_func=lambda i: label(d, p, i, model.class_names_))
    _keys.remember()
    detail(model, d, p, int(st.session_state[_keys.EXPLORE_SAMPLE]), path)


if __name__ == "__main__":
    render()
