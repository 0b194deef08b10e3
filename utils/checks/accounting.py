"""Checkers of the resource-accounting exercises (FLOPs, memory, roofline, cost)."""

from __future__ import annotations

from collections.abc import Callable

from .core import (
    CheckResult,
    _Case,
    _never_raises,
    _number,
    _run_number_check,
)


@_never_raises
def check_block_flops(fn: Callable[[int, int, int], float]) -> CheckResult:
    """Check ``fn(seq_len, d_model, d_ff)``: forward matmul FLOPs of one transformer block.

    The block is GPT-2's: four ``d_model x d_model`` projections (Q, K, V, output), the
    attention scores ``Q K^T`` and the weighted sum ``A V`` counted as dense ``T x T``
    products (all heads together), and an MLP of two matrices ``d_model x d_ff`` and
    ``d_ff x d_model``. One sequence, no batch; a multiply-add is 2 FLOPs; norms, softmax and
    activations are not counted.

    Args:
        fn: The reader's FLOP counter.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    for T, d, f in ((100, 64, 256), (1, 512, 2048), (4096, 128, 512), (2048, 768, 1000)):
        proj, scores, mlp = 8 * T * d * d, 4 * T * T * d, 4 * T * d * f
        total = proj + scores + mlp
        mistakes = [
            (total / 2, "A multiply-add is 2 FLOPs: (m, k) @ (k, n) costs 2 m k n."),
            (proj + mlp, "You left out the attention itself: Q K^T and A V are matmuls too."),
            (proj + scores / 2 + mlp, "Count both T x T products, Q K^T and A V, each"
             " 2 T^2 d_model FLOPs (dense, even under a causal mask)."),
            (6 * T * d * d + scores + mlp, "There are four projections: Q, K, V and the output"
             " projection."),
            (proj + scores + mlp / 2, "The MLP has two matrices: d_model -> d_ff and back."),
            (3 * total, "Forward pass only: the backward pass (2x the forward) is not asked."),
        ]
        cases.append(_Case(f"T = {T}, d_model = {d}, d_ff = {f}",
                           {"seq_len": T, "d_model": d, "d_ff": f}, _number(total),
                           atol=0.0, rtol=1e-9, mistakes=[(_number(w), h) for w, h in mistakes],
                           hint="Add up 2 m k n for every matmul of the block."))
    return _run_number_check("check_block_flops", fn, cases, "fn(seq_len, d_model, d_ff)")


@_never_raises
def check_checkpointed_training_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Check ``fn(n_params, n_layers, n_tokens, d_model)``: the memory floor of training.

    Mixed-precision training with AdamW and full activation checkpointing keeps, for the
    whole step: bf16 weights and gradients, fp32 master weights and AdamW's two fp32
    moments (16 bytes per parameter), plus each layer's bf16 input, ``n_tokens x d_model``
    values per layer (``n_tokens`` = batch x sequence length). The one layer being
    recomputed during the backward pass and the logits are not counted.

    Args:
        fn: The reader's memory estimate, in bytes.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    for n, L, tokens, d in ((1000, 2, 10, 8), (25_829_888, 8, 16_384, 512),
                            (6_738_415_616, 32, 4096, 4096), (123_456, 3, 1, 64)):
        state, stored = 16 * n, 2 * L * tokens * d
        mistakes = [
            (12 * n + stored, "Mixed precision keeps an fp32 master copy of the weights too:"
             " 2 + 2 + 4 + 8 bytes per parameter."),
            (8 * n + stored, "AdamW keeps two fp32 moments, m and v, for every parameter."),
            (4 * n + stored, "Count weights, gradients, master weights and both AdamW moments."),
            (state, "Checkpointing still stores each layer's input: n_layers x n_tokens x"
             " d_model values in bf16."),
            (16 * n + 2 * stored, "The checkpoints are bf16: 2 bytes per value."),
            (16 * n + 2 * tokens * d, "Every layer keeps its own input: multiply by n_layers."),
        ]
        cases.append(_Case(f"N = {n:,}, {L} layers, {tokens:,} tokens, d_model = {d}",
                           {"n_params": n, "n_layers": L, "n_tokens": tokens, "d_model": d},
                           _number(state + stored), atol=0.0, rtol=1e-9,
                           mistakes=[(_number(w), h) for w, h in mistakes],
                           hint="Bytes per parameter times N, plus the stored layer inputs."))
    return _run_number_check("check_checkpointed_training_bytes", fn, cases,
                             "fn(n_params, n_layers, n_tokens, d_model)")


@_never_raises
def check_roofline_time(fn: Callable[[float, float, float, float], float]) -> CheckResult:
    """Check ``fn(flops, bytes_moved, peak_flops, bandwidth)``: a kernel's roofline time.

    The lower bound on the time of a kernel that does ``flops`` FLOPs and moves
    ``bytes_moved`` bytes on a machine with ``peak_flops`` FLOP/s and ``bandwidth`` bytes/s,
    when computing and memory traffic overlap perfectly. In seconds.

    Args:
        fn: The reader's roofline time.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    specs = [  # name, flops, bytes, peak, bandwidth
        ("memory-bound (RMSNorm-like)", 4e6, 8e6, 1e12, 1e11),
        ("compute-bound (large matmul)", 2 * 4096.0**3, 3 * 2 * 4096.0**2, 9.89e14, 3.35e12),
        ("decoding step of a 7B model", 2 * 6.7e9, 2 * 6.7e9, 9.89e14, 3.35e12),
        ("exactly at the ridge point", 1e9, 1e8, 1e12, 1e11),
    ]
    for name, flops, moved, peak, bw in specs:
        compute, memory = flops / peak, moved / bw
        mistakes = [
            (compute + memory, "Computing and memory traffic overlap: the time is set by the"
             " slower of the two, not their sum."),
            (compute, "Memory traffic takes time too: bytes_moved / bandwidth."),
            (memory, "The arithmetic takes time too: flops / peak_flops."),
            (flops / moved, "That is the arithmetic intensity (FLOP per byte), not a time."),
        ]
        cases.append(_Case(name, {"flops": flops, "bytes_moved": moved, "peak_flops": peak,
                                  "bandwidth": bw}, _number(max(compute, memory)), atol=0.0,
                           rtol=1e-9, mistakes=[(_number(w), h) for w, h in mistakes],
                           hint="Compare the time the arithmetic needs with the time the"
                           " memory traffic needs."))
    return _run_number_check("check_roofline_time", fn, cases,
                             "fn(flops, bytes_moved, peak_flops, bandwidth)")


@_never_raises
def check_cost_per_million(fn: Callable[[float, float, float, float], float]) -> CheckResult:
    """Check ``fn(n_params, peak_flops, mfu, dollars_per_hour)``: inference cost in dollars.

    Dollars per million generated tokens for a dense model of ``n_params`` parameters,
    2 FLOPs per parameter per token, on one accelerator with ``peak_flops`` FLOP/s running at
    model-FLOPs utilisation ``mfu`` (a fraction) and priced ``dollars_per_hour``.

    Args:
        fn: The reader's cost estimate.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    for n, peak, mfu, price in ((7e9, 9.89e14, 0.4, 2.0), (1e8, 1e14, 0.5, 1.0),
                                (7e10, 3.12e14, 0.25, 4.5)):
        seconds = 1e6 * 2 * n / (peak * mfu)
        cost = seconds * price / 3600
        mistakes = [
            (3 * cost, "6 N FLOPs per token is training (forward + backward); generating a"
             " token is a forward pass: 2 N."),
            (cost / 2, "A forward pass costs 2 FLOPs per parameter per token (multiply and add)."),
            (cost * mfu, "Divide by the utilisation: at 40% of the peak a token takes longer."),
            (cost * 3600, "The price is per hour: divide the seconds by 3600."),
            (cost / 1e6, "The answer is per million tokens, not per token."),
        ]
        cases.append(_Case(f"N = {n:g}, peak = {peak:g} FLOP/s, MFU = {mfu}, ${price}/h",
                           {"n_params": n, "peak_flops": peak, "mfu": mfu,
                            "dollars_per_hour": price}, _number(cost), atol=0.0, rtol=1e-6,
                           mistakes=[(_number(w), h) for w, h in mistakes],
                           hint="Seconds for a million tokens, times the price per second."))
    return _run_number_check("check_cost_per_million", fn, cases,
                             "fn(n_params, peak_flops, mfu, dollars_per_hour)")
