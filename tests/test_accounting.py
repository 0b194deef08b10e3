"""Tests of utils.accounting: formulas checked against counts made by PyTorch itself."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from utils.accounting import (
    activation_memory_bytes,
    attention_flops,
    count_parameters,
    flops_per_token,
    forward_flops,
    kv_cache_bytes,
)
from utils.model import GPTConfig, TinyGPT

CONFIGS = {
    "mha-swiglu": dict(),
    "gqa-swiglu": dict(n_kv_heads=2),
    "mha-gelu": dict(ffn="gelu", norm="layernorm", position="learned"),
    "gqa-relu-bias": dict(ffn="relu", n_kv_heads=1, bias=True, tie_embeddings=False),
    "odd-sizes": dict(d_model=96, n_heads=6, n_kv_heads=3, d_ff=200, n_layers=3),
}

# PyTorch's fused CPU attention kernel has no FLOP formula in FlopCounterMode (the CUDA
# kernels do); give it the one PyTorch uses for the CUDA kernels: two dense bmm's.
_CPU_SDPA = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
}


def _counted_flops(model: TinyGPT, batch: int, seq_len: int, mapping=None) -> int:
    idx = torch.randint(model.config.vocab_size, (batch, seq_len))
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(idx)
    return counter.get_total_flops()


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_flops_match_flop_counter(name: str, fused: bool) -> None:
    config = GPTConfig.nano(vocab_size=67, use_fused_attention=fused, **CONFIGS[name])
    model = TinyGPT(config).eval()
    batch, seq_len = 2, 48
    expected = forward_flops(config, seq_len)
    assert expected["total"] == sum(v for k, v in expected.items() if k != "total")
    counted = _counted_flops(model, batch, seq_len, mapping=_CPU_SDPA)
    assert counted == batch * expected["total"]
    if fused:
        # without the mapping the CPU kernel is invisible: only the scores are missing
        assert _counted_flops(model, batch, seq_len) == batch * (
            expected["total"] - expected["attention_scores"])


def test_forward_flops_components() -> None:
    config = GPTConfig.nano(vocab_size=100, ffn="gelu")  # d 128, 4 layers, d_ff 512
    f = forward_flops(config, seq_len=10)
    assert f["attention_proj"] == 4 * 2 * 10 * (4 * 128 * 128)
    assert f["attention_scores"] == 4 * attention_flops(10, 128) == 4 * 4 * 10 * 10 * 128
    assert f["ffn"] == 4 * 2 * 2 * 10 * 128 * 512
    assert f["lm_head"] == 2 * 10 * 128 * 100
    with pytest.raises(ValueError):
        forward_flops(config, 0)
    with pytest.raises(ValueError):
        attention_flops(0, 128)


def test_flops_per_token_is_about_six_n() -> None:
    config = GPTConfig.minimind2_small()
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = TinyGPT(config)
    fwd = flops_per_token(config, seq_len=1, backward=False)
    train = flops_per_token(config, seq_len=1)
    assert train == 3 * fwd
    # at T=1 the attention term is negligible: forward = 2 x (matmul parameters)
    n_matmul = count_parameters(model) - sum(
        p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert fwd == 2 * n_matmul + 4 * config.n_layers * config.d_model
    assert flops_per_token(config, 512) > flops_per_token(config, 1)  # attention grows with T


def test_backward_is_twice_forward_for_matmuls() -> None:
    config = GPTConfig.nano(vocab_size=50, use_fused_attention=False)
    model = TinyGPT(config)
    idx = torch.randint(50, (2, 32))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    # the embedding's gradient is a scatter, not a matmul, so the tied lm_head/embedding
    # matrix still gets exactly two backward matmuls
    assert counter.get_total_flops() == 2 * flops_per_token(config, 32) * 32


def test_count_parameters() -> None:
    with torch.device("meta"):
        model = TinyGPT(GPTConfig.minimind2_small())
    assert count_parameters(model) == 25_829_888 == model.num_parameters()
    model.tok_emb.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 25_829_888 - 6400 * 512
    untied = TinyGPT(GPTConfig.nano(vocab_size=10, tie_embeddings=False))
    tied = TinyGPT(GPTConfig.nano(vocab_size=10))
    assert count_parameters(untied) - count_parameters(tied) == 10 * 128


def test_kv_cache_bytes() -> None:
    config = GPTConfig.minimind2_small()  # 8 layers, 2 KV heads of 64
    assert kv_cache_bytes(config, 1, 1) == 2 * 8 * 2 * 64 * 2
    assert kv_cache_bytes(config, 3, 100, bytes_per_value=4) == 2 * 8 * 3 * 100 * 128 * 4
    # the cache of a real forward pass has exactly that many values
    from utils.attention import KVCache

    small = GPTConfig.nano(vocab_size=20, n_kv_heads=2)
    cache = KVCache(small.n_layers)
    TinyGPT(small)(torch.randint(20, (3, 10)), cache=cache)
    n_values = 0
    for layer in range(small.n_layers):
        empty = torch.zeros(3, 2, 0, small.head_dim)  # appending nothing returns the cache
        k_all, v_all = cache.update(layer, empty, empty)
        n_values += k_all.numel() + v_all.numel()
    assert kv_cache_bytes(small, 3, 10, bytes_per_value=4) == 4 * n_values
    with pytest.raises(ValueError):
        kv_cache_bytes(config, -1, 10)


def test_activation_memory_matches_korthikanti() -> None:
    # GPT-style layer (GELU MLP with f = 4h, dropout, stored scores, 16-bit values):
    # s b h (34 + 5 a s / h) bytes per layer (Korthikanti et al. 2022, eq. 1)
    s, b, h, a = 64, 3, 128, 4
    config = GPTConfig.nano(vocab_size=100, ffn="gelu", dropout=0.1, norm="layernorm")
    mem = activation_memory_bytes(config, b, s, store_attention_scores=True)
    assert mem["per_layer"] == s * b * h * 34 + 5 * a * s * s * b
    assert mem["total"] == 4 * mem["per_layer"] + mem["lm_head"]
    # a fused kernel does not keep the s x s scores; GQA shrinks the stored K and V
    fused = activation_memory_bytes(GPTConfig.nano(vocab_size=100), b, s)
    explicit = activation_memory_bytes(GPTConfig.nano(vocab_size=100, use_fused_attention=False),
                                       b, s)
    assert explicit["attention"] - fused["attention"] == 2 * a * s * s * b
    gqa = activation_memory_bytes(GPTConfig.nano(vocab_size=100, n_kv_heads=1), b, s)
    assert fused["attention"] - gqa["attention"] == 2 * 2 * s * b * (h - h // a)
    with pytest.raises(ValueError):
        activation_memory_bytes(config, 0, s)
