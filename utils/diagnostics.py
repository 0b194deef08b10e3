"""Probes of a transformer block: gradient flow, causal leaks and feed-forward neurons.

The block chapter (``chapters/04_transformer_block``) takes :class:`~utils.model.TinyGPT`
apart with these tools:

- :func:`layer_grad_norms`: the gradient norm of each block's parameters for one batch, to
  see how gradients flow through a deep stack (with or without residuals, pre- or post-norm);
- :func:`set_attention_mask`: replace the causal mask of every block by no mask or by a mask
  that is off by one, to watch what a model learns when it can see the future;
- :func:`future_dependence`: the leak test, which output positions change when one input
  token changes;
- :func:`remove_ffn`: ablate the feed-forward network of every block;
- :func:`ffn_activations`: the hidden activations of a block's feed-forward network (one
  value per "neuron"), for the key-value-memory view of the FFN.
"""

from __future__ import annotations

import types
from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from .attention import MultiHeadAttention

__all__ = [
    "ffn_activations",
    "future_dependence",
    "layer_grad_norms",
    "remove_ffn",
    "set_attention_mask",
]

MaskKind = Literal["causal", "none", "off_by_one"]


def layer_grad_norms(model: nn.Module, idx: Tensor, targets: Tensor) -> Tensor:
    """L2 norm of the loss gradient of each block's parameters, for one batch.

    Args:
        model: A :class:`~utils.model.TinyGPT` (anything with ``.blocks`` and
            ``model(idx, targets) -> (logits, loss)``).
        idx: Token ids ``(B, T)``.
        targets: Next-token ids ``(B, T)``.

    Returns:
        A float32 CPU tensor ``(n_layers,)``: entry ``l`` is
        ``sqrt(sum of squared gradients of every parameter of block l)``. The model's
        ``.grad`` fields are left as they were (cleared before and after).
    """
    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    norms = []
    for block in model.blocks:
        squares = [p.grad.float().pow(2).sum() for p in block.parameters() if p.grad is not None]
        norms.append(torch.stack(squares).sum().sqrt() if squares else torch.zeros(()))
    model.zero_grad(set_to_none=True)
    return torch.stack(norms).detach().cpu()


def _masked_forward(kind: MaskKind):
    """A ``MultiHeadAttention.forward`` that ignores ``causal`` and applies ``kind`` instead."""

    def forward(self: MultiHeadAttention, x: Tensor, mask: Tensor | None = None,
                causal: bool = False, cache: object = None, **kwargs: object) -> Tensor:
        if cache is not None:
            raise ValueError(f"attention mask {kind!r} is for training and probing, not caching")
        if kind == "off_by_one":
            T = x.shape[1]
            # row i may see keys 0 .. i + 1: one token of the future leaks in
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(1)
        return MultiHeadAttention.forward(self, x, mask=mask, causal=False, **kwargs)

    return forward


def set_attention_mask(model: nn.Module, kind: MaskKind) -> nn.Module:
    """Change the mask that every block's attention applies; returns the same model.

    Args:
        model: A :class:`~utils.model.TinyGPT` (its blocks call ``attn(..., causal=True)``).
        kind: ``"causal"`` restores the normal mask; ``"none"`` lets every position see the
            whole sequence; ``"off_by_one"`` lets position ``i`` also see ``i + 1`` (a bug
            that the leak test :func:`future_dependence` catches).

    Returns:
        ``model``, modified in place (only the forward method of each attention layer is
        replaced; parameters and ``state_dict`` keys do not change).

    Raises:
        ValueError: If ``kind`` is unknown.
    """
    if kind not in ("causal", "none", "off_by_one"):
        raise ValueError(f"unknown mask kind {kind!r}; choose 'causal', 'none' or 'off_by_one'")
    for block in model.blocks:
        attn = block.attn
        attn.__dict__.pop("forward", None)  # back to the class's (causal) forward
        if kind != "causal":
            attn.forward = types.MethodType(_masked_forward(kind), attn)
    return model


@torch.no_grad()
def future_dependence(model: nn.Module, idx: Tensor, atol: float = 0.0) -> Tensor:
    """The leak test: which output positions change when one input token changes.

    For every position ``j`` the token there is replaced by another one, and the logits at
    every position ``i`` are compared with those of the unchanged sequence.

    Args:
        model: A language model, ``model(idx) -> (logits, _)``, with ``config.vocab_size``.
        idx: One sequence of token ids ``(1, T)`` or ``(T,)``.
        atol: Largest logit change still counted as "unchanged" (0: any change counts;
            a causal model gives bitwise-identical logits for the positions before j).

    Returns:
        A bool tensor ``(T, T)``: entry ``[i, j]`` is True when the output at position ``i``
        depends on the input token at position ``j``. A causal model gives a lower-triangular
        matrix; any True above the diagonal is a leak from the future.
    """
    idx = idx.reshape(1, -1)
    T = idx.shape[1]
    was_training = model.training
    model.eval()
    try:
        base, _ = model(idx)  # (1, T, V)
        changed = idx.repeat(T, 1)  # (T, T): row j has token j replaced
        rows = torch.arange(T, device=idx.device)
        changed[rows, rows] = (idx[0] + 1) % model.config.vocab_size
        logits, _ = model(changed)  # (T, T, V)
        delta = (logits - base).abs().amax(dim=-1)  # (T changed j, T output i)
    finally:
        model.train(was_training)
    return (delta > atol).T.cpu()  # [i, j]


class _NoFFN(nn.Module):
    """Stands in for a feed-forward network and adds nothing to the residual stream."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


def remove_ffn(model: nn.Module) -> nn.Module:
    """Ablate the feed-forward network of every block; returns the same model.

    Each ``block.ffn`` becomes a module with no parameters that returns zeros, so a pre-norm
    block computes ``x + attn(norm1(x))`` and then adds nothing.

    Args:
        model: A :class:`~utils.model.TinyGPT`.

    Returns:
        ``model``, modified in place (its FFN parameters are gone).
    """
    for block in model.blocks:
        block.ffn = _NoFFN()
    return model


@torch.no_grad()
def ffn_activations(model: nn.Module, idx: Tensor, layer: int) -> Tensor:
    """Hidden activations of one block's feed-forward network: one value per neuron.

    The hidden activation is the input of the FFN's last projection: ``act(fc(h))`` for a
    GELU/ReLU MLP, ``silu(gate(h)) * up(h)`` for SwiGLU, where ``h`` is the normalised
    residual stream. Output ``n`` of the FFN is then ``sum_k a_k * W_down[n, k]``: neuron ``k``
    adds its *value vector* (column ``k`` of the down projection) with weight ``a_k``.

    Args:
        model: A :class:`~utils.model.TinyGPT`.
        idx: Token ids ``(B, T)``.
        layer: Which block, ``0 <= layer < n_layers``.

    Returns:
        Activations ``(B, T, d_ff)`` on the model's device.

    Raises:
        ValueError: If ``layer`` is out of range.
    """
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer must be in [0, {len(model.blocks)}), got {layer}")
    ffn = model.blocks[layer].ffn
    last = ffn.down_proj if hasattr(ffn, "down_proj") else ffn.proj
    captured: list[Tensor] = []
    handle = last.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    was_training = model.training
    model.eval()
    try:
        model(idx)
    finally:
        handle.remove()
        model.train(was_training)
    return captured[0]
