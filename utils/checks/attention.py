"""Checkers of the attention exercises: attention, masks, softmax, heads."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .core import (
    CheckResult,
    _attention_ref,
    _Case,
    _generator,
    _never_raises,
    _randn,
    _run_check,
    _softmax_ref,
)


@_never_raises
def check_attention(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(q, k, v, mask=None) -> out``, scaled dot-product attention.

    q is ``(..., Tq, d_k)``, k ``(..., Tk, d_k)``, v ``(..., Tk, d_v)``; mask is a bool tensor
    broadcastable to ``(..., Tq, Tk)`` with True = may attend. The output is ``(..., Tq, d_v)``
    in the dtype of q. Cases: 2-D, batched with heads, causal mask, padding mask, Tq != Tk,
    d_v != d_k and large-magnitude inputs (numerical stability).

    Args:
        fn: The reader's attention function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    pad = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    pad[1, ..., 3:] = False  # the second sequence has two padding tokens at the end
    specs = [  # name, (q, k, v) shapes, mask, scale of the inputs, hint
        ("unmasked 2-D (T, d)", [(4, 8)] * 3, None, 1.0,
         "Scores are q @ k^T / sqrt(d_k); softmax over the keys; then weights @ v."),
        ("batched 4-D (B, H, T, d)", [(2, 3, 5, 8)] * 3, None, 1.0,
         "Use k.transpose(-2, -1) rather than k.T, which also flips the batch and head dims."),
        ("boolean causal mask", [(2, 2, 6, 8)] * 3, torch.ones(6, 6, dtype=torch.bool).tril(),
         1.0, "Scores where the mask is False must become -inf before the softmax."),
        ("padding mask (B, 1, 1, Tk)", [(2, 2, 5, 8)] * 3, pad, 1.0,
         "The mask (B, 1, 1, Tk) broadcasts over heads and queries; False = never attend."),
        ("Tq != Tk (cross-attention)", [(2, 3, 8), (2, 7, 8), (2, 7, 8)], None, 1.0,
         "The scores are (..., Tq, Tk): one row per query, one column per key."),
        ("d_v != d_k", [(2, 4, 8), (2, 4, 8), (2, 4, 3)], None, 1.0,
         "The output has v's last size (..., Tq, d_v); the scale uses d_k."),
        ("large-magnitude inputs", [(2, 6, 16)] * 3, None, 30.0,
         "exp() of large scores overflows: subtract each row's max before exponentiating"
         " (torch.softmax does this for you)."),
    ]
    cases = []
    for name, shapes, mask, magnitude, hint in specs:
        q, k, v = (_randn(g, *shape, scale=magnitude) for shape in shapes)
        d_k, d_v = q.shape[-1], v.shape[-1]
        mistakes = [
            (_attention_ref(q, k, v, mask, scale=1.0), "Did you divide the scores by sqrt(d_k)?"),
            (_attention_ref(q, k, v, mask, scale=1 / d_k), "Divide by sqrt(d_k), not by d_k."),
            (_attention_ref(q, k, v, mask, dim=-2),
             "Take the softmax over the keys (the last dim), so each query's weights sum to 1."),
        ]
        if d_v != d_k:
            mistakes.append((_attention_ref(q, k, v, scale=d_v**-0.5),
                             "Scale by sqrt(d_k), the query/key size, not sqrt(d_v)."))
        if mask is not None:
            inverted = "The mask is inverted: True means 'may attend', so fill where it is False."
            mistakes += [
                (_attention_ref(q, k, v), "Did you apply the mask? It seems to be ignored."),
                (_attention_ref(q, k, v, ~mask), inverted),
                (_attention_ref(q, k, v, ~mask, fill=-1e9), inverted),
            ]
        weights_shape = (*q.shape[:-1], k.shape[-2])
        cases.append(_Case(
            name, {"q": q, "k": k, "v": v}, _attention_ref(q, k, v, mask),
            kwargs={} if mask is None else {"mask": mask},
            atol=1e-4 if magnitude > 1 else 1e-5, hint=hint, mistakes=mistakes,
            shape_hints={weights_shape: "This is the shape of the attention weights: multiply"
                         " them by v."},
        ))
    return _run_check("check_attention", fn, cases, "fn(q, k, v, mask=None)")


@_never_raises
def check_causal_mask(fn: Callable[[int], Tensor]) -> CheckResult:
    """Check ``fn(n) -> mask``: a ``(n, n)`` bool tensor, True where query i may attend key j.

    Args:
        fn: The reader's mask builder.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    for n in (4, 7, 1):  # n = 1 last: every wrong mask looks alike there
        i = torch.arange(n)
        expected = i[None, :] <= i[:, None]  # key j is not in query i's future
        cases.append(_Case(
            f"n = {n}", {"n": n}, expected,
            hint="Entry (i, j) is True exactly when key j is not in the future of query i"
            " (j <= i).",
            mistakes=[
                (~expected, "The mask is inverted: True must mean 'may attend'."),
                (expected.T, "Rows are queries and columns are keys: query i sees keys 0..i,"
                             " so True sits in the lower triangle."),
                (expected & ~torch.eye(n, dtype=torch.bool),
                 "Every position may attend to itself: the diagonal must be True."),
            ],
        ))
    return _run_check("check_causal_mask", fn, cases, "fn(n)")


@_never_raises
def check_softmax(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(x, dim=-1) -> softmax(x)`` along ``dim``, stable for inputs around +-1000.

    Args:
        fn: The reader's softmax.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    large = torch.stack([1000 + _randn(g, 5), -1000 + _randn(g, 5),
                         torch.tensor([1000.0, -1000.0, 0.0, 999.0, 998.0])])
    basic = "Exponentiate, then divide by the sum along dim (keepdim=True)."
    use_dim = "Use the dim argument: the entries along dim must sum to 1."
    specs = [  # name, x, dim (None = not passed, i.e. the default -1), hint
        ("1-D vector", _randn(g, 6), None, basic),
        ("2-D, default dim=-1", _randn(g, 3, 5), None, basic),
        ("2-D, dim=0", _randn(g, 4, 3), 0, use_dim),
        ("3-D, dim=1", _randn(g, 2, 3, 4), 1, use_dim),
        ("large inputs (about +-1000)", large, None, "exp(1000) overflows: subtract the max"
         " along dim before exponentiating; softmax(x) = softmax(x - c) for any c."),
        ("float64 input", _randn(g, 3, 4).double(), None, "Keep the dtype of x."),
    ]
    cases = []
    for name, x, dim, hint in specs:
        d = -1 if dim is None else dim
        e = torch.exp(x - x.max())
        mistakes = [
            (e / e.sum(), "You normalised over the whole tensor: sum only along dim."),
            (torch.exp(x), "Divide the exponentials by their sum along dim."),
            (e / e.sum(dim=d, keepdim=True),
             "Subtract the max along dim (keepdim=True), not the max of the whole tensor."),
        ]
        mistakes += [(_softmax_ref(x, other), f"Normalise along dim={d}, not dim={other}.")
                     for other in range(x.ndim) if other != d % x.ndim]
        cases.append(_Case(
            name, {"x": x}, _softmax_ref(x, d), kwargs={} if dim is None else {"dim": dim},
            hint=hint, mistakes=mistakes,
        ))
    return _run_check("check_softmax", fn, cases, "fn(x, dim=-1)")


@_never_raises
def check_multihead_split(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(x, n_heads)``: ``(B, T, C) -> (B, n_heads, T, C // n_heads)``.

    Head h holds the channels ``h * head_dim`` to ``(h + 1) * head_dim - 1``.

    Args:
        fn: The reader's head-splitting function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    cases = []
    for B, T, C, H in ((2, 5, 12, 3), (3, 7, 16, 4), (2, 1, 12, 4), (1, 4, 8, 1)):
        x, D = _randn(g, B, T, C), C // H
        cases.append(_Case(
            f"(B, T, C) = {(B, T, C)}, n_heads = {H}", {"x": x, "n_heads": H},
            x.view(B, T, H, D).permute(0, 2, 1, 3), atol=0.0, rtol=0.0,
            hint="Split the channels into (n_heads, head_dim), then swap the T and head dims.",
            mistakes=[
                (x.reshape(B, H, T, D), "Reshaping straight to (B, n_heads, T, head_dim) mixes"
                 " tokens across heads: view as (B, T, n_heads, head_dim) first, then swap."),
                (x.view(B, T, D, H).permute(0, 3, 1, 2), "Head h takes a contiguous block of"
                 " channels: h * head_dim to (h + 1) * head_dim - 1."),
            ],
            shape_hints={(B, T, H, D): "Almost there: now swap the T and head dims."},
        ))
    return _run_check("check_multihead_split", fn, cases, "fn(x, n_heads)")


def _multihead_ref(
    x: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor | None,
    n_heads: int,
    *,
    causal: bool = True,
    scale_dim: int | None = None,
    split: str = "heads",
) -> Tensor:
    """Causal multi-head attention in float64 with ``q = x @ w_q`` (math convention)."""
    B, T, C = x.shape
    D = C // n_heads

    def heads(t: Tensor) -> Tensor:
        if split == "reshape":  # the classic bug: tokens and heads mixed up
            return t.reshape(B, n_heads, T, D)
        return t.view(B, T, n_heads, D).transpose(1, 2)  # (B, H, T, D)

    x64 = x.double()
    q, k, v = (heads(x64 @ w.double()) for w in (w_q, w_k, w_v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(scale_dim or D)
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = _softmax_ref(scores, -1) @ v  # (B, H, T, D)
    y = y.reshape(B, n_heads, T, D) if split == "reshape" else y.transpose(1, 2)
    y = y.reshape(B, T, C)
    return (y if w_o is None else y @ w_o.double()).to(x.dtype)


@_never_raises
def check_multihead_attention(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(x, w_q, w_k, w_v, w_o, n_heads) -> out``, causal multi-head self-attention.

    ``x`` is ``(B, T, C)`` and each weight ``(C, C)``, applied as ``x @ w`` (so ``q = x @ w_q``).
    Head ``h`` uses channels ``h * C // n_heads`` to ``(h + 1) * C // n_heads - 1`` of q, k
    and v; scores are scaled by ``1 / sqrt(C // n_heads)``; the causal mask lets position
    ``i`` see ``j <= i``; the heads' outputs are concatenated and multiplied by ``w_o``. The
    output is ``(B, T, C)`` in the dtype of ``x``. Cases: one head, several heads, one token,
    ``n_heads == C`` and large inputs.

    Args:
        fn: The reader's multi-head attention function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, (B, T, C), n_heads, input scale, hint
        ("one head (n_heads = 1)", (2, 5, 8), 1, 1.0,
         "With one head this is plain causal attention on x @ w_q, x @ w_k, x @ w_v, then @ w_o."),
        ("4 heads", (2, 6, 16), 4, 1.0,
         "Split q, k, v into heads of C // n_heads channels, attend per head, concatenate."),
        ("3 heads, batch of 3", (3, 7, 12), 3, 1.0,
         "Keep the batch dimension: shapes (B, n_heads, T, head_dim) inside, (B, T, C) out."),
        ("a single token (T = 1)", (2, 1, 8), 2, 1.0,
         "With one token each head can only attend to itself: out = (x @ w_v) @ w_o."),
        ("n_heads = C (head_dim 1)", (1, 4, 4), 4, 1.0,
         "head_dim may be 1: the scale is then 1 / sqrt(1)."),
        ("large-magnitude inputs", (2, 6, 16), 4, 10.0,
         "Use torch.softmax (it subtracts each row's max) rather than exp() by hand."),
    ]
    cases = []
    for name, (B, T, C), H, magnitude, hint in specs:
        x = _randn(g, B, T, C, scale=magnitude)
        w_q, w_k, w_v, w_o = (_randn(g, C, C, scale=C**-0.5) for _ in range(4))
        args = {"x": x, "w_q": w_q, "w_k": w_k, "w_v": w_v, "w_o": w_o, "n_heads": H}
        ws = (x, w_q, w_k, w_v)
        mistakes = [
            (_multihead_ref(*ws, None, H), "Did you apply the output projection w_o after"
             " concatenating the heads?"),
            (_multihead_ref(*ws, w_o, H, causal=False), "Did you apply the causal mask? Position"
             " i may only attend to positions j <= i."),
            (_multihead_ref(*ws, w_o.T, H), "Apply w_o as y @ w_o (the weights are used as"
             " x @ w), not transposed."),
        ]
        if H > 1:
            mistakes += [
                (_multihead_ref(*ws, w_o, 1), "This is single-head attention over all C"
                 " channels: split q, k and v into n_heads heads first."),
                (_multihead_ref(*ws, w_o, H, scale_dim=C), "Scale the scores by"
                 " 1 / sqrt(head_dim) = 1 / sqrt(C // n_heads), not by 1 / sqrt(C)."),
                (_multihead_ref(*ws, w_o, H, split="reshape"), "Reshaping (B, T, C) straight"
                 " to (B, n_heads, T, head_dim) mixes tokens across heads: view as (B, T,"
                 " n_heads, head_dim), then swap T and the head dim (and back before w_o)."),
            ]
        cases.append(_Case(
            name, args, _multihead_ref(*ws, w_o, H),
            atol=1e-4 if magnitude > 1 else 1e-5, hint=hint, mistakes=mistakes,
            shape_hints={(B, H, T, C // H): "These are the heads' outputs: put the heads"
                         " back side by side to (B, T, C), then apply w_o."},
        ))
    return _run_check("check_multihead_attention", fn, cases,
                      "fn(x, w_q, w_k, w_v, w_o, n_heads)")
