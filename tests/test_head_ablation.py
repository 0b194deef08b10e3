"""utils.head_ablation: per-head contributions recomputed by hand, ablation removes exactly one."""

from __future__ import annotations

import math

import pytest
import torch

from utils.attention import MultiHeadAttention
from utils.head_ablation import (
    ablate_heads,
    attention_layers,
    head_ablation_losses,
    head_contributions,
)
from utils.model import GPTConfig, TinyGPT


def _layer(
    n_heads: int = 4, n_kv_heads: int | None = None, bias: bool = False
) -> MultiHeadAttention:
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, n_heads, n_kv_heads=n_kv_heads, bias=bias).eval()
    if bias:
        with torch.no_grad():
            for p in layer.parameters():
                if p.ndim == 1:
                    p.normal_()
    return layer


def _by_hand(layer: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Per-head contributions from the weights alone, one head at a time, causal: (B, H, T, C)."""
    T, hs = x.shape[1], layer.head_dim
    rep = layer.n_heads // layer.n_kv_heads
    keep = torch.ones(T, T, dtype=torch.bool).tril()
    out = []
    for h in range(layer.n_heads):
        rows_q = slice(h * hs, (h + 1) * hs)
        rows_kv = slice((h // rep) * hs, (h // rep + 1) * hs)  # GQA: kv head shared by `rep` heads

        def proj(linear: torch.nn.Linear, rows: slice) -> torch.Tensor:
            b = 0.0 if linear.bias is None else linear.bias[rows]
            return x @ linear.weight[rows].T + b

        q = proj(layer.q_proj, rows_q)
        k, v = proj(layer.k_proj, rows_kv), proj(layer.v_proj, rows_kv)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(~keep, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v  # (B, T, hs)
        out.append(y @ layer.o_proj.weight[:, rows_q].T)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize(
    "n_heads, n_kv_heads, bias", [(4, None, False), (4, 2, True), (1, None, False)]
)
def test_contributions_match_a_by_hand_computation_and_sum_to_the_output(
    n_heads: int, n_kv_heads: int | None, bias: bool
) -> None:
    layer = _layer(n_heads, n_kv_heads, bias)
    x = torch.randn(2, 6, 16)
    contributions = head_contributions(layer, x)
    assert contributions.shape == (2, n_heads, 6, 16)
    torch.testing.assert_close(contributions, _by_hand(layer, x), atol=1e-5, rtol=1e-4)
    out = layer(x, causal=True)
    o_bias = 0.0 if layer.o_proj.bias is None else layer.o_proj.bias
    torch.testing.assert_close(contributions.sum(1) + o_bias, out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("head", [0, 2, 3])
def test_zeroing_a_head_removes_exactly_its_contribution(head: int) -> None:
    layer = _layer(4, 2, bias=True)
    x = torch.randn(2, 6, 16)
    full = layer(x, causal=True)
    with ablate_heads(layer, [(0, head)]):
        ablated = layer(x, causal=True)
    expected = _by_hand(layer, x)[:, head]
    torch.testing.assert_close(full - ablated, expected, atol=1e-5, rtol=1e-4)
    # and every other head's contribution is still there: nothing else changed
    others = [h for h in range(4) if h != head]
    assert not torch.allclose(full - ablated, _by_hand(layer, x)[:, others[0]], atol=1e-3)


def test_zeroing_several_heads_in_a_model_and_hooks_are_removed() -> None:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig.nano(vocab_size=11, n_layers=2, d_model=16, context_length=8)).eval()
    ids = torch.randint(11, (2, 8))
    before = model(ids)[0]
    with ablate_heads(model, [(1, 0), (1, 3)]):
        changed = model(ids)[0]
    assert not torch.allclose(before, changed)
    with ablate_heads(model, []):
        torch.testing.assert_close(model(ids)[0], before)
    torch.testing.assert_close(model(ids)[0], before)  # hooks gone after the block
    assert all(not m.o_proj._forward_pre_hooks for m in attention_layers(model))
    with pytest.raises(RuntimeError), ablate_heads(model, [(0, 1)]):
        raise RuntimeError("boom")
    assert all(not m.o_proj._forward_pre_hooks for m in attention_layers(model))


def test_zeroing_every_head_of_a_layer_equals_removing_its_attention() -> None:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig.nano(vocab_size=11, n_layers=2, d_model=16, context_length=8)).eval()
    ids = torch.randint(11, (2, 8))
    with ablate_heads(model, [(0, h) for h in range(4)]):
        ablated = model(ids)[0]
    original = model.blocks[0].attn.forward
    model.blocks[0].attn.forward = lambda x, **kw: torch.zeros_like(x)  # attention sublayer off
    try:
        removed = model(ids)[0]
    finally:
        model.blocks[0].attn.forward = original
    torch.testing.assert_close(ablated, removed, atol=1e-5, rtol=1e-4)


def test_ablation_losses_agree_with_single_runs_and_restore_the_mode() -> None:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig.nano(vocab_size=11, n_layers=2, d_model=16, context_length=8))
    model.train()
    ids, targets = torch.randint(11, (3, 8)), torch.randint(11, (3, 8))
    base, losses = head_ablation_losses(model, ids, targets)
    assert model.training and losses.shape == (2, 4)
    model.eval()
    with torch.no_grad():
        assert base == pytest.approx(float(model(ids, targets)[1]), abs=1e-6)
    with ablate_heads(model, [(1, 2)]), torch.no_grad():
        assert float(losses[1, 2]) == pytest.approx(float(model(ids, targets)[1]), abs=1e-6)
    assert (losses != base).all()


def test_bad_indices_and_models_without_attention_are_named() -> None:
    layer = _layer(4)
    with pytest.raises(ValueError, match="layer"), ablate_heads(layer, [(1, 0)]):
        pass
    with pytest.raises(ValueError, match="head"), ablate_heads(layer, [(0, 4)]):
        pass
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        attention_layers(torch.nn.Linear(2, 2))
