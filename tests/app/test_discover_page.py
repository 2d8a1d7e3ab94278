"""The Discover page renders on a small model, searches only when asked, and previews a group as a concept."""

from __future__ import annotations

from apptest_pages import open_page, page_text

from cbm.app import _keys


def test_searches_only_when_asked_then_lists_groups_with_thumbnails(model_dir):
    at = open_page("discover")
    assert "Press **Find groups** to search" in page_text(at)
    assert at.session_state[_keys.DISCOVER_SPLIT] == "train"  # the fixture has no val split
    at.button(key=_keys.DISCOVER_RUN).click().run()
    assert not at.exception, at.exception
    text = page_text(at)
    assert "**#1 · " in text and "of the other classes" in text
    assert len(at.get("image")) >= 2  # the groups' thumbnails from data.npz


def test_make_a_concept_previews_the_edit(model_dir):
    at = open_page("discover")
    at.button(key=_keys.DISCOVER_RUN).click().run()
    at.button(key=f"{_keys.DISCOVER_MAKE}_1").click().run()
    assert not at.exception, at.exception
    assert "Make group #1 a concept" in [h.value for h in at.subheader]
    assert "**Verdict.**" in page_text(at)
    assert at.text_input(key=_keys.DISCOVER_NAME).value.startswith("unnamed ")
