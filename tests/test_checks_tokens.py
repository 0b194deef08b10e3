"""Tests of utils.checks.check_masked_loss: correct solutions pass, each mistake is named."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from utils.checks import check_masked_loss

# ------------------------------------------------------------------------------------------
# Readers' solutions: two correct ones, written differently, and typical mistakes.
# ------------------------------------------------------------------------------------------


def loss_with_ignore_index(logits, targets, loss_mask):
    targets = targets.masked_fill(~loss_mask, -100)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def loss_by_hand(logits, targets, loss_mask):
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
    return (nll * loss_mask).sum() / loss_mask.sum()


def loss_unmasked(logits, targets, loss_mask):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def loss_per_sequence(logits, targets, loss_mask):
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
    return ((nll * loss_mask).sum(-1) / loss_mask.sum(-1)).mean()


def loss_over_all_positions(logits, targets, loss_mask):
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (nll * loss_mask).sum() / loss_mask.numel()


def loss_naive_softmax(logits, targets, loss_mask):
    p = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    nll = -torch.log(p.gather(-1, targets[..., None])[..., 0])
    return (nll * loss_mask).sum() / loss_mask.sum()


def loss_per_position(logits, targets, loss_mask):
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * loss_mask


def loss_in_place(logits, targets, loss_mask):
    targets[~loss_mask] = -100
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def loss_python_float(logits, targets, loss_mask):
    return loss_by_hand(logits, targets, loss_mask).item()


def loss_float64(logits, targets, loss_mask):
    return loss_by_hand(logits.double(), targets, loss_mask)


def stub(logits, targets, loss_mask):
    raise NotImplementedError("replace this line with your implementation")


def forgot_return(logits, targets, loss_mask):
    loss_by_hand(logits, targets, loss_mask)


def text(result) -> str:
    return "\n".join(result.messages)


# ------------------------------------------------------------------------------------------


def test_correct_solutions_pass() -> None:
    for fn in (loss_with_ignore_index, loss_by_hand):
        result = check_masked_loss(fn)
        assert result.passed, text(result)
        assert "5 cases passed" in text(result)


def test_ignored_mask_is_named() -> None:
    result = check_masked_loss(loss_unmasked)
    assert not result.passed
    assert "right padding" in text(result) and "mask seems to be ignored" in text(result)


def test_per_sequence_average_is_named() -> None:
    result = check_masked_loss(loss_per_sequence)
    assert not result.passed
    assert "per-sequence means" in text(result)


def test_dividing_by_all_positions_is_named() -> None:
    result = check_masked_loss(loss_over_all_positions)
    assert not result.passed and "B * T" in text(result)


def test_overflow_is_named() -> None:
    result = check_masked_loss(loss_naive_softmax)
    assert not result.passed
    assert "large logits" in text(result) and ("NaN" in text(result) or "Inf" in text(result))


def test_wrong_shape_is_named() -> None:
    result = check_masked_loss(loss_per_position)
    assert not result.passed
    assert "Wrong shape" in text(result) and "per-position losses" in text(result)


def test_in_place_edit_is_named() -> None:
    result = check_masked_loss(loss_in_place)
    assert not result.passed and "in place" in text(result)


def test_non_tensor_none_dtype_and_exceptions_are_named() -> None:
    assert "expected a torch.Tensor" in text(check_masked_loss(loss_python_float))
    assert "returned None" in text(check_masked_loss(forgot_return))
    assert "dtype" in text(check_masked_loss(loss_float64))
    result = check_masked_loss(stub)
    assert not result.passed and "NotImplementedError" in text(result)
    assert "needs your function" in text(check_masked_loss(None))
    assert "without calling it" in text(check_masked_loss(torch.tensor(1.0)))
