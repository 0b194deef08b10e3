"""Attention against independent references (PyTorch's own kernels and brute-force loops)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    linear_attention,
    repeat_kv,
    scaled_dot_product_attention,
)

ATOL = 1e-5


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -----------------------------------------------------------------------------
# masks and the explicit formula


def test_causal_mask_is_lower_triangle() -> None:
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)
    assert causal_mask(5).dtype == torch.bool


def test_sdpa_unmasked_matches_torch() -> None:
    q, k, v = rand(2, 3, 5, 8, seed=1), rand(2, 3, 7, 8, seed=2), rand(2, 3, 7, 4, seed=3)
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 4)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=ATOL, rtol=0)


def test_sdpa_matches_hand_computed_softmax() -> None:
    # one query, two keys: weights are softmax([q.k1, q.k2] / sqrt(2))
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[10.0], [20.0]])
    a = math.exp(1 / math.sqrt(2))
    w1 = a / (a + 1.0)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    torch.testing.assert_close(weights, torch.tensor([[w1, 1 - w1]]))
    torch.testing.assert_close(out, torch.tensor([[10 * w1 + 20 * (1 - w1)]]))


def test_sdpa_boolean_mask_matches_torch() -> None:
    q, k, v = rand(2, 4, 6, 8, seed=1), rand(2, 4, 6, 8, seed=2), rand(2, 4, 6, 8, seed=3)
    mask = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(4)) > 0.4
    mask |= torch.eye(6, dtype=torch.bool)  # every row keeps at least one key
    out = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_sdpa_causal_matches_torch_and_weights_are_causal() -> None:
    q, k, v = rand(3, 2, 5, 4, seed=1), rand(3, 2, 5, 4, seed=2), rand(3, 2, 5, 4, seed=3)
    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(5), return_weights=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert weights.shape == (3, 2, 5, 5)
    assert torch.all(weights.triu(diagonal=1) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))


def test_sdpa_gqa_matches_torch_enable_gqa_and_manual_repeat() -> None:
    q = rand(2, 8, 5, 4, seed=1)
    k, v = rand(2, 2, 5, 4, seed=2), rand(2, 2, 5, 4, seed=3)
    out = scaled_dot_product_attention(q, k, v, mask=causal_mask(5))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    # query head h reads kv head h // 4
    k_rep, v_rep = k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1)
    ref2 = F.scaled_dot_product_attention(q, k_rep, v_rep, is_causal=True)
    torch.testing.assert_close(out, ref2, atol=ATOL, rtol=0)


def test_sdpa_leading_batch_dims() -> None:
    q, k, v = rand(2, 3, 4, 5, 8, seed=1), rand(2, 3, 4, 6, 8, seed=2), rand(2, 3, 4, 6, 8, seed=3)
    out = scaled_dot_product_attention(q, k, v)
    ref = F.scaled_dot_product_attention(q.flatten(0, 2), k.flatten(0, 2), v.flatten(0, 2))
    torch.testing.assert_close(out, ref.view(2, 3, 4, 5, 8), atol=ATOL, rtol=0)
    # no batch dims at all
    out2 = scaled_dot_product_attention(q[0, 0, 0], k[0, 0, 0], v[0, 0, 0])
    torch.testing.assert_close(out2, out[0, 0, 0], atol=ATOL, rtol=0)


def test_sdpa_bias_is_added_to_scores() -> None:
    q, k, v = rand(2, 5, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 4, seed=3)
    bias = rand(2, 5, 5, seed=4)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # float masks are added
    out = scaled_dot_product_attention(q, k, v, bias=bias)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_sdpa_wrong_mask_shape_raises() -> None:
    q = k = v = rand(2, 4, 8)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) is not broadcastable"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be a bool tensor"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 4))


def test_sdpa_fully_masked_row_raises() -> None:
    q = k = v = rand(4, 8)
    mask = causal_mask(4)
    mask[2] = False
    with pytest.raises(ValueError, match="row 2 of the mask allows no key"):
        scaled_dot_product_attention(q, k, v, mask=mask)


def test_sdpa_gqa_heads_must_divide() -> None:
    with pytest.raises(ValueError, match="multiple of key/value heads, got 6 and 4"):
        scaled_dot_product_attention(rand(1, 6, 3, 4), rand(1, 4, 3, 4), rand(1, 4, 3, 4))


def test_repeat_kv_equals_repeat_interleave() -> None:
    x = rand(2, 3, 5, 4)
    torch.testing.assert_close(repeat_kv(x, 4), x.repeat_interleave(4, dim=1))
    assert repeat_kv(x, 1) is x


# -----------------------------------------------------------------------------
# KV cache


def test_kv_cache_appends_along_time() -> None:
    cache = KVCache(n_layers=2)
    assert cache.length == 0
    k1, v1 = rand(1, 2, 3, 4, seed=1), rand(1, 2, 3, 4, seed=2)
    k2, v2 = rand(1, 2, 1, 4, seed=3), rand(1, 2, 1, 4, seed=4)
    cache.update(0, k1, v1)
    k_all, v_all = cache.update(0, k2, v2)
    assert cache.length == 4
    torch.testing.assert_close(k_all, torch.cat([k1, k2], dim=2))
    torch.testing.assert_close(v_all, torch.cat([v1, v2], dim=2))
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\), got 2"):
        cache.update(2, k1, v1)
    cache.reset()
    assert cache.length == 0


# -----------------------------------------------------------------------------
# MultiHeadAttention vs torch.nn.MultiheadAttention


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("use_fused", [True, False])
def test_mha_matches_torch_multihead_attention(bias: bool, use_fused: bool) -> None:
    torch.manual_seed(0)
    d, h, T = 16, 4, 7
    ours = MultiHeadAttention(d, h, bias=bias, use_fused=use_fused).eval()
    ref = nn.MultiheadAttention(d, h, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        for p in ours.parameters():  # non-trivial biases too
            p.normal_()
        ref.in_proj_weight.copy_(
            torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
        )
        ref.out_proj.weight.copy_(ours.o_proj.weight)
        if bias:
            qkv_bias = [ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]
            ref.in_proj_bias.copy_(torch.cat(qkv_bias))
            ref.out_proj.bias.copy_(ours.o_proj.bias)
    x = rand(3, T, d, seed=5)
    # nn.MultiheadAttention's boolean mask means "may NOT attend": the opposite convention
    blocked = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    expected, _ = ref(x, x, x, attn_mask=blocked, need_weights=False)
    torch.testing.assert_close(ours(x, causal=True), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours(x, mask=~blocked), expected, atol=1e-4, rtol=1e-4)
    expected_full, _ = ref(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected_full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("rope_theta", [None, 10000.0])
def test_mha_fused_and_explicit_paths_agree(n_kv_heads: int, rope_theta: float | None) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads, rope_theta=rope_theta).eval()
    x = rand(2, 9, 32, seed=1)
    fused = mha(x, causal=True)
    mha.use_fused = False
    explicit = mha(x, causal=True)
    torch.testing.assert_close(fused, explicit, atol=ATOL, rtol=0)
    # return_weights forces the explicit path even when fused is on
    mha.use_fused = True
    out, weights = mha(x, causal=True, return_weights=True)
    torch.testing.assert_close(out, fused, atol=ATOL, rtol=0)
    assert weights.shape == (2, 4, 9, 9)
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_mha_gqa_equals_mha_with_duplicated_kv_weights() -> None:
    # GQA with 2 kv heads == MHA whose k/v projections repeat each kv head twice
    torch.manual_seed(0)
    d, h, hs = 16, 4, 4
    gqa = MultiHeadAttention(d, h, n_kv_heads=2).eval()
    mha = MultiHeadAttention(d, h).eval()
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.view(2, hs, d).repeat_interleave(2, dim=0)
            getattr(mha, name).weight.copy_(w.reshape(h * hs, d))
    x = rand(2, 6, d, seed=2)
    torch.testing.assert_close(gqa(x, causal=True), mha(x, causal=True), atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_fused", [True, False])
def test_mha_with_cache_matches_full_sequence(use_fused: bool) -> None:
    # decode in chunks of 3, 1 and 2 tokens: every chunk's outputs equal the full causal pass
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, n_kv_heads=2, rope_theta=100.0, use_fused=use_fused).eval()
    x = rand(2, 6, 16, seed=3)
    full = mha(x, causal=True)
    cache = KVCache(1)
    outs, start = [], 0
    for size in (3, 1, 2):
        outs.append(mha(x[:, start : start + size], causal=True, cache=cache, start_pos=start))
        start += size
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=ATOL, rtol=0)
    assert cache.length == 6


def test_mha_alibi_bias_matches_reference() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = rand(1, 5, 16, seed=1)
    bias = rand(4, 5, 5, seed=2)
    out = mha(x, causal=True, alibi=bias)
    q = mha.q_proj(x).view(1, 5, 4, 4).transpose(1, 2)
    k = mha.k_proj(x).view(1, 5, 4, 4).transpose(1, 2)
    v = mha.v_proj(x).view(1, 5, 4, 4).transpose(1, 2)
    causal_bias = bias.masked_fill(~causal_mask(5), float("-inf"))
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_bias)
    ref = mha.o_proj(y.transpose(1, 2).reshape(1, 5, 16))
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_mha_bad_config_and_mask_raise() -> None:
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads, got d_model=10"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="n_heads must be divisible by n_kv_heads, got n_heads=4"):
        MultiHeadAttention(16, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="head_dim must be even, got head_dim=3"):
        MultiHeadAttention(12, 4, rope_theta=10000.0)
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\) is not broadcastable"):
        mha(rand(1, 4, 16), mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 16\), got \(1, 4, 8\)"):
        mha(rand(1, 4, 8))


# -----------------------------------------------------------------------------
# linear attention


def phi(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


def test_linear_attention_causal_matches_brute_force_loop() -> None:
    q, k, v = rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(2, 6, 3, seed=3)
    out = linear_attention(q, k, v, causal=True)
    ref = torch.zeros(2, 6, 3)
    for b in range(2):
        for i in range(6):
            num, den = torch.zeros(3), torch.tensor(0.0)
            for j in range(i + 1):  # only keys at or before i
                sim = phi(q[b, i]) @ phi(k[b, j])
                num += sim * v[b, j]
                den += sim
            ref[b, i] = num / (den + 1e-6)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-5)


def test_linear_attention_noncausal_matches_matrix_form() -> None:
    q, k, v = rand(2, 3, 7, 4, seed=1), rand(2, 3, 7, 4, seed=2), rand(2, 3, 7, 5, seed=3)
    sim = phi(q) @ phi(k).transpose(-2, -1)  # (..., T, T): the quadratic form
    ref = (sim @ v) / (sim.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(linear_attention(q, k, v), ref, atol=ATOL, rtol=1e-5)


def test_linear_attention_causal_output_ignores_future() -> None:
    q, k, v = rand(1, 6, 4, seed=1), rand(1, 6, 4, seed=2), rand(1, 6, 4, seed=3)
    out = linear_attention(q, k, v, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:], v2[:, 4:] = 100.0, -100.0
    torch.testing.assert_close(linear_attention(q, k2, v2, causal=True)[:, :4], out[:, :4])


def test_linear_attention_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="same feature size, got 4 and 3"):
        linear_attention(rand(5, 4), rand(5, 3), rand(5, 2))
    with pytest.raises(ValueError, match="needs Tq == Tk, got 5 and 6"):
        linear_attention(rand(5, 4), rand(6, 4), rand(6, 2), causal=True)
