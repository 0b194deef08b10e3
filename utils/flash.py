"""FlashAttention's idea in plain PyTorch: exact attention, tile by tile, with an online softmax.

Read top to bottom: the tiled forward pass (running max and running sum per query), an
autograd function whose backward pass *recomputes* the tiles instead of storing the
``(Tq, Tk)`` weights, a count of the elements each version moves through slow memory, and two
meters: the peak memory of a call and the bytes an autograd graph keeps for the backward pass.

The loops run in Python, so this is for reading and measuring memory, not for speed: the real
kernels (Dao et al., 2022; Dao, 2023) run the same loops inside one GPU kernel, with each tile
in on-chip SRAM.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

# -----------------------------------------------------------------------------
# The tiled forward pass


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, causal: bool, block_q: int, block_k: int) -> None:
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same feature size, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same length, got {k.shape[-2]} and {v.shape[-2]}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"q, k, v need the same leading dims, got {tuple(q.shape[:-2])}, "
            f"{tuple(k.shape[:-2])}, {tuple(v.shape[:-2])}"
        )
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal needs Tq == Tk, got {q.shape[-2]} and {k.shape[-2]}")
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be >= 1, got {block_q} and {block_k}")


def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = False,
    block_q: int = 64,
    block_k: int = 64,
    return_lse: bool = False,
    io_counter: dict[str, int] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Exact ``softmax(q k^T / sqrt(D)) v`` computed tile by tile with an online softmax.

    For each block of queries, the key/value blocks stream past once. A running maximum ``m``
    and running sum ``l`` of the exponentials are kept per query; when a new block raises the
    maximum, the partial sum and the partial output are rescaled by ``exp(m_old - m_new)``.
    Only a ``(block_q, block_k)`` tile of scores exists at any time.

    Args:
        q: Queries ``(..., Tq, D)``.
        k: Keys ``(..., Tk, D)``, same leading dims as ``q``.
        v: Values ``(..., Tk, Dv)``.
        causal: Query ``i`` sees keys ``j <= i`` (needs ``Tq == Tk``); fully masked tiles are
            skipped.
        block_q: Queries per tile.
        block_k: Keys per tile.
        return_lse: Also return the log-sum-exp of each query's scores, ``(..., Tq)``.
        io_counter: If a dict is given, the numbers of elements read from and written to the
            full tensors are added to its ``"read"`` and ``"written"`` entries: the traffic a
            fused kernel would have with slow memory.

    Returns:
        ``out`` ``(..., Tq, Dv)`` in the dtype of ``q``, or ``(out, lse)``.

    Raises:
        ValueError: On mismatched shapes, ``causal`` with ``Tq != Tk``, or a block size < 1.
    """
    _check_qkv(q, k, v, causal, block_q, block_k)
    Tq, Tk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    lead = q.shape[:-2]
    out = q.new_empty(*lead, Tq, v.shape[-1])
    work = torch.promote_types(q.dtype, torch.float32)  # float32 at least, float64 stays
    lse = q.new_empty(*lead, Tq, dtype=work)
    reads = writes = 0
    for i in range(0, Tq, block_q):
        qi = q[..., i:i + block_q, :].to(work) * scale  # (..., bq, D): loaded once per block
        bq = qi.shape[-2]
        reads += qi.numel()
        m = qi.new_full((*lead, bq, 1), float("-inf"))  # running max of the scores
        total = qi.new_zeros((*lead, bq, 1))  # running sum of exp(score - m)
        acc = qi.new_zeros((*lead, bq, v.shape[-1]))  # running, unnormalised output
        # with a causal mask, key blocks that start after this block's last query are all masked
        k_end = min(Tk, i + bq) if causal else Tk
        for j in range(0, k_end, block_k):
            stop = min(j + block_k, k_end)  # keys past k_end are masked for the whole block
            kj, vj = k[..., j:stop, :].to(work), v[..., j:stop, :].to(work)
            reads += kj.numel() + vj.numel()
            s = qi @ kj.transpose(-2, -1)  # (..., bq, bk): the only scores that exist now
            if causal and j + kj.shape[-2] - 1 > i:  # this tile crosses the diagonal
                rows = torch.arange(i, i + bq, device=q.device)[:, None]
                cols = torch.arange(j, j + kj.shape[-2], device=q.device)[None, :]
                s = s.masked_fill(cols > rows, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            p = torch.exp(s - m_new)  # (..., bq, bk), each entry <= 1
            alpha = torch.exp(m - m_new)  # rescales what was summed under the old maximum
            total = alpha * total + p.sum(dim=-1, keepdim=True)
            acc = alpha * acc + p @ vj
            m = m_new
        out[..., i:i + bq, :] = (acc / total).to(out.dtype)
        lse[..., i:i + bq] = (m + torch.log(total)).squeeze(-1)
        writes += acc.numel() + bq * math.prod(lead)  # the output tile and its log-sum-exp
    if io_counter is not None:
        io_counter["read"] = io_counter.get("read", 0) + reads
        io_counter["written"] = io_counter.get("written", 0) + writes
    return (out, lse) if return_lse else out


# -----------------------------------------------------------------------------
# Backward pass: recompute the tiles instead of storing the weights


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, causal: bool, block: int) -> Tensor:
        out, lse = tiled_attention(q, k, v, causal, block, block, return_lse=True)
        # O(T) extra memory: q, k, v, out and one number per query, never the (Tq, Tk) weights
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.block = causal, block
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        causal, block = ctx.causal, ctx.block
        scale = 1.0 / math.sqrt(q.shape[-1])
        work = lse.dtype
        qf, kf, vf, gf = q.to(work), k.to(work), v.to(work), grad_out.to(work)
        delta = (gf * out.to(work)).sum(dim=-1)  # (..., Tq): rowsum(dO * O) = sum_j P_ij dP_ij
        dq, dk, dv = torch.zeros_like(qf), torch.zeros_like(kf), torch.zeros_like(vf)
        Tq, Tk = q.shape[-2], k.shape[-2]
        for j in range(0, Tk, block):
            kj, vj = kf[..., j:j + block, :], vf[..., j:j + block, :]
            i_start = (j // block) * block if causal else 0  # earlier query blocks see none
            for i in range(i_start, Tq, block):
                qi, gi = qf[..., i:i + block, :], gf[..., i:i + block, :]
                s = qi @ kj.transpose(-2, -1) * scale  # recomputed: the "time for space"
                if causal:
                    rows = torch.arange(i, i + qi.shape[-2], device=q.device)[:, None]
                    cols = torch.arange(j, j + kj.shape[-2], device=q.device)[None, :]
                    s = s.masked_fill(cols > rows, float("-inf"))
                p = torch.exp(s - lse[..., i:i + block, None])  # exact weights, from the lse
                dv[..., j:j + block, :] += p.transpose(-2, -1) @ gi
                dp = gi @ vj.transpose(-2, -1)
                ds = p * (dp - delta[..., i:i + block, None])  # softmax backward, row by row
                dq[..., i:i + block, :] += ds @ kj * scale
                dk[..., j:j + block, :] += ds.transpose(-2, -1) @ qi * scale
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


def flash_attention(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, block: int = 64
) -> Tensor:
    """Tiled attention with a memory-light backward pass (FlashAttention's algorithm).

    The forward pass is :func:`tiled_attention`. For the backward pass it keeps only ``q``,
    ``k``, ``v``, the output and one log-sum-exp per query, and recomputes each tile of
    scores and weights, so training memory is O(T) instead of O(Tq * Tk).

    Args:
        q: Queries ``(..., Tq, D)``.
        k: Keys ``(..., Tk, D)``.
        v: Values ``(..., Tk, Dv)``.
        causal: Causal mask (needs ``Tq == Tk``).
        block: Tile size for queries and keys.

    Returns:
        ``(..., Tq, Dv)``, differentiable with respect to ``q``, ``k`` and ``v``.
    """
    _check_qkv(q, k, v, causal, block, block)
    return _FlashAttention.apply(q, k, v, causal, block)


# -----------------------------------------------------------------------------
# Counting the traffic with slow memory


def attention_io_elements(
    n: int, d: int, block_q: int = 64, causal: bool = False
) -> dict[str, int]:
    """Elements read from / written to slow memory (HBM) by one head's attention forward pass.

    *Standard* runs three kernels and stores the scores ``S`` and weights ``P`` in between:
    ``S = QK^T`` reads Q, K and writes S; the softmax reads S and writes P; ``O = PV`` reads
    P and V and writes O: ``4nd + 4n^2`` elements (causal masking does not change the shapes).
    *Tiled* (one fused kernel, FlashAttention-2's loop order) reads each query block once and
    streams the keys and values past it, then writes the output and one log-sum-exp per query:
    ``nd + 2nd * ceil(n / block_q) + nd + n``, about ``2n^2 d / block_q``. With ``causal``,
    query block ``b`` only streams the ``min(n, (b + 1) * block_q)`` keys up to its diagonal.

    Args:
        n: Sequence length (queries = keys).
        d: Head width (queries, keys and values).
        block_q: Queries per tile of the tiled version.
        causal: Count the causal version of the tiled kernel.

    Returns:
        ``{"standard": ..., "tiled": ...}`` element counts; multiply by the bytes per element.
    """
    standard = 4 * n * d + 4 * n * n
    if causal:
        streamed = sum(min(n, start + block_q) for start in range(0, n, block_q))
    else:
        streamed = n * math.ceil(n / block_q)
    tiled = n * d + 2 * d * streamed + n * d + n
    return {"standard": standard, "tiled": tiled}


# -----------------------------------------------------------------------------
# Meters: peak memory of a call, bytes saved for the backward pass


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    # the profiler's C++ backend prints a start/stop line to file descriptor 2 on every use
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[Any, int]:
    """Run ``fn()`` and measure the peak of the memory it allocated beyond what was live before.

    On CUDA this reads ``torch.cuda.max_memory_allocated``. On the CPU it replays the
    allocator's events recorded by ``torch.profiler`` (every allocation and free, in order)
    and returns the largest running total. Memory the result still holds counts too.

    Args:
        fn: A function of no arguments.
        device: Where ``fn`` allocates.

    Returns:
        ``(result of fn(), peak bytes)``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()  # positive for an allocation, negative for a free
        peak = max(peak, running)
    return result, peak


def saved_tensor_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` and count the bytes autograd keeps for the backward pass.

    Every tensor an operation saves for its backward pass goes through
    ``torch.autograd.graph.saved_tensors_hooks``; tensors sharing storage are counted once.

    Args:
        fn: A function of no arguments that builds an autograd graph.

    Returns:
        ``(result of fn(), bytes saved)``.
    """
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, sum(storages.values())
