"""Entry script of the cbmkit app: ``streamlit run streamlit_app.py -- MODEL_DIR``.

It sets the page layout, checks the model directory once (a missing or incompatible one gets a
page saying what is wrong and how to fix it) and hands over to the page the user picked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import streamlit as st

from cbm.app import _args, _images

PAGES = Path(__file__).resolve().parent / "pages"


def main() -> None:
    """Configure the app and run the selected page."""
    # a local image: a ":material/...:" page icon makes the browser fetch it from fonts.gstatic.com
    st.set_page_config(page_title="cbmkit", page_icon=_images.page_icon(), layout="wide")
    path = _args.require_model_dir()
    st.sidebar.caption(f"Model: `{path.name}`", help=f"The model directory: {path}")  # no long path in pictures
    nav = st.navigation([
        st.Page(PAGES / "model.py", title="Model", icon=":material/insights:", default=True),
        st.Page(PAGES / "explore.py", title="Explore", icon=":material/image_search:"),
        st.Page(PAGES / "concepts.py", title="Concepts", icon=":material/lightbulb:"),
        st.Page(PAGES / "edit.py", title="Edit", icon=":material/edit:"),
        st.Page(PAGES / "discover.py", title="Discover", icon=":material/travel_explore:"),
        st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload:"),
        st.Page(PAGES / "versions.py", title="Versions", icon=":material/history:"),
    ])
    run_timed(nav)


def run_timed(nav) -> None:
    """Run the page; with ``CBM_APP_SERVER_TIMINGS`` set (benchmarks), append how long this script run took.

    One JSON line per run to that file: the session, its start (``time.time()``) and seconds, so the
    load benchmark times each step on the server's side beside the browser's. The session's id is
    also put in the page (an empty ``data-cbm-session`` element) for the benchmark to read.
    """
    log = os.environ.get("CBM_APP_SERVER_TIMINGS")
    if not log:
        nav.run()
        return
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    session = get_script_run_ctx().session_id
    st.html(f'<span data-cbm-session="{session}"></span>')
    start = time.time()
    try:
        nav.run()
    finally:
        with open(log, "a") as fh:
            fh.write(json.dumps({"session": session, "page": nav.title, "start": start,
                                 "seconds": round(time.time() - start, 4)}) + "\n")


main()
