"""How ``cbm app`` finds the model directory and starts Streamlit."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cbm.demo.pipeline import default_demo_dir
from cbm.exceptions import ModelDirError

__all__ = ["DEFAULT_HOST", "ENTRY", "default_demo_model_dir", "resolve_model_dir", "streamlit_command"]

#: The script ``streamlit run`` starts.
ENTRY = Path(__file__).resolve().parent / "streamlit_app.py"

#: Environment variable that carries the model directory into the app.
MODEL_DIR_ENV = "CBM_MODEL_DIR"


def default_demo_model_dir() -> Path:
    """Where ``cbm demo`` writes its model: ``$CBM_HOME/demo/model`` (default ``~/.cache/cbmkit``)."""
    return default_demo_dir() / "model"  # the demo pipeline owns the location


def resolve_model_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """The model directory to open: ``model_dir``, else ``$CBM_MODEL_DIR``, else the demo model.

    Raises
    ------
    ModelDirError
        When no directory was given and the demo model has not been created yet.
    """
    if model_dir:
        return Path(model_dir).expanduser()
    if os.environ.get(MODEL_DIR_ENV):
        return Path(os.environ[MODEL_DIR_ENV]).expanduser()
    demo = default_demo_model_dir()
    if not (demo / "model.json").is_file():
        raise ModelDirError(
            f"No model directory given and the demo model is missing at {str(demo)!r}. "
            "Run `cbm demo` first, or pass one: `cbm app MODEL_DIR`."
        )
    return demo


#: Streamlit options that keep the app local: no usage statistics (which call Streamlit's servers)
#: and the viewer toolbar. The page icon is a local image (``_images.page_icon``) and Streamlit's
#: fonts are bundled, so a browser showing the app asks nothing of any outside host.
LOCAL_OPTIONS = ("--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
                 "--theme.primaryColor", "#0072B2")

#: Where the app listens unless told otherwise: this machine only.
DEFAULT_HOST = "127.0.0.1"


def streamlit_command(model_dir: str | os.PathLike, port: int | None = None,
                      headless: bool = True, extra: Sequence[str] = (),
                      host: str = DEFAULT_HOST) -> list[str]:
    """The ``streamlit run`` command line that serves the app for ``model_dir`` on ``host``.

    ``host`` is the address to listen on (default ``127.0.0.1``, this machine only; ``0.0.0.0``
    serves every network the machine is on). ``extra`` holds further Streamlit options.
    """
    cmd = [sys.executable, "-m", "streamlit", "run", str(ENTRY), *LOCAL_OPTIONS,
           "--server.address", str(host), "--browser.serverAddress",
           "localhost" if host in ("127.0.0.1", "localhost", "::1") else str(host)]
    if headless:
        cmd += ["--server.headless", "true"]
    if port is not None:
        cmd += ["--server.port", str(int(port))]
    return cmd + list(extra) + ["--", str(model_dir)]
