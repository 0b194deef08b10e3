"""Checkers of the position exercises: RoPE and ALiBi."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .core import (
    CheckResult,
    _Case,
    _generator,
    _never_raises,
    _randn,
    _run_check,
)


def _rope_ref(
    x: Tensor,
    positions: Tensor,
    theta: float = 10000.0,
    *,
    interleaved: bool = False,
    direction: float = 1.0,
    exponent: float = 2.0,
) -> Tensor:
    """Rotate feature pairs as complex numbers: pair i is (i, i + D/2) (or (2i, 2i+1))."""
    half = x.shape[-1] // 2
    x64 = x.double()
    inv_freq = theta ** (-exponent * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    angles = direction * positions.double()[:, None] * inv_freq[None, :]  # (T, D/2)
    rotation = torch.polar(torch.ones_like(angles), angles)
    if interleaved:
        z = torch.complex(x64[..., 0::2], x64[..., 1::2]) * rotation
        out = torch.stack([z.real, z.imag], dim=-1).flatten(-2)
    else:
        z = torch.complex(x64[..., :half], x64[..., half:]) * rotation
        out = torch.cat([z.real, z.imag], dim=-1)
    return out.to(x.dtype)


@_never_raises
def check_rope(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``fn(x, positions)``: RoPE in the rotate-half convention, theta = 10000.

    x is ``(..., T, D)`` with D even, positions ``(T,)`` integers; feature pair i is
    ``(i, i + D/2)`` and rotates by ``positions * theta ** (-2 i / D)``. The output has the
    shape and dtype of x.

    Args:
        fn: The reader's RoPE function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, x shape, positions, hint
        ("(T, D) = (5, 8), positions 0..4", (5, 8), torch.arange(5),
         "Pair feature i with feature i + D/2 and rotate the pair by position * theta^(-2i/D)."),
        ("batched (B, H, T, D)", (2, 3, 6, 16), torch.arange(6),
         "Broadcast the (T, D) cos/sin tables over the leading batch and head dims."),
        ("positions 10..13 (decoding with a KV cache)", (1, 2, 4, 8), torch.arange(10, 14),
         "Rotate by the given positions, not by 0..T-1."),
        ("head_dim 64", (8, 64), torch.arange(8),
         "The inverse frequencies are theta^(-2i/D) for i = 0 .. D/2 - 1."),
    ]
    cases = []
    for name, shape, positions, hint in specs:
        x = _randn(g, *shape)
        T, D = shape[-2], shape[-1]
        cases.append(_Case(
            name, {"x": x, "positions": positions}, _rope_ref(x, positions), atol=1e-5,
            rtol=1e-4, hint=hint,
            mistakes=[
                (_rope_ref(x, positions, interleaved=True), "This course pairs feature i with"
                 " i + D/2 (rotate-half, as in Llama), not neighbours (2i, 2i + 1)."),
                (_rope_ref(x, positions, direction=-1.0), "You rotate the wrong way: the first"
                 " half becomes x1 cos - x2 sin, the second half x2 cos + x1 sin."),
                (_rope_ref(x, positions, exponent=1.0), "The exponent is -2i/D, not -i/D."),
                (_rope_ref(x, positions, exponent=-2.0), "The exponent is negative: -2i/D."),
                (_rope_ref(x, torch.arange(T)), "Use the positions argument, not arange(T)."),
                (x, "You returned x unchanged."),
            ],
            shape_hints={(*shape[:-1], D // 2): "The output has the same shape as x: both"
                         " halves of the features, real tensors."},
        ))
    return _run_check("check_rope", fn, cases, "fn(x, positions)")


def _alibi_ref(
    scores: Tensor, *, sign: float = 1.0, symmetric: bool = False, reverse: bool = False,
    exponent: Callable[[int, int], float] | None = None, offset: bool = True,
    transposed: bool = False, add: bool = True,
) -> Tensor:
    """scores - slope_h * (i - j) for keys j <= i, in float64; keyword args build mistakes."""
    n_heads, n_q, n_k = scores.shape[-3:]
    power = exponent or (lambda h, n: -8.0 * (h + 1) / n)
    slopes = torch.tensor([2.0 ** power(h, n_heads) for h in range(n_heads)], dtype=torch.float64)
    if reverse:
        slopes = slopes.flip(0)
    q_pos = torch.arange(n_q, dtype=torch.float64) + (n_k - n_q if offset else 0)
    k_pos = torch.arange(n_k, dtype=torch.float64)
    distance = q_pos[:, None] - k_pos[None, :]  # (Tq, Tk), query minus key
    if transposed:
        distance = -distance
    distance = distance.abs() if symmetric else distance.clamp(min=0)
    bias = -sign * slopes[:, None, None] * distance  # (H, Tq, Tk)
    return ((scores.double() + bias) if add else bias.expand(scores.shape)).to(scores.dtype)


@_never_raises
def check_alibi(fn: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``fn(scores)``: the attention scores plus the ALiBi bias of Press et al. (2022).

    scores is ``(..., H, Tq, Tk)`` with H a power of two; the queries are the *last* Tq of the
    Tk positions (``Tq == Tk`` without a KV cache). Head h (counting from 0) has the slope
    ``2 ** (-8 (h + 1) / H)``; query i and key j <= i get ``-slope * (i - j)``, keys after
    the query get 0 (the causal mask removes them). The output has the shape and dtype of
    scores.

    Args:
        fn: The reader's function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, scores shape, dtype, hint
        ("(H, T, T) = (4, 5, 5)", (4, 5, 5), torch.float32,
         "Add -slope_h * (i - j) to score (h, i, j) for j <= i; 0 where j > i."),
        ("batched (B, H, T, T) = (2, 8, 6, 6)", (2, 8, 6, 6), torch.float32,
         "Read H from scores.shape[-3] and broadcast the (H, T, T) bias over the batch."),
        ("one head (H = 1)", (1, 4, 4), torch.float32,
         "With H heads the slopes are 2^(-8/H), 2^(-16/H), ..., 2^(-8)."),
        ("decoding: 2 queries, 7 keys", (2, 4, 2, 7), torch.float32,
         "With a KV cache the queries are the last Tq positions: query i sits at"
         " position Tk - Tq + i."),
        ("float64 scores", (2, 3, 3), torch.float64, "Keep the dtype of scores."),
    ]
    cases = []
    for name, shape, dtype, hint in specs:
        scores = _randn(g, *shape).to(dtype)
        cases.append(_Case(
            name, {"scores": scores}, _alibi_ref(scores), hint=hint,
            mistakes=[
                (_alibi_ref(scores, add=False), "Return scores + bias, not the bias alone."),
                (_alibi_ref(scores, sign=-1.0), "ALiBi is a penalty: subtract slope * distance,"
                 " so that far keys get lower scores."),
                (_alibi_ref(scores, symmetric=True), "Keys after the query get no bias (0): the"
                 " causal mask removes them. Use (i - j) clamped at 0, not |i - j|."),
                (_alibi_ref(scores, transposed=True), "The distance is query minus key (i - j),"
                 " and it is the keys *before* the query that are penalised."),
                (_alibi_ref(scores, reverse=True), "Head 0 has the largest slope, 2^(-8/H); the"
                 " slopes shrink from head to head."),
                (_alibi_ref(scores, exponent=lambda h, n: -8.0 * h / n), "The first slope is"
                 " 2^(-8/H), not 1: the exponent is -8 (h + 1) / H."),
                (_alibi_ref(scores, exponent=lambda h, n: -(h + 1.0)), "The slopes depend on the"
                 " number of heads: 2^(-8 (h + 1) / H)."),
                (_alibi_ref(scores, offset=False), "With a KV cache the queries are the last"
                 " Tq positions: query i sits at position Tk - Tq + i."),
            ],
        ))
    return _run_check("check_alibi", fn, cases, "fn(scores)")
