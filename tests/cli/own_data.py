"""A user's own data for CLI tests: class names (non-ASCII), a LaBo concept file's contents, and
``run_cli``; the fixtures that build them are in ``conftest.py``."""

import contextlib
import io

from own_data_folders import run_cli  # noqa: F401 - re-exported for the CLI tests

from cbm.cli import main

CLASSES = ("chemise à manches", "pantalon", "robe d'été")
CONCEPTS = {  # deliberately not in the folders' (sorted) order: matched by name, never by position
    "robe d'été": ["flowing skirt", "thin straps"],
    "chemise à manches": ["long sleeves", "buttoned collar"],
    "pantalon": ["two trouser legs", "belt loops"],
}
ARCH = "openclip:cbm-tiny-clip"


def fail_cli(argv) -> str:
    """Run ``cbm ARGV``, expect the one-line user error (exit 2) and return it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    assert rc == 2, (rc, out.getvalue(), err.getvalue())
    return err.getvalue()
