"""check_alibi (the position chapter's exercise): right answers pass, each mistake is named."""

from __future__ import annotations

import pytest
import torch
from check_results import failed, text

from utils.checks import check_alibi
from utils.positional import alibi_bias

# ------------------------------------------------------------------------------------------
# Readers' solutions: two correct ones written differently, and typical mistakes.
# ------------------------------------------------------------------------------------------


def alibi_loops(scores):
    H, Tq, Tk = scores.shape[-3:]
    out = scores.clone()
    for h in range(H):
        slope = 2 ** (-8 * (h + 1) / H)
        for i in range(Tq):
            pos = Tk - Tq + i
            for j in range(pos + 1):
                out[..., h, i, j] = out[..., h, i, j] - slope * (pos - j)
    return out


def alibi_from_utils(scores):
    H, Tq, Tk = scores.shape[-3:]
    return scores + alibi_bias(H, Tq, Tk).to(scores.dtype)


def alibi_positive(scores):
    return scores - (alibi_from_utils(scores) - scores)


def alibi_symmetric(scores):
    H, Tq, Tk = scores.shape[-3:]
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)])
    i = torch.arange(Tk - Tq, Tk)[:, None]
    j = torch.arange(Tk)[None, :]
    return scores - (slopes[:, None, None] * (i - j).abs()).to(scores.dtype)


def alibi_no_offset(scores):
    H, Tq, Tk = scores.shape[-3:]
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)])
    distance = (torch.arange(Tq)[:, None] - torch.arange(Tk)[None, :]).clamp(min=0)
    return scores - (slopes[:, None, None] * distance).to(scores.dtype)


def alibi_fixed_slopes(scores):
    H, Tq, Tk = scores.shape[-3:]
    slopes = torch.tensor([2.0 ** -(h + 1) for h in range(H)])  # right for H = 8 only
    distance = (torch.arange(Tk - Tq, Tk)[:, None] - torch.arange(Tk)[None, :]).clamp(min=0)
    return scores - (slopes[:, None, None] * distance).to(scores.dtype)


def alibi_reversed(scores):
    bias = alibi_from_utils(scores) - scores
    return scores + bias.flip(-3)


def alibi_bias_only(scores):
    return alibi_from_utils(scores) - scores


def alibi_in_place(scores):
    out = alibi_from_utils(scores)
    scores.zero_()
    return out


def raising(scores):
    return torch.zeros(2, 3) @ torch.zeros(4, 5)  # the reader's faulty line




FIRST = "Case '(H, T, T) = (4, 5, 5)'"

# ------------------------------------------------------------------------------------------
# The generic rules every checker follows.
# ------------------------------------------------------------------------------------------


def test_correct_solutions_pass() -> None:
    for solution in (alibi_loops, alibi_from_utils):
        result = check_alibi(solution)
        assert result.passed, text(result)
        assert result.messages == ["All 5 cases passed."]


def test_wrong_shape_dtype_nan() -> None:
    failed(check_alibi(lambda s: alibi_from_utils(s)[..., :1]), FIRST, "Wrong shape: expected")
    failed(check_alibi(lambda s: alibi_from_utils(s).double()),
           "expected torch.float32 (the dtype of the input), got torch.float64",
           "only the dtype differs")
    failed(check_alibi(lambda s: alibi_from_utils(s) * float("nan")), FIRST, "contains NaN")
    failed(check_alibi(lambda s: alibi_from_utils(s.float())), "Case 'float64 scores'",
           "Keep the input's dtype")


def test_exception_none_non_tensor_in_place_and_not_callable() -> None:
    body = failed(check_alibi(raising), "Your function raised RuntimeError",
                  "return torch.zeros(2, 3) @ torch.zeros(4, 5)", "test_checks_position.py, line")
    assert "in raising" in body
    failed(check_alibi(lambda s: None), "returned None", "return statement")
    failed(check_alibi(lambda s: (alibi_from_utils(s), 1)), "tuple of 2 items")
    failed(check_alibi(alibi_in_place), "modified its input 'scores'", "in place")
    failed(check_alibi(torch.zeros(3)), "needs your function, but got a torch.Tensor")
    failed(check_alibi(None), "got None", "run the cell")
    failed(check_alibi(lambda: None), "cannot be called as fn(scores)")


def test_prints_nothing_and_keeps_global_rng(capsys) -> None:
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    check_alibi(alibi_loops)
    check_alibi(alibi_positive)
    assert torch.equal(torch.rand(3), expected_next)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------
# Typical mistakes are recognised and named.
# ------------------------------------------------------------------------------------------

MISTAKES = [
    (alibi_positive, "(H, T, T) = (4, 5, 5)", "subtract slope * distance"),
    (alibi_symmetric, "(H, T, T) = (4, 5, 5)", "not |i - j|"),
    (alibi_reversed, "(H, T, T) = (4, 5, 5)", "Head 0 has the largest slope"),
    (alibi_fixed_slopes, "(H, T, T) = (4, 5, 5)", "depend on the number of heads"),
    (alibi_bias_only, "(H, T, T) = (4, 5, 5)", "not the bias alone"),
    (alibi_no_offset, "decoding: 2 queries, 7 keys", "Tk - Tq + i"),
]


@pytest.mark.parametrize(("solution", "case", "hint"), MISTAKES,
                         ids=[m[0].__name__ for m in MISTAKES])
def test_common_mistakes_are_named(solution, case, hint) -> None:
    result = check_alibi(solution)
    failed(result, "Hint:", hint)
    assert case in result.messages[0]
