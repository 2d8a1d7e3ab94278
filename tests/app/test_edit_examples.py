"""Edit page: add a concept from gallery images, "from text" only with a text tower, edit reports."""

from __future__ import annotations

from apptest_pages import open_page, page_text

from cbm.app import _keys
from cbm.app.pages.edit import LACKS, SHOWS
from cbm.edits.history import EditSession
from cbm.io import load_model

EXAMPLES = "Add a concept from example images"


def test_from_text_is_not_offered_without_a_text_tower_and_one_sentence_says_why(model_dir):
    at = open_page("edit")
    kinds = at.radio(key=_keys.EDIT_KIND).options
    assert EXAMPLES in kinds and "Add a concept from text" not in kinds
    assert "reads images only, so add a concept from example images instead" in page_text(at)


def test_pick_examples_preview_and_apply_adds_the_concept(model_dir):
    at = open_page("edit")
    at.radio(key=_keys.EDIT_KIND).set_value(EXAMPLES).run()
    assert "Mark at least two images" in page_text(at)
    at.text_input(key=_keys.EDIT_EX_NAME).input("corner tag (picked)").run()
    for row, choice in ((0, SHOWS), (1, SHOWS), (2, LACKS), (3, LACKS), (4, SHOWS), (5, LACKS)):
        at.segmented_control(key=f"{_keys.EDIT_EX}_{row}").set_value(choice).run()
    assert not at.exception, at.exception
    assert "Picked: 3 image(s) that show it, 3 that don't." in page_text(at)
    assert "Verdict." not in page_text(at)  # fitted, but measured only when asked
    at.button(key=_keys.EDIT_PREVIEW).click().run()
    assert "Verdict." in page_text(at)  # the preview, as for any edit
    assert any("group" in df.value.columns for df in at.dataframe)
    at.button(key=_keys.EDIT_APPLY).click().run()
    assert not at.exception, at.exception
    model = EditSession(model_dir).model
    assert model.concept_names_[-1] == "corner tag (picked)"
    prov = model.concepts_.provenance[-1]
    assert prov.source == "cav" and prov.detail["n_positive"] == 3 and len(prov.detail["ids"]) == 6
    assert "corner tag (picked)" not in load_model(model_dir).concept_names_  # pending until saved


def test_picks_survive_gallery_paging_and_clear_empties_them(model_dir):
    at = open_page("edit")
    at.radio(key=_keys.EDIT_KIND).set_value(EXAMPLES).run()
    at.segmented_control(key=f"{_keys.EDIT_EX}_0").set_value(SHOWS).run()
    at.number_input(key=_keys.EDIT_EX_PAGE).set_value(2).run()
    at.number_input(key=_keys.EDIT_EX_PAGE).set_value(1).run()
    assert at.segmented_control(key=f"{_keys.EDIT_EX}_0").value == SHOWS
    assert "Picked: 1 image(s) that show it, 0 that don't." in page_text(at)
    at.button(key=_keys.EDIT_EX_CLEAR).click().run()
    assert "Picked: 0 image(s)" in page_text(at)


def test_each_logged_edit_has_a_report_download(model_dir, moving_prune):
    from cbm.edits import Prune

    EditSession(model_dir).apply(Prune(*moving_prune), why="tag")
    at = open_page("edit")
    assert at.selectbox(key=_keys.EDIT_REPORT_SEQ).options == ["#1: " + Prune(*moving_prune).plain()]
    assert at.get_by_key(_keys.EDIT_REPORT) is not None
