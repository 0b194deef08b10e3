"""Switching attention heads off: what each head adds, and what the model loses without it.

A multi-head layer concatenates its heads' outputs ``y = [y_0, ..., y_{H-1}]`` (each ``(T,
head_dim)``) and applies ``o_proj``. Split ``W_O`` by columns into one block per head and the
layer's output is a sum of per-head terms::

    out = y @ W_O^T + b = sum_h y_h @ W_O[:, h]^T + b     (W_O[:, h]: the head's head_dim columns)

So a head's *contribution* is ``y_h @ W_O[:, h]^T`` (:func:`head_contributions`), and zeroing
``y_h`` just before ``o_proj`` removes exactly that term and nothing else (:func:`ablate_heads`).
:func:`head_ablation_losses` measures how much the loss rises when each head is removed.

Layers are numbered in the order ``model.modules()`` yields its
:class:`~utils.attention.MultiHeadAttention` layers (block 0 first for
:class:`~utils.model.TinyGPT`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from .attention import MultiHeadAttention


def attention_layers(model: nn.Module) -> list[MultiHeadAttention]:
    """The :class:`MultiHeadAttention` layers of ``model`` in module order (layer 0 first).

    Raises:
        ValueError: If ``model`` has none.
    """
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention layer")
    return layers


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Zero the output of the given heads while the context is open.

    A forward pre-hook on each affected layer's ``o_proj`` zeroes the head's ``head_dim``
    channels of its input (the concatenated head outputs), out of place. The hooks are removed
    on exit, even after an exception.

    Args:
        model: A module holding :class:`MultiHeadAttention` layers (or one such layer).
        heads: ``(layer, head)`` pairs; an empty iterable changes nothing.

    Yields:
        Nothing; run the model inside the ``with`` block.

    Raises:
        ValueError: If a layer or head index is out of range.
    """
    layers = attention_layers(model)
    by_layer: dict[int, set[int]] = {}
    for layer, head in heads:
        if not 0 <= layer < len(layers):
            raise ValueError(f"layer must be in [0, {len(layers)}), got {layer}")
        if not 0 <= head < layers[layer].n_heads:
            raise ValueError(f"head must be in [0, {layers[layer].n_heads}), got {head}")
        by_layer.setdefault(layer, set()).add(head)

    def make_hook(module: MultiHeadAttention, zeroed: set[int]) -> Any:
        keep = torch.ones(module.n_heads, 1)
        keep[sorted(zeroed)] = 0.0

        def hook(_: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            y = args[0]  # (B, T, n_heads * head_dim): the heads side by side
            mask = keep.to(y.device, y.dtype).expand(module.n_heads, module.head_dim)
            return (y * mask.reshape(-1), *args[1:])  # out of place: the caller's y is untouched

        return hook

    handles = []
    try:
        for layer, zeroed in by_layer.items():
            module = layers[layer]
            handles.append(module.o_proj.register_forward_pre_hook(make_hook(module, zeroed)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def head_contributions(layer: MultiHeadAttention, x: Tensor, causal: bool = True) -> Tensor:
    """What each head of one layer adds to the layer's output.

    Args:
        layer: The attention layer.
        x: Its input ``(B, T, d_model)``.
        causal: Run the layer with the causal mask (as :class:`~utils.model.TinyGPT` does).

    Returns:
        ``(B, n_heads, T, d_model)``: entry ``[:, h]`` is ``y_h @ W_O[:, h]^T``. Their sum over
        heads plus ``o_proj``'s bias (if any) is the layer's output (with dropout off).
    """
    captured: list[Tensor] = []
    handle = layer.o_proj.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    try:
        layer(x, causal=causal)
    finally:
        handle.remove()
    B, T, _ = captured[0].shape
    y = captured[0].view(B, T, layer.n_heads, layer.head_dim)  # (B, T, H, hs)
    w = layer.o_proj.weight.view(layer.d_model, layer.n_heads, layer.head_dim)  # (C, H, hs)
    return torch.einsum("bthd,chd->bhtc", y, w)  # (B, H, T, C)


@torch.no_grad()
def head_ablation_losses(model: nn.Module, ids: Tensor, targets: Tensor) -> tuple[float, Tensor]:
    """The model's loss with every head on, and with each head zeroed in turn.

    Args:
        model: A :class:`~utils.model.TinyGPT`-like model: ``model(idx, targets)`` returns
            ``(logits, loss)``. It runs in eval mode; its mode is restored afterwards.
        ids: Inputs ``(B, T)``.
        targets: Next-token targets ``(B, T)``.

    Returns:
        ``(base_loss, losses)`` with ``losses`` of shape ``(n_layers, n_heads)``: the mean
        cross-entropy with only head ``[l, h]`` zeroed. ``losses - base_loss`` is how much the
        model relies on each head.
    """
    layers = attention_layers(model)
    device = next(model.parameters()).device
    ids, targets = ids.to(device), targets.to(device)
    was_training = model.training
    model.eval()
    try:
        base = float(model(ids, targets)[1])
        losses = torch.zeros(len(layers), max(m.n_heads for m in layers))
        for layer, module in enumerate(layers):
            for head in range(module.n_heads):
                with ablate_heads(model, [(layer, head)]):
                    losses[layer, head] = float(model(ids, targets)[1])
    finally:
        model.train(was_training)
    return base, losses
