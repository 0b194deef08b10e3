"""Three ways below O(n^2): linear attention as a recurrence, local windows, low-rank keys.

``utils.attention.linear_attention`` computes kernelised linear attention in its *parallel*
forms (a product reassociated, or prefix sums when causal). Here is its *recurrent* form, one
token at a time with a fixed-size state, which is why linear attention decodes like an RNN;
then sliding-window (local) attention, as a mask and as a banded computation that really
costs O(n w d); and Linformer-style attention, which projects the n keys and values down to
k rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# -----------------------------------------------------------------------------
# Linear attention, one token at a time


def elu_feature_map(x: Tensor) -> Tensor:
    """``elu(x) + 1``: the positive feature map of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1


def linear_attention_recurrent(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    state: tuple[Tensor, Tensor] | None = None,
    eps: float = 1e-6,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Causal linear attention as a recurrence with a constant-size state.

    ``S_t = S_{t-1} + phi(k_t)^T v_t`` (a ``D x Dv`` matrix) and ``z_t = z_{t-1} + phi(k_t)``;
    the output is ``phi(q_t) S_t / (phi(q_t) . z_t + eps)``. The state does not grow with t.
    Equals ``utils.attention.linear_attention(q, k, v, causal=True)``.

    Args:
        q: Queries ``(..., T, D)``.
        k: Keys ``(..., T, D)``.
        v: Values ``(..., T, Dv)``.
        state: ``(S, z)`` carried over from an earlier call, shapes ``(..., D, Dv)`` and
            ``(..., D)``; None starts from zeros.
        eps: Added to the normaliser.

    Returns:
        ``(out, (S, z))``: outputs ``(..., T, Dv)`` and the state after the last token.

    Raises:
        ValueError: If q and k differ in feature size or k and v in length.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"bad shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if state is None:
        S = q.new_zeros(*lead, q.shape[-1], v.shape[-1])  # (..., D, Dv)
        z = q.new_zeros(*lead, q.shape[-1])  # (..., D)
    else:
        S, z = state
    outs = []
    for t in range(q.shape[-2]):
        S = S + phi_k[..., t, :, None] * v[..., t, None, :]  # add the outer product
        z = z + phi_k[..., t, :]
        num = (phi_q[..., t, None, :] @ S).squeeze(-2)  # (..., Dv)
        den = (phi_q[..., t, :] * z).sum(-1, keepdim=True)  # (..., 1)
        outs.append(num / (den + eps))
    return torch.stack(outs, dim=-2), (S, z)


# -----------------------------------------------------------------------------
# Sliding-window (local) attention


def sliding_window_mask(n: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """Causal local mask: query ``i`` may attend to keys ``i - window < j <= i``.

    Args:
        n: Sequence length.
        window: Keys each query sees, itself included (``>= 1``).
        device: Device of the result.

    Returns:
        Bool ``(n, n)``, True = may attend.

    Raises:
        ValueError: If ``window < 1``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    i = torch.arange(n, device=device)
    offset = i[:, None] - i[None, :]  # i - j
    return (offset >= 0) & (offset < window)


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:
    """Causal local attention computed on the band only: O(n * window * d), not O(n^2 d).

    The queries are cut into blocks of ``window`` rows; block ``b`` can only see keys of its own
    block and of the block before it, so each block scores ``window`` queries against
    ``2 * window`` keys, a handful of dense products instead of one ``n x n`` one. Same result
    as full attention with :func:`sliding_window_mask`.

    Args:
        q: Queries ``(..., T, D)``.
        k: Keys ``(..., T, D)``.
        v: Values ``(..., T, Dv)``.
        window: Keys per query, itself included.

    Returns:
        ``(..., T, Dv)``.

    Raises:
        ValueError: If ``window < 1`` or the lengths differ.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not q.shape[-2] == k.shape[-2] == v.shape[-2]:
        raise ValueError("sliding-window attention needs q, k, v of the same length")
    T, w = q.shape[-2], window
    n_blocks = -(-T // w)  # ceil
    pad_end = n_blocks * w - T
    qb = F.pad(q, [0, 0, 0, pad_end]).unflatten(-2, (n_blocks, w))  # (..., nb, w, D)
    # w zero rows in front (the "block before" block 0) and pad_end at the back
    k_pad, v_pad = F.pad(k, [0, 0, w, pad_end]), F.pad(v, [0, 0, w, pad_end])
    kb = k_pad.unfold(-2, 2 * w, w).transpose(-2, -1)  # (..., nb, 2w, D): previous + own block
    vb = v_pad.unfold(-2, 2 * w, w).transpose(-2, -1)  # (..., nb, 2w, Dv)
    scores = qb @ kb.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., nb, w, 2w)
    r = torch.arange(w, device=q.device)[:, None]  # query row inside its block
    c = torch.arange(2 * w, device=q.device)[None, :]  # key column: block start - w + c
    offset = w + r - c  # query position minus key position
    allowed = (offset >= 0) & (offset < w)  # (w, 2w), the same for every block
    first = allowed & (c >= w)  # block 0: the w columns in front are padding
    mask = torch.stack([first] + [allowed] * (n_blocks - 1))  # (nb, w, 2w)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    out = (weights @ vb).flatten(-3, -2)  # (..., nb * w, Dv)
    return out[..., :T, :]


# -----------------------------------------------------------------------------
# Low-rank keys and values (Linformer)


def linformer_attention(q: Tensor, k: Tensor, v: Tensor, E: Tensor, F_proj: Tensor) -> Tensor:
    """Attention over ``k`` projected rows: ``softmax(q (E k)^T / sqrt(D)) (F v)``.

    ``E`` and ``F_proj`` (each ``(r, n)``) mix the ``n`` positions into ``r`` summary rows, so
    the score matrix is ``(n, r)`` and the cost O(n r d) (Wang et al., 2020). Non-causal: every
    summary row mixes all positions, future ones included.

    Args:
        q: Queries ``(..., n, D)``.
        k: Keys ``(..., n, D)``.
        v: Values ``(..., n, Dv)``.
        E: Key projection ``(r, n)``.
        F_proj: Value projection ``(r, n)``.

    Returns:
        ``(..., n, Dv)``.

    Raises:
        ValueError: If the projections do not match the sequence length.
    """
    n = k.shape[-2]
    if E.shape[-1] != n or F_proj.shape[-1] != n or E.shape[0] != F_proj.shape[0]:
        raise ValueError(
            f"E and F_proj must both be (r, {n}), got {tuple(E.shape)} and {tuple(F_proj.shape)}"
        )
    k_low, v_low = E @ k, F_proj @ v  # (..., r, D), (..., r, Dv)
    scores = q @ k_low.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n, r)
    return torch.softmax(scores, dim=-1) @ v_low
