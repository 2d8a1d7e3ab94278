"""The cbmkit Streamlit app: read, explain and edit a concept bottleneck model in a browser.

Start it with ``cbm app [MODEL_DIR]``. The app is an entry script (``streamlit_app.py``) plus one
short file per page (``pages/``); pages call only the public API of :mod:`cbm`.

The model directory reaches the app through the ``CBM_MODEL_DIR`` environment variable or the
script arguments (``streamlit run streamlit_app.py -- MODEL_DIR``); without either, the app opens
the demo model written by ``cbm demo``.
"""

if __name__ != "cbm.app":  # the repository root is on sys.path: see cbm._source_folders
    from cbm._source_folders import defer_to_installed

    defer_to_installed(__name__)
else:
    from ._launch import (
        DEFAULT_HOST,
        ENTRY,
        LOCAL_OPTIONS,
        MODEL_DIR_ENV,
        default_demo_model_dir,
        resolve_model_dir,
        streamlit_command,
    )

    __all__ = ["DEFAULT_HOST", "ENTRY", "LOCAL_OPTIONS", "MODEL_DIR_ENV", "default_demo_model_dir",
               "resolve_model_dir", "streamlit_command"]
