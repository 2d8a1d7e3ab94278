"""Concepts page: search a concept, see where it came from, which classes use it, which images show it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbm.app import _aliases, _args, _cache, _images, _keys

GALLERY = 6


def provenance(prov, text: str) -> None:
    """Where the concept came from, in full: prompt, textbook citations or CAV example sets."""
    d = prov.detail or {}
    st.markdown(f"**Text:** {text}  \n**Source:** {_aliases.provenance_line(prov)}"
                + (f"  \n**Created:** {prov.created}" if prov.created else ""))
    if prov.source == "llm":
        if d.get("prompt"):
            st.markdown("**Prompt sent to the language model**")
            st.code(str(d["prompt"]), language=None, wrap_lines=True)
        if d.get("raw") or d.get("answer"):
            st.markdown("**Its answer**")
            st.code(str(d.get("raw") or d.get("answer")), language=None, wrap_lines=True)
    elif prov.source == "textbook":
        for c in d.get("citations") or []:
            st.markdown(f"> {c.get('text', '')}\n\n-- *{c.get('doc', '?')}*, passage {c.get('passage_id', '?')}")
    elif prov.source == "cav":
        if "accuracy" in d:
            st.metric("CAV accuracy on held-out examples", f"{float(d['accuracy']):.1%}")
        for key in ("positive", "negative", "positives", "negatives"):
            if key in d:
                st.markdown(f"**{key.capitalize()} examples:** {len(d[key]) if isinstance(d[key], list) else d[key]}")
    rest = {k: v for k, v in d.items() if k not in ("prompt", "raw", "answer", "citations")}
    if rest:
        with st.expander("All recorded details"):
            st.json(rest)


def users(model, j: int) -> None:
    """The classes whose score the concept raises or lowers, strongest first."""
    w = model.coef_[:, j]
    order = [k for k in np.argsort(-np.abs(w)) if abs(w[k]) > 1e-8]
    if not order:
        st.info("No class uses this concept (all its weights are zero).")
        return
    st.dataframe({"finding" if _cache.multilabel(model) else "class": [model.class_names_[k] for k in order],
                  "effect": ["raises score" if w[k] > 0 else "lowers score" for k in order],
                  "weight": [round(float(w[k]), 4) for k in order]}, hide_index=True)


def ranked(activations: np.ndarray, j: int, k: int, largest: bool) -> np.ndarray:
    """Indices of the ``k`` samples where concept ``j`` is most (or least) active."""
    try:
        import torch

        from cbm.kernels import concept_search
    except ImportError:  # kernels not built: a plain sort gives the same ranking
        col = activations[:, j]
        return np.argsort(-col if largest else col, kind="stable")[:k]
    query = np.zeros(activations.shape[1], np.float32)
    query[j] = 1.0 if largest else -1.0
    _, idx = concept_search(torch.as_tensor(activations), torch.as_tensor(query), topk=k, normalize=False)
    return np.asarray(idx).reshape(-1)


def gallery(model, path, j: int) -> None:
    """Images of a split where the concept is most and least active."""
    data = _cache.eval_data(path)
    if not data:
        st.info("No evaluation data (`data.npz`) next to the model, so no image gallery.")
        return
    split = _keys.split_picker(data)
    d, p = data[split], _cache.predictions(model, path, split)
    k = min(GALLERY, len(d))
    for title, largest in (("Most", True), ("Least", False)):
        st.markdown(f"**{title} active in {split}**")
        cols = st.columns(GALLERY)
        for col, i in zip(cols, ranked(p.activations, j, k, largest), strict=False):
            if d.images is not None:
                col.image(_images.thumbnail(d.images[i], 96))
            col.caption(f"{_cache.label_text(model, d.y[i])}  \nscore {p.activations[i, j]:.2f}")


def faithfulness(model, path) -> None:
    """Per-concept faithfulness on the validation split (when data.npz has its concept labels)."""
    from pathlib import Path

    from cbm.edits.preview import load_eval_data
    from cbm.exceptions import CBMError
    from cbm.research.faithfulness import concept_faithfulness

    f = Path(path) / "data.npz"
    try:
        val = load_eval_data(f).get("val", {}) if f.is_file() else {}
    except CBMError:
        return
    if "concept_labels" not in val:
        return
    if _cache.multilabel(model):
        st.caption("Faithfulness of the concepts is not available for multi-label models yet.")
        return
    bank = model.base_concepts_
    if val["concept_labels"].shape[1] != len(bank):
        return
    with st.expander("Faithfulness of every concept (validation split)"):
        df = concept_faithfulness(model, val["X"], val["y"], val["concept_labels"], bank,
                                  nuisance=np.asarray(val["stamped"]) if "stamped" in val else None)
        st.caption("AUC within class: does the predictor follow the concept inside a class (blank: the labels "
                   "never vary within a class)? Class share: how much of its activation is the class. "
                   "Leakage: does it separate tagged from untagged images of the same class (0.5 = no)?")
        st.dataframe(df.round(3), hide_index=True)


def render() -> None:
    """Draw the Concepts page: search concepts, see their provenance and the images that activate them."""
    st.title("Concepts")
    path = _args.require_model_dir()
    model = _cache.current_model(path)
    names = model.concept_names_
    query = st.text_input("Search concepts", key=_keys.CONCEPT_QUERY, placeholder="e.g. collar")
    hits = [n for n in names if query.lower() in n.lower()
            or query.lower() in model.concepts_.texts[names.index(n)].lower()]
    if not hits:
        st.info(f"No concept matches {query!r}; {len(names)} concepts in the model.")
        st.stop()
    name = st.selectbox(f"Concept ({len(hits)} match)", hits, key=_keys.CONCEPT_PICK)
    j = names.index(name)
    left, right = st.columns([3, 2])
    with left:
        st.subheader(name)
        provenance(model.concepts_.provenance[j], model.concepts_.texts[j])
    with right:
        st.subheader("Findings that use it" if _cache.multilabel(model) else "Classes that use it")
        users(model, j)
    gallery(model, path, j)
    faithfulness(model, path)


if __name__ == "__main__":
    render()
