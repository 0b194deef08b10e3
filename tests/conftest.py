"""Shared pytest fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    # CI runs two test processes on two cores (pytest -n 2). A second OpenMP thread per
    # process only makes the threads wait for each other, and tiny tensors gain nothing:
    # one short training test went from 4 s to 124 s with two threads on a busy machine.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)
