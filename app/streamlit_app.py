"""Entry script of the cbmkit app: ``streamlit run streamlit_app.py -- MODEL_DIR``.

It sets the page layout, checks the model directory once (a missing or incompatible one gets a
page saying what is wrong and how to fix it) and hands over to the page the user picked.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cbm.app import _args, _images

PAGES = Path(__file__).resolve().parent / "pages"


def main() -> None:
    """Configure the app and run the selected page."""
    # a local image: a ":material/...:" page icon makes the browser fetch it from fonts.gstatic.com
    st.set_page_config(page_title="cbmkit", page_icon=_images.page_icon(), layout="wide")
    path = _args.require_model_dir()
    st.sidebar.caption(f"Model: `{path.name}`  \n{path}")
    nav = st.navigation([
        st.Page(PAGES / "model.py", title="Model", icon=":material/insights:", default=True),
        st.Page(PAGES / "explore.py", title="Explore", icon=":material/image_search:"),
        st.Page(PAGES / "concepts.py", title="Concepts", icon=":material/lightbulb:"),
        st.Page(PAGES / "edit.py", title="Edit", icon=":material/edit:"),
        st.Page(PAGES / "discover.py", title="Discover", icon=":material/travel_explore:"),
        st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload:"),
        st.Page(PAGES / "versions.py", title="Versions", icon=":material/history:"),
    ])
    nav.run()


main()
