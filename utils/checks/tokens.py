"""Checker of the text-to-tensors exercise: the masked next-token loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .core import (
    CheckResult,
    _Case,
    _generator,
    _never_raises,
    _randn,
    _run_check,
)


def _masked_loss_ref(logits: Tensor, targets: Tensor, loss_mask: Tensor,
                     average: str = "token", use_mask: bool = True) -> Tensor:
    """float64 cross-entropy per position, averaged over the masked positions (or variants)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    weight = loss_mask.double() if use_mask else torch.ones_like(nll)
    if average == "token":
        out = (nll * weight).sum() / weight.sum()
    elif average == "sequence":
        out = ((nll * weight).sum(-1) / weight.sum(-1)).mean()
    else:  # "sum"
        out = (nll * weight).sum()
    return out.to(logits.dtype)


@_never_raises
def check_masked_loss(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(logits, targets, loss_mask) -> loss``, the masked next-token loss.

    logits are ``(B, T, V)`` floats, targets ``(B, T)`` long ids (any id, padding included,
    where the mask is False), loss_mask ``(B, T)`` bool. The result is a 0-dim tensor in the
    dtype of logits: the cross-entropy averaged over the positions where the mask is True,
    every such token weighing the same. Cases: no padding, right padding, sequences of very
    different lengths, a mask that is not a prefix (chat fine-tuning), large logits.

    Args:
        fn: The reader's loss function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, B, T, V, real lengths or an explicit mask, scale of the logits, hint
        ("no padding", 2, 5, 7, [5, 5], 1.0,
         "Cross-entropy of each position's logits against its target, averaged over them."),
        ("right padding", 3, 6, 9, [6, 4, 2], 1.0,
         "Positions where loss_mask is False must not count, neither in the sum nor in the"
         " number you divide by."),
        ("very different lengths", 2, 12, 5, [12, 3], 1.0,
         "Average over all real tokens of the batch at once, so every token weighs the same."),
        ("only the reply counts (not a prefix)", 2, 8, 6, "reply", 1.0,
         "The mask can be True in the middle of a sequence: use it as it is, position by"
         " position."),
        ("large logits", 2, 6, 11, [6, 3], 40.0,
         "exp() of large logits overflows: use log_softmax or F.cross_entropy, not"
         " log(softmax(...))."),
    ]
    cases = []
    for name, B, T, V, lengths, scale, hint in specs:
        logits = _randn(g, B, T, V, scale=scale)
        targets = torch.randint(0, V, (B, T), generator=g)
        if lengths == "reply":
            mask = torch.zeros(B, T, dtype=torch.bool)
            mask[0, 3:6] = True
            mask[1, 5:8] = True
        else:
            mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
            targets = targets.masked_fill(~mask, 0)  # padding targets are the pad id 0
        args = {"logits": logits, "targets": targets, "loss_mask": mask}
        mistakes = [
            (_masked_loss_ref(logits, targets, mask, use_mask=False),
             "The mask seems to be ignored: padding positions are averaged in."),
            (_masked_loss_ref(logits, targets, mask, average="sequence"),
             "This is the mean of the per-sequence means, which gives the tokens of short"
             " sequences more weight. Divide the masked sum by the number of real tokens of the"
             " whole batch."),
            (_masked_loss_ref(logits, targets, mask, average="sum"),
             "This is the sum over real tokens: divide by their number."),
            (_masked_loss_ref(logits, targets, mask, average="sum") / (B * T),
             "You divided by B * T, all positions: divide by the number of True entries of the"
             " mask."),
        ]
        cases.append(_Case(
            name, args, _masked_loss_ref(logits, targets, mask),
            atol=1e-4 if scale > 1 else 1e-5, hint=hint, mistakes=mistakes,
            shape_hints={(B, T): "These are per-position losses: average them over the mask"
                         " to one number.",
                         (B,): "These are per-sequence losses: the result is one number for"
                         " the batch."},
        ))
    return _run_check("check_masked_loss", fn, cases, "fn(logits, targets, loss_mask)")
