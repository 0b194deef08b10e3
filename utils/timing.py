"""Timing that other programs on the machine barely disturb.

On a CPU the best of several runs of *this thread's CPU time* (``time.thread_time``): waiting
for a shared core does not count, so a busy machine changes the result little. On a GPU the
wall clock after ``torch.cuda.synchronize``, since kernels run asynchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def best_time(fn: Callable[[], Any], device: torch.device | str = "cpu", min_total: float = 0.05,
              max_repeat: int = 10) -> float:
    """Best time of ``fn()`` in seconds over repeats, after one warm-up call.

    Args:
        fn: A function of no arguments.
        device: Where ``fn`` runs: CPU time of this thread on the CPU, synchronised wall
            clock on CUDA.
        min_total: Stop repeating once this many seconds were measured in total.
        max_repeat: At most this many timed calls.

    Returns:
        The shortest of the timed calls, in seconds.
    """
    device = torch.device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    fn()
    sync()
    best, total, repeats = float("inf"), 0.0, 0
    while total < min_total and repeats < max_repeat:
        start = clock()
        fn()
        sync()
        elapsed = clock() - start
        best, total, repeats = min(best, elapsed), total + elapsed, repeats + 1
    return best
