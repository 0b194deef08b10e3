"""Every KV-cache variant (preallocated, int8, paged, forked) against the uncached loop."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from utils.attention import KVCache, dequantize_int8, quantize_int8
from utils.generation import generate
from utils.model import TinyGPT
from utils.paged_cache import BlockPool, PagedKVCache


def gqa_model(dtype: torch.dtype = torch.float64, **overrides: object) -> TinyGPT:
    """The shared tiny model with grouped-query attention (2 KV heads), float64 by default."""
    return tiny_model(dtype, **{"n_kv_heads": 2, **overrides})


PROMPT = torch.randint(0, 13, (2, 4), generator=torch.Generator().manual_seed(1))


def make_cache(kind: str, n_layers: int):
    if kind == "grow":
        return KVCache(n_layers)
    if kind == "prealloc":
        return KVCache(n_layers, max_length=16)
    if kind == "paged":
        return PagedKVCache(BlockPool(n_layers, n_blocks=32, block_size=3))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["grow", "prealloc", "paged"])
@pytest.mark.parametrize("overrides", [dict(), dict(n_kv_heads=1), dict(position="learned")])
def test_every_cache_generates_the_uncached_tokens(kind: str, overrides: dict) -> None:
    model = gqa_model(**overrides)
    # 4 + 20 tokens: past the 16-token context, so the cache is reset and rebuilt too
    uncached = generate(model, PROMPT, 20, temperature=0.0, use_cache=False)
    cached = generate(model, PROMPT, 20, temperature=0.0, cache=make_cache(kind, 2))
    assert torch.equal(cached, uncached)
    assert len(set(uncached[0, 4:].tolist())) > 1  # not a degenerate constant sequence


@pytest.mark.parametrize("kind", ["grow", "prealloc", "paged"])
def test_cached_logits_equal_full_pass_logits(kind: str) -> None:
    model = gqa_model()
    idx = torch.randint(0, 13, (2, 11), generator=torch.Generator().manual_seed(2))
    full, _ = model(idx)
    cache = make_cache(kind, 2)
    parts, start = [], 0
    for size in (5, 1, 1, 3, 1):  # prefill, then steps of different sizes
        logits, _ = model(idx[:, start : start + size], cache=cache)
        parts.append(logits)
        start += size
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-10, rtol=0)
    assert cache.length == 11


def test_preallocated_cache_does_not_reallocate_per_step() -> None:
    model = gqa_model()
    grow = KVCache(2)
    generate(model, PROMPT, 11, temperature=0.0, cache=grow)  # 15 tokens, inside the context
    # doubling: one allocation per layer for the prompt (capacity 16) and none after that
    assert grow.n_allocations == 2
    fixed = KVCache(2, max_length=16)
    generate(model, PROMPT, 11, temperature=0.0, cache=fixed)
    assert fixed.n_allocations == 2
    # keys and values are views of the filled part; bytes count only the filled part
    assert fixed.keys[0].shape == (2, 2, 14, 8)
    assert fixed.nbytes == 2 * 2 * (2 * 2 * 14 * 8) * 8
    assert fixed.allocated_bytes == 2 * 2 * (2 * 2 * 16 * 8) * 8


def test_cache_rejects_a_batch_that_does_not_continue_it() -> None:
    cache = KVCache(1)
    cache.update(0, torch.zeros(2, 2, 3, 4), torch.zeros(2, 2, 3, 4))
    with pytest.raises(ValueError, match="do not continue"):
        cache.update(0, torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))
    with pytest.raises(ValueError, match="quantize"):
        KVCache(1, quantize="int4")


def test_int8_round_trip_error_is_at_most_half_a_step() -> None:
    x = torch.randn(3, 4, 5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0] = 0.0  # an all-zero vector must survive
    codes, scale = quantize_int8(x)
    assert codes.dtype == torch.int8 and scale.shape == (3, 4, 5, 1)
    assert int(codes.abs().max()) == 127
    err = (dequantize_int8(codes, scale) - x).abs()
    assert bool((err <= scale / 2 + 1e-12).all())
    assert bool((dequantize_int8(codes, scale)[0, 0, 0] == 0).all())


@torch.no_grad()
def test_int8_cache_logits_within_tolerance_and_a_quarter_of_the_fp32_bytes() -> None:
    model = gqa_model(torch.float32)
    idx = torch.randint(0, 13, (2, 12), generator=torch.Generator().manual_seed(3))
    full, _ = model(idx)
    plain, q8 = KVCache(2), KVCache(2, quantize="int8")
    for cache in (plain, q8):
        model(idx[:, :6], cache=cache)
    out_plain = torch.cat([model(idx[:, t : t + 1], cache=plain)[0] for t in range(6, 12)], 1)
    out_q8 = torch.cat([model(idx[:, t : t + 1], cache=q8)[0] for t in range(6, 12)], 1)
    torch.testing.assert_close(out_plain, full[:, 6:], atol=1e-4, rtol=0)
    err = (out_q8 - full[:, 6:]).abs().max() / full.abs().max()
    assert 0 < float(err) < 0.02  # quantised: not exact, but close
    # codes are 1 byte per value (a quarter of float32), plus one float32 scale per 8 values
    assert q8.nbytes == plain.nbytes // 4 + plain.nbytes // 8


def test_int8_cache_greedy_tokens_match_on_a_sharp_model() -> None:
    model = gqa_model(torch.float32)
    uncached = generate(model, PROMPT, 10, temperature=0.0, use_cache=False)
    q8 = generate(model, PROMPT, 10, temperature=0.0, cache=KVCache(2, quantize="int8"))
    assert float((q8 == uncached).float().mean()) >= 0.9


def test_paged_cache_allocates_blocks_lazily_and_returns_them() -> None:
    model = gqa_model()
    pool = BlockPool(2, n_blocks=10, block_size=4)
    cache = PagedKVCache(pool)
    model(PROMPT[:, :3], cache=cache)  # 3 steps: one block per sequence
    assert pool.n_used == 2 and cache.n_blocks == 2
    model(PROMPT[:, 3:4], cache=cache)  # 4 steps: still one block
    assert pool.n_used == 2
    model(PROMPT[:, :1], cache=cache)  # 5 steps: a second block each
    assert pool.n_used == 4
    assert pool.bytes_per_block() == 2 * 2 * 2 * 4 * 8 * 8  # k and v, layers, heads, bs, D
    cache.reset()
    assert pool.n_free == 10
    with pytest.raises(RuntimeError, match="in use"):
        model(PROMPT, cache=PagedKVCache(BlockPool(2, n_blocks=1, block_size=2)))


def test_forked_caches_share_the_prefix_and_copy_on_write() -> None:
    model = gqa_model()
    prompt = PROMPT[:1, :4]  # 4 steps fill one block of 3 and a third of the next
    pool = BlockPool(2, n_blocks=8, block_size=3)
    a = PagedKVCache(pool)
    model(prompt, cache=a)
    b = a.fork()
    assert pool.n_used == 2  # shared, not copied
    ta, tb = torch.tensor([[5]]), torch.tensor([[7]])
    la, _ = model(ta, cache=a)  # writes into the shared partial block: copied first
    lb, _ = model(tb, cache=b)
    assert pool.n_used == 3  # full block shared, the partial one now private to each
    assert a.block_tables[0][0] == b.block_tables[0][0]
    assert a.block_tables[0][1] != b.block_tables[0][1]
    ref_a, _ = model(torch.cat([prompt, ta], 1))
    ref_b, _ = model(torch.cat([prompt, tb], 1))
    torch.testing.assert_close(la[:, -1], ref_a[:, -1], atol=1e-10, rtol=0)
    torch.testing.assert_close(lb[:, -1], ref_b[:, -1], atol=1e-10, rtol=0)
    a.reset()
    b.reset()
    assert pool.n_free == 8
