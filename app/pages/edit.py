"""Edit page: change the model's weights, see the effect on every split first (on demand), apply, undo, save.

Edits go through the model directory's :class:`cbm.edits.history.EditSession`, which keeps pending edits
on disk: a rerun, a reload or a second browser tab never loses them.
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from cbm.app import _aliases, _args, _cache, _charts, _images, _keys
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
    "Neutralise the concept in the image, before it is embedded (repair at the source)":
        ("neutralise-at-source", False, True, False, False),
    "Add a concept from example images": ("add-examples", True, False, True, False),
    "Add a concept from text": ("add-concept", True, False, True, True),
}
#: The edits that work unchanged on a multi-label model (weights of one finding); the others say so.
MULTILABEL_KINDS = ("prune", "prune-normalize", "set-weight")
#: Gallery tiles per page when picking examples, and per row.
EXAMPLES_PER_PAGE, EXAMPLES_PER_ROW = 12, 6
SHOWS, LACKS = "yes", "no"
#: Previews kept per browser session (an apply then an undo shows the earlier one again, not recomputed).
PREVIEWS_KEPT = 8


def current_accuracy(model, path) -> dict[str, float]:
    """Metric tiles: accuracy per split for the model as it is now."""
    acc = _cache.accuracy_table(model, path)
    multi = _cache.multilabel(model)
    for col, (s, a) in zip(st.columns(max(1, len(acc))), acc.items(), strict=False):
        col.metric(f"{_cache.quality_name(model)} ({s})", f"{a:.3f}" if multi else f"{a:.1%}",
                   help="the findings' AUROC now, averaged (1 = perfect ranking, 0.5 = chance)" if multi
                   else "fraction of images classified correctly now")
    return acc


def edit_kinds(path, model=None) -> list[str]:
    """The edits this model allows: "from text" only when its encoder has a text tower; for a
    multi-label model only the weight edits of :data:`MULTILABEL_KINDS`."""
    if model is not None and _cache.multilabel(model):
        return [k for k in KINDS if KINDS[k][0] in MULTILABEL_KINDS]
    return [k for k in KINDS if KINDS[k][0] != "add-concept" or _cache.has_text_tower(path)]


def edit_form(model, path):
    """Widgets that describe one edit; returns the edit object (None while incomplete)."""
    from cbm import edits

    c1, c2, c3 = st.columns([2, 2, 2])
    multi = _cache.multilabel(model)
    kind = c1.radio("What to do", edit_kinds(path, model), key=_keys.EDIT_KIND)
    if multi:
        c1.caption("Removing, refitting, erasing, neutralising or adding a concept is not available for "
                   "multi-label models yet; these edits change one finding's weights.")
    elif not _cache.has_text_tower(path):
        c1.caption(f"Adding a concept from text needs an encoder that also reads text (such as CLIP); this "
                   f"model's encoder, {_cache.encoder_label(path)}, reads images only, so add a concept "
                   "from example images instead.")
    name, needs_cls, needs_concept, needs_w, needs_text = KINDS[kind]
    cls = (c2.selectbox("Finding" if multi else "Class", model.class_names_, key=_keys.EDIT_CLASS)
           if needs_cls else None)
    concept = c3.selectbox("Concept", model.concept_names_, key=_keys.EDIT_CONCEPT) if needs_concept else None
    value = c2.number_input("New weight", value=1.0 if name.startswith("add") else 0.0, step=0.1,
                            key=_keys.EDIT_WEIGHT) if needs_w else None
    if name == "add-examples":
        return examples_form(model, path, c3, cls, value)
    if name == "neutralise-at-source":
        return source_form(model, path, concept)
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


def source_form(model, path, concept):
    """The concept neutralised in each image before embedding: where the model's own evidence locates
    it on a few images (before and after), then the edit, previewed on every split's images."""
    from cbm.edits import NeutraliseAtSource

    data = _cache.eval_data(path)
    missing = [s for s, d in data.items() if d.images is None]
    if not data or missing:
        st.info("A repair at the source re-embeds the images, so data.npz needs the images of every split "
                f"(`images_<split>`; missing for {missing or 'every split'}).")
        return None
    try:
        encoder = _cache.model_encoder(path)
        edit = NeutraliseAtSource(concept).using({s: d.images for s, d in data.items()}, encoder)
        edit.plan(model)
        shown = _cache.located_regions(model, path, concept)
    except CBMError as e:
        st.error(f"This repair cannot be made: {e}")
        return None
    st.markdown(f"**Where the model's own evidence locates {concept!r}** (boxed), and the image with that "
                "region filled from its border. The repair sets the located feature cells to the background's "
                "before pooling; true positions are never used.")
    if not shown:
        st.caption(f"{concept!r} fires on none of the first images of this split; nothing is shown.")
    for col, (image, boxes, size, sid) in zip(st.columns(max(1, len(shown))), shown, strict=False):
        col.image(_images.thumbnail(_images.with_boxes(image, boxes, size)), caption=f"{sid}: before", width=96)
        col.image(_images.thumbnail(_images.filled(image, boxes, size)), caption="after", width=96)
    return edit


def _pick(row: int) -> None:
    """Record a gallery tile's choice (it outlives the tile when the gallery pages on)."""
    value = st.session_state.get(f"{_keys.EDIT_EX}_{row}")
    picks = st.session_state.setdefault(_keys.EDIT_EXAMPLES, {})
    if value is None:
        picks.pop(row, None)
    else:
        picks[row] = "pos" if value == SHOWS else "neg"


def _clear_picks() -> None:
    for row in st.session_state.get(_keys.EDIT_EXAMPLES, {}):
        st.session_state.pop(f"{_keys.EDIT_EX}_{row}", None)
    st.session_state[_keys.EDIT_EXAMPLES] = {}


def examples_form(model, path, column, cls, value):
    """Pick training images that show the new concept and some that do not; a CAV fitted on their
    embeddings becomes the concept. Returns the edit once there are two of each and a name."""
    from cbm.edits import AddConcept

    data = _cache.eval_data(path)
    split = "train" if "train" in data else next(iter(data), None)
    d = data.get(split) if split else None
    if d is None or d.images is None:
        st.info("Picking examples needs the training images in data.npz (`images_train`, as `cbm demo` "
                "stores them); without them, fit a CAV on your own examples with `cbm concepts generate --source cav`.")
        return None
    name = column.text_input("Name of the new concept", key=_keys.EDIT_EX_NAME, placeholder="e.g. a ribbed collar")
    picks = st.session_state.setdefault(_keys.EDIT_EXAMPLES, {})
    st.markdown(f"**Pick examples among the {_aliases.split_label(split)} images**: answer \"Shows it?\" "
                "with yes for some that show the concept and no for some that don't (at least two of each). "
                "The concept becomes the direction that separates their embeddings; the preview below "
                "measures it on the other splits.")
    f1, f2, f3 = st.columns([2, 1, 1])
    classes = [str(c) for c in dict.fromkeys(d.y.astype(str))]
    show = f1.selectbox("Show images of", ["every class", *classes], key=_keys.EDIT_EX_CLASS)
    rows = np.arange(len(d)) if show == "every class" else np.flatnonzero(d.y.astype(str) == show)
    pages = max(1, -(-len(rows) // EXAMPLES_PER_PAGE))
    page = int(f2.number_input(f"Page (of {pages})", 1, pages, 1, key=_keys.EDIT_EX_PAGE))
    f3.button("Clear the picks", key=_keys.EDIT_EX_CLEAR, on_click=_clear_picks, disabled=not picks)
    shown = rows[(page - 1) * EXAMPLES_PER_PAGE: page * EXAMPLES_PER_PAGE]
    for start in range(0, len(shown), EXAMPLES_PER_ROW):
        for col, r in zip(st.columns(EXAMPLES_PER_ROW), shown[start:start + EXAMPLES_PER_ROW], strict=False):
            r = int(r)
            sid = str(d.ids[r]) if d.ids is not None else str(r)
            col.image(_images.thumbnail(d.images[r]), caption=f"{sid} ({d.y[r]})", width=96)
            col.segmented_control("Shows it?", [SHOWS, LACKS], key=f"{_keys.EDIT_EX}_{r}",
                                  default={"pos": SHOWS, "neg": LACKS}.get(picks.get(r)),
                                  on_change=_pick, args=(r,))
    pos = [r for r, v in picks.items() if v == "pos"]
    neg = [r for r, v in picks.items() if v == "neg"]
    st.caption(f"Picked: {len(pos)} image(s) that show it, {len(neg)} that don't.")
    if len(pos) < 2 or len(neg) < 2 or not name.strip():
        st.info("Mark at least two images that show the concept and two that don't, and name it.")
        return None
    ids = [str(d.ids[r]) if d.ids is not None else str(r) for r in pos + neg]
    try:
        edit = AddConcept.from_examples(name.strip(), d.X[pos], d.X[neg], {cls: value}, split=split, ids=ids,
                                        model=model)
    except (CBMError, ValueError) as e:
        st.error(f"The concept cannot be fitted from these examples: {e}")
        return None
    acc = edit.detail.get("val_acc")
    st.caption(f"Fitted “{name.strip()}” from {len(pos)} + {len(neg)} examples"
               + (f"; it tells held-out picks apart {acc:.0%} of the time" if isinstance(acc, float) else "")
               + f". Applying it adds the concept with weight {value:+.2f} for {cls}.")
    return edit


def preview_key(model, edit) -> str:
    """The edit (its JSON) on this head (:func:`_cache.model_token`): what a shown preview belongs to."""
    return json.dumps({"edit": edit.to_dict(), "head": _cache.model_token(model)}, sort_keys=True, default=str)


def preview_on_demand(model, path, edit) -> None:
    """The preview runs only when the user presses Preview (it refits a black box given the same fix:
    seconds). Once asked, it stays shown for that edit on that head across reruns, and comes back
    without recomputing after an apply and an undo (kept in ``st.session_state``)."""
    shown = st.session_state.setdefault(_keys.EDIT_PREVIEWED, {})
    key = preview_key(model, edit)
    if st.button("Preview", key=_keys.EDIT_PREVIEW, disabled=key in shown):
        try:
            shown[key] = _cache.edit_preview(model, path, edit)
        except (CBMError, ValueError, KeyError) as e:
            st.error(f"This edit cannot be applied: {e}")
            return
        while len(shown) > PREVIEWS_KEPT:
            shown.pop(next(iter(shown)))
    if key not in shown:
        st.caption("Press **Preview** to see the edit's effect on every split, next to the baselines "
                   "(a few seconds); Apply works without it.")
        return
    preview(model, path, edit, shown[key])


def preview(model, path, edit, effect) -> None:
    """Accuracy before/after on every split and per class, and the images whose prediction flips."""
    if getattr(effect, "findings", None) is not None:
        preview_findings(effect)
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


def preview_findings(effect) -> None:
    """A multi-label edit: the verdict, AUROC and average precision per finding and split before and
    after (most affected finding first), and the presence calls that flip."""
    st.markdown(f"**Verdict.** {effect.verdict()}")
    st.caption("Each finding on every split, now and after the edit (the most affected finding first); "
               "“calls changed” counts images where the finding's presence call flips.")
    st.dataframe(effect.findings.rename(columns={"auroc_before": "AUROC now", "auroc_after": "AUROC after",
                                                 "ap_before": "AP now", "ap_after": "AP after",
                                                 "changed": "calls changed"}).round(3), hide_index=True)


def honest_summary(model, path, edit, effect) -> None:
    """Per-class recall before and after as numbers (the affected class first), the baselines side
    by side on every split, and a verdict in plain words (all as :mod:`cbm.edits.report` computes them)."""
    if getattr(effect, "baseline_error", None):
        st.caption(f"Baselines unavailable: {effect.baseline_error}")
    st.markdown(f"**Verdict.** {effect.verdict()}")
    rec = effect.recall()
    if len(rec):
        st.caption("Recall per class, now and after the edit" +
                   (f" ({effect.affected!r} first)" if effect.affected else ""))
        st.dataframe(rec.round(3))
    wide = effect.baselines_table()
    if len(wide):
        st.caption(f"Accuracy per split: the edited model next to the black box, the black box given the same "
                   f"fix, and \"never predict {effect.affected}\"" + (
                       "; train is the data every model was fitted on, not a held-out score" if "train" in wide
                       else ""))
        st.dataframe(wide.round(3))


def controls(session, edit) -> None:
    """Apply / Undo / Redo / Save; each action reruns the page so every number is fresh."""
    why = st.text_input("Why this edit?", key=_keys.EDIT_WHY, placeholder="why this edit "
                        "(kept in the audit trail with who and when)")
    c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 2, 1])
    if c1.button("Apply", key=_keys.EDIT_APPLY, type="primary", disabled=edit is None):
        _act(lambda: session.apply(edit, why=why), f"Applied: {edit.plain()}")
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


def report_download(path, rows) -> None:
    """Pick a logged edit; download its before/after as a self-contained HTML page (made on click)."""
    from cbm.edits.report import edit_report

    labels = dict(zip(rows["seq"], rows["description"], strict=True))
    c1, c2 = st.columns([3, 2])
    seq = c1.selectbox("Report on edit", list(labels)[::-1], key=_keys.EDIT_REPORT_SEQ,
                       format_func=lambda s: f"#{s}: {labels[s]}")
    c2.download_button("Download its before/after (HTML)", data=lambda: edit_report(path, seq),
                       file_name=f"edit-{seq}.html", mime="text/html", key=_keys.EDIT_REPORT,
                       on_click="ignore", help="Verdict, recall per class before and after, baselines and the "
                       "images whose prediction changes, on one page that opens offline.")


def history(session, path) -> None:
    """The logged edits, a report download for any of them and the audit trail."""
    st.subheader("Edit history")
    rows = session.history()
    st.caption(f"Editing version {session.version}; {len(session.pending)} unsaved edit(s), kept in "
               "the model directory until saved (a reload does not lose them).")
    if not rows.empty:
        st.dataframe(rows.drop(columns=["why", "edit"]).iloc[::-1], hide_index=True)  # the edit in words
    if not rows.empty:
        report_download(path, rows)
    trail = session.audit_trail()
    if not trail.empty:
        with st.expander(f"Audit trail: who changed the model, when and why ({len(trail)} actions)"):
            st.dataframe(trail.iloc[::-1], hide_index=True)
            st.caption("Export it with `cbm edit MODEL history --format csv`.")


def suggestions(model, path) -> None:
    """Weights the library flags for review (evidence in one domain only, or against the prior), shown
    first so the page starts from what to look at."""
    found = _cache.suggestions(model, path)
    if found.empty:
        st.caption("Suggested edits: nothing looks spurious (no concept's evidence comes from one site only "
                   "or contradicts the class prior).")
        return
    st.subheader("Suggested edits to review")
    st.caption(f"{len(found)} weight(s) look spurious. Pick the class and concept below and press Preview "
               "to see what an edit does before applying it.")
    st.dataframe(found.drop(columns="edit").round({"weight": 3, "score": 3}), hide_index=True)


def render() -> None:
    """Draw the Edit page."""
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
    suggestions(model, path)
    edit = edit_form(model, path)
    if edit is not None:
        preview_on_demand(model, path, edit)
    controls(session, edit)
    history(session, path)


if __name__ == "__main__":
    render()
