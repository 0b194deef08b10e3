"""Checkers of the decoding exercises: top-p filtering."""

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
    _softmax_ref,
)


def _top_p_ref(probs: Tensor, p: float) -> Tensor:
    """Keep the most likely tokens one by one until their mass reaches p."""
    keep = torch.zeros(probs.shape, dtype=torch.bool)
    mass = 0.0
    for i in sorted(range(len(probs)), key=lambda j: -float(probs[j])):
        keep[i] = True
        mass += float(probs[i])
        if mass >= p:
            break
    return keep


@_never_raises
def check_top_p(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``fn(probs, p) -> keep``: the nucleus (top-p) mask over a ``(V,)`` distribution.

    keep is a ``(V,)`` bool tensor marking the smallest set of most likely tokens whose total
    probability is at least p; the most likely token is always kept.

    Args:
        fn: The reader's top-p function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    ten = torch.tensor([0.05, 0.30, 0.02, 0.15, 0.07, 0.25, 0.012, 0.10, 0.03, 0.018])
    specs = [  # name, probs, p, hint
        ("p = 0.9 (V = 10)", ten, 0.9,
         "Keep the most likely tokens, in order, until their total probability reaches p."),
        ("p = 0.6: keep the token that crosses p", torch.tensor([0.1, 0.4, 0.2, 0.3]), 0.6,
         "Keep the token that takes the total past p: the kept set's mass must reach p."),
        ("p = 0.1: the top token is always kept", ten, 0.1,
         "The most likely token is always kept, even when its probability alone exceeds p."),
        ("p = 1.0 keeps every token", torch.tensor([0.3, 0.05, 0.25, 0.1, 0.2, 0.1]), 1.0,
         "With p = 1 every token is needed to reach the full mass."),
        ("V = 1000, p = 0.9", _softmax_ref(_randn(g, 1000, scale=2.5), 0), 0.9,
         "Sort the probabilities (descending) before accumulating them."),
    ]
    cases = []
    for name, probs, p, hint in specs:
        expected = _top_p_ref(probs, p)
        order = torch.argsort(probs, descending=True)
        in_order = probs[order].cumsum(0) <= p  # forgets the token that crosses p
        scattered = torch.zeros_like(in_order).scatter(0, order, in_order)
        mistakes = [
            (~expected, "The mask is inverted: True must mean 'keep this token'."),
            (torch.arange(len(probs)) < int(expected.sum()), "Return the mask in the original"
             " token order: entry i says whether token i is kept."),
            (probs.cumsum(0) - probs < p, "Sort the probabilities (descending) before"
             " accumulating them."),
            (scattered, "Keep the token that takes the total past p: the kept set's mass"
             " must reach p."),
        ]
        cases.append(_Case(name, {"probs": probs, "p": p}, expected, hint=hint,
                           mistakes=mistakes))
    return _run_check("check_top_p", fn, cases, "fn(probs, p)")
