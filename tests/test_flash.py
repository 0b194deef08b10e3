"""Tiled online-softmax attention against PyTorch's attention, and the memory meters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.flash import (
    attention_io_elements,
    flash_attention,
    peak_memory_bytes,
    saved_tensor_bytes,
    tiled_attention,
)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(1, 1), (4, 8), (7, 5), (64, 64), (100, 3)])
def test_tiled_equals_torch(causal, blocks):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 8, generator=g, dtype=torch.float64) for _ in range(3))
    out, lse = tiled_attention(q, k, v, causal=causal, block_q=blocks[0], block_k=blocks[1],
                               return_lse=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(out, ref, atol=1e-6)
    scores = q @ k.transpose(-2, -1) / 8**0.5
    if causal:
        scores = scores.masked_fill(~torch.ones(37, 37, dtype=torch.bool).tril(), float("-inf"))
    assert torch.allclose(lse.double(), torch.logsumexp(scores, -1), atol=1e-5)


def test_tiled_is_stable_for_large_scores_and_cross_attention():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(5, 16, generator=g) * 40, torch.randn(9, 16, generator=g) * 40, \
        torch.randn(9, 3, generator=g)
    out = tiled_attention(q, k, v, block_q=2, block_k=4)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_flash_gradients_match_autograd(causal):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 19, 6, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    upstream = torch.randn(2, 19, 6, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((flash_attention(q, k, v, causal, block=4) * upstream).sum(),
                                (q, k, v))
    ref = torch.autograd.grad(
        (F.scaled_dot_product_attention(q, k, v, is_causal=causal) * upstream).sum(), (q, k, v))
    for mine, theirs in zip(grads, ref, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-8)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,block", [(64, 16), (50, 16), (33, 7)])
def test_io_formula_counts_the_loop(causal, n, block):
    counter: dict[str, int] = {}
    q, k, v = (torch.randn(n, 4) for _ in range(3))
    tiled_attention(q, k, v, causal=causal, block_q=block, block_k=block, io_counter=counter)
    expected = attention_io_elements(n, 4, block, causal)["tiled"]
    assert counter["read"] + counter["written"] == expected


def test_io_standard_by_hand():
    # S = QK^T: 2nd + n^2; softmax: 2n^2; PV: n^2 + 2nd
    assert attention_io_elements(10, 3)["standard"] == 2 * 30 + 100 + 200 + 100 + 2 * 30


def test_peak_memory_sees_a_temporary():
    n_bytes = 4 * 1_000_000

    def make_and_drop():
        big = torch.ones(1_000_000)  # float32: 4 MB, freed before returning
        return float(big.sum())

    result, peak = peak_memory_bytes(make_and_drop)
    assert result == 1_000_000.0
    assert n_bytes <= peak < 2 * n_bytes
    _, none = peak_memory_bytes(lambda: 1 + 1)
    assert none == 0


def test_saved_bytes():
    x = torch.randn(100, requires_grad=True)
    y = torch.randn(100, requires_grad=True)
    _, saved = saved_tensor_bytes(lambda: (x * y).sum())  # mul saves both inputs
    assert saved == 2 * 100 * 4
    _, saved = saved_tensor_bytes(lambda: (x + y).sum())  # add saves nothing
    assert saved == 0


def test_flash_saves_no_square_matrix():
    n, d = 256, 8
    q, k, v = (torch.randn(n, d, requires_grad=True) for _ in range(3))
    _, flash = saved_tensor_bytes(lambda: flash_attention(q, k, v))
    _, explicit = saved_tensor_bytes(lambda: torch.softmax(q @ k.T / d**0.5, -1) @ v)
    assert flash < n * n * 4 <= explicit


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="causal"):
        tiled_attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 4), causal=True)
    with pytest.raises(ValueError, match="feature size"):
        tiled_attention(torch.randn(3, 4), torch.randn(5, 2), torch.randn(5, 4))
