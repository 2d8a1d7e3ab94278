"""cbm.tensors: the one device resolver and the one float32 tensor maker, for encoders and models."""

import numpy as np
import pytest
import torch

import cbm.encoders
from cbm.tensors import as_tensor, resolve_device


def test_auto_and_none_pick_cuda_only_when_present():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device(None).type == want
    assert resolve_device("cpu") == torch.device("cpu")


def test_encoders_share_the_one_resolver():
    assert cbm.encoders.resolve_device is resolve_device


def test_as_tensor_gives_float32_from_read_only_arrays_and_tensors():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    a.setflags(write=False)
    t = as_tensor(a)
    assert t.dtype == torch.float32 and t.shape == (2, 3)
    g = torch.ones(2, requires_grad=True)
    assert not as_tensor(g).requires_grad


def test_a_device_this_machine_lacks_is_one_clear_error():
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(ValueError, match=r"Device 'cuda:7' .*(has none|has \d+ CUDA GPU)"):
        resolve_device("cuda:7")
    with pytest.raises(ValueError, match=r"Unknown device 'gpu0'; use 'auto', 'cpu'"):
        resolve_device("gpu0")
