"""Edit page: change the model's weights, see the effect on every split first, apply, undo, save.

Edits go through the model directory's :class:`cbm.history.EditSession`, which keeps pending edits
on disk: a rerun, a reload or a second browser tab never loses them.
"""

from __future__ import annotations

import streamlit as st

from cbm.app import _args, _cache, _charts, _keys
from cbm.exceptions import CBMError

#: label -> (cbm.edits kind, needs a class, needs a concept, needs a weight, needs a text)
KINDS = {
    "Prune (set the weight to zero)": ("prune", True, True, False, False),
    "Prune and renormalise the class": ("prune-normalize", True, True, False, False),
    "Set the weight": ("set-weight", True, True, True, False),
    "Remove the concept from every class": ("remove-concept", False, True, False, False),
    "Refit the head without the concept (training data)": ("refit-without", False, True, False, False),
    "Erase the concept from the embeddings, then refit (class = the confounded one)":
        ("erase-concept", True, True, False, False),
    "Add a concept from text": ("add-concept", True, False, True, True),
}


def current_accuracy(model, path) -> dict[str, float]:
    """Metric tiles: accuracy per split for the model as it is now."""
    acc = _cache.accuracy_table(model, path)
    for col, (s, a) in zip(st.columns(max(1, len(acc))), acc.items(), strict=False):
        col.metric(f"Accuracy ({s})", f"{a:.1%}", help="fraction of images classified correctly now")
    return acc


def edit_form(model, path):
    """Widgets that describe one edit; returns the edit object (None while incomplete)."""
    from cbm import edits

    c1, c2, c3 = st.columns([2, 2, 2])
    kind = c1.radio("What to do", list(KINDS), key=_keys.EDIT_KIND)
    name, needs_cls, needs_concept, needs_w, needs_text = KINDS[kind]
    cls = c2.selectbox("Class", model.class_names_, key=_keys.EDIT_CLASS) if needs_cls else None
    concept = c3.selectbox("Concept", model.concept_names_, key=_keys.EDIT_CONCEPT) if needs_concept else None
    value = c2.number_input("New weight", value=1.0 if needs_text else 0.0, step=0.1,
                            key=_keys.EDIT_WEIGHT) if needs_w else None
    if name != "add-concept":
        fields = {"cls": cls, "concept": concept, "value": value}
        return edits.create_edit(name, **{k: v for k, v in fields.items() if v is not None})
    text = c3.text_input("Concept text", key=_keys.EDIT_TEXT, placeholder="e.g. a ribbed collar")
    if not text.strip():
        st.info("Type the concept to add; it is embedded with the model's text encoder.")
        return None
    try:
        return edits.AddConcept.from_text(text.strip(), _cache.model_encoder(path), {cls: value})
    except (CBMError, ImportError, NotImplementedError, ValueError) as e:
        st.error(f"The concept cannot be embedded: {e}")
        return None


def preview(model, path, edit) -> None:
    """Accuracy before/after on every split and per class, and the images whose prediction flips."""
    from cbm.edit_eval import preview as preview_edit

    try:
        effect = preview_edit(model, edit, _cache.evalsets(model, path))
    except (CBMError, ValueError, KeyError) as e:
        st.error(f"This edit cannot be applied: {e}")
        return
    honest_summary(model, path, edit, effect)
    acc = effect.accuracy
    overall = acc[acc["group"] == "all"]
    st.plotly_chart(_charts.accuracy_bars(dict(zip(overall["split"], overall["before"], strict=True)),
                                          dict(zip(overall["split"], overall["after"], strict=True)),
                                          "Accuracy per split: now and after the edit"))
    table = acc.assign(**{c: acc[c].map("{:.1%}".format) for c in ("before", "after")},
                       change=acc["delta"].map("{:+.1%}".format)).drop(columns="delta")
    with st.expander("Accuracy per class and domain"):
        st.dataframe(table.rename(columns={"before": "now"}), hide_index=True)
    for split, df in effect.changed.items():
        if len(df):
            with st.expander(f"{len(df)} images in {split} change their prediction"):
                st.dataframe(df.drop(columns="index").rename(columns={"before": "now"}), hide_index=True)


def _black_box(path):
    """The black box saved next to the model by ``cbm demo`` (``../models/linear-probe``), or None."""
    from pathlib import Path

    from cbm.io import load_model

    probe = Path(path).parent / "models" / "linear-probe"
    try:
        return load_model(probe) if (probe / "model.json").is_file() else None
    except CBMError:
        return None


def honest_summary(model, path, edit, effect) -> None:
    """Per-class recall before and after as numbers (the affected class first), the baselines side
    by side on every split, and a verdict in plain words."""
    from cbm.edits import TrainingData
    from cbm.repair import compare_baselines

    bb = _black_box(path)
    if bb is not None and effect.affected is not None:
        try:
            data = TrainingData.for_model(model)
        except CBMError:
            data = None
        try:
            effect.baselines = compare_baselines(model, edit, _cache.evalsets(model, path), bb, data,
                                                 cls=effect.affected)
        except (CBMError, ValueError, KeyError) as e:
            st.caption(f"Baselines unavailable: {e}")
    st.markdown(f"**Verdict.** {effect.verdict()}")
    rec = effect.recall()
    if len(rec):
        st.caption("Recall per class, now and after the edit" +
                   (f" ({effect.affected!r} first)" if effect.affected else ""))
        st.dataframe(rec.round(3))
    if effect.baselines is not None:
        b = effect.baselines
        wide = b.pivot(index="model", columns="split", values="accuracy").reindex(list(dict.fromkeys(b["model"])))
        st.caption(f"Accuracy per split: the edited model next to the black box, the black box given the same "
                   f"fix, and \"never predict {effect.affected}\"")
        st.dataframe(wide.round(3))


def controls(session, edit) -> None:
    """Apply / Undo / Redo / Save; each action reruns the page so every number is fresh."""
    why = st.text_input("Why this edit?", key=_keys.EDIT_WHY, placeholder="why this edit "
                        "(kept in the audit trail with who and when)")
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
    if c1.button("Apply", key=_keys.EDIT_APPLY, type="primary", disabled=edit is None):
        _act(lambda: session.apply(edit, why=why), f"Applied: {edit.describe()}")
    if c2.button("Undo", key=_keys.EDIT_UNDO, disabled=not session.can_undo):
        _act(session.undo, "Undid the last edit.")
    if c3.button("Redo", key=_keys.EDIT_REDO, disabled=not session.can_redo):
        _act(session.redo, "Redid the edit.")
    note = c4.text_input("Note for the new version", key=_keys.EDIT_NOTE, label_visibility="collapsed",
                         placeholder="note for the new version")
    if c5.button("Save as new version", key=_keys.EDIT_SAVE, disabled=not session.can_undo):
        _act(lambda: session.save(note=note), "Saved as a new version; earlier versions stay loadable.")


def _act(fn, message: str) -> None:
    try:
        fn()
    except (CBMError, ValueError, KeyError) as e:
        st.session_state[_keys.EDIT_FLASH] = ("error", str(e))
    else:
        st.session_state[_keys.EDIT_FLASH] = ("success", message)
    st.rerun()


def history(session) -> None:
    st.subheader("Edit history")
    rows = session.history()
    st.caption(f"Editing version {session.version}; {len(session.pending)} unsaved edit(s), kept in "
               "the model directory until saved (a reload does not lose them).")
    if not rows.empty:
        st.dataframe(rows.drop(columns=["why"]).iloc[::-1], hide_index=True)
    trail = session.audit_trail()
    if not trail.empty:
        with st.expander(f"Audit trail: who changed the model, when and why ({len(trail)} actions)"):
            st.dataframe(trail.iloc[::-1], hide_index=True)
            st.caption("Export it with `cbm edit MODEL history --format csv`.")


def suggestions(model, path) -> None:
    """Weights the library flags for review (evidence in one domain only, or against the prior)."""
    with st.expander("Suggested edits to review (concepts that look spurious)"):
        found = _cache.suggestions(model, path)
        if found.empty:
            st.caption("Nothing looks spurious.")
            return
        st.caption("Pick the class and concept above to preview pruning it.")
        st.dataframe(found.drop(columns="edit").round({"weight": 3, "score": 3}), hide_index=True)


def render() -> None:
    st.title("Edit")
    path = _args.require_model_dir()
    session = _cache.edit_session(str(path))
    model = _cache.current_model(path)
    for w in session.warnings:
        st.warning(w)
    flash = st.session_state.pop(_keys.EDIT_FLASH, None)
    if flash:
        getattr(st, flash[0])(flash[1])
    current_accuracy(model, path)
    edit = edit_form(model, path)
    if edit is not None:
        preview(model, path, edit)
    controls(session, edit)
    history(session)
    suggestions(model, path)


if __name__ == "__main__":
    render()
