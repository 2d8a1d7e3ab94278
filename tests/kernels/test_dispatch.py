"""Dispatch: which path serves a call, and what happens when Triton cannot."""

from __future__ import annotations

import logging

import pytest
import torch

from cbm.kernels import _dispatch, use_triton
from cbm.kernels._dispatch import HAS_TRITON, interpreting


def test_cbm_kernels_torch_forces_pytorch(monkeypatch):
    monkeypatch.setenv("CBM_KERNELS", "torch")
    assert not use_triton(torch.ones(2))


@pytest.mark.skipif(interpreting(), reason="the interpreter serves CPU tensors")
def test_cpu_tensors_use_pytorch_without_interpreter(monkeypatch):
    monkeypatch.delenv("CBM_KERNELS", raising=False)
    assert not use_triton(torch.ones(2))


@pytest.mark.skipif(not (HAS_TRITON and interpreting()), reason="needs TRITON_INTERPRET=1")
def test_interpreter_serves_cpu_tensors(monkeypatch):
    monkeypatch.delenv("CBM_KERNELS", raising=False)
    assert use_triton(torch.ones(2))


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.setenv("CBM_KERNELS", "cuda")
    with pytest.raises(ValueError, match=r"CBM_KERNELS='cuda' is not a kernel backend.*'torch'"):
        use_triton(torch.ones(2))


@pytest.mark.skipif(interpreting() or torch.cuda.is_available(), reason="Triton can serve here")
def test_demanding_triton_where_it_cannot_run_is_an_error(monkeypatch):
    from cbm.kernels import elastic_net_prox

    monkeypatch.setenv("CBM_KERNELS", "triton")
    with pytest.raises(RuntimeError, match="forbids the PyTorch fallback"):
        elastic_net_prox(torch.ones(3), torch.ones(3), 0.1, 0.0, 0.0)


def test_fallback_reason_is_logged_once(monkeypatch, caplog):
    monkeypatch.delenv("CBM_KERNELS", raising=False)
    monkeypatch.setattr(_dispatch, "_warned", set())
    with caplog.at_level(logging.INFO, logger="cbm.kernels"):
        for _ in range(3):
            _dispatch.fallback("some_op", "dtype torch.int8")
    assert [r.getMessage() for r in caplog.records] == [
        "cbm.kernels.some_op: using the PyTorch path (dtype torch.int8)"
    ]
