"""Discover page: image groups linked to one class that no concept names, and making one a concept.

The search (:func:`cbm.edits.discover.discover_shortcuts`, what ``cbm discover`` runs) starts only
when the user asks, and is cached per head and split; "Make this a concept" previews
:meth:`cbm.edits.AddConcept.from_examples` on the group's examples like the Edit page does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from cbm.app import _aliases, _args, _cache, _images, _keys
from cbm.exceptions import CBMError

TOP = 5
THUMBS = 6


@st.cache_resource(show_spinner="Looking for groups no concept names...", max_entries=8)
def _discover(_model, token: str, path: str, split: str, top: int):
    from cbm.edits.discover import discover_shortcuts

    d = _cache.eval_data(Path(path))[split]
    return discover_shortcuts(_model, d.X, d.y.astype(str), top=top)


def candidates(model, path: Path, split: str) -> list:
    """The top candidates of ``split`` for the current head (cached)."""
    return _discover(model, _cache.model_token(model), str(path), split, TOP)


def default_split(data: dict) -> str:
    """The training site's data: val, else train, else the first split."""
    return next((s for s in ("val", "train") if s in data), next(iter(data)))


def card(cand, d) -> None:
    """One candidate: its class, shares, score and a few of its images."""
    with st.container(border=True):
        st.markdown(f"**#{cand.rank} · {cand.class_name}** — {len(cand.indices)} images: "
                    f"{cand.share_in_class:.0%} of {cand.class_name}, {cand.share_elsewhere:.0%} of the other classes")
        st.caption(f"score {cand.score:.3f} (class correlation {cand.class_correlation:.2f} × separation "
                   f"{cand.separation:.2f}); concepts span {cand.support:.0%} of it; without it the model's "
                   f"probability of {cand.class_name} drops by {cand.reliance:+.1%}")
        if d.images is not None:
            rows = cand.indices[np.argsort(-(d.X[cand.indices] @ cand.direction), kind="stable")][:THUMBS]
            for col, r in zip(st.columns(THUMBS), rows, strict=False):
                col.image(_images.thumbnail(d.images[int(r)], 96),
                          caption=str(d.ids[int(r)]) if d.ids is not None else str(int(r)))
        st.button("Make this a concept", key=f"{_keys.DISCOVER_MAKE}_{cand.rank}",
                  on_click=lambda: st.session_state.update({_keys.DISCOVER_PICK: cand.rank}))


def make_concept(model, path: Path, cand, d) -> None:
    """Name the group, fit it as a concept on its examples, preview the edit; apply it from here."""
    from cbm.edits import AddConcept

    st.subheader(f"Make group #{cand.rank} a concept")
    c1, c2 = st.columns(2)
    name = c1.text_input("Name", value=f"unnamed {cand.class_name} group {cand.rank}", key=_keys.DISCOVER_NAME)
    weight = c2.number_input(f"Weight for {cand.class_name}", value=0.0, step=0.1, key=_keys.DISCOVER_WEIGHT,
                             help="0 names it without changing predictions; a negative weight works against it")
    pos, neg = cand.concept_examples()
    ids = [str(d.ids[i]) if d.ids is not None else str(i) for i in np.concatenate([pos, neg])]
    try:
        edit = AddConcept.from_examples(name.strip(), d.X[pos], d.X[neg], {cand.class_name: weight},
                                        split=d.name, ids=ids, model=model)
    except (CBMError, ValueError) as e:
        st.error(f"The concept cannot be fitted from this group: {e}")
        return
    acc = edit.detail.get("val_acc")
    st.caption(f"Fitted from {len(pos)} images in the group and {len(neg)} outside it"
               + (f"; it tells held-out ones apart {acc:.0%} of the time." if isinstance(acc, float) else "."))
    try:
        effect = _cache.edit_preview(model, path, edit)
    except (CBMError, ValueError, KeyError) as e:
        st.error(f"This edit cannot be applied: {e}")
        return
    st.markdown(f"**Verdict.** {effect.verdict()}")
    overall = effect.accuracy[effect.accuracy["group"] == "all"]
    st.dataframe(overall[["split", "before", "after"]].rename(columns={"before": "now"}).round(3), hide_index=True)
    if st.button("Apply", key=_keys.DISCOVER_APPLY, type="primary"):
        try:
            _cache.edit_session(str(path)).apply(edit, why=f"discovered group #{cand.rank} of {d.name}")
        except (CBMError, ValueError, KeyError) as e:
            st.error(str(e))
        else:
            st.session_state.pop(_keys.DISCOVER_PICK, None)
            st.success(f"Added {name.strip()!r}; undo or save it on the Edit page.")


def render() -> None:
    """Draw the Discover page."""
    st.title("Discover")
    path = _args.require_model_dir()
    model = _cache.current_model(path)
    if _cache.multilabel(model):
        st.info("Looking for image groups linked to one class is not available for multi-label models "
                "(several findings per image) yet.")
        return
    data = _cache.require_eval_data(path)
    st.markdown("Groups of images linked to one class that none of the model's concepts describe: a stamp, a "
                "border, a scanner mark the model may lean on. Found from the training site's own images.")
    names = list(data)
    split = st.selectbox("Search the split", names, index=names.index(default_split(data)),
                         key=_keys.DISCOVER_SPLIT, format_func=_aliases.split_label)
    if st.button("Find groups", key=_keys.DISCOVER_RUN, type="primary"):
        st.session_state[_keys.DISCOVER_DONE] = split
    if st.session_state.get(_keys.DISCOVER_DONE) != split:
        st.info("Press **Find groups** to search (a few seconds for thousands of images).")
        return
    try:
        found = candidates(model, path, split)
    except (CBMError, ValueError) as e:
        st.error(f"The search cannot run on this model and split: {e}")
        return
    if not found:
        st.info(f"No group of the {_aliases.split_label(split)} images is linked to one class apart from the concepts.")
        return
    d = data[split]
    if d.images is None:
        st.caption("data.npz holds no images of this split, so the groups are listed without pictures.")
    for cand in found:
        card(cand, d)
    pick = st.session_state.get(_keys.DISCOVER_PICK)
    chosen = next((c for c in found if c.rank == pick), None)
    if chosen is not None:
        make_concept(model, path, chosen, d)


if __name__ == "__main__":
    render()
