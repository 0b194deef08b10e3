"""The three forms of the diagonal SSM agree with each other and with a float64 brute force."""

from __future__ import annotations

import pytest
import torch

from utils.ssm import DiagonalSSM, ssm_convolution, ssm_kernel, ssm_recurrent, ssm_scan


def _params(C=3, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(C, N, generator=g, dtype=torch.float64) * 0.9 + 0.05
    b, c = (torch.randn(C, N, generator=g, dtype=torch.float64) for _ in range(2))
    d = torch.randn(C, generator=g, dtype=torch.float64)
    return a, b, c, d


def _brute(u, a, b, c, d):
    # y_t = sum_{s<=t} sum_n c a^(t-s) b u_s + d u_t, with explicit loops
    B, T, C = u.shape
    y = torch.zeros_like(u)
    for t in range(T):
        for s in range(t + 1):
            y[:, t] += (c * a ** (t - s) * b).sum(-1) * u[:, s]
    return y + d * u


@pytest.mark.parametrize("T", [1, 2, 7, 16, 33])
def test_three_forms_agree_with_brute_force(T):
    a, b, c, d = _params()
    u = torch.randn(2, T, 3, generator=torch.Generator().manual_seed(T), dtype=torch.float64)
    ref = _brute(u, a, b, c, d)
    y_rec, h = ssm_recurrent(u, a, b, c, d)
    assert torch.allclose(y_rec, ref, atol=1e-10)
    assert torch.allclose(ssm_convolution(u, a, b, c, d), ref, atol=1e-9)
    assert torch.allclose(ssm_scan(u, a, b, c, d), ref, atol=1e-10)
    assert h.shape == (2, 3, 4)


def test_kernel_by_hand():
    a = torch.tensor([[0.5]], dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    K = ssm_kernel(a, one, 2 * one, 4)
    assert K.squeeze(-1).tolist() == [2.0, 1.0, 0.5, 0.25]


def test_layer_modes_and_step():
    torch.manual_seed(0)
    layer = DiagonalSSM(5, state_size=8).double()
    u = torch.randn(2, 12, 5, dtype=torch.float64)
    y = layer(u, mode="recurrent")
    assert torch.allclose(layer(u, mode="convolution"), y, atol=1e-9)
    assert torch.allclose(layer(u, mode="scan"), y, atol=1e-10)
    h = None
    steps = []
    for t in range(12):
        y_t, h = layer.step(u[:, t], h)
        steps.append(y_t)
        assert h.shape == (2, 5, 8)  # the state never grows
    assert torch.allclose(torch.stack(steps, 1), y, atol=1e-10)
    assert bool(((layer.decay() > 0) & (layer.decay() < 1)).all())
    with pytest.raises(ValueError):
        layer(u, mode="fft")
