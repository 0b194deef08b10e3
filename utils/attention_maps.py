"""Looking inside a trained model: per-head attention maps and the heads they reveal.

:func:`capture_attention` makes every :class:`~utils.attention.MultiHeadAttention` of a model
run its explicit path (``return_weights=True``) through PyTorch forward hooks, so the model's
code stays untouched. :func:`attention_maps` returns the weights of one forward pass;
:func:`previous_token_scores` and :func:`induction_scores` summarise them per head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from .attention import MultiHeadAttention


@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[Tensor]]:
    """Record the attention weights of every attention layer while the context is open.

    Inside the ``with`` block each :class:`MultiHeadAttention` of ``model`` computes its
    output with the explicit formula and appends its weights ``(B, n_heads, T, Tk)``
    (detached) to the yielded list, in call order (layer 0 first for one forward pass). The
    layers' outputs are unchanged up to floating-point rounding. The hooks are removed on
    exit, even after an exception.

    Args:
        model: Any module containing :class:`MultiHeadAttention` layers.

    Yields:
        The list that receives the weights.

    Raises:
        ValueError: If ``model`` has no :class:`MultiHeadAttention` layer.
    """
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention layer")
    maps: list[Tensor] = []

    def ask_for_weights(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, {**kwargs, "return_weights": True}

    def keep_weights(module: nn.Module, args: tuple[Any, ...], output: Any) -> Tensor:
        out, weights = output
        maps.append(weights.detach())
        return out  # the caller expected the output alone

    handles = []
    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(ask_for_weights, with_kwargs=True))
            handles.append(layer.register_forward_hook(keep_weights))
        yield maps
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_maps(
    model: nn.Module, ids: Tensor, return_logits: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention weights of every layer and head for one sequence (or a batch).

    The model runs once in eval mode (its mode is restored afterwards) with every attention
    layer on its explicit path; see :func:`capture_attention`.

    Args:
        model: A :class:`~utils.model.TinyGPT`-like model: ``model(idx)`` returns
            ``(logits, loss)``.
        ids: Token ids ``(T,)`` or ``(B, T)``.
        return_logits: Also return the logits of that forward pass.

    Returns:
        Weights ``(n_layers, n_heads, T, T)`` for 1-D ``ids``, ``(B, n_layers, n_heads, T,
        T)`` for 2-D ``ids``; entry ``[..., l, h, i, j]`` is how much position ``i`` reads from
        position ``j`` in head ``h`` of layer ``l``. With ``return_logits``, ``(weights,
        logits)`` with logits ``(T, V)`` or ``(B, T, V)``.

    Raises:
        ValueError: If ``ids`` is not 1-D or 2-D.
    """
    if ids.ndim not in (1, 2):
        raise ValueError(f"ids must have shape (T,) or (B, T), got {tuple(ids.shape)}")
    batch = ids if ids.ndim == 2 else ids[None]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with capture_attention(model) as maps:
            logits, _ = model(batch.to(device))
    finally:
        model.train(was_training)
    weights = torch.stack(maps, dim=1)  # (B, n_layers, n_heads, T, T)
    if ids.ndim == 1:
        weights, logits = weights[0], logits[0]
    return (weights, logits) if return_logits else weights


def previous_token_scores(model: nn.Module, ids: Tensor) -> Tensor:
    """Mean attention weight on the previous position, per layer and head.

    A previous-token head scores near 1: position ``i`` puts almost all its weight on ``i -
    1``. Uniform causal attention over ``T`` positions scores about ``ln(T) / T``.

    Args:
        model: See :func:`attention_maps`.
        ids: Token ids ``(T,)`` or ``(B, T)`` with ``T >= 2``.

    Returns:
        Float tensor ``(n_layers, n_heads)``: ``weights[..., i, i - 1]`` averaged over
        positions ``i = 1 .. T-1`` (and over the batch).

    Raises:
        ValueError: If the sequence is shorter than 2 tokens.
    """
    if ids.shape[-1] < 2:
        raise ValueError(f"need at least 2 tokens, got {ids.shape[-1]}")
    weights = attention_maps(model, ids)
    weights = weights if ids.ndim == 2 else weights[None]
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1)).float()


def induction_scores(model: nn.Module, ids: Tensor, period: int) -> Tensor:
    """Mean attention on "the token after the previous copy" in a repeated sequence.

    For a sequence whose second part repeats the first (``ids[t] == ids[t - period]``), an
    induction head at position ``t`` looks back to the earlier copy of its token and attends
    to the position right after it, ``t - period + 1``, whose token comes next.

    Args:
        model: See :func:`attention_maps`.
        ids: Token ids ``(T,)`` or ``(B, T)`` with ``period < T``, typically a random block of
            ``period`` tokens written twice.
        period: Distance between the copies.

    Returns:
        Float tensor ``(n_layers, n_heads)``: ``weights[..., t, t - period + 1]`` averaged over
        ``t = period .. T-1`` (and over the batch).

    Raises:
        ValueError: If ``period`` is not in ``[1, T)``.
    """
    T = ids.shape[-1]
    if not 1 <= period < T:
        raise ValueError(f"period must be in [1, {T}), got {period}")
    weights = attention_maps(model, ids)
    weights = weights if ids.ndim == 2 else weights[None]
    diagonal = weights.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)  # (B, L, H, T-period+1)
    return diagonal[..., 1:].mean(dim=(0, -1)).float()  # queries t = period .. T-1
