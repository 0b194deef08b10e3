"""Tests for utils/diagnostics.py against brute force and hand-computed references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from utils.diagnostics import (
    ffn_activations,
    future_dependence,
    layer_grad_norms,
    remove_ffn,
    set_attention_mask,
)
from utils.model import GPTConfig, TinyGPT


def _model(**overrides) -> TinyGPT:
    torch.manual_seed(0)
    fields = dict(n_layers=3, d_model=16, n_heads=2, context_length=12)
    fields.update(overrides)
    return TinyGPT(GPTConfig.nano(11, **fields)).eval()


def _batch(T: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 11, (2, T), generator=g), torch.randint(0, 11, (2, T), generator=g)


def test_layer_grad_norms_match_autograd():
    model = _model()
    idx, targets = _batch()
    norms = layer_grad_norms(model, idx, targets)
    _, loss = model(idx, targets)
    params = [list(b.parameters()) for b in model.blocks]
    grads = torch.autograd.grad(loss, [p for ps in params for p in ps])
    expected, i = [], 0
    for ps in params:
        g = grads[i : i + len(ps)]
        i += len(ps)
        expected.append(torch.sqrt(sum((x.double() ** 2).sum() for x in g)))
    assert norms.shape == (3,)
    assert torch.allclose(norms.double(), torch.stack(expected), rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # grads cleared afterwards


def test_causal_model_has_no_leak():
    dep = future_dependence(_model(), torch.arange(10) % 11)
    assert torch.equal(dep, torch.ones(10, 10, dtype=torch.bool).tril())


@pytest.mark.parametrize("kind, expected", [
    ("none", torch.ones(10, 10, dtype=torch.bool)),
    ("off_by_one", torch.ones(10, 10, dtype=torch.bool).tril()),  # checked below
])
def test_masks_are_swapped_and_restored(kind, expected):
    model = _model()
    idx = torch.arange(10) % 11
    dep = future_dependence(set_attention_mask(model, kind), idx)
    if kind == "none":
        assert torch.equal(dep, expected)
    else:
        # one step of the future per layer: 3 layers let position i see up to i + 3
        assert torch.equal(dep, torch.ones(10, 10, dtype=torch.bool).tril(3))
    set_attention_mask(model, "causal")
    assert torch.equal(future_dependence(model, idx), torch.ones(10, 10, dtype=torch.bool).tril())


def test_unmasked_attention_matches_bidirectional_reference():
    model = set_attention_mask(_model(n_layers=1), "none")
    attn = model.blocks[0].attn
    x = torch.randn(2, 6, 16)
    q = attn.q_proj(x).view(2, 6, 2, 8).transpose(1, 2)
    k = attn.k_proj(x).view(2, 6, 2, 8).transpose(1, 2)
    v = attn.v_proj(x).view(2, 6, 2, 8).transpose(1, 2)
    q, k = attn._rope(q, 0), attn._rope(k, 0)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 6, 16)
    assert torch.allclose(attn(x, causal=True), attn.o_proj(ref), atol=1e-6)


def test_bad_mask_kind_and_cache_raise():
    with pytest.raises(ValueError, match="unknown mask kind"):
        set_attention_mask(_model(), "random")
    from utils.attention import KVCache
    model = set_attention_mask(_model(), "none")
    with pytest.raises(ValueError, match="not caching"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=KVCache(3))


def test_remove_ffn_equals_attention_only_block():
    model = _model(n_layers=1)
    idx, _ = _batch()
    block = model.blocks[0]
    x = model.tok_emb(idx)
    expected = x + block.attn(block.norm1(x), causal=True)
    expected = model.lm_head(model.norm_f(expected))
    remove_ffn(model)
    assert sum(p.numel() for p in block.ffn.parameters()) == 0
    assert torch.allclose(model(idx)[0], expected, atol=1e-6)


@pytest.mark.parametrize("ffn", ["swiglu", "gelu", "relu"])
def test_ffn_activations_match_manual(ffn):
    model = _model(ffn=ffn)
    idx, _ = _batch()
    acts = ffn_activations(model, idx, layer=1)
    # recompute by hand: the stream entering block 1, its norm2, then the FFN's first half
    with torch.no_grad():
        x = model.tok_emb(idx)
        x = model.blocks[0](x)
        b = model.blocks[1]
        h = x + b.attn(b.norm1(x), causal=True)
        n = b.norm2(h)
        if ffn == "swiglu":
            ref = F.silu(b.ffn.gate_proj(n)) * b.ffn.up_proj(n)
        else:
            act = F.gelu if ffn == "gelu" else F.relu
            ref = act(b.ffn.fc(n))
    assert acts.shape == (2, 8, model.config.d_ff)
    assert torch.allclose(acts, ref, atol=1e-6)
    with pytest.raises(ValueError):
        ffn_activations(model, idx, layer=3)
