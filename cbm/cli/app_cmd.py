"""`cbm app [MODEL_DIR] [--port N] [--host ADDR]`: serve the Streamlit app for a model directory.

The app listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, sends no usage
statistics and loads nothing from outside hosts (local page icon, bundled fonts).
"""

from __future__ import annotations

import os
import subprocess


def add_parser(sub) -> None:
    p = sub.add_parser(
        "app", help="open a model in the browser app (explore, explain, edit)",
        description="Serve the cbmkit Streamlit app. Without MODEL_DIR it opens the demo model "
                    "(create it with `cbm demo`).",
    )
    p.add_argument("model_dir", nargs="?", default=None, metavar="MODEL_DIR",
                   help="model directory written by `cbm train` or `cbm demo` (default: the demo model)")
    p.add_argument("--port", type=int, default=None, help="port to serve on (default: Streamlit's 8501)")
    p.add_argument("--host", default=None, metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: all networks)")
    p.add_argument("--browser", action="store_true", help="also open a browser window")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import sys

    from cbm.app import DEFAULT_HOST, MODEL_DIR_ENV, resolve_model_dir, streamlit_command
    from cbm.io import read_pointer

    model_dir = resolve_model_dir(args.model_dir).resolve()
    read_pointer(model_dir)  # a missing or foreign directory fails here, with its fix, in one line
    if args.port is not None and not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535; got {args.port}.")
    host = (args.host or DEFAULT_HOST).strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"--host must be an address such as 127.0.0.1 or 0.0.0.0; got {args.host!r}.")
    env = dict(os.environ, **{MODEL_DIR_ENV: str(model_dir)})
    cmd = streamlit_command(model_dir, port=args.port, headless=not args.browser, host=host)
    if host not in (DEFAULT_HOST, "localhost", "::1"):
        print(f"cbm app: warning: listening on {host}; anyone who can reach this machine can open "
              "and edit the model.", file=sys.stderr)
    print(f"cbm app: serving {model_dir} on {host}:{args.port or 8501} (Ctrl+C to stop)")
    return subprocess.call(cmd, env=env)
