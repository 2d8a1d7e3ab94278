"""The ``cbm`` command: argument parsing only; every subcommand calls the library's public API.

Each subcommand lives in its own module ``cbm.cli.<name>`` exposing ``add_parser(subparsers)``,
which registers the parser and sets ``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cbm import __version__

SUBCOMMANDS = ("embed", "concepts", "train", "eval", "explain", "edit", "discover", "app", "demo", "run",
               "predict", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cbm",
        description="cbmkit: concept bottleneck models you can read, explain and edit.",
    )
    parser.add_argument("--version", action="version", version=f"cbmkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"cbm.cli.{name.replace('-', '_')}_cmd").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``cbm`` with ``argv``; returns the exit code."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from cbm.exceptions import CBMError

    try:
        return int(args.func(args) or 0)
    except (CBMError, FileNotFoundError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"cbm {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as e:  # a path that is a file, a folder, unreadable ...: an ordinary mistake
        print(f"cbm {args.command}: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"cbm {args.command}: error: an input file is nested too deeply to be read (a damaged "
              "or hostile file?); check the files passed.", file=sys.stderr)
        return 2
    except RuntimeError as e:  # pathlib's resolve() on a symbolic link that points back to itself
        if not str(e).startswith("Symlink loop"):
            raise
        print(f"cbm {args.command}: error: {e}: a symbolic link there leads back to itself; fix or remove "
              "it, or pass another path.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cbm {args.command}: interrupted; saved data is left as it was.", file=sys.stderr)
        return 130


def os_error_message(e: OSError) -> str:
    """One line for an OSError: which path, what is wrong with it, what to do."""
    from pathlib import Path

    if not e.filename:
        return f"{e.strerror or e}."
    path = Path(str(e.filename))
    if isinstance(e, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        return f"{str(blocker)!r} is a file, not a folder; pass the folder (or a path in one)."
    if isinstance(e, IsADirectoryError):
        return f"{str(path)!r} is a folder; pass a file."
    if isinstance(e, PermissionError):
        return f"no permission to use {str(path)!r}; check its permissions or pass another path."
    return f"{str(path)!r}: {e.strerror or e}."


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``cbm ... | head -1``): stop quietly, as Unix tools do."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, like a shell tool killed by the closed pipe


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
