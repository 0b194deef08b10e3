"""Checkers of the inference exercises: the min-p sampling filter."""

from __future__ import annotations

import math
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


def _min_p_ref(logits: Tensor, min_p: float) -> Tensor:
    """Token by token: is its probability at least min_p times its row's top probability?"""
    rows = logits.reshape(-1, logits.shape[-1]).double()
    keep = torch.zeros(rows.shape, dtype=torch.bool)
    for r, row in enumerate(rows):
        exps = [math.exp(float(x - row.max())) for x in row]
        probs = [e / sum(exps) for e in exps]
        top = max(probs)
        for i, p in enumerate(probs):
            keep[r, i] = p >= min_p * top
    return keep.reshape(logits.shape)


@_never_raises
def check_min_p(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``fn(logits, min_p) -> keep``: the min-p mask over next-token logits.

    logits is ``(B, V)``; keep is a ``(B, V)`` bool tensor, True where the token's
    probability (softmax over the row) is at least ``min_p`` times the row's largest
    probability. The most likely token is always kept.

    Args:
        fn: The reader's min-p function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    small = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0, 0.0]])
    specs = [  # name, logits, min_p, hint
        ("one row, min_p = 0.1", small, 0.1,
         "Turn the logits into probabilities first, then compare each with min_p times the"
         " largest probability."),
        ("batch of 3 rows (B, V)", _randn(g, 3, 8, scale=2.0), 0.2,
         "Each row is its own distribution: softmax and the maximum go along the last dim."),
        ("min_p = 0 keeps every token", _randn(g, 2, 5), 0.0,
         "With min_p = 0 the threshold is 0 and every token passes."),
        ("min_p = 1 keeps only the top token", _randn(g, 2, 7), 1.0,
         "Only the most likely token reaches 100% of the top probability."),
        ("negative logits, V = 1000", _randn(g, 2, 1000, scale=3.0) - 20.0, 0.05,
         "A threshold on the logits themselves is not one on probabilities: compare"
         " probabilities."),
    ]
    cases = []
    for name, logits, min_p, hint in specs:
        expected = _min_p_ref(logits, min_p)
        probs = torch.softmax(logits, dim=-1)
        mistakes = [
            (probs > min_p * probs.amax(-1, keepdim=True), "A token exactly at the threshold"
             " is kept: use >=, so the top token always survives."),
            (~expected, "The mask is inverted: True must mean 'keep this token'."),
            (probs >= min_p * probs.max(), "Take the maximum per row (dim=-1, keepdim=True),"
             " not over the whole batch."),
            (logits >= min_p * logits.amax(-1, keepdim=True), "Compare probabilities, not"
             " logits: softmax the row first."),
            (probs >= min_p, "min_p is relative: compare with min_p times the row's largest"
             " probability, not with min_p itself."),
            (torch.softmax(logits, 0) >= min_p * torch.softmax(logits, 0).amax(-1, keepdim=True),
             "Softmax over the vocabulary, the last dim (dim=-1), not over the batch."),
        ]
        cases.append(_Case(name, {"logits": logits, "min_p": min_p}, expected, hint=hint,
                           mistakes=mistakes))
    return _run_check("check_min_p", fn, cases, "fn(logits, min_p)")
