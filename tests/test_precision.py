"""Tests of utils.precision: which format on which hardware (CUDA queries monkeypatched)."""

from __future__ import annotations

import pytest
import torch

from utils.precision import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    autocast,
    make_grad_scaler,
    native_bf16,
    select_precision,
)

CUDA = torch.device("cuda")


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend a CUDA GPU of a given compute capability is present; returns a setter."""

    def install(capability: tuple[int, int], hip: str | None = None) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        # the emulation answer a T4 gives: must not be what decides
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.version, "hip", hip)

    return install


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), FLOAT16),   # T4 (Colab's free GPU): no native bf16 -> fp16 + scaler
    ((7, 0), FLOAT16),   # V100
    ((8, 0), BFLOAT16),  # A100
    ((8, 9), BFLOAT16),  # L4, RTX 40xx
    ((9, 0), BFLOAT16),  # H100
])
def test_auto_on_cuda_follows_the_compute_capability(fake_gpu, capability, expected) -> None:
    fake_gpu(capability)
    assert native_bf16(CUDA) == (expected is BFLOAT16)
    assert select_precision(CUDA) == expected
    assert select_precision("cuda:0", "auto") == expected


def test_rocm_has_bf16(fake_gpu) -> None:
    fake_gpu((9, 0), hip="6.0")
    assert select_precision(CUDA) == BFLOAT16


def test_auto_elsewhere_is_float32(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_precision("cpu") == FLOAT32
    assert select_precision("mps") == FLOAT32
    assert not native_bf16("cpu") and not native_bf16(CUDA)


def test_explicit_requests(fake_gpu) -> None:
    fake_gpu((7, 5))
    assert select_precision(CUDA, "float32") == FLOAT32
    assert select_precision(CUDA, "float16") == FLOAT16
    with pytest.raises(ValueError, match=r"compute capability 7\.5.*float16"):
        select_precision(CUDA, "bfloat16")
    assert select_precision("cpu", "bfloat16") == BFLOAT16
    assert select_precision("cpu", "float16") == FLOAT16
    with pytest.raises(ValueError, match="'mps'"):
        select_precision("mps", "float16")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        select_precision("cpu", "fp8")


def test_only_fp16_gets_a_scaler() -> None:
    assert FLOAT16.use_scaler and not BFLOAT16.use_scaler and not FLOAT32.use_scaler
    assert make_grad_scaler("cpu", FLOAT32) is None
    assert make_grad_scaler("cpu", BFLOAT16) is None
    scaler = make_grad_scaler("cpu", FLOAT16)
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.get_scale() == 2.0**16


@pytest.mark.parametrize("p, dtype", [(BFLOAT16, torch.bfloat16), (FLOAT16, torch.float16),
                                      (FLOAT32, torch.float32)])
def test_autocast_runs_matmuls_in_the_format(p, dtype) -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu", p):
        assert (a @ b).dtype == dtype


def test_scaler_rescues_gradients_that_underflow_in_fp16() -> None:
    # the reason fp16 needs a scaler: 1e-8 is below fp16's smallest subnormal (~6e-8)
    small = torch.tensor(1e-8)
    assert small.half().item() == 0.0
    assert (small * 2.0**16).half().float().item() / 2.0**16 == pytest.approx(1e-8, rel=1e-2)
