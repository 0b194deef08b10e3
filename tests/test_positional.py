"""Position encodings against their formulas, written independently in plain Python."""

import math

import pytest
import torch

from utils.positional import (
    LearnedPositionalEmbedding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_frequencies,
    sinusoidal_table,
)

# -----------------------------------------------------------------------------
# sinusoidal and learned


def test_sinusoidal_table_matches_formula() -> None:
    n, d = 50, 16
    table = sinusoidal_table(n, d)
    assert table.shape == (n, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_table_custom_base_and_odd_width() -> None:
    table = sinusoidal_table(4, 4, base=100.0)
    assert table[3, 2].item() == pytest.approx(math.sin(3 / 100 ** (2 / 4)), abs=1e-6)
    with pytest.raises(ValueError, match="d_model must be even.*d_model=5"):
        sinusoidal_table(4, 5)


def test_learned_positional_embedding_lookup_and_range() -> None:
    emb = LearnedPositionalEmbedding(8, 4)
    out = emb(torch.tensor([0, 3, 7]))
    assert out.shape == (3, 4)
    torch.testing.assert_close(out[1], emb.weight[3])
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 8\), got min=2, max=8"):
        emb(torch.tensor([2, 8]))


# -----------------------------------------------------------------------------
# RoPE


def rope_complex_reference(x: torch.Tensor, positions: list[int], theta: float) -> torch.Tensor:
    """Pairs (x_i, x_{i + D/2}) as complex numbers, each times exp(i * pos * theta_i)."""
    d = x.shape[-1]
    half = d // 2
    out = torch.empty_like(x, dtype=torch.float64)
    for t, pos in enumerate(positions):
        for i in range(half):
            freq = theta ** (-2 * i / d)
            z = complex(x[..., t, i].item(), x[..., t, i + half].item())
            z *= complex(math.cos(pos * freq), math.sin(pos * freq))
            out[..., t, i], out[..., t, i + half] = z.real, z.imag
    return out.float()


def test_rope_frequencies_formula_and_odd_dim() -> None:
    freqs = rope_frequencies(8, theta=10000.0)
    expected = torch.tensor([10000 ** (-2 * i / 8) for i in range(4)])
    torch.testing.assert_close(freqs, expected)
    with pytest.raises(ValueError, match="head_dim must be even, got head_dim=7"):
        rope_frequencies(7)


def test_rope_matches_complex_number_reference() -> None:
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    positions = [0, 1, 4, 9, 100]
    out = apply_rope(x, torch.tensor(positions), theta=100.0)
    torch.testing.assert_close(out, rope_complex_reference(x, positions, 100.0), atol=1e-5, rtol=0)


def test_rope_preserves_norm_shape_and_dtype() -> None:
    x = torch.randn(2, 3, 7, 16)
    out = apply_rope(x, torch.arange(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(apply_rope(x, torch.zeros(7, dtype=torch.long)), x)  # angle 0
    xb = x.bfloat16()
    assert apply_rope(xb, torch.arange(7)).dtype == torch.bfloat16


def test_rope_dot_product_depends_only_on_offset() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 16, generator=g), torch.randn(1, 16, generator=g)

    def score(i: int, j: int) -> float:
        qi = apply_rope(q, torch.tensor([i]))
        kj = apply_rope(k, torch.tensor([j]))
        return (qi @ kj.T).item()

    for offset in (0, 1, 3, 10):
        scores = [score(i, i + offset) for i in (0, 5, 17, 60)]
        assert scores == pytest.approx([scores[0]] * 4, abs=1e-4)
    by_offset = [score(0, offset) for offset in (0, 1, 3, 10)]
    gaps = [abs(a - b) for n, a in enumerate(by_offset) for b in by_offset[n + 1 :]]
    assert min(gaps) > 1e-3  # different offsets give different scores


def test_rope_rejects_odd_dim_and_wrong_positions() -> None:
    with pytest.raises(ValueError, match="head_dim must be even, got head_dim=5"):
        apply_rope(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) = \(3,\), got \(4,\)"):
        apply_rope(torch.randn(3, 4), torch.arange(4))


# -----------------------------------------------------------------------------
# ALiBi


def test_alibi_slopes_power_of_two() -> None:
    expected = [1 / 2**i for i in range(1, 9)]  # 1/2, 1/4, ..., 1/256
    assert alibi_slopes(8).tolist() == pytest.approx(expected)
    assert alibi_slopes(4).tolist() == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256])


def test_alibi_slopes_non_power_of_two_follow_reference_recipe() -> None:
    # 6 heads: the 4-head slopes, then every other slope (indices 0 and 2) of the 8-head sequence
    eight = [1 / 2**i for i in range(1, 9)]
    expected = [1 / 4, 1 / 16, 1 / 64, 1 / 256] + [eight[0], eight[2]]
    assert alibi_slopes(6).tolist() == pytest.approx(expected)
    with pytest.raises(ValueError, match="n_heads must be >= 1, got 0"):
        alibi_slopes(0)


def test_alibi_bias_values() -> None:
    bias = alibi_bias(2, 3)
    assert bias.shape == (2, 3, 3)
    slope = alibi_slopes(2)[1].item()  # 1/16
    for i in range(3):
        for j in range(3):
            expected = -slope * (i - j) if j <= i else 0.0
            assert bias[1, i, j].item() == pytest.approx(expected)
    # decoding one query against 4 keys: the query sits at position 3
    last = alibi_bias(2, 1, 4)
    torch.testing.assert_close(last[:, 0], alibi_bias(2, 4)[:, 3])
    with pytest.raises(ValueError, match="n_q=3, n_k=2"):
        alibi_bias(2, 3, 2)
