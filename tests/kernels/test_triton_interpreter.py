"""Runs every ``triton`` parity case on CPU through Triton's interpreter, in a subprocess.

``TRITON_INTERPRET=1`` must be set before Triton defines the kernels, i.e. before ``cbm.kernels`` is
imported, and it must not leak into the other engineers' tests (it would route their CPU tensors
through the slow interpreter). A child pytest with the variable set does both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbm.kernels._dispatch import HAS_TRITON, interpreting

HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.skipif(interpreting(), reason="already inside the interpreter run")
@pytest.mark.slow
def test_triton_path_under_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    env.pop("CBM_KERNELS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE), "-q", "-x", "-p", "no:cacheprovider",
         "-k", "triton or interpreter", "-W", "error::RuntimeWarning"],
        capture_output=True, text=True, env=env, cwd=HERE.parents[1], timeout=600,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"Triton interpreter run failed:\n{tail}"
    assert " passed" in proc.stdout, tail
