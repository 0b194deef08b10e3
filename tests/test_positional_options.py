"""RoPE layouts and scaling, and ALiBi as a model switch, against independent references.

References: complex-number rotation written in plain Python (RoPE), a per-head, per-entry loop
(ALiBi), and a permutation of the projection weights (interleaved vs half-split RoPE).
"""

import cmath
import math

import pytest
import torch

from utils.attention import KVCache, MultiHeadAttention
from utils.model import GPTConfig, TinyGPT
from utils.positional import apply_rope, rope_scaled


def rope_complex(x: torch.Tensor, positions: list[float], theta: float, interleaved: bool):
    """Rotate each feature pair, read as a complex number, by exp(i * position * freq_j)."""
    T, D = x.shape
    out = torch.empty(T, D, dtype=torch.float64)
    for t, pos in enumerate(positions):
        for j in range(D // 2):
            a, b = (2 * j, 2 * j + 1) if interleaved else (j, j + D // 2)
            turn = cmath.exp(1j * pos * theta ** (-2 * j / D))
            z = complex(x[t, a].item(), x[t, b].item()) * turn
            out[t, a], out[t, b] = z.real, z.imag
    return out.float()


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -----------------------------------------------------------------------------
# RoPE: interleaved layout and scaling rules


def test_interleaved_rope_matches_complex_reference() -> None:
    x = randn(6, 8)
    positions = [0, 1, 2, 7, 30, 500]
    out = apply_rope(x, torch.tensor(positions), theta=100.0, interleaved=True)
    torch.testing.assert_close(out, rope_complex(x, positions, 100.0, True), atol=1e-5, rtol=0)
    # and it is a different map from the half-split layout on the same input
    assert not torch.allclose(out, apply_rope(x, torch.tensor(positions), theta=100.0))


def test_interleaved_is_half_split_after_a_feature_permutation() -> None:
    D = 16
    x = randn(2, 5, D, seed=1)
    perm = torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])  # evens, then odds
    pos = torch.arange(5)
    half = apply_rope(x[..., perm], pos)  # interleaved pairs moved to (i, i + D/2)
    inter = apply_rope(x, pos, interleaved=True)
    torch.testing.assert_close(inter[..., perm], half)


def test_linear_scaling_divides_positions() -> None:
    x = randn(5, 8, seed=2)
    positions = [0, 3, 8, 64, 255]
    out = apply_rope(x, torch.tensor(positions), theta=10000.0, scaling="linear", factor=4.0)
    expected = rope_complex(x, [p / 4 for p in positions], 10000.0, False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_ntk_scaling_changes_the_base_so_the_slowest_pair_slows_by_factor() -> None:
    D, theta, factor = 8, 10000.0, 4.0
    new_theta = theta * factor ** (D / (D - 2))
    x = randn(4, D, seed=3)
    positions = [0, 5, 100, 250]
    out = apply_rope(x, torch.tensor(positions), theta, scaling="ntk", factor=factor)
    torch.testing.assert_close(out, rope_complex(x, positions, new_theta, False), atol=1e-5, rtol=0)
    _, theta_used = rope_scaled(torch.arange(3), D, theta, "ntk", factor)
    slowest_old, slowest_new = theta ** (-(D - 2) / D), theta_used ** (-(D - 2) / D)
    assert slowest_old / slowest_new == pytest.approx(factor)


def test_scaling_factor_one_is_a_no_op_and_bad_values_raise() -> None:
    x, pos = randn(3, 3, 8, seed=4), torch.arange(3)
    for rule in ("linear", "ntk"):
        torch.testing.assert_close(apply_rope(x, pos, scaling=rule, factor=1.0), apply_rope(x, pos))
    with pytest.raises(ValueError, match="unknown RoPE scaling 'yarn'"):
        apply_rope(x, pos, scaling="yarn", factor=2.0)
    with pytest.raises(ValueError, match="factor must be >= 1, got 0.5"):
        apply_rope(x, pos, scaling="linear", factor=0.5)
    with pytest.raises(ValueError, match="rope_scaling_factor must be >= 1, got 0.5"):
        GPTConfig(vocab_size=5, d_model=16, n_heads=2, rope_scaling="linear",
                  rope_scaling_factor=0.5)


def test_mha_scaled_rope_tables_past_the_precomputed_range() -> None:
    torch.manual_seed(0)
    kw = dict(rope_theta=100.0, use_fused=False, rope_scaling="linear", rope_scaling_factor=3.0)
    long_table = MultiHeadAttention(16, 2, max_positions=64, **kw).eval()
    short_table = MultiHeadAttention(16, 2, max_positions=4, **kw).eval()
    short_table.load_state_dict(long_table.state_dict())
    x = randn(1, 10, 16, seed=5)
    torch.testing.assert_close(short_table(x, causal=True), long_table(x, causal=True))


# -----------------------------------------------------------------------------
# ALiBi inside the attention layer and the model


def alibi_attention_loop(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Causal attention with ALiBi, one head and one score at a time (B = 1)."""
    T, H, hs = x.shape[1], mha.n_heads, mha.head_dim
    q = mha.q_proj(x)[0].view(T, H, hs)
    k = mha.k_proj(x)[0].view(T, H, hs)
    v = mha.v_proj(x)[0].view(T, H, hs)
    out = torch.zeros(T, H, hs)
    for h in range(H):
        slope = 2.0 ** (-8.0 * (h + 1) / H)  # H a power of two
        for i in range(T):
            scores = [float(q[i, h] @ k[j, h]) / math.sqrt(hs) - slope * (i - j)
                      for j in range(i + 1)]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            out[i, h] = sum(w / total * v[j, h] for j, w in enumerate(weights))
    return mha.o_proj(out.reshape(1, T, H * hs))


def test_mha_alibi_switch_matches_brute_force() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, alibi=True).eval()
    x = randn(1, 7, 16, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(mha(x, causal=True), alibi_attention_loop(mha, x),
                                   atol=1e-5, rtol=1e-4)


def tiny(position: str, **overrides: object) -> TinyGPT:
    torch.manual_seed(0)
    fields: dict[str, object] = dict(vocab_size=13, context_length=16, d_model=16, n_layers=2,
                                     n_heads=4, position=position)
    fields.update(overrides)
    return TinyGPT(GPTConfig(**fields)).eval()  # type: ignore[arg-type]


def test_alibi_model_is_causal_position_aware_and_has_no_position_parameters() -> None:
    alibi, none = tiny("alibi"), tiny("none")
    assert alibi.num_parameters() == none.num_parameters()
    idx = torch.randint(0, 13, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = alibi(idx)
        changed = idx.clone()
        changed[:, 6:] = (changed[:, 6:] + 1) % 13
        torch.testing.assert_close(alibi(changed)[0][:, :6], logits[:, :6])  # causal
        # the same weights without the bias give other logits: the bias is really applied
        none.load_state_dict(alibi.state_dict())
        assert not torch.allclose(none(idx)[0], logits, atol=1e-4)


def test_alibi_model_kv_cache_matches_full_forward() -> None:
    model = tiny("alibi")
    idx = torch.randint(0, 13, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, _ = model(idx)
        cache = KVCache(model.config.n_layers)
        steps = [model(idx[:, :4], cache=cache)[0]]
        steps += [model(idx[:, t : t + 1], cache=cache)[0] for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def test_interleaved_model_equals_half_split_model_with_permuted_projections() -> None:
    half = tiny("rope", rope_theta=100.0)
    inter = tiny("rope", rope_theta=100.0, rope_interleaved=True)
    H, hs = 4, 4
    # output feature (h, 2i) of an interleaved head plays the role of (h, i) of a half-split one
    perm = torch.cat([torch.arange(0, hs, 2), torch.arange(1, hs, 2)])
    rows = torch.cat([h * hs + perm for h in range(H)])
    state = half.state_dict()
    for name in list(state):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            inverse = torch.empty_like(rows)
            inverse[rows] = torch.arange(len(rows))
            state[name] = state[name][inverse]
    inter.load_state_dict(state)
    idx = torch.randint(0, 13, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(inter(idx)[0], half(idx)[0], atol=1e-5, rtol=1e-4)
        # with the unpermuted weights the two layouts disagree
        inter.load_state_dict(half.state_dict())
        assert not torch.allclose(inter(idx)[0], half(idx)[0], atol=1e-4)
