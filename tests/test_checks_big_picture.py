"""Tests of check_top_k_gates (utils.checks): correct routers pass, each mistake is named."""

from __future__ import annotations

import torch
from check_results import failed, text

from utils.checks import check_top_k_gates
from utils.moe import dense_gates


def gates_topk(logits, k):
    top, idx = logits.topk(k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(top, dim=-1))


def gates_renormalised(logits, k):
    # an independent route: softmax over all experts, mask, renormalise
    probs = torch.softmax(logits, dim=-1)
    kth = probs.topk(k, dim=-1).values[..., -1:]
    kept = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    return kept / kept.sum(-1, keepdim=True)


def test_correct_solutions_pass():
    for fn in (gates_topk, gates_renormalised, dense_gates):
        result = check_top_k_gates(fn)
        assert result.passed, text(result)


def test_stub_none_and_exceptions_are_named():
    def stub(logits, k):
        raise NotImplementedError("replace this line")

    failed(check_top_k_gates(stub), "NotImplementedError")
    failed(check_top_k_gates(lambda logits, k: None), "returned None")
    failed(check_top_k_gates(lambda logits: logits), "cannot be called")
    failed(check_top_k_gates(42), "not")


def test_typical_mistakes_get_their_hint():
    def no_renorm(logits, k):
        probs = torch.softmax(logits, -1)
        idx = logits.topk(k, -1).indices
        return torch.zeros_like(probs).scatter(-1, idx, probs.gather(-1, idx))

    def one_hot(logits, k):
        idx = logits.topk(k, -1).indices
        return torch.zeros_like(logits).scatter(-1, idx, 1.0)

    def raw_logits(logits, k):
        top, idx = logits.topk(k, -1)
        return torch.zeros_like(logits).scatter(-1, idx, top)

    def all_experts(logits, k):
        return torch.softmax(logits, -1)

    def compact(logits, k):
        return torch.softmax(logits.topk(k, -1).values, -1)

    def smallest(logits, k):
        low, idx = logits.topk(k, -1, largest=False)
        return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(low, -1))

    failed(check_top_k_gates(no_renorm), "sum to 1")
    failed(check_top_k_gates(one_hot), "not a 0/1 choice")
    failed(check_top_k_gates(raw_logits), "softmax before scattering")
    failed(check_top_k_gates(all_experts), "keep only the k best")
    failed(check_top_k_gates(compact), "Wrong shape", "scatter the k weights")
    failed(check_top_k_gates(smallest), "largest")


def test_nan_dtype_and_in_place_are_named():
    def nan_out(logits, k):
        return gates_topk(logits, k) * float("nan")

    def as_float32(logits, k):
        return gates_topk(logits, k).float()

    def in_place(logits, k):
        out = gates_topk(logits, k)
        logits.zero_()
        return out

    def naive_exp(logits, k):  # no max subtraction: overflows on large logits
        top, idx = logits.topk(k, -1)
        w = top.exp() / top.exp().sum(-1, keepdim=True)
        return torch.zeros_like(logits).scatter(-1, idx, w)

    failed(check_top_k_gates(nan_out), "NaN")
    failed(check_top_k_gates(as_float32), "dtype")
    failed(check_top_k_gates(in_place), "in place")
    failed(check_top_k_gates(naive_exp), "large logits")


def test_messages_never_show_the_solution():
    body = text(check_top_k_gates(lambda logits, k: torch.zeros_like(logits)))
    assert "scatter(-1" not in body and "topk(k" not in body
