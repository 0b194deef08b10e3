"""Tests of utils.presets: one call sizes the run for the device (CUDA queries monkeypatched)."""

from __future__ import annotations

import pytest
import torch

from utils import presets
from utils.model import TinyGPT
from utils.presets import training_preset


@pytest.fixture
def fake_gpu(monkeypatch):
    def install(capability: tuple[int, int], triton: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(presets, "_triton_available", lambda: triton)

    return install


def test_cpu_preset_is_small_and_float32() -> None:
    preset = training_preset("cpu")
    assert preset.name == "cpu" and preset.train.dtype == "float32"
    assert preset.train.device == "cpu" and not preset.train.compile
    assert preset.model.vocab_size == preset.vocab_size
    n = TinyGPT(preset.model).num_parameters()
    assert n < 500_000
    assert preset.train.block_size <= preset.model.context_length
    assert f"{n / 1e6:.2f}M parameters" in preset.describe(n)


@pytest.mark.parametrize("capability, dtype", [((7, 5), "float16"), ((8, 0), "bfloat16")])
def test_gpu_preset_uses_mixed_precision_and_millions_of_parameters(fake_gpu, capability,
                                                                    dtype) -> None:
    fake_gpu(capability)
    preset = training_preset()  # None: the best device, the (fake) GPU
    assert preset.name == f"cuda-{dtype}" and preset.train.dtype == dtype
    assert preset.train.device == "cuda" and not preset.train.compile
    assert training_preset(compile=True).train.compile
    assert preset.model.use_fused_attention
    n = TinyGPT(preset.model).num_parameters()
    assert 3_000_000 <= n <= 30_000_000
    assert preset.train.block_size <= preset.model.context_length
    assert n > 10 * TinyGPT(training_preset("cpu").model).num_parameters()


def test_gpu_preset_without_triton_does_not_compile(fake_gpu) -> None:
    fake_gpu((8, 0), triton=False)
    assert not training_preset("cuda", compile=True).train.compile
    assert not training_preset("cpu", compile=True).train.compile


def test_unknown_device_is_named() -> None:
    with pytest.raises(ValueError, match="no-such"):
        training_preset("no-such-device")
