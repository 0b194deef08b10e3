"""Tests of the number-valued checkers of the challenges chapter (utils.checks).

Correct solutions (two per exercise, one of them computed by an independent route) pass;
each typical mistake fails with its own hint; None, exceptions, wrong types, NaN and wrong
signatures are named; and no message shows the formula.
"""

from __future__ import annotations

import math

import pytest
import torch

from utils.accounting import (
    cost_per_million_tokens,
    forward_flops,
    training_state_bytes,
)
from utils.checks import (
    check_block_flops,
    check_checkpointed_training_bytes,
    check_cost_per_million,
    check_roofline_time,
)
from utils.model import GPTConfig

# ------------------------------------------------------------------------------------------
# Correct solutions
# ------------------------------------------------------------------------------------------


def block_flops(seq_len, d_model, d_ff):
    return 8 * seq_len * d_model**2 + 4 * seq_len**2 * d_model + 4 * seq_len * d_model * d_ff


def block_flops_from_accounting(seq_len, d_model, d_ff):
    # independent route: the tested model formula of utils.accounting, one layer, no lm_head
    config = GPTConfig(vocab_size=1, d_model=d_model, n_heads=1, n_layers=1, d_ff=d_ff,
                       ffn="gelu", context_length=max(seq_len, 1))
    f = forward_flops(config, seq_len)
    return f["total"] - f["lm_head"]


def training_bytes(n_params, n_layers, n_tokens, d_model):
    return 16 * n_params + 2 * n_layers * n_tokens * d_model


def training_bytes_from_accounting(n_params, n_layers, n_tokens, d_model):
    return training_state_bytes(n_params)["total"] + n_layers * n_tokens * d_model * 2


def roofline_time(flops, bytes_moved, peak_flops, bandwidth):
    return max(flops / peak_flops, bytes_moved / bandwidth)


def roofline_time_tensor(flops, bytes_moved, peak_flops, bandwidth):
    return torch.tensor([flops / peak_flops, bytes_moved / bandwidth], dtype=torch.float64).max()


def cost(n_params, peak_flops, mfu, dollars_per_hour):
    return 1e6 * 2 * n_params / (peak_flops * mfu) / 3600 * dollars_per_hour


def cost_from_accounting(n_params, peak_flops, mfu, dollars_per_hour):
    return cost_per_million_tokens(2 * n_params, peak_flops, mfu, dollars_per_hour)


CHECKERS = [
    (check_block_flops, [block_flops, block_flops_from_accounting]),
    (check_checkpointed_training_bytes, [training_bytes, training_bytes_from_accounting]),
    (check_roofline_time, [roofline_time, roofline_time_tensor]),
    (check_cost_per_million, [cost, cost_from_accounting]),
]


@pytest.mark.parametrize("checker,solutions", CHECKERS, ids=[c.__name__ for c, _ in CHECKERS])
def test_correct_solutions_pass(checker, solutions) -> None:
    for solution in solutions:
        result = checker(solution)
        assert result.passed, repr(result)
        assert "cases passed" in repr(result)


# ------------------------------------------------------------------------------------------
# Typical mistakes get their own hint
# ------------------------------------------------------------------------------------------

MISTAKES = [
    (check_block_flops, lambda T, d, f: block_flops(T, d, f) / 2, "multiply-add is 2 FLOPs"),
    (check_block_flops, lambda T, d, f: 8 * T * d * d + 4 * T * d * f, "left out the attention"),
    (check_block_flops, lambda T, d, f: block_flops(T, d, f) - 2 * T * T * d, "both T x T"),
    (check_block_flops, lambda T, d, f: block_flops(T, d, f) - 2 * T * d * d, "four projections"),
    (check_block_flops, lambda T, d, f: block_flops(T, d, f) - 2 * T * d * f, "two matrices"),
    (check_block_flops, lambda T, d, f: 3 * block_flops(T, d, f), "Forward pass only"),
    (check_checkpointed_training_bytes, lambda n, L, t, d: 12 * n + 2 * L * t * d, "master"),
    (check_checkpointed_training_bytes, lambda n, L, t, d: 8 * n + 2 * L * t * d, "two fp32"),
    (check_checkpointed_training_bytes, lambda n, L, t, d: 16 * n, "still stores"),
    (check_checkpointed_training_bytes, lambda n, L, t, d: 16 * n + 4 * L * t * d, "bf16"),
    (check_checkpointed_training_bytes, lambda n, L, t, d: 16 * n + 2 * t * d, "n_layers"),
    (check_roofline_time, lambda f, b, p, w: f / p + b / w, "not their sum"),
    (check_roofline_time, lambda f, b, p, w: min(f / p, b / w), "takes time too"),
    (check_roofline_time, lambda f, b, p, w: f / p, "bytes_moved / bandwidth"),
    (check_roofline_time, lambda f, b, p, w: f / b, "arithmetic intensity"),
    (check_cost_per_million, lambda n, p, m, c: 3 * cost(n, p, m, c), "training"),
    (check_cost_per_million, lambda n, p, m, c: cost(n, p, m, c) * m, "utilisation"),
    (check_cost_per_million, lambda n, p, m, c: cost(n, p, m, c) * 3600, "per hour"),
    (check_cost_per_million, lambda n, p, m, c: cost(n, p, m, c) / 1e6, "per million"),
]


@pytest.mark.parametrize("checker,wrong,hint", MISTAKES,
                         ids=[f"{c.__name__}-{h}" for c, _, h in MISTAKES])
def test_typical_mistakes_are_named(checker, wrong, hint) -> None:
    result = checker(wrong)
    assert not result.passed
    text = repr(result)
    assert hint in text, text
    assert "times the expected value" in text


# ------------------------------------------------------------------------------------------
# Everything that is not a number is named, and the checker never raises
# ------------------------------------------------------------------------------------------


def test_stub_exception_is_reported_with_the_readers_line() -> None:
    def stub(seq_len, d_model, d_ff):
        raise NotImplementedError("replace this line")

    text = repr(check_block_flops(stub))
    assert "raised NotImplementedError: replace this line" in text
    assert 'raise NotImplementedError("replace this line")' in text


def test_none_wrong_types_nan_and_signatures() -> None:
    assert "returned None" in repr(check_roofline_time(lambda f, b, p, w: None))
    assert "expected one number" in repr(check_roofline_time(lambda f, b, p, w: (f / p, b / w)))
    assert "expected one number" in repr(check_roofline_time(lambda f, b, p, w: "1e-3"))
    assert "expected one number" in repr(check_roofline_time(lambda f, b, p, w: True))
    text = repr(check_roofline_time(lambda f, b, p, w: torch.tensor([f / p, b / w])))
    assert "tensor of shape (2,)" in text
    assert "finite" in repr(check_roofline_time(lambda f, b, p, w: math.nan))
    assert "finite" in repr(check_cost_per_million(lambda n, p, m, c: math.inf))
    assert "cannot be called" in repr(check_block_flops(lambda seq_len, d_model: 0))
    not_called = check_block_flops(block_flops(1, 2, 3))
    assert not not_called.passed and "without calling it" in repr(not_called)
    assert "Did you run the cell" in repr(check_block_flops(None))


def test_messages_name_the_case_and_never_show_the_formula() -> None:
    result = check_block_flops(lambda T, d, f: 1)
    text = repr(result)
    assert "Case 'T = 100, d_model = 64, d_ff = 256' failed (0 of 4 cases passed)" in text
    assert "Inputs: seq_len = 100, d_model = 64, d_ff = 256" in text
    assert "Also failing" in text
    for formula in ("8 * ", "4 * T", "16 *", "max("):
        for checker, _ in CHECKERS:
            assert formula not in repr(checker(lambda *args: -1.0))


def test_a_bug_in_a_checker_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from utils import checks

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("utils.checks.accounting._run_number_check", broken)
    result = checks.check_cost_per_million(cost)
    assert not result.passed and "bug in the course" in repr(result)


def test_numpy_numbers_and_one_element_tensors_are_accepted() -> None:
    import numpy as np

    assert check_cost_per_million(lambda n, p, m, c: np.float64(cost(n, p, m, c))).passed
    assert check_block_flops(lambda T, d, f: np.int64(block_flops(T, d, f))).passed
    assert check_roofline_time(lambda f, b, p, w: torch.tensor([roofline_time(f, b, p, w)],
                                                                dtype=torch.float64)).passed
