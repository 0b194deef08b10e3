"""Checker of the training exercise: the warmup + cosine learning-rate schedule, vectorised."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..schedules import cosine_lr
from .core import CheckResult, _Case, _never_raises, _run_check


def _schedule_ref(steps: Tensor, max_lr: float, min_lr: float, warmup_steps: int,
                  max_steps: int) -> Tensor:
    """Step by step, with the course's scalar schedule."""
    values = [cosine_lr(int(s), max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps,
                        max_steps=max_steps) for s in steps.flatten().tolist()]
    return torch.tensor(values, dtype=steps.dtype).reshape(steps.shape)


def _variant(steps: Tensor, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int,
             *, warmup_from_zero: bool = False, shift: bool = True, floor: bool = True,
             clamp: bool = True) -> Tensor:
    """The schedule with one of the usual mistakes switched on (for the hints)."""
    s = steps.double()
    ramp = s / max(warmup_steps, 1) if warmup_from_zero else (s + 1) / max(warmup_steps, 1)
    start = warmup_steps if shift else 0
    length = max(max_steps - start, 1)
    r = (s - start) / length
    if clamp:
        r = r.clamp(0.0, 1.0)
    low = min_lr if floor else 0.0
    decay = low + 0.5 * (max_lr - low) * (1 + torch.cos(math.pi * r))
    out = torch.where(s < warmup_steps, max_lr * ramp, decay)
    return out.to(steps.dtype)


@_never_raises
def check_lr_schedule(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(steps, max_lr, min_lr, warmup_steps, max_steps) -> lrs``, vectorised.

    ``steps`` is a float64 tensor of whole step numbers (any shape); the result has its shape
    and dtype and holds, element by element, the course's schedule: a linear warmup
    ``max_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``, then half a cosine from
    ``max_lr`` down to ``min_lr`` over the steps from ``warmup_steps`` to ``max_steps``, and
    ``min_lr`` from ``max_steps`` on. Cases: a whole run and beyond, no warmup, ``min_lr``
    0, steps in a 2-D grid and in any order, a single step.

    Args:
        fn: The reader's schedule.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    specs = [  # name, steps, max_lr, min_lr, warmup, max_steps, hint
        ("steps 0..119 (warmup 10, decay to step 100, then flat)",
         torch.arange(120, dtype=torch.float64), 1e-3, 1e-4, 10, 100,
         "Three regimes: warmup below warmup_steps, cosine up to max_steps, min_lr after."
         " Compute them on the whole tensor at once with torch operations: the functions of"
         " Python's math module take one number, not a tensor."),
        ("no warmup", torch.arange(0, 60, 3, dtype=torch.float64), 6e-4, 6e-5, 0, 50,
         "With warmup_steps = 0 the cosine starts at step 0 at max_lr; nothing may divide by"
         " zero."),
        ("min_lr = 0", torch.arange(0, 40, dtype=torch.float64), 2e-3, 0.0, 4, 30,
         "The cosine then ends at exactly 0 at max_steps."),
        ("a 2-D grid of steps in any order",
         torch.tensor([[5.0, 0.0, 200.0, 17.0], [99.0, 1.0, 60.0, 8.0]], dtype=torch.float64),
         1e-2, 1e-3, 8, 150,
         "Work element by element: the result has the shape of steps, whatever it is."),
        ("a single step", torch.tensor([25.0], dtype=torch.float64), 1.0, 0.1, 5, 45,
         "Step 25 is halfway through the decay from step 5 to step 45."),
    ]
    cases = []
    for name, steps, max_lr, min_lr, warmup, max_steps, hint in specs:
        args = {"steps": steps, "max_lr": max_lr, "min_lr": min_lr, "warmup_steps": warmup,
                "max_steps": max_steps}
        expected = _schedule_ref(steps, max_lr, min_lr, warmup, max_steps)
        base = (steps, max_lr, min_lr, warmup, max_steps)
        mistakes = [
            (_variant(*base, warmup_from_zero=True), "The warmup starts one step late: step 0"
             " should already use max_lr * 1 / warmup_steps, and step warmup_steps - 1 reach"
             " max_lr."),
            (_variant(*base, shift=False), "The cosine should start when the warmup ends:"
             " measure its progress from warmup_steps, over max_steps - warmup_steps steps."),
            (_variant(*base, floor=False), "The cosine goes down to min_lr, not to 0: it swings"
             " between max_lr and min_lr."),
            (_variant(*base, clamp=False), "After max_steps the learning rate must stay at"
             " min_lr; the cosine must not climb back up."),
            (torch.full_like(steps, max_lr), "Every value equals max_lr: the warmup and the"
             " decay are missing."),
        ]
        cases.append(_Case(name, args, expected, atol=1e-12, rtol=1e-6, hint=hint,
                           mistakes=mistakes,
                           shape_hints={(steps.numel(),): "Keep the shape of steps: do not"
                                        " flatten it."}))
    return _run_check("check_lr_schedule", fn, cases,
                      "fn(steps, max_lr, min_lr, warmup_steps, max_steps)")
