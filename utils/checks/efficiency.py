"""Checker of the efficiency exercise: tiled attention with an online softmax."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .core import (
    CheckResult,
    _attention_ref,
    _Case,
    _clone,
    _generator,
    _never_raises,
    _randn,
    _run_check,
)


def _tiled_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_size: int,
    *,
    scale: float | None = None,
    rescale_output: bool = True,
    rescale_sum: bool = True,
    normalise: bool = True,
) -> Tensor:
    """The online-softmax loop in float64, with switches that reproduce typical mistakes."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    q64, k64, v64 = q.double(), k.double(), v.double()
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=torch.float64)
    total = torch.zeros((*q.shape[:-1], 1), dtype=torch.float64)
    acc = torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=torch.float64)
    for j in range(0, k.shape[-2], block_size):
        s = q64 @ k64[..., j:j + block_size, :].transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        alpha = torch.exp(m - m_new)
        total = (alpha if rescale_sum else 1.0) * total + p.sum(-1, keepdim=True)
        acc = (alpha if rescale_output else 1.0) * acc + p @ v64[..., j:j + block_size, :]
        m = m_new
    return (acc / total if normalise else acc).to(q.dtype)


def _full_score_shapes(fn: Callable[..., Any], args: dict[str, Any]) -> list[tuple[int, ...]]:
    """Shapes of every tensor ``fn`` creates whose last two dims are (Tq, Tk) or (Tk, Tq)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    tq, tk = args["q"].shape[-2], args["k"].shape[-2]
    square = ((tq, tk), (tk, tq))  # every query against every key, either way round
    found: list[tuple[int, ...]] = []

    class _Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, f_args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*f_args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, Tensor) and t.ndim >= 2 and tuple(t.shape[-2:]) in square:
                    found.append(tuple(t.shape))
            return out

    with _Recorder():
        fn(*(_clone(v) for v in args.values()))
    return found


@_never_raises
def check_tiled_attention(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(q, k, v, block_size) -> out``: attention over key blocks with an online softmax.

    q is ``(..., Tq, d)``, k ``(..., Tk, d)``, v ``(..., Tk, d_v)``; the keys and values are
    read ``block_size`` at a time, keeping a running maximum and a running sum per query. The
    output is ``(..., Tq, d_v)`` in the dtype of q and equals ``softmax(q k^T / sqrt(d)) v``.
    Cases: one block, blocks that divide Tk, a last partial block, block size 1, heads,
    Tq != Tk, d_v != d and scores in the hundreds. A passing function is then run once more
    while every tensor it creates is recorded: a full ``(Tq, Tk)`` score matrix fails.

    Args:
        fn: The reader's tiled attention.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, (q, k, v) shapes, block size, magnitude, hint
        ("one block holds every key", [(4, 8), (6, 8), (6, 8)], 8, 1.0,
         "Scores q @ k^T / sqrt(d), a softmax over the keys, weights @ v."),
        ("three blocks of 4 keys", [(5, 8), (12, 8), (12, 8)], 4, 1.0,
         "Keep, per query, the running max m, the running sum l of exp(s - m) and the"
         " running output; combine each block into them."),
        ("last block is partial (10 keys, blocks of 4)", [(3, 8), (10, 8), (10, 8)], 4, 1.0,
         "Slicing k[..., j:j + block_size, :] simply returns fewer rows at the end."),
        ("block size 1", [(3, 4), (5, 4), (5, 4)], 1, 1.0,
         "With one key per block the loop is the online softmax, key by key."),
        ("heads (B, H, T, d)", [(2, 3, 6, 8), (2, 3, 9, 8), (2, 3, 9, 8)], 4, 1.0,
         "Use k.transpose(-2, -1) and keep the statistics with keepdim=True: (..., Tq, 1)."),
        ("d_v != d", [(4, 8), (8, 8), (8, 3)], 3, 1.0,
         "The output has v's last size; the scale uses the query/key size."),
        ("scores in the hundreds", [(4, 16), (12, 16), (12, 16)], 4, 12.0,
         "exp() of large scores overflows: subtract the running max before exponentiating,"
         " and rescale what you summed earlier by exp(m_old - m_new)."),
    ]
    cases = []
    for name, shapes, block, magnitude, hint in specs:
        q, k, v = (_randn(g, *shape, scale=magnitude) for shape in shapes)
        d = q.shape[-1]
        args = {"q": q, "k": k, "v": v, "block_size": block}
        mistakes = [
            (_tiled_ref(q, k, v, block, rescale_output=False),
             "When a block raises the running max, multiply the running output by"
             " exp(m_old - m_new) too, not only the running sum."),
            (_tiled_ref(q, k, v, block, rescale_sum=False),
             "When a block raises the running max, multiply the running sum by"
             " exp(m_old - m_new) too."),
            (_tiled_ref(q, k, v, block, rescale_output=False, rescale_sum=False),
             "Earlier blocks were summed under an older, smaller max: rescale the running sum"
             " and the running output by exp(m_old - m_new) when the max grows."),
            (_tiled_ref(q, k, v, block, normalise=False),
             "Divide the running output by the running sum at the end."),
            (_tiled_ref(q, k, v, block, scale=1.0), "Did you divide the scores by sqrt(d)?"),
            (_tiled_ref(q, k, v, block, scale=1.0 / d), "Divide by sqrt(d), not by d."),
        ]
        cases.append(_Case(
            name, args, _attention_ref(q, k, v), atol=1e-4 if magnitude > 1 else 1e-5,
            hint=hint, mistakes=mistakes,
            shape_hints={(*q.shape[:-1], k.shape[-2]): "This is the shape of the attention"
                         " weights: multiply them by v."},
        ))
    result = _run_check("check_tiled_attention", fn, cases, "fn(q, k, v, block_size)")
    if not result.passed:
        return result
    big = {"q": _randn(g, 2, 24, 8), "k": _randn(g, 2, 40, 8), "v": _randn(g, 2, 40, 8),
           "block_size": 8}
    shapes = _full_score_shapes(fn, big)
    if shapes:
        return CheckResult("check_tiled_attention", False, [
            "The values are right, but your function builds the full score matrix.",
            f"Inputs: q (2, 24, 8), k (2, 40, 8), v (2, 40, 8), block_size = 8. A tensor of"
            f" shape {shapes[0]} appeared: that is every query against every key, the"
            " O(Tq * Tk) memory tiling is meant to avoid.",
            "Hint: inside the loop, compute scores only against k[..., j:j + block_size, :],"
            " so no tensor ever holds more than block_size keys' worth of scores.",
        ])
    return CheckResult("check_tiled_attention", True,
                       [f"All {len(cases)} cases passed, and no full score matrix was built."])
