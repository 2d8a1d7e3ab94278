"""`cbm eval`: not available yet."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="(eval: not available yet)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    print("cbm eval is not available in this version yet.", file=sys.stderr)
    return 1
