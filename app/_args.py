"""The model directory the app was started on: ``streamlit run ENTRY -- DIR``, ``$CBM_MODEL_DIR``
or the demo default, checked once with a message that says how to fix a bad one."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from cbm.app import ENTRY, resolve_model_dir
from cbm.exceptions import CBMError
from cbm.io import read_pointer


def model_dir() -> Path:
    """The model directory from the script arguments, ``$CBM_MODEL_DIR`` or the demo default."""
    ours = bool(sys.argv) and Path(sys.argv[0]).resolve() == ENTRY  # `streamlit run ENTRY -- DIR`
    args = [a for a in sys.argv[1:] if not a.startswith("-")] if ours else []
    return resolve_model_dir(args[0] if args else None).resolve()


def require_model_dir() -> Path:
    """:func:`model_dir`, validated; on a problem, show what is wrong and how to fix it, and stop."""
    try:
        path = model_dir()
        read_pointer(path)
    except CBMError as e:
        st.error(f"**Cannot open the model.** {e}")
        st.info("Start the app with a model directory: `cbm app MODEL_DIR`, or run `cbm demo` "
                "first to create the demo model.")
        st.stop()
    return path
