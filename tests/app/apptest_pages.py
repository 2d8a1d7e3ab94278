"""The app's pages run as scripts by Streamlit's ``AppTest`` (no browser), and the text they show.

The app reads its model directory from ``CBM_MODEL_DIR`` (the ``model_dir`` fixture sets it).
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from cbm.app import ENTRY

TIMEOUT = 90  # seconds one script run may take on the shared 2-core machine


def open_page(page: str | None = None) -> AppTest:
    """The app on its first page, then on ``pages/<page>.py`` if given; fails if either run raises."""
    at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    """Every text the page shows: markdown, captions, subheaders and info, success, warning and error boxes."""
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.subheader, *at.info, *at.success,
                                            *at.warning, *at.error])
