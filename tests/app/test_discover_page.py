"""The Discover page renders on a small model, searches only when asked, and previews a group as a concept."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY, _keys

TIMEOUT = 90


def _open() -> AppTest:
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    at.switch_page("pages/discover.py").run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.error])


def test_searches_only_when_asked_then_lists_groups_with_thumbnails(model_dir):
    at = _open()
    assert "Press **Find groups** to search" in _texts(at)
    assert at.session_state[_keys.DISCOVER_SPLIT] == "train"  # the fixture has no val split
    at.button(key=_keys.DISCOVER_RUN).click().run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "**#1 · " in text and "of the other classes" in text
    assert len(at.get("image")) >= 2  # the groups' thumbnails from data.npz


def test_make_a_concept_previews_the_edit(model_dir):
    at = _open()
    at.button(key=_keys.DISCOVER_RUN).click().run()
    at.button(key=f"{_keys.DISCOVER_MAKE}_1").click().run()
    assert not at.exception, at.exception
    assert "Make group #1 a concept" in [h.value for h in at.subheader]
    assert "**Verdict.**" in _texts(at)
    assert at.text_input(key=_keys.DISCOVER_NAME).value.startswith("unnamed ")
