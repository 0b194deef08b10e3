"""Checker of the big-picture exercise: top-k routing of a mixture of experts."""

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


def _gates_ref(logits: Tensor, k: int) -> Tensor:
    top, idx = logits.topk(k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(top, dim=-1))


def _smallest(logits: Tensor, k: int) -> Tensor:
    low, idx = logits.topk(k, dim=-1, largest=False)
    return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(low, dim=-1))


@_never_raises
def check_top_k_gates(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(logits, k) -> gates``: the mixing weights of a top-k router.

    ``logits`` is ``(n_tokens, n_experts)``; ``gates`` has the same shape and dtype: for each
    token, the softmax over its ``k`` largest logits at those experts, 0 at every other
    expert, so each row sums to 1. Cases: top-1, top-2, k equal to the number of experts,
    large logits (numerical stability) and float64 input.

    Args:
        fn: The reader's routing function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, (n_tokens, n_experts), k, scale, dtype
        ("top-1 of 4 experts", (6, 4), 1, 1.0, torch.float32),
        ("top-2 of 8 experts", (10, 8), 2, 1.0, torch.float32),
        ("k = n_experts (a dense mixture)", (5, 3), 3, 1.0, torch.float32),
        ("large logits", (7, 6), 2, 200.0, torch.float32),
        ("float64 input, top-3 of 5", (4, 5), 3, 1.0, torch.float64),
    ]
    cases = []
    for name, (n, e), k, scale, dtype in specs:
        logits = _randn(g, n, e, scale=scale).to(dtype)
        top, idx = logits.topk(k, dim=-1)
        chosen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)
        probs = torch.softmax(logits, dim=-1)
        mistakes = [
            (torch.where(chosen, probs, torch.zeros_like(probs)),
             "The chosen experts' weights must sum to 1: take the softmax over the k chosen"
             " logits only (or renormalise after masking)."),
            (chosen.to(dtype), "The gates are weights, not a 0/1 choice: mix the chosen experts"
             " with a softmax over their logits."),
            (_smallest(logits, k),
             "Choose the k *largest* logits (topk's default, largest=True)."),
            (torch.zeros_like(logits).scatter(-1, idx, top),
             "Turn the chosen logits into weights with a softmax before scattering them."),
        ]
        if k < e:
            mistakes.append((probs, "Every expert gets a weight here: keep only the k best per"
                             " token and set the others to 0."))
        cases.append(_Case(name, {"logits": logits, "k": k}, _gates_ref(logits, k),
                           atol=1e-6 if dtype == torch.float32 else 1e-12, rtol=1e-5,
                           mistakes=mistakes,
                           shape_hints={(n, k): "Return the dense (n_tokens, n_experts) matrix:"
                                        " scatter the k weights into a tensor of zeros."},
                           hint="Per token (row): pick the k largest logits, softmax over"
                           " them, put the weights at those experts and 0 elsewhere."))
    return _run_check("check_top_k_gates", fn, cases, "fn(logits, k)")
