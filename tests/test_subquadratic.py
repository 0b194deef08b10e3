"""Recurrent linear attention, sliding windows and low-rank attention against references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.attention import linear_attention
from utils.subquadratic import (
    linear_attention_recurrent,
    linformer_attention,
    sliding_window_attention,
    sliding_window_mask,
)


def test_recurrent_equals_parallel_causal_and_brute_force():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 11, 5, generator=g, dtype=torch.float64) for _ in range(3))
    out, (S, z) = linear_attention_recurrent(q, k, v)
    assert torch.allclose(out, linear_attention(q, k, v, causal=True), atol=1e-10)
    # brute force: explicit weights phi(q_i).phi(k_j) over j <= i, normalised
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    w = (fq @ fk.transpose(-2, -1)).tril()
    assert torch.allclose(out, (w @ v) / (w.sum(-1, keepdim=True) + 1e-6), atol=1e-10)
    assert S.shape == (2, 3, 5, 5) and z.shape == (2, 3, 5)


def test_recurrent_state_carries_over():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(9, 4, generator=g, dtype=torch.float64) for _ in range(3))
    whole, _ = linear_attention_recurrent(q, k, v)
    first, state = linear_attention_recurrent(q[:4], k[:4], v[:4])
    second, _ = linear_attention_recurrent(q[4:], k[4:], v[4:], state=state)
    assert torch.allclose(torch.cat([first, second]), whole)


def test_sliding_window_mask_brute_force():
    n, w = 7, 3
    mask = sliding_window_mask(n, w)
    for i in range(n):
        for j in range(n):
            assert bool(mask[i, j]) == (i - w < j <= i)
    assert torch.equal(sliding_window_mask(5, 5), torch.ones(5, 5, dtype=torch.bool).tril())
    with pytest.raises(ValueError):
        sliding_window_mask(3, 0)


@pytest.mark.parametrize("window", [1, 3, 8, 20])
def test_banded_equals_masked_full(window):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 13, 6, generator=g, dtype=torch.float64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(13, window))
    assert torch.allclose(sliding_window_attention(q, k, v, window), ref, atol=1e-10)


def test_linformer_identity_projection_is_full_attention():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(10, 4, generator=g, dtype=torch.float64) for _ in range(3))
    eye = torch.eye(10, dtype=torch.float64)
    full = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(linformer_attention(q, k, v, eye, eye), full)
    E = torch.randn(3, 10, generator=g, dtype=torch.float64)
    out = linformer_attention(q, k, v, E, E)
    ref = torch.softmax(q @ (E @ k).T / 2.0, -1) @ (E @ v)
    assert out.shape == (10, 4) and torch.allclose(out, ref)
    with pytest.raises(ValueError):
        linformer_attention(q, k, v, E[:, :5], E)
