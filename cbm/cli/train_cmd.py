"""`cbm train`: not available yet."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="(train: not available yet)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    print("cbm train is not available in this version yet.", file=sys.stderr)
    return 1
