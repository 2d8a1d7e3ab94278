"""Explore page: browse images by class, prediction, correctness and domain; see why each was predicted."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm import explain
from cbm.app import _args, _cache, _images, _keys, _panels

ALL = "(all)"
GALLERY = 12


def filters(d: _cache.SplitData, p: _cache.Predictions, classes: list[str]) -> np.ndarray:
    """Filter widgets; returns the indices of the samples that pass."""
    c1, c2, c3, c4 = st.columns(4)
    true = c1.selectbox("True class", [ALL, *classes], key=_keys.EXPLORE_CLASS)
    pred = c2.selectbox("Predicted class", [ALL, *classes], key=_keys.EXPLORE_PRED)
    right = c3.selectbox("Prediction is", [ALL, "correct", "wrong"], key=_keys.EXPLORE_CORRECT)
    domains = [ALL, *sorted(set(d.domains.astype(str)))] if d.domains is not None else [ALL]
    dom = c4.selectbox("Site (domain)", domains, key=_keys.EXPLORE_DOMAIN,
                       help="where the image was taken; the shifted split holds the new site")
    ok = np.ones(len(d), bool)
    if true != ALL:
        ok &= d.y == true
    if pred != ALL:
        ok &= p.pred == pred
    if right != ALL:
        ok &= (p.pred == d.y) == (right == "correct")
    if dom != ALL:
        ok &= d.domains.astype(str) == dom
    return np.flatnonzero(ok)


def label(d: _cache.SplitData, p: _cache.Predictions, i: int) -> str:
    """One line naming a sample, its true and predicted class, the confidence and right/WRONG."""
    name = str(d.ids[i]) if d.ids is not None else f"#{i}"
    mark = "right" if p.pred[i] == d.y[i] else "WRONG"
    return f"{name}: {d.y[i]} -> {p.pred[i]} ({p.confidence[i]:.0%}, {mark})"


def gallery(d: _cache.SplitData, p: _cache.Predictions, idx: np.ndarray) -> None:
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
            st.caption(f"{d.y[i]} -> **{p.pred[i]}**")
            if st.button("Open", key=f"explore_open_{pos}"):
                st.session_state[_keys.EXPLORE_SAMPLE] = int(i)


def detail(model, d: _cache.SplitData, p: _cache.Predictions, i: int, path=None) -> None:
    """One sample: image, prediction, what pushed toward and against it, and a counterfactual."""
    classes = model.class_names_
    image = None if d.images is None else _images.thumbnail(d.images[i], 240)
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
    gallery(d, p, idx)
    current = st.session_state.get(_keys.EXPLORE_SAMPLE)
    if current not in idx:
        current = int(idx[0])
    st.session_state[_keys.EXPLORE_SAMPLE] = current
    st.selectbox("Sample", [int(i) for i in idx], key=_keys.EXPLORE_SAMPLE,
                 format_func=lambda i: label(d, p, i))
    _keys.remember()
    detail(model, d, p, int(st.session_state[_keys.EXPLORE_SAMPLE]), path)


if __name__ == "__main__":
    render()
