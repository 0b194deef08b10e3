"""Tests of utils.schedules: values at the key steps, shapes, and errors."""

from __future__ import annotations

import math

import pytest

from utils.schedules import (
    SCHEDULES,
    constant_lr,
    cosine_lr,
    linear_lr,
    make_schedule,
    step_lr,
    wsd_lr,
)
from utils.training import lr_at

COMMON = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)


def _values(name: str, n: int = 130, **overrides) -> list[float]:
    schedule = make_schedule(name, **{**COMMON, **overrides})
    return [schedule(s) for s in range(n)]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_shares_the_warmup(name: str) -> None:
    lrs = _values(name)
    for step in range(10):
        assert lrs[step] == pytest.approx(1e-3 * (step + 1) / 10)
    assert lrs[10] == pytest.approx(1e-3)  # the first step after the warmup is at the peak


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_stays_in_range_and_never_rises_after_the_warmup(name: str) -> None:
    lrs = _values(name)
    assert max(lrs) <= 1e-3 * (1 + 1e-12)
    assert min(lrs[10:]) >= 1e-4 * (1 - 1e-12)
    after = lrs[10:]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(after, after[1:], strict=False))


def test_constant() -> None:
    assert _values("constant")[10:] == [1e-3] * 120
    assert constant_lr(0, max_lr=0.5) == 0.5  # no warmup


def test_step_divides_at_the_milestones() -> None:
    kw = dict(max_lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=100)
    assert step_lr(49, **kw) == 1.0
    assert step_lr(50, **kw) == pytest.approx(0.1)
    assert step_lr(74, **kw) == pytest.approx(0.1)
    assert step_lr(75, **kw) == pytest.approx(0.01)
    assert step_lr(500, **kw) == pytest.approx(0.01)
    assert step_lr(80, **kw, milestones=(0.3,), gamma=0.5) == 0.5
    assert step_lr(99, max_lr=1.0, min_lr=0.05, warmup_steps=0, max_steps=100) == 0.05  # floor


def test_linear_is_a_straight_line() -> None:
    lrs = _values("linear")
    # equal decrements between the warmup and max_steps, then min_lr
    steps = [b - a for a, b in zip(lrs[10:110], lrs[11:111], strict=False)]
    assert all(d == pytest.approx(-(1e-3 - 1e-4) / 100) for d in steps)
    assert lrs[60] == pytest.approx((1e-3 + 1e-4) / 2)
    assert lrs[110:] == pytest.approx([1e-4] * 20)


def test_cosine_matches_its_formula_and_lr_at() -> None:
    for step in (10, 35, 60, 85, 109, 110, 200):
        r = min(1.0, (step - 10) / 100)
        expected = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * r))
        assert cosine_lr(step, **COMMON) == pytest.approx(expected)
        assert lr_at(step, **COMMON) == cosine_lr(step, **COMMON)
    assert cosine_lr(60, **COMMON) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down
    # slow at both ends, fastest in the middle: the slope of (1 + cos) / 2
    lrs = _values("cosine")
    drops = [a - b for a, b in zip(lrs[10:110], lrs[11:111], strict=False)]
    assert drops.index(max(drops)) in range(45, 56)
    assert drops[0] < drops[50] / 10 and drops[-1] < drops[50] / 10


def test_wsd_plateau_then_linear_decay() -> None:
    lrs = _values("wsd", decay_fraction=0.2)  # 22 decay steps: 88..109
    assert lrs[10:88] == [1e-3] * 78
    assert lrs[88] == pytest.approx(1e-3)
    assert lrs[99] == pytest.approx(1e-3 - (1e-3 - 1e-4) * 11 / 22)
    assert lrs[110:] == pytest.approx([1e-4] * 20)
    assert wsd_lr(109, max_lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=110,
                  decay_fraction=1.0) == pytest.approx(1 / 110)


def test_no_warmup_starts_at_the_peak() -> None:
    for name in SCHEDULES:
        assert make_schedule(name, **{**COMMON, "warmup_steps": 0})(0) == pytest.approx(1e-3)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="step must be >= 0"):
        cosine_lr(-1, **COMMON)
    with pytest.raises(ValueError, match="min_lr <= max_lr"):
        linear_lr(0, max_lr=1e-4, min_lr=1e-3, warmup_steps=0, max_steps=10)
    with pytest.raises(ValueError, match="warmup_steps <= max_steps"):
        cosine_lr(0, max_lr=1e-3, min_lr=0.0, warmup_steps=20, max_steps=10)
    with pytest.raises(ValueError, match="gamma"):
        step_lr(0, max_lr=1.0, max_steps=10, gamma=0.0)
    with pytest.raises(ValueError, match="milestones"):
        step_lr(0, max_lr=1.0, max_steps=10, milestones=(0.7, 0.3))
    with pytest.raises(ValueError, match="decay_fraction"):
        wsd_lr(0, **COMMON, decay_fraction=0.0)
    with pytest.raises(ValueError, match="overlaps the warmup"):
        wsd_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=90, max_steps=100, decay_fraction=0.5)
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        make_schedule("cosin", **COMMON)
    with pytest.raises(ValueError, match="min_lr"):  # make_schedule checks its arguments at once
        make_schedule("cosine", max_lr=1e-4, min_lr=1e-3, warmup_steps=0, max_steps=10)
    with pytest.raises(TypeError):
        make_schedule("cosine", **COMMON, decay_fraction=0.1)
