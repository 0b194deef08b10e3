"""Tests for utils/checks.py: correct solutions pass, each kind of mistake is named."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from check_results import failed, text

from utils.checks import (
    check_attention,
    check_causal_mask,
    check_multihead_split,
    check_rope,
    check_softmax,
    check_top_p,
)

# ------------------------------------------------------------------------------------------
# Readers' solutions: two differently written correct ones per exercise, and typical mistakes.
# ------------------------------------------------------------------------------------------


def attention_explicit(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_fused(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def attention_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_mask_ignored(q, k, v, mask=None):
    return attention_explicit(q, k, v)


def attention_mask_inverted(q, k, v, mask=None):
    return attention_explicit(q, k, v, None if mask is None else ~mask)


def attention_wrong_dim(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v


def attention_naive_exp(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.exp()
    return weights / weights.sum(dim=-1, keepdim=True) @ v


def attention_returns_weights(q, k, v, mask=None):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)


def attention_in_place(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v


def causal_tril(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool))


def causal_compare(n):
    i = torch.arange(n)
    return i.unsqueeze(1) >= i.unsqueeze(0)


def causal_inverted(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


def causal_upper(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool))


def causal_no_diagonal(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)


def softmax_manual(x, dim=-1):
    shifted = x - x.amax(dim=dim, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def softmax_ignores_dim(x, dim=-1):
    return torch.softmax(x, dim=-1)


def softmax_naive(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)


def softmax_global_max(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


def softmax_in_place(x, dim=-1):
    x -= x.amax(dim=dim, keepdim=True)
    return torch.softmax(x, dim=dim)


def split_view(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def split_chunks(x, n_heads):
    return torch.stack(x.chunk(n_heads, dim=-1), dim=1)


def split_reshape_only(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, n_heads, T, C // n_heads)


def split_no_transpose(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads)


def split_in_place(x, n_heads):
    x.mul_(1.0 + 1e-3)
    return split_view(x, n_heads)


def rope_rotate_half(x, positions, theta=10000.0):
    half = x.shape[-1] // 2
    inv_freq = 1.0 / theta ** (torch.arange(0, x.shape[-1], 2, dtype=torch.float32) / x.shape[-1])
    angles = positions.float()[:, None] * inv_freq[None, :]
    cos, sin = angles.cos().repeat(1, 2), angles.sin().repeat(1, 2)
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def rope_complex(x, positions):
    half = x.shape[-1] // 2
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(half) * 2 / x.shape[-1])
    angles = torch.outer(positions.to(inv_freq.dtype), inv_freq)
    pairs = torch.stack([x[..., :half], x[..., half:]], dim=-1).contiguous()
    z = torch.view_as_complex(pairs) * torch.polar(torch.ones_like(angles), angles)
    real = torch.view_as_real(z)
    return torch.cat([real[..., 0], real[..., 1]], dim=-1)


def rope_interleaved(x, positions):
    inv_freq = 1.0 / 10000 ** (torch.arange(0, x.shape[-1], 2).float() / x.shape[-1])
    angles = positions.float()[:, None] * inv_freq
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = [x1 * angles.cos() - x2 * angles.sin(), x1 * angles.sin() + x2 * angles.cos()]
    return torch.stack(out, dim=-1).flatten(-2)


def rope_ignores_positions(x, positions):
    return rope_rotate_half(x, torch.arange(x.shape[-2]))


def rope_wrong_direction(x, positions):
    return rope_rotate_half(x, -positions)


def rope_in_place(x, positions):
    out = rope_rotate_half(x, positions)
    x.zero_()
    return out


def top_p_scatter(probs, p):
    sorted_probs, order = torch.sort(probs, descending=True)
    keep_sorted = sorted_probs.cumsum(0) - sorted_probs < p
    return torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)


def top_p_count(probs, p):
    sorted_probs, order = torch.sort(probs, descending=True)
    n_keep = int((sorted_probs.cumsum(0) < p).sum()) + 1
    return torch.isin(torch.arange(len(probs)), order[:n_keep])


def top_p_drops_crossing(probs, p):
    sorted_probs, order = torch.sort(probs, descending=True)
    keep_sorted = sorted_probs.cumsum(0) <= p
    return torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)


def top_p_unsorted(probs, p):
    return probs.cumsum(0) - probs < p


def top_p_sorted_order(probs, p):
    sorted_probs, _ = torch.sort(probs, descending=True)
    return sorted_probs.cumsum(0) - sorted_probs < p


def top_p_in_place(probs, p):
    probs.mul_(2.0)  # "rescale" in place
    return top_p_scatter(probs / 2.0, p)


def raising(*args, **kwargs):
    return torch.zeros(2, 3) @ torch.zeros(4, 5)  # the reader's faulty line


RAISING_LINE = "return torch.zeros(2, 3) @ torch.zeros(4, 5)"


# ------------------------------------------------------------------------------------------
# One table row per checker; the generic tests below run over all rows.
# ------------------------------------------------------------------------------------------


@dataclass
class Exercise:
    checker: Any
    correct: Any
    correct_again: Any
    first_case: str
    mask_output: bool = False
    in_place: Any = None


EXERCISES = {
    "attention": Exercise(check_attention, attention_explicit, attention_fused,
                          "unmasked 2-D (T, d)", in_place=attention_in_place),
    "causal_mask": Exercise(check_causal_mask, causal_tril, causal_compare, "n = 4",
                            mask_output=True),
    "softmax": Exercise(check_softmax, softmax_manual, softmax_logsumexp, "1-D vector",
                        in_place=softmax_in_place),
    "multihead_split": Exercise(check_multihead_split, split_view, split_chunks,
                                "(B, T, C) = (2, 5, 12), n_heads = 3", in_place=split_in_place),
    "rope": Exercise(check_rope, rope_rotate_half, rope_complex,
                     "(T, D) = (5, 8), positions 0..4", in_place=rope_in_place),
    "top_p": Exercise(check_top_p, top_p_scatter, top_p_count, "p = 0.9 (V = 10)",
                      mask_output=True, in_place=top_p_in_place),
}
ALL = pytest.mark.parametrize("ex", EXERCISES.values(), ids=EXERCISES.keys())





@ALL
def test_correct_solutions_pass(ex: Exercise) -> None:
    for solution in (ex.correct, ex.correct_again):
        result = ex.checker(solution)
        assert result.passed, text(result)
        assert result.messages[0].startswith("All ") and "cases passed" in result.messages[0]


@ALL
def test_wrong_shape(ex: Exercise) -> None:
    result = ex.checker(lambda *a, **kw: ex.correct(*a, **kw)[..., :1])
    failed(result, f"Case '{ex.first_case}'", "Wrong shape: expected")


@ALL
def test_wrong_dtype(ex: Exercise) -> None:
    if ex.mask_output:
        result = ex.checker(lambda *a, **kw: ex.correct(*a, **kw).int())
        failed(result, "expected a torch.bool mask, got torch.int32", ".bool()")
    else:
        result = ex.checker(lambda *a, **kw: ex.correct(*a, **kw).double())
        failed(result, "expected torch.float32 (the dtype of the input), got torch.float64",
               "only the dtype differs")


@ALL
def test_nan_output(ex: Exercise) -> None:
    def with_nan(*args, **kwargs):
        out = ex.correct(*args, **kwargs).float()
        return out * float("nan")

    result = ex.checker(with_nan)
    if ex.mask_output:  # a bool mask cannot hold NaN: the float result is refused first
        failed(result, "expected a torch.bool mask, got torch.float32")
    else:
        failed(result, f"Case '{ex.first_case}'", "contains NaN")


@ALL
def test_exception_shows_type_and_reader_line(ex: Exercise) -> None:
    body = failed(ex.checker(raising), "Your function raised RuntimeError", RAISING_LINE,
                  "test_checks.py, line", "in raising")
    assert "checks.py, line" not in body.replace("test_checks.py, line", "")


@ALL
def test_returning_none(ex: Exercise) -> None:
    failed(ex.checker(lambda *a, **kw: None), "returned None", "return statement")


@ALL
def test_non_tensor_and_tuple(ex: Exercise) -> None:
    failed(ex.checker(lambda *a, **kw: ex.correct(*a, **kw).tolist()), "list", "single torch")
    failed(ex.checker(lambda *a, **kw: ex.correct(*a, **kw).numpy()), "numpy.ndarray")
    failed(ex.checker(lambda *a, **kw: (ex.correct(*a, **kw), 1)), "tuple of 2 items")


@ALL
def test_in_place_modification(ex: Exercise) -> None:
    if ex.in_place is None:
        pytest.skip("the only input is an int, which cannot be modified in place")
    failed(ex.checker(ex.in_place), "modified its input", "in place")


@ALL
def test_not_callable(ex: Exercise) -> None:
    tensor = torch.zeros(3)
    failed(ex.checker(tensor), "needs your function, but got a torch.Tensor", "without calling")
    failed(ex.checker(None), "got None", "run the cell")


@ALL
def test_wrong_signature(ex: Exercise) -> None:
    failed(ex.checker(lambda: None), "cannot be called as fn(")


@ALL
def test_prints_nothing_and_keeps_global_rng(ex: Exercise, capsys) -> None:
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    ex.checker(ex.correct)
    ex.checker(softmax_naive)
    assert torch.equal(torch.rand(3), expected_next)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------
# Common mistakes are recognised and named, per exercise.
# ------------------------------------------------------------------------------------------

MISTAKES = [
    (check_attention, attention_unscaled, "unmasked 2-D (T, d)", "sqrt(d_k)"),
    (check_attention, attention_mask_ignored, "boolean causal mask", "apply the mask"),
    (check_attention, attention_mask_inverted, "boolean causal mask", "mask is inverted"),
    (check_attention, attention_wrong_dim, "unmasked 2-D (T, d)", "over the keys"),
    (check_attention, attention_naive_exp, "large-magnitude inputs", "subtract each row's max"),
    (check_attention, attention_returns_weights, "unmasked 2-D (T, d)", "attention weights"),
    (check_causal_mask, causal_inverted, "n = 4", "inverted"),
    (check_causal_mask, causal_upper, "n = 4", "lower triangle"),
    (check_causal_mask, causal_no_diagonal, "n = 4", "diagonal must be True"),
    (check_softmax, softmax_ignores_dim, "2-D, dim=0", "Normalise along dim=0, not dim=1"),
    (check_softmax, softmax_naive, "large inputs (about +-1000)", "subtract the max"),
    (check_softmax, softmax_global_max, "large inputs (about +-1000)", "not the max of the whole"),
    (check_softmax, lambda x, dim=-1: torch.softmax(x.float(), dim), "float64 input",
     "torch.float64"),
    (check_multihead_split, split_reshape_only, "n_heads = 3", "mixes tokens across heads"),
    (check_multihead_split, split_no_transpose, "n_heads = 3", "swap the T and head dims"),
    (check_rope, rope_interleaved, "positions 0..4", "rotate-half"),
    (check_rope, rope_wrong_direction, "positions 0..4", "wrong way"),
    (check_rope, rope_ignores_positions, "positions 10..13", "positions argument"),
    (check_top_p, top_p_drops_crossing, "p = 0.9 (V = 10)", "crosses p"),
    (check_top_p, top_p_unsorted, "p = 0.9 (V = 10)", "Sort the probabilities"),
    (check_top_p, top_p_sorted_order, "p = 0.9 (V = 10)", "original token order"),
    (check_top_p, lambda probs, p: ~top_p_scatter(probs, p), "p = 0.9", "'keep this token'"),
]


@pytest.mark.parametrize(("checker", "solution", "case", "hint"), MISTAKES,
                         ids=[f"{m[0].__name__}-{m[3]}" for m in MISTAKES])
def test_common_mistakes_are_named(checker, solution, case, hint) -> None:
    result = checker(solution)
    failed(result, "Hint:", hint)
    assert case in result.messages[0]


def test_missing_mask_parameter_is_explained() -> None:
    result = check_attention(lambda q, k, v: attention_explicit(q, k, v))
    failed(result, "cannot be called as fn(q, k, v, mask=None)", "'mask'")
    assert "boolean causal mask" in result.messages[0]


def test_value_error_reports_location_and_values() -> None:
    body = failed(check_attention(attention_unscaled), "Values differ in", "Largest error",
                  "at out[", "expected", "got", "Inputs: q (4, 8) float32")
    assert "Also failing:" in body


def test_passing_result_displays_green() -> None:
    result = check_softmax(softmax_manual)
    assert bool(result)
    assert repr(result) == "✅ check_softmax: All 6 cases passed."
    assert "#2e7d32" in result._repr_html_() and "All 6 cases passed" in result._repr_html_()


def test_failing_result_displays_red_with_case() -> None:
    result = check_softmax(softmax_naive)
    assert not bool(result)
    assert repr(result).startswith("❌ check_softmax: Case 'large inputs (about +-1000)' failed")
    page = result._repr_html_()
    assert "#c62828" in page and "large inputs (about +-1000)" in page


def test_checker_bug_is_reported_not_raised(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("internal")

    monkeypatch.setattr("utils.checks.attention._run_check", broken)
    result = check_softmax(softmax_manual)
    failed(result, "The checker itself failed", "bug in the course")


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check_softmax(interrupted)


def test_reference_solutions_in_utils_pass() -> None:
    attention = pytest.importorskip("utils.attention")
    positional = pytest.importorskip("utils.positional")
    assert check_attention(attention.scaled_dot_product_attention).passed
    assert check_causal_mask(attention.causal_mask).passed
    assert check_rope(positional.apply_rope).passed


def test_top_p_filter_in_utils_passes() -> None:
    generation = pytest.importorskip("utils.generation")

    def keep_mask(probs, p):
        return torch.isfinite(generation.top_p_filter(probs.log(), p))

    assert check_top_p(keep_mask).passed


def test_answered_waits_for_every_placeholder() -> None:
    from utils.checks import answered

    assert answered(0, "", torch.zeros(2), False)  # falsy answers still count as answers
    assert not answered(None)
    assert not answered(1, ...)
    assert not answered(torch.ones(1), None)
    assert answered()
