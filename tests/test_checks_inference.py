"""Tests of utils.checks.check_min_p: correct solutions pass, each mistake is named."""

from __future__ import annotations

import math

import torch
from check_results import failed

from utils.checks import check_min_p


def min_p_softmax(logits, min_p):
    probs = torch.softmax(logits, dim=-1)
    return probs >= min_p * probs.amax(dim=-1, keepdim=True)


def min_p_in_log_space(logits, min_p):
    if min_p == 0:
        return torch.ones_like(logits, dtype=torch.bool)
    return logits >= logits.amax(dim=-1, keepdim=True) + math.log(min_p)


def absolute_threshold(logits, min_p):
    return torch.softmax(logits, dim=-1) >= min_p


def on_logits(logits, min_p):
    return logits >= min_p * logits.amax(dim=-1, keepdim=True)


def global_max(logits, min_p):
    probs = torch.softmax(logits, dim=-1)
    return probs >= min_p * probs.max()


def strict(logits, min_p):
    probs = torch.softmax(logits, dim=-1)
    return probs > min_p * probs.amax(dim=-1, keepdim=True)


def inverted(logits, min_p):
    return ~min_p_softmax(logits, min_p)


def as_floats(logits, min_p):
    return min_p_softmax(logits, min_p).float()


def in_place(logits, min_p):
    logits -= logits.amax(dim=-1, keepdim=True)
    return min_p_softmax(logits, min_p)


def no_return(logits, min_p):
    min_p_softmax(logits, min_p)


def crashes(logits, min_p):
    return logits.softmax(dim=2) >= min_p


def stub(logits, min_p):
    raise NotImplementedError("write min-p")


def test_correct_solutions_pass() -> None:
    assert check_min_p(min_p_softmax)
    assert check_min_p(min_p_in_log_space)


def test_each_mistake_is_named() -> None:
    failed(check_min_p(absolute_threshold), "not with min_p itself")
    failed(check_min_p(on_logits), "Compare probabilities, not logits")
    failed(check_min_p(global_max), "per row")
    failed(check_min_p(strict), "use >=")
    failed(check_min_p(inverted), "inverted")
    failed(check_min_p(as_floats), "torch.bool")
    failed(check_min_p(in_place), "in place")
    failed(check_min_p(no_return), "None")
    failed(check_min_p(crashes), "IndexError")
    failed(check_min_p(stub), "NotImplementedError")
    failed(check_min_p(None))


def test_solution_is_never_shown() -> None:
    message = failed(check_min_p(absolute_threshold))
    assert "amax" not in message and "softmax(logits" not in message
