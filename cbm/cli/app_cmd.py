"""`cbm app [MODEL_DIR] [--port N] [--host ADDR]`: serve the Streamlit app for a model directory.

The app listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise, sends no usage
statistics and loads nothing from outside hosts (local page icon, bundled fonts). Stopping
``cbm app`` (Ctrl+C, or SIGTERM/SIGHUP to its PID) stops the Streamlit server it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

#: Seconds the server gets to stop after a forwarded signal before it is killed.
GRACE_S = 10.0


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
    print(f"cbm app: serving {model_dir} on {host}:{args.port or 8501} (Ctrl+C to stop)", flush=True)
    return serve(cmd, env)


def serve(cmd: list[str], env: dict[str, str], grace: float = GRACE_S) -> int:
    """Run the server ``cmd`` until it exits and return its exit status (128 + N if signal N ended it).

    SIGTERM, SIGINT and SIGHUP sent to this process are passed on to the server, which is killed if
    it has not stopped ``grace`` seconds later; on Linux the server also gets SIGTERM if this
    process dies without a chance to forward anything (SIGKILL).
    """
    posix = os.name == "posix"
    proc = subprocess.Popen(cmd, env=env, start_new_session=posix,  # Ctrl+C reaches it once, from us
                            preexec_fn=_die_with_parent if posix else None)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {}
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        try:
            previous[sig] = signal.signal(sig, forward) if sig is not None else None
        except ValueError:  # not the main thread: no handlers, the server still stops with us on Linux
            break
    try:
        deadline = None
        while proc.poll() is None:
            if received and deadline is None:
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    finally:
        for sig, handler in previous.items():
            if sig is not None and handler is not None:
                signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return 128 - proc.returncode if proc.returncode < 0 else proc.returncode


def _die_with_parent() -> None:
    """In the server's process: ask Linux to send it SIGTERM when its parent dies (elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
