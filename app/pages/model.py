"""Model page: what the model predicts, from which concepts, how well, and its class x concept weights."""

from __future__ import annotations

from collections import Counter

import numpy as np
import streamlit as st

from cbm.app import _aliases, _args, _cache, _charts, _keys
from cbm.encoders.record import EncoderRecord
from cbm.metrics import nec, nonzero_weights, per_class_accuracy


def summary(model, cfg: dict) -> None:
    """Classes, backbone, concept sources and method in plain words."""
    record = EncoderRecord.read((cfg.get("fingerprints") or {}).get("encoder") or None)
    backbone = "not recorded" if record is None else record.name
    sources = Counter(p.source for p in model.concepts_.provenance)
    c1, c2, c3 = st.columns(3)
    c1.markdown(f"**Method**  \n`{cfg.get('method', model.method)}`, version {cfg.get('version')}")
    c2.markdown(f"**Image backbone**  \n`{backbone}`")
    c3.markdown("**Concepts from**  \n" + ", ".join(f"{k} ({v})" for k, v in sources.most_common()))
    if _cache.multilabel(model):
        st.markdown(f"**Looks for {len(model.classes_)} findings:** " + ", ".join(model.class_names_))
        st.caption("Multi-label model: each finding has its own probability, so several findings (or none) can "
                   "be present in one image.")
    else:
        st.markdown(f"**Predicts {len(model.classes_)} classes:** " + ", ".join(model.class_names_))
    if model.hybrid:
        st.caption("Hybrid model: part of each score comes from a residual on the raw image features, "
                   "which no concept explains.")


def quality(model, path) -> None:
    """Accuracy per split and per class (multi-label: AUROC per finding), and how sparse the head is."""
    data = _cache.eval_data(path)
    coef = model.coef_
    multi = _cache.multilabel(model)
    noun = "finding" if multi else "class"
    cols = st.columns(len(data) + 2)
    for col, (s, acc) in zip(cols, _cache.accuracy_table(model, path).items(), strict=False):
        col.metric(f"{_cache.quality_name(model)} ({s})", f"{acc:.3f}" if multi else f"{acc:.1%}",
                   help="how well each finding's probability ranks the images with it above those without "
                        "(1 = perfectly, 0.5 = chance), averaged over the findings" if multi
                        else "fraction of images classified correctly")
    cols[-2].metric("Non-zero weights", f"{nonzero_weights(coef)} / {coef.size}")
    cols[-1].metric(f"Concepts per {noun}", f"{nec(coef):.1f}",
                    help=f"average number of concepts with a non-zero weight for a {noun}")
    if data:
        split = _keys.split_picker(data)
        if multi:
            st.caption(f"Each finding on {split}: AUROC, average precision and sensitivity at 90% specificity.")
            st.dataframe(_cache.finding_table(model, path, split).round(3), hide_index=True)
            return
        d, p = data[split], _cache.predictions(model, path, split)
        acc = per_class_accuracy(d.y, p.pred)
        st.plotly_chart(_charts.accuracy_bars(acc, title=f"Accuracy per class ({split})"),
                        width="stretch")


def heatmap(model) -> None:
    """The class x concept weight heatmap with class/concept filters and a sort order."""
    noun = "finding" if _cache.multilabel(model) else "class"
    st.subheader(f"Which concepts each {noun} uses")
    st.caption(f"Blue: the concept raises the {noun}'s score; orange: it lowers it. Hover for the "
               "exact weight and where the concept came from.")
    classes, names = model.class_names_, model.concept_names_
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    keep_cls = c1.multiselect("Findings" if noun == "finding" else "Classes", classes, default=classes,
                              key=_keys.MODEL_CLASSES)
    query = c2.text_input("Filter concepts", key=_keys.MODEL_FILTER, placeholder="e.g. sleeve")
    order = c3.selectbox("Sort concepts by", ["largest weight", "name", "position"], key=_keys.MODEL_SORT)
    top = c4.number_input("Show", 1, max(1, len(names)), min(40, len(names)), key=_keys.MODEL_TOPN)
    rows = [classes.index(c) for c in keep_cls]
    cols = [j for j, n in enumerate(names) if query.lower() in n.lower()]
    if not rows or not cols:
        st.info("No class or concept matches the filters.")
        return
    W = model.coef_[np.ix_(rows, cols)]
    if order == "largest weight":
        cols = [cols[j] for j in np.argsort(-np.abs(W).max(0), kind="stable")]
    elif order == "name":
        cols = sorted(cols, key=lambda j: names[j].lower())
    cols = cols[: int(top)]
    prov = [_aliases.provenance_line(model.concepts_.provenance[j]) for j in cols]
    fig = _charts.weight_heatmap(model.coef_[np.ix_(rows, cols)], keep_cls, [names[j] for j in cols], prov)
    st.plotly_chart(fig)


@st.cache_resource(show_spinner="Checking concepts against their annotations...", max_entries=16)
def _concept_checks(_model, token: str, file: str, split: str):
    """Concept-level evaluation of ``split`` (thresholds from "val" when annotated), with curves."""
    from cbm.edits.preview import load_eval_data
    from cbm.research.evaluation import evaluate_splits, stored_annotations
    from cbm.research.interventions import POLICIES

    data = load_eval_data(file)
    anns = stored_annotations(_model, {s: data[s] for s in (split, "val") if s in data})
    if split not in anns:
        return None
    return evaluate_splits(_model, {s: data[s] for s in anns}, anns, interventions=POLICIES)[split]


def concept_checks(model, path) -> None:
    """Per-concept AUC, leakage and intervention curves against the per-image concept labels in data.npz."""
    file = path / "data.npz"
    if not file.is_file():
        return
    st.subheader("Do the concepts mean what they say?")
    if _cache.multilabel(model):
        st.info("Checking the concepts against per-image concept labels is not available for multi-label "
                "models yet; `cbm eval MODEL_DIR` reports each finding's AUROC.")
        return
    split = st.session_state.get(_keys.SPLIT) or next(iter(_cache.eval_data(path)), None)
    try:
        ev = _concept_checks(model, _cache.model_token(model), str(file), str(split))
    except ValueError as e:
        st.info(f"Concept labels in data.npz cannot be used: {e}")
        return
    if ev is None or not ev.concepts:
        st.info("data.npz has no per-image concept labels for these concepts (concepts_<split> arrays). "
                "`cbm eval MODEL_DIR --annotations FILE` checks them against CUB, AwA or a .csv/.parquet.")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Concept AUC (mean)", f"{ev.mean_auc:.3f}", help="how well each concept's activation ranks "
              "the images annotated with it above the others; 0.5 = chance")
    c2.metric("Concepts annotated", f"{len(ev.concepts)} / {ev.n_concepts}")
    if ev.leakage:
        c3.metric("Leakage", f"{ev.leakage['leakage']:+.3f}", help="class accuracy from the soft concept "
                  "activations minus from their 0/1 values: information that bypasses the concepts")
    left, right = st.columns(2)
    left.plotly_chart(ev.figure(top=25), width="stretch")
    right.plotly_chart(ev.interventions.figure(f"Setting k concepts to their annotated value ({split})"),
                       width="stretch")


def render() -> None:
    """Draw the Model page: summary, accuracy, sparsity and the class x concept weights."""
    st.title("Model")
    path = _args.require_model_dir()
    model = _cache.current_model(path)
    summary(model, _cache.config(path))
    quality(model, path)
    heatmap(model)
    concept_checks(model, path)


if __name__ == "__main__":
    render()
