"""Tests of the training-state, roofline and cost formulas of utils.accounting.

Each formula is checked against an independent reference: the state a real AdamW step
allocates, the bytes of real tensors and the FLOPs PyTorch counts, or arithmetic by hand.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from utils.accounting import (
    cost_per_million_tokens,
    matmul_intensity,
    roofline_flops,
    training_state_bytes,
)


def test_training_state_matches_a_real_adamw_step() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8))
    n = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 16)).pow(2).mean().backward()
    optimizer.step()
    moments = sum(v.numel() * v.element_size() for state in optimizer.state.values()
                  for key, v in state.items() if key in ("exp_avg", "exp_avg_sq"))
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    fp32 = training_state_bytes(n, weight_bytes=4, grad_bytes=4, master_bytes=0)
    assert fp32["optimizer"] == moments
    assert fp32["gradients"] == grads and fp32["weights"] == weights
    assert fp32["total"] == weights + grads + moments == 16 * n
    mixed = training_state_bytes(n)  # bf16 weights and grads, fp32 master and moments
    assert mixed["total"] == 16 * n and mixed["master_weights"] == 4 * n
    assert training_state_bytes(n, optimizer_bytes=0)["total"] == 8 * n  # plain SGD
    with pytest.raises(ValueError):
        training_state_bytes(-1)


@pytest.mark.parametrize("m,k,n", [(1, 64, 64), (128, 256, 64), (300, 7, 50)])
def test_matmul_intensity_counts_real_flops_and_bytes(m: int, k: int, n: int) -> None:
    a, b = torch.randn(m, k), torch.randn(k, n)
    with FlopCounterMode(display=False) as counter:
        c = a @ b
    moved = a.nbytes + b.nbytes + c.nbytes  # fp32: 4 bytes per value
    assert matmul_intensity(m, k, n, bytes_per_value=4) == pytest.approx(
        counter.get_total_flops() / moved, rel=1e-12)
    # square products grow in intensity as n / 3 (fp32: n / 6 FLOP per byte)
    assert matmul_intensity(600, 600, 600, 4) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        matmul_intensity(0, 1, 1)


def test_roofline_has_a_ridge_point() -> None:
    peak, bandwidth = 1e12, 1e11  # ridge at 10 FLOP/byte
    assert roofline_flops(1.0, peak, bandwidth) == 1e11  # memory-bound: slope = bandwidth
    assert roofline_flops(10.0, peak, bandwidth) == peak  # exactly at the ridge
    assert roofline_flops(1e3, peak, bandwidth) == peak  # compute-bound: flat
    assert roofline_flops(0.0, peak, bandwidth) == 0.0
    with pytest.raises(ValueError):
        roofline_flops(1.0, 0.0, bandwidth)


def test_cost_per_million_tokens_by_hand() -> None:
    # 2e9 FLOPs per token at 1e15 FLOP/s and 50% utilisation: 4 us per token, 4 s per
    # million tokens; at $3.60 per hour that is $0.004
    assert cost_per_million_tokens(2e9, 1e15, 0.5, 3.6) == pytest.approx(0.004, rel=1e-12)
    # linear in the FLOPs and the price, inverse in the utilisation
    base = cost_per_million_tokens(1e9, 1e14, 0.4, 2.0)
    assert cost_per_million_tokens(3e9, 1e14, 0.4, 2.0) == pytest.approx(3 * base)
    assert cost_per_million_tokens(1e9, 1e14, 0.8, 2.0) == pytest.approx(base / 2)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError):
            cost_per_million_tokens(1e9, 1e14, bad, 2.0)
