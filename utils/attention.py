"""Attention, from the one-line formula to a multi-head layer with a KV cache.

Read top to bottom: masks, the explicit ``softmax(q k^T / sqrt(d)) v``, grouped-query helpers,
the KV cache, the multi-head layer (explicit and fused paths side by side) and, at the end,
linear attention as an O(T) alternative.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .positional import alibi_bias, apply_rope_cos_sin, rope_cos_sin, rope_frequencies, rope_scaled

# -----------------------------------------------------------------------------
# Masks and the explicit formula


def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean causal mask: position ``i`` may attend to positions ``j <= i``.

    Args:
        n: Sequence length.
        device: Device of the result.

    Returns:
        Bool tensor of shape ``(n, n)``, True on and below the diagonal.
    """
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Repeat key/value heads for grouped-query attention.

    Each of the ``Hkv`` heads is repeated ``n_rep`` times consecutively, so query head ``h``
    reads kv head ``h // n_rep`` (same as ``torch.repeat_interleave(x, n_rep, dim=-3)``).

    Args:
        x: Tensor of shape ``(..., Hkv, T, D)``, typically ``(B, Hkv, T, D)``.
        n_rep: Number of query heads sharing one kv head.

    Returns:
        Tensor of shape ``(..., Hkv * n_rep, T, D)``.
    """
    if n_rep == 1:
        return x
    *lead, h_kv, t, d = x.shape
    # expand is a free view; reshape then copies once into the interleaved layout
    x = x.unsqueeze(-3).expand(*lead, h_kv, n_rep, t, d)  # (..., Hkv, n_rep, T, D)
    return x.reshape(*lead, h_kv * n_rep, t, d)


def _expand_kv_heads(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    # GQA: q carries more heads (dim -3) than k/v; share each kv head among a group of q heads
    if q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        h_q, h_kv = q.shape[-3], k.shape[-3]
        if h_kv == 0 or h_q % h_kv != 0:
            raise ValueError(
                f"query heads must be a multiple of key/value heads, got {h_q} and {h_kv}"
            )
        k, v = repeat_kv(k, h_q // h_kv), repeat_kv(v, h_q // h_kv)
    return k, v


def _check_mask(mask: Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} is not broadcastable to the attention scores "
            f"(..., Tq, Tk) = {tuple(scores_shape)}"
        )


def _explicit_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    # the textbook formula; k and v already have as many heads as q
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        # -inf, not a large negative number: masked keys then get exactly zero weight
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., Tq, Dv), (..., Tq, Tk)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    return_weights: bool = False,
    bias: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Explicit ``softmax(q k^T / sqrt(D) + bias) v``, written out for reading.

    Any leading dimensions are allowed. If ``q``, ``k`` and ``v`` have a head dimension (at
    position -3) and ``q`` has a multiple of the kv heads, the kv heads are shared among groups
    of query heads (grouped-query attention, see :func:`repeat_kv`).

    Args:
        q: Queries ``(..., Tq, D)``.
        k: Keys ``(..., Tk, D)``.
        v: Values ``(..., Tk, Dv)``.
        mask: Optional bool tensor broadcastable to ``(..., Tq, Tk)``; True = may attend.
        return_weights: Also return the attention weights.
        bias: Optional float tensor added to the scores before the softmax (e.g. ALiBi),
            broadcastable to ``(..., Tq, Tk)``.

    Returns:
        ``out`` of shape ``(..., Tq, Dv)``, or ``(out, weights)`` with weights of shape
        ``(..., Tq, Tk)`` when ``return_weights`` is True.

    Raises:
        ValueError: If the mask is not bool or not broadcastable, if a row of the mask allows
            no key (its softmax would be undefined), or if the head counts do not divide.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same feature size, got {q.shape[-1]} and {k.shape[-1]}")
    k, v = _expand_kv_heads(q, k, v)
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    scores_shape = torch.Size(lead + (q.shape[-2], k.shape[-2]))  # (..., Tq, Tk)
    if mask is not None:
        _check_mask(mask, scores_shape)
        # reads mask values (a sync on GPU): fine here, this function is for teaching
        allowed = mask.expand(scores_shape).any(dim=-1)
        if not bool(allowed.all()):
            row = int((~allowed).nonzero()[0, -1])
            raise ValueError(f"row {row} of the mask allows no key; its softmax is undefined")
    out, weights = _explicit_attention(q, k, v, mask=mask, bias=bias)
    return (out, weights) if return_weights else out


# -----------------------------------------------------------------------------
# KV cache: during generation, keys and values of past tokens never change, so keep them


class KVCache:
    """Per-layer cache of attention keys and values for incremental decoding.

    Keys are stored after RoPE has rotated them, so a cached key never needs re-rotating. The
    storage is preallocated: each layer owns one buffer ``(B, H_kv, capacity, head_dim)`` and
    an update writes the new time steps into it instead of concatenating (``torch.cat`` would
    copy the whole cache at every step). Without ``max_length`` the capacity doubles when it
    runs out, so a sequence of ``T`` steps copies the cache only ``log2(T)`` times.

    With ``quantize="int8"`` keys and values are stored as int8 codes with one scale per
    (sequence, head, time step): ``x ≈ code * scale``, ``scale = max|x| / 127`` over the head
    dimension. That halves a 16-bit cache (quarter of a float32 one) plus the scales; each
    update returns the dequantised keys and values in the dtype of the new ones.

    Args:
        n_layers: Number of attention layers that share this cache.
        max_length: Capacity to allocate at the first update; None grows it as needed.
        quantize: None (store as given) or ``"int8"``.

    Attributes:
        keys: One tensor ``(B, H_kv, T_cached, head_dim)`` per layer (a view of the stored
            keys; the int8 codes when quantised), or None before the first update; read it to
            measure the cache, never write it.
        values: The same for the values.

    Raises:
        ValueError: If ``quantize`` is not None or ``"int8"``, or ``max_length < 1``.
    """

    def __init__(
        self, n_layers: int, max_length: int | None = None, quantize: str | None = None
    ) -> None:
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.n_layers, self.max_length, self.quantize = n_layers, max_length, quantize
        self._k: list[Tensor | None] = [None] * n_layers  # (B, H, capacity, D) buffers
        self._v: list[Tensor | None] = [None] * n_layers
        self._k_scale: list[Tensor | None] = [None] * n_layers  # (B, H, capacity, 1), int8 only
        self._v_scale: list[Tensor | None] = [None] * n_layers
        self._len = [0] * n_layers
        self.n_allocations = 0  # buffer (re)allocations, to show that they are rare

    @property
    def length(self) -> int:
        """Number of cached time steps (read from layer 0)."""
        return self._len[0]

    @property
    def keys(self) -> list[Tensor | None]:
        pairs = zip(self._k, self._len, strict=True)
        return [None if b is None else b[..., :n, :] for b, n in pairs]

    @property
    def values(self) -> list[Tensor | None]:
        pairs = zip(self._v, self._len, strict=True)
        return [None if b is None else b[..., :n, :] for b, n in pairs]

    @property
    def nbytes(self) -> int:
        """Bytes of the cached time steps (codes and scales), all layers."""
        total = 0
        for layer in range(self.n_layers):
            for buf in (self._k[layer], self._v[layer], self._k_scale[layer],
                        self._v_scale[layer]):
                if buf is not None:
                    total += buf[..., : self._len[layer], :].numel() * buf.element_size()
        return total

    @property
    def allocated_bytes(self) -> int:
        """Bytes of the buffers, used or not (capacity, not length)."""
        bufs = self._k + self._v + self._k_scale + self._v_scale
        return sum(b.numel() * b.element_size() for b in bufs if b is not None)

    def _ensure(self, layer: int, k: Tensor, needed: int) -> None:
        """Make layer's buffers hold ``needed`` steps of rows like ``k``, keeping their content."""
        buf = self._k[layer]
        dtype = torch.int8 if self.quantize else k.dtype
        same_rows = buf is not None and buf.shape[:2] == k.shape[:2] and (
            buf.shape[-1] == k.shape[-1] and buf.device == k.device)
        if same_rows and buf.shape[-2] >= needed and buf.dtype == dtype:
            return
        if not same_rows and self._len[layer] > 0:
            raise ValueError(
                f"new keys {tuple(k.shape)} do not continue the cached "
                f"{tuple(buf.shape[:2]) + (self._len[layer], buf.shape[-1])} of layer {layer}"
            )
        if self.max_length is not None and needed <= self.max_length:
            capacity = self.max_length
        else:  # grow geometrically: amortised O(1) copies per step
            capacity = max(needed, 2 * buf.shape[-2] if same_rows else 16)
        B, H, _, D = k.shape
        keep = self._len[layer] if same_rows else 0
        self._len[layer] = keep
        self.n_allocations += 1
        for store, width, dt in ((self._k, D, dtype), (self._v, D, dtype),
                                 (self._k_scale, 1, k.dtype), (self._v_scale, 1, k.dtype)):
            if width == 1 and not self.quantize:
                continue
            new = torch.empty(B, H, capacity, width, dtype=dt, device=k.device)
            if keep:
                new[..., :keep, :] = store[layer][..., :keep, :]
            store[layer] = new

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys/values of ``layer`` and return everything cached for it.

        Args:
            layer: Layer index in ``[0, n_layers)``.
            k: New keys ``(B, Hkv, T_new, D)``.
            v: New values ``(B, Hkv, T_new, D)``.

        Returns:
            ``(k_all, v_all)``, each ``(B, Hkv, T_cached + T_new, D)`` (views of the buffers,
            or dequantised copies for an int8 cache).

        Raises:
            ValueError: If ``layer`` is out of range.
        """
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        start, T = self._len[layer], k.shape[-2]
        self._ensure(layer, k, start + T)
        end = start + T
        if self.quantize:
            for new, codes, scales in ((k, self._k, self._k_scale), (v, self._v, self._v_scale)):
                q, s = quantize_int8(new)
                codes[layer][..., start:end, :] = q
                scales[layer][..., start:end, :] = s
            self._len[layer] = end
            return tuple(
                dequantize_int8(codes[layer][..., :end, :], scales[layer][..., :end, :])
                for codes, scales in ((self._k, self._k_scale), (self._v, self._v_scale))
            )
        self._k[layer][..., start:end, :] = k
        self._v[layer][..., start:end, :] = v
        self._len[layer] = end
        return self._k[layer][..., :end, :], self._v[layer][..., :end, :]

    def reset(self) -> None:
        """Forget everything cached (the buffers are kept for reuse)."""
        self._len = [0] * self.n_layers


def quantize_int8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantisation with one scale per vector of the last dimension.

    Args:
        x: Float tensor ``(..., D)``.

    Returns:
        ``(codes, scale)``: int8 ``(..., D)`` in ``[-127, 127]`` and ``(..., 1)`` in the dtype
        of ``x``, with ``x ≈ codes * scale`` (error at most ``scale / 2`` per entry).
    """
    scale = x.abs().amax(dim=-1, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero vector: codes 0
    codes = torch.round(x / scale).clamp_(-127, 127).to(torch.int8)
    return codes, scale


def dequantize_int8(codes: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`quantize_int8`: ``codes * scale`` in the dtype of ``scale``."""
    return codes.to(scale.dtype) * scale


# -----------------------------------------------------------------------------
# The multi-head layer


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with optional grouped-query heads, RoPE and a KV cache.

    Args:
        d_model: Model width ``C``.
        n_heads: Number of query heads; ``head_dim = d_model // n_heads``.
        n_kv_heads: Number of key/value heads (GQA); None means ``n_heads`` (plain MHA).
        bias: Whether the projections have biases.
        dropout: Dropout on the attention weights and on the output (training only).
        rope_theta: If set, apply RoPE with this base to queries and keys.
        use_fused: Use ``torch.nn.functional.scaled_dot_product_attention`` (flash/efficient
            kernels) when possible; False always runs the explicit formula.
        max_positions: Positions for which RoPE tables are precomputed; later positions are
            computed on the fly.
        rope_interleaved: Rotate neighbouring feature pairs ``(2i, 2i + 1)`` (GPT-J, original
            Llama) instead of ``(i, i + D/2)`` (MiniMind, Hugging Face Llama).
        rope_scaling: None, ``"linear"`` (position interpolation) or ``"ntk"``; see
            :func:`~utils.positional.rope_scaled`.
        rope_scaling_factor: The factor of ``rope_scaling``.
        alibi: Add the ALiBi distance penalty of :func:`~utils.positional.alibi_bias` to the
            scores of every call (the explicit path runs then).

    Raises:
        ValueError: If ``d_model`` is not divisible by ``n_heads``, ``n_heads`` not by
            ``n_kv_heads``, or RoPE is requested with an odd ``head_dim``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        bias: bool = False,
        dropout: float = 0.0,
        rope_theta: float | None = None,
        use_fused: bool = True,
        max_positions: int = 2048,
        rope_interleaved: bool = False,
        rope_scaling: str | None = None,
        rope_scaling_factor: float = 1.0,
        alibi: bool = False,
    ) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={d_model}, n_heads={n_heads}"
            )
        if n_kv_heads < 1 or n_heads % n_kv_heads != 0:
            raise ValueError(
                f"n_heads must be divisible by n_kv_heads, got n_heads={n_heads}, "
                f"n_kv_heads={n_kv_heads}"
            )
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.n_rep = n_heads // n_kv_heads  # query heads per kv head
        self.dropout = dropout
        self.rope_theta = rope_theta
        self.rope_interleaved = rope_interleaved
        self.rope_scaling, self.rope_scaling_factor = rope_scaling, rope_scaling_factor
        self.alibi = alibi
        self.use_fused = use_fused

        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

        if rope_theta is not None:
            rope_frequencies(self.head_dim, rope_theta)  # raises on an odd head_dim
            cos, sin = self._rope_tables(torch.arange(max_positions))
            # non-persistent: derived from rope_theta, so keep them out of checkpoints
            self.register_buffer("rope_cos", cos, persistent=False)  # (P, hs)
            self.register_buffer("rope_sin", sin, persistent=False)  # (P, hs)

    def _rope_tables(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        assert self.rope_theta is not None
        positions, theta = rope_scaled(positions, self.head_dim, self.rope_theta,
                                       self.rope_scaling, self.rope_scaling_factor)
        return rope_cos_sin(positions, self.head_dim, theta, self.rope_interleaved)

    def _rope(self, x: Tensor, start_pos: int) -> Tensor:
        # x (B, h, T, hs) holds absolute positions start_pos .. start_pos + T - 1
        end = start_pos + x.shape[-2]
        if end <= self.rope_cos.shape[0]:
            cos, sin = self.rope_cos[start_pos:end], self.rope_sin[start_pos:end]
        else:  # past the precomputed table, e.g. long generation with a cache
            cos, sin = self._rope_tables(torch.arange(start_pos, end, device=x.device))
        return apply_rope_cos_sin(x, cos, sin, self.rope_interleaved)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        layer_idx: int = 0,
        start_pos: int = 0,
        alibi: Tensor | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from every position of ``x`` to the (cached and new) keys.

        Args:
            x: Input ``(B, T, C)``.
            mask: Optional bool mask broadcastable to ``(B, n_heads, T, Tk)``; True = may attend.
            causal: Forbid attending to later positions (absolute positions when caching).
            cache: If given, new keys/values are appended to it and attention runs over all of
                them.
            layer_idx: Which layer of ``cache`` this is.
            start_pos: Absolute position of ``x[:, 0]`` (used by RoPE); equals the cache
                length before this call when decoding with a cache.
            alibi: Optional additive bias broadcastable to ``(B, n_heads, T, Tk)``; when the
                layer was built with ``alibi=True`` and none is given, the ALiBi bias is used.
            return_weights: Also return the attention weights ``(B, n_heads, T, Tk)``.

        Returns:
            Output ``(B, T, C)``, or ``(output, weights)`` when ``return_weights`` is True.

        Raises:
            ValueError: If ``x`` has the wrong width or ``mask`` the wrong shape.
        """
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x of shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, C = x.shape
        hs, nh, nkv = self.head_dim, self.n_heads, self.n_kv_heads
        # project, then split the channels into heads
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if self.rope_theta is not None:
            q, k = self._rope(q, start_pos), self._rope(k, start_pos)
        if cache is not None:
            k, v = cache.update(layer_idx, k, v)  # (B, nkv, Tk, hs), Tk = cached + T
        Tk = k.shape[-2]
        k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)  # (B, nh, Tk, hs)
        if self.alibi and alibi is None:
            # the last T of the Tk positions are the queries, so a cache needs no offset
            alibi = alibi_bias(nh, T, Tk).to(device=x.device, dtype=q.dtype)  # (nh, T, Tk)

        if mask is not None:
            _check_mask(mask, torch.Size((B, self.n_heads, T, Tk)))
        # the kernels' is_causal aligns the mask top-left, which is only right when the queries
        # are all the keys; with cached keys in front, build the bottom-right-aligned mask
        fused_causal = causal and mask is None and Tk == T
        if causal and not fused_causal and T > 1:
            offset_mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
            mask = offset_mask if mask is None else mask & offset_mask
        # (a single new query, T == 1, may see every cached key: no mask needed)
        dropout_p = self.dropout if self.training else 0.0

        if self.use_fused and not return_weights and alibi is None:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=fused_causal
            )
            weights = None
        else:
            if fused_causal:
                mask = causal_mask(T, device=x.device)
            y, weights = _explicit_attention(q, k, v, mask=mask, bias=alibi, dropout_p=dropout_p)
        # y (B, nh, T, hs): put the heads back side by side
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        y = self.resid_dropout(self.o_proj(y))
        return (y, weights) if return_weights else y


# -----------------------------------------------------------------------------
# Linear attention: replace softmax by a kernel feature map and reassociate the products


def linear_attention(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, eps: float = 1e-6
) -> Tensor:
    """Kernelised linear attention of Katharopoulos et al. (2020).

    With the feature map ``phi(x) = elu(x) + 1`` the output for query ``i`` is
    ``phi(q_i) S / (phi(q_i) z + eps)`` where ``S = sum_j phi(k_j)^T v_j`` and
    ``z = sum_j phi(k_j)``, summed over all keys (or over ``j <= i`` when causal). Computing
    ``S`` first costs O(T D Dv) instead of the O(T^2 D) of softmax attention.

    Args:
        q: Queries ``(..., T, D)``.
        k: Keys ``(..., T, D)``.
        v: Values ``(..., T, Dv)``.
        causal: Use prefix sums so that query ``i`` only sees keys ``j <= i``.
        eps: Added to the normaliser to avoid division by zero.

    Returns:
        Tensor of shape ``(..., T, Dv)``.

    Raises:
        ValueError: If the key and query feature sizes differ, or causal with ``Tq != Tk``.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same feature size, got {q.shape[-1]} and {k.shape[-1]}")
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1  # positive features, like exp() in softmax
    if not causal:
        kv = phi_k.transpose(-2, -1) @ v  # (..., D, Dv): one summary of all keys
        z = phi_k.sum(dim=-2)  # (..., D)
        num = phi_q @ kv  # (..., T, Dv)
        den = (phi_q * z.unsqueeze(-2)).sum(dim=-1, keepdim=True)  # (..., T, 1)
        return num / (den + eps)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal linear attention needs Tq == Tk, got {q.shape[-2]} and {k.shape[-2]}"
        )
    # running sums over time: S_i = sum_{j<=i} phi(k_j)^T v_j, the "state" of a linear RNN
    kv = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # (..., T, D, Dv)
    z = torch.cumsum(phi_k, dim=-2)  # (..., T, D)
    num = (phi_q.unsqueeze(-2) @ kv).squeeze(-2)  # (..., T, Dv)
    den = (phi_q * z).sum(dim=-1, keepdim=True)  # (..., T, 1)
    return num / (den + eps)
