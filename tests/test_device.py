"""Device selection and seeding."""

import random

import numpy as np
import pytest
import torch

from utils.device import available_devices, get_device, set_seed


def test_cpu_and_auto() -> None:
    assert get_device("cpu") == torch.device("cpu")
    auto = get_device()
    assert auto == get_device("auto")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert auto.type == "cpu"
    assert available_devices()[-1] == "cpu"


def test_unknown_device_raises() -> None:
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; available devices: .*cpu"):
        get_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_raises() -> None:
    with pytest.raises(ValueError, match=r"device 'cuda' is not available; available devices"):
        get_device("cuda")


def test_missing_cuda_index_raises() -> None:
    index = torch.cuda.device_count()  # one past the last GPU (cuda:0 when there is none)
    with pytest.raises(ValueError, match=rf"device 'cuda:{index}' is not available"):
        get_device(f"cuda:{index}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_when_available() -> None:
    assert get_device("cuda").type == "cuda"
    assert get_device().type == "cuda"


def test_set_seed_makes_all_generators_repeat() -> None:
    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), torch.rand(1).item()

    set_seed(42)
    first = draw()
    set_seed(42)
    assert draw() == first
    set_seed(43)
    assert draw() != first
