"""Mixture-of-experts feed-forward network: a top-k router, expert MLPs, load balancing.

A dense FFN sends every token through the same weights. A mixture of experts (Shazeer et al.,
2017; Switch Transformer, Fedus et al., 2022; Mixtral, Jiang et al., 2024) holds ``n_experts``
FFNs and a small linear *router*; each token goes through only its ``top_k`` best-scoring
experts, and their outputs are mixed with the router's weights. Total parameters grow with
``n_experts``, the compute per token only with ``top_k``.

Conventions of this module:

- Gate weights are a softmax over the ``top_k`` chosen logits (Mixtral's rule; the same as a
  softmax over all experts renormalised over the chosen ones), so each token's weights sum
  to 1.
- The load-balancing loss is the Switch Transformer's ``E * sum_i f_i * P_i``: ``f_i`` the
  fraction of routing slots (token, choice) sent to expert ``i``, ``P_i`` the mean router
  probability of expert ``i``. It equals 1 when both are uniform and is larger for an
  unbalanced router whose probabilities follow its choices.
- **Capacity.** With ``capacity_factor`` set, each expert processes at most
  ``ceil(capacity_factor * n_tokens * top_k / n_experts)`` slots per forward pass, taken in
  token order (the first tokens of the flattened batch first). A slot beyond the capacity is
  *dropped*: it adds nothing to the output, so a token whose every slot is dropped leaves
  the layer as zeros and only the residual stream carries it on. ``None`` means no limit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .model import MLP, TinyGPT


def top_k_gates(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Pick each token's ``k`` best experts and their mixing weights.

    Args:
        logits: Router scores ``(..., n_experts)``.
        k: Experts per token, ``1 <= k <= n_experts``.

    Returns:
        ``(weights, indices)``, both ``(..., k)``: the softmax over the chosen logits (each row
        sums to 1) and the experts' indices, best first.

    Raises:
        ValueError: If ``k`` is out of range.
    """
    n_experts = logits.shape[-1]
    if not 1 <= k <= n_experts:
        raise ValueError(f"k must be in [1, {n_experts}], got {k}")
    top_logits, indices = logits.topk(k, dim=-1)
    return torch.softmax(top_logits, dim=-1), indices


def dense_gates(logits: Tensor, k: int) -> Tensor:
    """The same routing as :func:`top_k_gates`, as a dense ``(..., n_experts)`` matrix.

    Args:
        logits: Router scores ``(..., n_experts)``.
        k: Experts per token.

    Returns:
        Gate weights ``(..., n_experts)``: zero for experts not chosen; each row sums to 1.
    """
    weights, indices = top_k_gates(logits, k)
    return torch.zeros_like(logits).scatter(-1, indices, weights)


def load_balancing_loss(router_probs: Tensor, indices: Tensor) -> Tensor:
    """Switch Transformer auxiliary loss ``E * sum_i f_i * P_i``.

    Args:
        router_probs: Softmax over all experts, ``(n_tokens, n_experts)``.
        indices: Chosen experts, ``(n_tokens, k)``.

    Returns:
        A scalar tensor; 1 for a uniform router. Its gradient flows through ``P`` only
        (``f`` counts discrete choices).
    """
    n_experts = router_probs.shape[-1]
    counts = torch.bincount(indices.reshape(-1), minlength=n_experts).to(router_probs.dtype)
    f = counts / indices.numel()  # fraction of routing slots per expert
    p = router_probs.mean(dim=0)  # mean router probability per expert
    return n_experts * (f * p).sum()


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float) -> int:
    """Slots one expert may process: ``ceil(capacity_factor * n_tokens * top_k / n_experts)``."""
    return math.ceil(capacity_factor * n_tokens * top_k / n_experts)


class MoEFFN(nn.Module):
    """A drop-in replacement for a block's FFN: ``(B, T, d_model) -> (B, T, d_model)``.

    After each forward pass the module keeps, for training and inspection:
    ``aux_loss`` (the load-balancing loss, a scalar tensor with gradient), ``load`` (slots
    routed to each expert, before the capacity cut, ``(n_experts,)``) and ``dropped`` (the
    fraction of slots dropped by the capacity limit).

    Args:
        d_model: Input and output width.
        d_ff: Hidden width of *each* expert.
        n_experts: Number of experts ``E``.
        top_k: Experts per token.
        capacity_factor: See the module docstring; None for no limit.
        activation: ``"gelu"`` or ``"relu"`` (the experts are :class:`utils.model.MLP`).
        bias: Whether the expert projections have biases.

    Raises:
        ValueError: If ``top_k`` is not in ``[1, n_experts]`` or ``capacity_factor <= 0``.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int = 1,
                 capacity_factor: float | None = None, activation: str = "gelu",
                 bias: bool = False) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, {n_experts}], got {top_k}")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be > 0, got {capacity_factor}")
        self.n_experts, self.top_k, self.capacity_factor = n_experts, top_k, capacity_factor
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(d_model, d_ff, activation, bias) for _ in range(n_experts))
        self.aux_loss = torch.zeros(())
        self.load = torch.zeros(n_experts, dtype=torch.long)
        self.dropped = 0.0

    def forward(self, x: Tensor) -> Tensor:
        """Route each token of ``x`` (``(..., d_model)``) to its experts; same shape out."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, d): routing is per token, batch and time alike
        logits = self.router(flat)  # (N, E)
        probs = torch.softmax(logits.float(), dim=-1)
        weights, indices = top_k_gates(logits.float(), self.top_k)  # (N, k), (N, k)
        self.aux_loss = load_balancing_loss(probs, indices)
        self.load = torch.bincount(indices.reshape(-1), minlength=self.n_experts).detach()

        n_tokens = flat.shape[0]
        capacity = (expert_capacity(n_tokens, self.n_experts, self.top_k, self.capacity_factor)
                    if self.capacity_factor is not None else n_tokens * self.top_k)
        out = torch.zeros_like(flat)
        kept = 0
        for e, expert in enumerate(self.experts):
            # slots (token, choice) that picked expert e, in token order: a gather, not a matmul
            token, choice = torch.nonzero(indices == e, as_tuple=True)
            token, choice = token[:capacity], choice[:capacity]  # the capacity cut
            if token.numel() == 0:
                continue
            kept += token.numel()
            y = expert(flat[token]) * weights[token, choice].unsqueeze(-1).to(flat.dtype)
            out = out.index_add(0, token, y)  # scatter back; a token with k slots sums k outputs
        self.dropped = 1.0 - kept / indices.numel()
        return out.reshape(shape)


def use_moe(model: TinyGPT, n_experts: int, top_k: int = 1, d_ff: int | None = None,
            capacity_factor: float | None = None) -> TinyGPT:
    """Replace every block's FFN of ``model`` by a fresh :class:`MoEFFN`, in place.

    Args:
        model: A TinyGPT whose config has ``ffn="gelu"`` or ``"relu"``.
        n_experts: Experts per layer.
        top_k: Experts per token.
        d_ff: Width of each expert (default: the config's ``d_ff``).
        capacity_factor: See :class:`MoEFFN`.

    Returns:
        The same model, for chaining.

    Raises:
        ValueError: If the model uses SwiGLU (the experts here are two-matrix MLPs).
    """
    config = model.config
    if config.ffn == "swiglu":
        raise ValueError("use_moe builds MLP experts: give the model ffn='gelu' or 'relu'")
    width = d_ff or config.d_ff
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)  # TinyGPT's scaled output init
    for block in model.blocks:
        block.ffn = MoEFFN(config.d_model, width, n_experts, top_k, capacity_factor,
                           config.ffn, config.bias)
        block.ffn.apply(model._init_weights)  # the new layers get the model's own init
        for expert in block.ffn.experts:
            nn.init.normal_(expert.proj.weight, mean=0.0, std=residual_std)
    return model


def moe_aux_loss(model: nn.Module) -> Tensor:
    """Sum of the load-balancing losses of every :class:`MoEFFN` in ``model`` (last forward)."""
    losses = [m.aux_loss for m in model.modules() if isinstance(m, MoEFFN)]
    return torch.stack(losses).sum() if losses else torch.zeros(())
