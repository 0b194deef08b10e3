"""Learning-rate schedules: constant, step, linear, cosine and warmup-stable-decay.

Every schedule maps an optimizer step (from 0) to a learning rate and starts with the same
optional linear warmup: ``max_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``, so
step 0 already moves a little and step ``warmup_steps - 1`` reaches ``max_lr``. After the
warmup, ``r = (step - warmup_steps) / (max_steps - warmup_steps)`` runs from 0 to 1 and:

- ``constant``: ``max_lr`` throughout;
- ``step``: ``max_lr`` times ``gamma`` for every milestone passed (milestones as fractions
  of ``max_steps``; the classic ImageNet recipe divides by 10 twice);
- ``linear``: straight from ``max_lr`` down to ``min_lr``;
- ``cosine``: ``min_lr + (max_lr - min_lr) * (1 + cos(pi r)) / 2``;
- ``wsd`` (warmup-stable-decay): ``max_lr`` until the last ``decay_fraction`` of the steps,
  then a straight line down to ``min_lr``.

From ``max_steps`` on, every schedule that decays stays at its final value.

>>> lr = make_schedule("cosine", max_lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=100)
>>> lr(0), lr(9), lr(100)
(0.0001, 0.001, 0.0001)

References:
1) Loshchilov & Hutter (2017), SGDR: Stochastic Gradient Descent with Warm Restarts. ICLR.
2) Goyal et al. (2017), Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour. (warmup)
3) Hu et al. (2024), MiniCPM. arXiv:2404.06395. (WSD)
4) Hägele et al. (2024), Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations. arXiv:2405.18392. (WSD)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

Schedule = Callable[[int], float]


def _check(step: int, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    if not 0 <= warmup_steps <= max_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= max_steps, got warmup_steps={warmup_steps}, "
            f"max_steps={max_steps}"
        )


def _progress(step: int, warmup_steps: int, max_steps: int) -> float:
    """``r`` in [0, 1]: how far the step is through the part after the warmup."""
    if max_steps == warmup_steps:
        return 1.0
    return min(1.0, (step - warmup_steps) / (max_steps - warmup_steps))


def constant_lr(step: int, *, max_lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
                max_steps: int = 0) -> float:
    """``max_lr`` after the warmup (``min_lr`` and ``max_steps`` are only checked).

    Raises:
        ValueError: If an argument is out of range (as for every schedule here).
    """
    _check(step, max_lr, min_lr, warmup_steps, max(max_steps, warmup_steps))
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    return max_lr


def step_lr(step: int, *, max_lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
            max_steps: int, milestones: Sequence[float] = (0.5, 0.75),
            gamma: float = 0.1) -> float:
    """``max_lr * gamma ** (milestones passed)``, never below ``min_lr``.

    Args:
        step: Optimizer step, from 0.
        max_lr: Learning rate before the first milestone.
        min_lr: Floor.
        warmup_steps: Linear warmup steps.
        max_steps: Length of the run; milestone ``f`` falls at step ``round(f * max_steps)``.
        milestones: Increasing fractions in (0, 1).
        gamma: Factor applied at each milestone, in (0, 1].

    Returns:
        The learning rate.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check(step, max_lr, min_lr, warmup_steps, max_steps)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if any(not 0 < f < 1 for f in milestones) or list(milestones) != sorted(milestones):
        raise ValueError(f"milestones must be increasing fractions in (0, 1), got {milestones}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    passed = sum(step >= round(f * max_steps) for f in milestones)
    return max(min_lr, max_lr * gamma**passed)


def linear_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
              max_steps: int) -> float:
    """Linear warmup, then a straight line from ``max_lr`` to ``min_lr`` at ``max_steps``.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check(step, max_lr, min_lr, warmup_steps, max_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    return max_lr - (max_lr - min_lr) * _progress(step, warmup_steps, max_steps)


def cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int,
              max_steps: int) -> float:
    """Linear warmup, then half a cosine from ``max_lr`` down to ``min_lr`` at ``max_steps``.

    - ``step < warmup_steps``: ``max_lr * (step + 1) / warmup_steps``.
    - ``warmup_steps <= step < max_steps``: ``min_lr + (max_lr - min_lr) * (1 + cos(pi r)) / 2``
      with ``r = (step - warmup_steps) / (max_steps - warmup_steps)``.
    - ``step >= max_steps``: ``min_lr``.

    Args:
        step: Optimizer step, from 0.
        max_lr: Peak learning rate.
        min_lr: Final learning rate, ``0 <= min_lr <= max_lr``.
        warmup_steps: Length of the warmup, ``>= 0``.
        max_steps: Step at which the decay reaches ``min_lr``, ``>= warmup_steps``.

    Returns:
        The learning rate.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check(step, max_lr, min_lr, warmup_steps, max_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    r = _progress(step, warmup_steps, max_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (max_lr - min_lr)


def wsd_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int,
           decay_fraction: float = 0.2) -> float:
    """Warmup-stable-decay: warmup, ``max_lr`` for a long plateau, then a short linear decay.

    The decay takes the last ``decay_fraction`` of ``max_steps`` (at least one step), so a run
    can be extended by lengthening the plateau without restarting it.

    Args:
        step: Optimizer step, from 0.
        max_lr: Plateau learning rate.
        min_lr: Final learning rate.
        warmup_steps: Linear warmup steps.
        max_steps: Step at which the decay reaches ``min_lr``.
        decay_fraction: Share of ``max_steps`` spent decaying, in (0, 1].

    Returns:
        The learning rate.

    Raises:
        ValueError: If an argument is out of range or the decay would overlap the warmup.
    """
    _check(step, max_lr, min_lr, warmup_steps, max_steps)
    if not 0 < decay_fraction <= 1:
        raise ValueError(f"decay_fraction must be in (0, 1], got {decay_fraction}")
    decay_steps = max(1, round(decay_fraction * max_steps))
    decay_start = max_steps - decay_steps
    if decay_start < warmup_steps:
        raise ValueError(f"the decay ({decay_steps} steps) overlaps the warmup "
                         f"({warmup_steps} steps) within max_steps={max_steps}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step < decay_start:
        return max_lr
    return max_lr - (max_lr - min_lr) * min(1.0, (step - decay_start) / decay_steps)


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant_lr,
    "step": step_lr,
    "linear": linear_lr,
    "cosine": cosine_lr,
    "wsd": wsd_lr,
}


def make_schedule(name: str, **kwargs: float | int | Sequence[float]) -> Schedule:
    """The schedule ``name`` with its arguments bound: a function ``step -> lr``.

    Args:
        name: One of ``"constant"``, ``"step"``, ``"linear"``, ``"cosine"``, ``"wsd"``.
        **kwargs: The keyword arguments of that schedule (``max_lr``, ``min_lr``,
            ``warmup_steps``, ``max_steps``, and ``milestones``/``gamma`` or
            ``decay_fraction``).

    Returns:
        A function of the step; it has already been called once at step 0, so bad arguments
        raise here rather than in the middle of training.

    Raises:
        ValueError: If the name is unknown or an argument is out of range.
        TypeError: If an argument does not belong to the schedule.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    schedule = functools.partial(SCHEDULES[name], **kwargs)
    schedule(0)
    return schedule
