"""Checker of the transformer-block exercise (pre-norm block)."""

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


class _BlockPart:
    """A fixed sublayer for check_block: works in any float dtype, shows a readable name."""

    def __init__(self, name: str, fn: Callable[[Tensor], Tensor]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _block_parts(g: torch.Generator, C: int) -> dict[str, _BlockPart]:
    """attn (causal running mean, then a matrix), ffn (ReLU MLP), two RMS norms with gains."""
    w_attn, w1, w2 = _randn(g, C, C, scale=C**-0.5), _randn(g, C, 2 * C), _randn(g, 2 * C, C)
    w1, w2 = w1 * C**-0.5, w2 * (2 * C) ** -0.5
    gains = 1.0 + 0.5 * _randn(g, 2, C)

    def attn(x: Tensor) -> Tensor:
        counts = torch.arange(1, x.shape[-2] + 1, dtype=x.dtype, device=x.device)[:, None]
        return (x.cumsum(-2) / counts) @ w_attn.to(x.dtype)  # each token sees its past only

    def ffn(x: Tensor) -> Tensor:
        return torch.relu(x @ w1.to(x.dtype)) @ w2.to(x.dtype)

    def norm(gain: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * gain.to(x.dtype)

    return {"attn": _BlockPart("attn: a fixed causal mixing sublayer", attn),
            "ffn": _BlockPart("ffn: a fixed ReLU MLP", ffn),
            "norm1": _BlockPart("norm1: an RMSNorm with its own gain", norm(gains[0])),
            "norm2": _BlockPart("norm2: an RMSNorm with another gain", norm(gains[1]))}


@_never_raises
def check_block(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(x, attn, ffn, norm1, norm2) -> out``, one pre-norm transformer block.

    x is the residual stream ``(B, T, C)``; ``attn``, ``ffn``, ``norm1`` and ``norm2`` are
    callables that map ``(B, T, C)`` to ``(B, T, C)``. The block adds ``attn`` of the
    normalised stream to the stream, then ``ffn`` of the re-normalised stream. The output has
    the shape and dtype of x, and x is left unmodified.

    Args:
        fn: The reader's block function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, shape, dtype, hint
        ("(B, T, C) = (2, 5, 8)", (2, 5, 8), torch.float32,
         "Two residual steps: add attn(norm1(x)) to x, then add ffn(norm2(...)) to the result."),
        ("one token (1, 1, 8)", (1, 1, 8), torch.float32,
         "A single token is no special case: the same two residual steps."),
        ("(B, T, C) = (3, 7, 16)", (3, 7, 16), torch.float32,
         "Call the sublayers on the whole (B, T, C) tensor; they handle every position."),
        ("float64 input", (2, 4, 8), torch.float64, "Keep the dtype of x."),
    ]
    cases = []
    for name, shape, dtype, hint in specs:
        parts = _block_parts(g, shape[-1])
        a, f, n1, n2 = parts["attn"], parts["ffn"], parts["norm1"], parts["norm2"]
        x = _randn(g, *shape).to(dtype)
        x64 = x.double()

        h_post = n1(x64 + a(x64))
        h1 = x64 + a(n1(x64))
        xn = n1(x64)
        h_normed = xn + a(xn)
        h_ffn_first = x64 + f(n2(x64))
        h_bare = x64 + a(x64)
        wrong = [
            (n2(h_post + f(h_post)), "This is Post-LN (norm after each residual add). The"
             " pre-norm block normalises only the input of each sublayer: x + attn(norm1(x))."),
            (f(n2(a(n1(x64)))), "The residual additions are missing: each sublayer's output"
             " is added to its input, x + attn(norm1(x)), not used instead of it."),
            (f(n2(h1)), "The second residual is missing: add ffn(norm2(h)) to h."),
            (a(n1(x64)) + f(n2(a(n1(x64)))), "The first residual is missing: h = x +"
             " attn(norm1(x)), not attn(norm1(x)) alone."),
            (x64 + a(n1(x64)) + f(n2(x64)), "The FFN reads the stream after attention has"
             " written to it: apply norm2 to h = x + attn(norm1(x)), not to x."),
            (h_normed + f(n2(h_normed)), "The residual stream itself stays unnormalised:"
             " add attn(norm1(x)) to x, not to norm1(x)."),
            (n2(h_normed) + f(n2(h_normed)), "The residual stream itself stays"
             " unnormalised: add each sublayer's output to the raw stream, not to its norm."),
            (h1 + f(n1(h1)), "Each sublayer has its own norm: norm1 before attn, norm2"
             " before ffn."),
            (x64 + a(n2(x64)) + f(n1(x64 + a(n2(x64)))), "The norms are swapped: norm1 goes"
             " with attn, norm2 with ffn."),
            (h_ffn_first + a(n1(h_ffn_first)), "Attention comes first, then the FFN."),
            (h_bare + f(h_bare), "The norms are missing: normalise each sublayer's input."),
        ]
        cases.append(_Case(
            name, {"x": x, "attn": a, "ffn": f, "norm1": n1, "norm2": n2},
            (h1 + f(n2(h1))).to(dtype),
            atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=1e-4, hint=hint,
            mistakes=[(w.to(dtype), h) for w, h in wrong],
        ))
    return _run_check("check_block", fn, cases, "fn(x, attn, ffn, norm1, norm2)")
