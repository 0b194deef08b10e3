"""Ways to tell a transformer where each token is.

Attention by itself is permutation-equivariant: shuffle the tokens and the outputs shuffle the
same way. Position information has to be injected from outside. This module collects the four
classic answers, in historical order:

1. sinusoidal absolute positions added to the embeddings (Vaswani et al., 2017),
2. learned absolute positions (GPT-2),
3. rotary position embeddings, RoPE, applied to queries and keys (Su et al., 2021; Llama, MiniMind),
4. ALiBi, a linear distance penalty added to the attention scores (Press et al., 2022).

RoPE comes in two layouts (rotate-half pairs ``(i, i + D/2)`` and interleaved pairs
``(2i, 2i + 1)``) and with two rules for stretching a trained context (position interpolation
and "NTK-aware" base scaling), see :func:`apply_rope` and :func:`rope_scaled`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

# -----------------------------------------------------------------------------
# Absolute positions: a vector per position, added to the token embedding


def sinusoidal_table(n_positions: int, d_model: int, base: float = 10000.0) -> Tensor:
    """Fixed sinusoidal position encodings of "Attention Is All You Need".

    Column ``2i`` holds ``sin(pos / base**(2i / d_model))`` and column ``2i + 1`` the matching
    cosine, so every frequency appears once as a (sin, cos) pair.

    Args:
        n_positions: Number of positions (rows).
        d_model: Embedding width (columns); must be even.
        base: Longest wavelength is ``2 * pi * base``.

    Returns:
        Float tensor of shape ``(n_positions, d_model)``.

    Raises:
        ValueError: If ``d_model`` is odd or a size is not positive.
    """
    if d_model % 2 != 0:
        raise ValueError(f"d_model must be even for sin/cos pairs, got d_model={d_model}")
    if n_positions < 1 or d_model < 1:
        raise ValueError(
            f"sizes must be positive, got n_positions={n_positions}, d_model={d_model}"
        )
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (D/2,)
    angles = position * inv_freq  # (P, D/2)
    table = torch.empty(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    # float64 while building: positions in the thousands times small frequencies lose digits
    return table.float()


class LearnedPositionalEmbedding(nn.Module):
    """One trainable vector per absolute position (GPT-2 style).

    Args:
        max_len: Number of positions that have a vector; longer inputs cannot be encoded.
        d_model: Embedding width.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, positions: Tensor) -> Tensor:
        """Look up the vectors of ``positions``.

        Args:
            positions: Integer tensor of shape ``(T,)``.

        Returns:
            Tensor of shape ``(T, d_model)``.

        Raises:
            ValueError: If a position is negative or ``>= max_len``.
        """
        # the check reads tensor values (a device sync on GPU); TinyGPT slices weight directly
        if positions.numel() > 0 and (positions.min() < 0 or positions.max() >= self.max_len):
            raise ValueError(
                f"positions must lie in [0, {self.max_len}), got min={int(positions.min())}, "
                f"max={int(positions.max())}"
            )
        return self.weight[positions]


# -----------------------------------------------------------------------------
# RoPE: rotate each (x_i, x_{i + D/2}) pair of q and k by an angle proportional to position


def rope_frequencies(head_dim: int, theta: float = 10000.0) -> Tensor:
    """Inverse frequencies ``theta**(-2i / head_dim)`` for ``i = 0 .. head_dim/2 - 1``.

    Args:
        head_dim: Size of one attention head; must be even.
        theta: Base; larger values give longer wavelengths (MiniMind uses ``1e6``).

    Returns:
        Float tensor of shape ``(head_dim // 2,)``.

    Raises:
        ValueError: If ``head_dim`` is odd.
    """
    if head_dim % 2 != 0:
        raise ValueError(
            f"RoPE rotates pairs of features, so head_dim must be even, got head_dim={head_dim}"
        )
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return (1.0 / theta**exponents).float()


ROPE_SCALINGS = (None, "linear", "ntk")


def rope_scaled(
    positions: Tensor, head_dim: int, theta: float, scaling: str | None = None, factor: float = 1.0
) -> tuple[Tensor, float]:
    """Positions and base after a context-extension rule for RoPE.

    - ``"linear"``, position interpolation (Chen et al., 2023): positions are divided by
      ``factor``, so ``factor`` times more positions fit into the trained range of angles.
    - ``"ntk"``, "NTK-aware" scaling (bloc97, 2023): the base becomes
      ``theta * factor**(head_dim / (head_dim - 2))``; the fastest pair keeps its frequency and
      the slowest one is slowed down by exactly ``factor``.

    Args:
        positions: Tensor of shape ``(T,)``.
        head_dim: Size of one attention head.
        theta: RoPE base.
        scaling: None (no change), ``"linear"`` or ``"ntk"``.
        factor: How many times longer than the training context to reach; ``>= 1``.

    Returns:
        ``(positions, theta)`` to use instead of the inputs (positions float64 if changed).

    Raises:
        ValueError: If ``scaling`` is unknown or ``factor < 1``.
    """
    if scaling not in ROPE_SCALINGS:
        raise ValueError(f"unknown RoPE scaling {scaling!r}; choose from {ROPE_SCALINGS}")
    if not factor >= 1.0:
        raise ValueError(f"the scaling factor must be >= 1, got {factor}")
    if scaling == "linear":
        return positions.to(torch.float64) / factor, theta
    if scaling == "ntk" and head_dim > 2:
        return positions, theta * factor ** (head_dim / (head_dim - 2))
    return positions, theta


def rope_cos_sin(
    positions: Tensor, head_dim: int, theta: float = 10000.0, interleaved: bool = False
) -> tuple[Tensor, Tensor]:
    """Cosine and sine tables for :func:`apply_rope_cos_sin`.

    Computing the tables once and slicing them (as :class:`~utils.attention.MultiHeadAttention`
    does) avoids recomputing ``head_dim / 2`` sines per position in every layer and step.

    Args:
        positions: Tensor of shape ``(T,)``, integer or float.
        head_dim: Size of one attention head; must be even.
        theta: RoPE base.
        interleaved: Build the tables for the interleaved layout (pairs ``(2i, 2i + 1)``).

    Returns:
        ``(cos, sin)``, each float32 of shape ``(T, head_dim)``. In the rotate-half layout the
        second half of the columns repeats the first; interleaved, each angle appears twice in a
        row (columns ``2i`` and ``2i + 1``).
    """
    inv_freq = rope_frequencies(head_dim, theta).to(positions.device)
    # float64 angles: position 30000 times frequency 1 must keep its fractional part
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq.double()  # (T, D/2)
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)  # (T, D): a0 a0 a1 a1 ...
    else:
        angles = torch.cat([angles, angles], dim=-1)  # (T, D): a0 a1 ... a0 a1 ...
    return angles.cos().float(), angles.sin().float()


def _rotate_half(x: Tensor) -> Tensor:
    # (x1, x2) -> (-x2, x1): multiplying a pair by i when it is read as the complex x1 + i x2
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def _rotate_pairs(x: Tensor) -> Tensor:
    # the same multiplication by i for neighbouring pairs: (x0, x1, x2, x3) -> (-x1, x0, -x3, x2)
    pairs = x.unflatten(-1, (-1, 2))  # (..., D/2, 2)
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)


def apply_rope_cos_sin(x: Tensor, cos: Tensor, sin: Tensor, interleaved: bool = False) -> Tensor:
    """Rotate ``x`` with precomputed tables from :func:`rope_cos_sin`.

    Args:
        x: Tensor of shape ``(..., T, head_dim)``.
        cos: Tensor broadcastable to ``x``, usually ``(T, head_dim)``.
        sin: Same shape as ``cos``.
        interleaved: Pairs are ``(2i, 2i + 1)`` (GPT-J, original Llama) instead of
            ``(i, i + D/2)``; the tables must have been built with the same layout.

    Returns:
        Tensor with the shape and dtype of ``x``.
    """
    # in the tables' float32 even under bf16 autocast, then back to x's dtype for the matmuls
    turned = _rotate_pairs(x) if interleaved else _rotate_half(x)
    rotated = x * cos + turned * sin
    return rotated.to(x.dtype)


def apply_rope(
    x: Tensor,
    positions: Tensor,
    theta: float = 10000.0,
    interleaved: bool = False,
    scaling: str | None = None,
    factor: float = 1.0,
) -> Tensor:
    """Apply rotary position embeddings (rotate-half convention of Llama and MiniMind).

    Feature pairs ``(x[..., i], x[..., i + D/2])`` are rotated by the angle
    ``position * theta**(-2i / D)``. Rotations preserve norms, and the dot product of a query
    rotated at position ``m`` with a key rotated at ``n`` depends only on ``n - m``.

    Args:
        x: Tensor of shape ``(..., T, head_dim)`` with ``head_dim`` even.
        positions: Tensor of shape ``(T,)``, integer or float.
        theta: RoPE base.
        interleaved: Rotate neighbouring pairs ``(x[..., 2i], x[..., 2i + 1])`` instead (the
            layout of GPT-J and of the original Llama checkpoints).
        scaling: None, ``"linear"`` or ``"ntk"``: a context-extension rule, see
            :func:`rope_scaled`.
        factor: The factor of that rule.

    Returns:
        Tensor with the shape and dtype of ``x``.

    Raises:
        ValueError: If ``head_dim`` is odd, ``positions`` does not have ``T`` entries, or the
            scaling is invalid.
    """
    if positions.ndim != 1 or positions.shape[0] != x.shape[-2]:
        raise ValueError(
            f"positions must have shape (T,) = ({x.shape[-2]},), got {tuple(positions.shape)}"
        )
    positions, theta = rope_scaled(positions.to(x.device), x.shape[-1], theta, scaling, factor)
    cos, sin = rope_cos_sin(positions, x.shape[-1], theta, interleaved)
    return apply_rope_cos_sin(x, cos, sin, interleaved)


# -----------------------------------------------------------------------------
# ALiBi: no position vectors at all, just a per-head penalty growing with distance


def alibi_slopes(n_heads: int) -> Tensor:
    """Per-head slopes of ALiBi (Press et al., 2022).

    For a power of two ``n`` the slopes are the geometric sequence ``2**(-8/n)``,
    ``2**(-16/n)``, ..., ``2**(-8)``. Otherwise the slopes of the closest smaller power of two
    are followed by every other slope of the next power of two, as in the reference code.

    Args:
        n_heads: Number of attention heads.

    Returns:
        Float tensor of shape ``(n_heads,)``, decreasing.

    Raises:
        ValueError: If ``n_heads < 1``.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two_slopes(closest)
    if closest != n_heads:
        slopes += power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_heads: int, n_q: int, n_k: int | None = None) -> Tensor:
    """Additive ALiBi attention bias ``-slope * (i - j)``.

    Queries are the last ``n_q`` of the ``n_k`` positions (as when decoding with a KV cache).
    Entries for keys after their query are 0: masking them is the causal mask's job.

    Args:
        n_heads: Number of heads.
        n_q: Number of query positions.
        n_k: Number of key positions (default ``n_q``); must be ``>= n_q``.

    Returns:
        Float tensor of shape ``(n_heads, n_q, n_k)``, to be added to the attention scores.

    Raises:
        ValueError: If ``n_k < n_q``.
    """
    n_k = n_q if n_k is None else n_k
    if n_k < n_q:
        raise ValueError(f"need at least as many keys as queries, got n_q={n_q}, n_k={n_k}")
    q_pos = torch.arange(n_k - n_q, n_k).unsqueeze(1)  # (Tq, 1)
    k_pos = torch.arange(n_k).unsqueeze(0)  # (1, Tk)
    distance = (q_pos - k_pos).clamp(min=0).float()  # (Tq, Tk), 0 for future keys
    return -alibi_slopes(n_heads).view(n_heads, 1, 1) * distance  # (H, Tq, Tk)
