"""Checkers for the course's inline code exercises.

A reader writes a function in a notebook cell and hands it to a checker::

    check_attention(my_attention)

The checker runs the function on seeded reference cases and returns a :class:`CheckResult`,
which displays itself in a notebook: a green tick when every case passes, otherwise the first
failing case with what was expected, what came back, and a hint. Checkers never raise (except
``KeyboardInterrupt``) and never show the reference solution. Outputs are compared by value,
with tolerances, so any correct implementation passes.

Every checker applies the same rules:

- the function must return one ``torch.Tensor`` of the expected shape;
- float outputs keep the dtype of the float input (``float32`` in, ``float32`` out; a
  ``float64`` result for ``float32`` input fails), masks are ``torch.bool``;
- no NaN or Inf, and values within the case's tolerance;
- the inputs are left unmodified (no in-place operations on them).

The package holds one module per topic (``attention``, ``position``, ``generation``, ``block``,
``accounting``, ``tokens``, ``efficiency``) over the shared machinery in ``core``. To add a
checker, build a list of ``core._Case`` objects (inputs, expected output, tolerance, a hint, and
known wrong outputs with the hint each deserves) and pass them to ``core._run_check`` (or
``core._run_number_check`` for an answer that is one number), in the module of its topic, and
re-export it here.
"""

from .accounting import (
    check_block_flops,
    check_checkpointed_training_bytes,
    check_cost_per_million,
    check_roofline_time,
)
from .attention import (
    check_attention,
    check_causal_mask,
    check_multihead_attention,
    check_multihead_split,
    check_softmax,
)
from .big_picture import check_top_k_gates
from .block import check_block
from .core import CheckResult, answered
from .efficiency import check_tiled_attention
from .generation import check_top_p
from .inference import check_min_p
from .position import check_alibi, check_rope
from .scaling import check_power_law_fit
from .tokens import check_masked_loss
from .training import check_lr_schedule

__all__ = [
    "CheckResult",
    "answered",
    "check_alibi",
    "check_attention",
    "check_block",
    "check_block_flops",
    "check_causal_mask",
    "check_checkpointed_training_bytes",
    "check_cost_per_million",
    "check_lr_schedule",
    "check_masked_loss",
    "check_min_p",
    "check_multihead_attention",
    "check_multihead_split",
    "check_power_law_fit",
    "check_roofline_time",
    "check_rope",
    "check_softmax",
    "check_tiled_attention",
    "check_top_k_gates",
    "check_top_p",
]
