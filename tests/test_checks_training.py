"""Tests of utils.checks.check_lr_schedule: correct solutions pass, each mistake is named."""

from __future__ import annotations

import math

import torch
from check_results import failed

from utils.checks import check_lr_schedule


def with_where(steps, max_lr, min_lr, warmup_steps, max_steps):
    warm = max_lr * (steps + 1) / max(warmup_steps, 1)
    r = ((steps - warmup_steps) / max(max_steps - warmup_steps, 1)).clamp(0, 1)
    cosine = min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(math.pi * r))
    return torch.where(steps < warmup_steps, warm, cosine)


def element_by_element(steps, max_lr, min_lr, warmup_steps, max_steps):
    out = torch.empty_like(steps)
    for i, s in enumerate(steps.flatten().tolist()):
        if s < warmup_steps:
            v = max_lr * (s + 1) / warmup_steps
        elif s >= max_steps:
            v = min_lr
        else:
            r = (s - warmup_steps) / (max_steps - warmup_steps)
            v = min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * r))
        out.view(-1)[i] = v
    return out


def late_warmup(steps, max_lr, min_lr, warmup_steps, max_steps):
    out = with_where(steps, max_lr, min_lr, warmup_steps, max_steps)
    return torch.where(steps < warmup_steps, max_lr * steps / max(warmup_steps, 1), out)


def unshifted(steps, max_lr, min_lr, warmup_steps, max_steps):
    r = (steps / max_steps).clamp(0, 1)
    cosine = min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(math.pi * r))
    return torch.where(steps < warmup_steps, max_lr * (steps + 1) / max(warmup_steps, 1), cosine)


def to_zero(steps, max_lr, min_lr, warmup_steps, max_steps):
    return with_where(steps, max_lr, 0.0, warmup_steps, max_steps)


def unclamped(steps, max_lr, min_lr, warmup_steps, max_steps):
    r = (steps - warmup_steps) / max(max_steps - warmup_steps, 1)
    cosine = min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(math.pi * r))
    return torch.where(steps < warmup_steps, max_lr * (steps + 1) / max(warmup_steps, 1), cosine)


def divides_by_zero(steps, max_lr, min_lr, warmup_steps, max_steps):
    # blends both regimes with a mask: 0 * inf = NaN when warmup_steps is 0
    is_warm = (steps < warmup_steps).double()
    warm = max_lr * (steps + 1) / warmup_steps
    r = ((steps - warmup_steps) / (max_steps - warmup_steps)).clamp(0, 1)
    cosine = min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(math.pi * r))
    return is_warm * warm + (1 - is_warm) * cosine


def flattened(steps, max_lr, min_lr, warmup_steps, max_steps):
    return with_where(steps, max_lr, min_lr, warmup_steps, max_steps).flatten()


def as_float32(steps, max_lr, min_lr, warmup_steps, max_steps):
    return with_where(steps, max_lr, min_lr, warmup_steps, max_steps).float()


def python_cos(steps, max_lr, min_lr, warmup_steps, max_steps):
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * steps / max_steps))


def in_place(steps, max_lr, min_lr, warmup_steps, max_steps):
    steps += 1
    return with_where(steps - 1, max_lr, min_lr, warmup_steps, max_steps)


def no_return(steps, max_lr, min_lr, warmup_steps, max_steps):
    with_where(steps, max_lr, min_lr, warmup_steps, max_steps)


def stub(steps, max_lr, min_lr, warmup_steps, max_steps):
    raise NotImplementedError("write the schedule")


def test_correct_solutions_pass() -> None:
    assert check_lr_schedule(with_where)
    assert check_lr_schedule(element_by_element)


def test_each_mistake_is_named() -> None:
    failed(check_lr_schedule(late_warmup), "one step late")
    failed(check_lr_schedule(unshifted), "start when the warmup ends")
    failed(check_lr_schedule(to_zero), "down to min_lr, not to 0")
    failed(check_lr_schedule(unclamped), "must not climb back up")
    failed(check_lr_schedule(divides_by_zero), "no warmup", "NaN")
    failed(check_lr_schedule(flattened), "Wrong shape", "do not flatten")
    failed(check_lr_schedule(as_float32), "only the dtype differs")
    failed(check_lr_schedule(python_cos), "raised ValueError", "math module")
    failed(check_lr_schedule(in_place), "in place")
    failed(check_lr_schedule(no_return), "None")
    failed(check_lr_schedule(stub), "NotImplementedError")
    failed(check_lr_schedule(None), "None")
    failed(check_lr_schedule(with_where(torch.arange(3.0), 1.0, 0.1, 1, 2)), "without calling")


def test_solution_is_never_shown() -> None:
    for wrong in (late_warmup, unshifted, to_zero, unclamped, divides_by_zero):
        message = failed(check_lr_schedule(wrong))
        assert "torch.cos" not in message and "math.pi" not in message
        assert "clamp" not in message and "torch.where" not in message
