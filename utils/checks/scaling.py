"""Checker of the scaling-law exercise: fit the exponent of ``loss = E + A n^-alpha``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .core import CheckResult, _Case, _generator, _never_raises, _run_check


def _fit_ref(n: Tensor, loss: Tensor, E: float) -> tuple[float, float]:
    """Least-squares line through (log n, log(loss - E)) in float64: (intercept, slope)."""
    x = n.double().log()
    y = (loss.double() - E).log()
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    return float(y.mean() - slope * x.mean()), slope


def _pair(a: float, b: float, like: Tensor) -> Tensor:
    return torch.tensor([a, b], dtype=like.dtype)


@_never_raises
def check_power_law_fit(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(n, loss, E) -> tensor([A, alpha])``: the least-squares power law for a known E.

    ``n`` and ``loss`` are 1-D float tensors of model sizes and losses, ``E`` a float below
    every loss. The answer is the straight line through ``(log n, log(loss - E))`` fitted by
    least squares: ``alpha`` is minus its slope and ``A`` the exponential of its intercept,
    returned as a tensor of shape ``(2,)`` in the dtype of ``loss``. Cases: exact power laws
    with and without ``E``, noisy points, float32 input.

    Args:
        fn: The reader's fit.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    n = torch.logspace(3, 5, 6, dtype=torch.float64)
    specs = [  # name, E, A, alpha, noise, dtype
        ("exact power law, E = 0", 0.0, 8.0, 0.1, 0.0, torch.float64),
        ("exact power law, E = 1.5", 1.5, 20.0, 0.3, 0.0, torch.float64),
        ("noisy points, E = 2", 2.0, 15.0, 0.25, 0.02, torch.float64),
        ("float32 input, E = 1", 1.0, 5.0, 0.2, 0.01, torch.float32),
    ]
    cases = []
    for name, E, A, alpha, noise, dtype in specs:
        gap = A * n ** (-alpha) * torch.exp(noise * torch.randn(n.shape, generator=g,
                                                                dtype=torch.float64))
        loss = (E + gap).to(dtype)
        sizes = n.to(dtype)
        b, slope = _fit_ref(sizes, loss, E)
        expected = _pair(math.exp(b), -slope, loss)
        b0, slope0 = _fit_ref(sizes, loss, 0.0)
        mistakes = [
            (_pair(math.exp(b), slope, loss),
             "alpha is minus the slope: the loss falls as n grows, so alpha > 0."),
            (_pair(b, -slope, loss), "The intercept is log A: return its exponential."),
            (_pair(-slope, math.exp(b), loss), "Return A first, then alpha."),
            (_pair(math.exp(b / math.log(10)), -slope, loss),
             "Use natural logs on both axes (or convert the log10 intercept back with 10**b)."),
        ]
        if E:
            mistakes.append((_pair(math.exp(b0), -slope0, loss),
                             "Subtract E from the loss before taking its log."))
        cases.append(_Case(
            name, {"n": sizes, "loss": loss, "E": E}, expected,
            atol=1e-4 if dtype == torch.float32 else 1e-7, rtol=1e-3 if dtype == torch.float32
            else 1e-6,
            hint="Fit a straight line y = b + s x with x = log n, y = log(loss - E) (least"
                 " squares: s = cov(x, y) / var(x)); then A = exp(b), alpha = -s.",
            mistakes=mistakes,
            shape_hints={(): "Return both numbers: torch.stack([A, alpha])."},
        ))
    return _run_check("check_power_law_fit", fn, cases, "fn(n, loss, E)")
