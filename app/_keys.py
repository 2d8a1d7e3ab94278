"""Session-state keys shared by the pages, and the widget values kept across pages.

Widget keys double as stable CSS hooks (``.st-key-<key>``) for the browser tests. Streamlit drops
a widget's value when its page is left; :func:`restore` and :func:`remember` keep Explore's filters
and the chosen split across visits.
"""

from __future__ import annotations

import streamlit as st

from cbm.app._aliases import split_label

SPLIT = "split"
EXPLORE_CLASS = "explore_class"
EXPLORE_PRED = "explore_pred"
EXPLORE_CORRECT = "explore_correct"
EXPLORE_DOMAIN = "explore_domain"
EXPLORE_SAMPLE = "explore_sample"
EXPLORE_OFF = "explore_off"
MODEL_CLASSES = "model_classes"
MODEL_FILTER = "model_filter"
MODEL_SORT = "model_sort"
MODEL_TOPN = "model_topn"
CONCEPT_QUERY = "concept_query"
CONCEPT_PICK = "concept_pick"
EDIT_KIND = "edit_kind"
EDIT_CLASS = "edit_class"
EDIT_CONCEPT = "edit_concept"
EDIT_WEIGHT = "edit_weight"
EDIT_TEXT = "edit_text"
EDIT_PREVIEW = "edit_preview"  # the button that measures the edit (preview and baselines)
EDIT_PREVIEWED = "edit_previewed"  # not a widget: {edit and head key: effect}, the previews asked for
EDIT_APPLY = "edit_apply"
EDIT_UNDO = "edit_undo"
EDIT_REDO = "edit_redo"
EDIT_SAVE = "edit_save"
EDIT_NOTE = "edit_note"
EDIT_WHY = "edit_why"
EDIT_FLASH = "edit_flash"
EDIT_EXAMPLES = "edit_examples"  # not a widget: {row: "pos" | "neg"}, the gallery images picked so far
EDIT_EX = "edit_ex"  # prefix of each gallery tile's picker: edit_ex_<row>
EDIT_EX_NAME = "edit_ex_name"
EDIT_EX_CLASS = "edit_ex_class"
EDIT_EX_PAGE = "edit_ex_page"
EDIT_EX_CLEAR = "edit_ex_clear"
EDIT_REPORT_SEQ = "edit_report_seq"
EDIT_REPORT = "edit_report"
UPLOAD_FILE = "upload_file"
# explanation views shared by Explore and Upload
WHY_NOT = "why_not"  # prefixed by the page: explore_why_not, upload_why_not
EVIDENCE = "evidence"  # the concept whose evidence is shown
OCCLUDE = "occlude"  # the button that computes the occlusion map
REPORT = "report"  # the download button of the HTML report
FINDING = "finding"  # multi-label models: the finding explained (explore_finding, upload_finding)
EXPLORE_PAGE = "explore_page"
DISCOVER_SPLIT = "discover_split"
DISCOVER_RUN = "discover_run"
DISCOVER_DONE = "discover_done"  # not a widget: the split searched, once the user asked
DISCOVER_MAKE = "discover_make"  # prefix of each candidate's button: discover_make_<rank>
DISCOVER_PICK = "discover_pick"  # not a widget: the rank whose concept is previewed
DISCOVER_NAME = "discover_name"
DISCOVER_WEIGHT = "discover_weight"
DISCOVER_APPLY = "discover_apply"
VERSION_A = "version_a"
VERSION_B = "version_b"
VERSION_REVERT = "version_revert"
VERSION_FLASH = "version_flash"
#: Explore's widgets whose values survive a visit to another page.
KEPT = (SPLIT, EXPLORE_CLASS, EXPLORE_PRED, EXPLORE_CORRECT, EXPLORE_DOMAIN, EXPLORE_SAMPLE, EXPLORE_PAGE)


def restore(keys=KEPT) -> None:
    """Give widgets the values they had when the user left the page (Streamlit drops them otherwise)."""
    for k in keys:
        if k in st.session_state:
            st.session_state[k] = st.session_state[k]  # a value set in code outlives its widget
        elif f"_kept_{k}" in st.session_state:
            st.session_state[k] = st.session_state[f"_kept_{k}"]


def remember(keys=KEPT) -> None:
    """Keep the widgets' current values for the next visit (see :func:`restore`)."""
    for k in keys:
        if k in st.session_state:
            st.session_state[f"_kept_{k}"] = st.session_state[k]


def split_picker(data: dict, key: str = SPLIT) -> str:
    """A split selector shared by pages (it keeps its value across pages)."""
    names = list(data)
    value = st.session_state.get(key, st.session_state.get(f"_kept_{key}"))
    st.session_state[key] = value if value in names else names[0]  # set, so every page's picker adopts it
    st.session_state[f"_kept_{key}"] = st.session_state[key]
    return st.sidebar.selectbox("Data split", names, key=key, format_func=split_label,
                                on_change=lambda: st.session_state.update({f"_kept_{key}": st.session_state[key]}),
                                help="test: images from the same sites as training; shifted: a new site "
                                     "where spurious cues no longer hold")
