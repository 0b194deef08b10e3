"""best_time measures this thread's CPU time: sleeping costs nothing, work costs something."""

from __future__ import annotations

import time

import torch

from utils.timing import best_time


def test_sleep_is_not_counted_and_work_is():
    calls = []

    def sleepy():
        calls.append(1)
        time.sleep(0.02)

    assert best_time(sleepy, max_repeat=3) < 0.01  # 20 ms of wall clock, ~0 CPU time
    assert 2 <= len(calls) <= 4  # one warm-up plus at most max_repeat timed calls
    x = torch.randn(300, 300)
    light = best_time(lambda: x @ x)
    heavy = best_time(lambda: [x @ x for _ in range(20)])
    assert 0 < light < heavy
