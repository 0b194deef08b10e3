"""Low-rank adaptation (LoRA, Hu et al., 2021): train a small update, leave the base untouched.

A frozen linear layer ``W`` (``out x in``) gets a trainable update ``(alpha / r) B A`` with
``A`` of shape ``(r, in)`` and ``B`` of shape ``(out, r)``. ``B`` starts at zero, so the
adapted model starts out *equal* to the base model; switching the adapter off (or removing it)
gives the base model back exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update.

    ``y = base(x) + (alpha / r) * x A^T B^T`` when enabled, ``base(x)`` when not.

    Args:
        base: The layer to adapt; its parameters are frozen (``requires_grad=False``).
        r: Rank of the update (``>= 1``).
        alpha: Scale numerator; the update is multiplied by ``alpha / r``.

    Raises:
        ValueError: If ``r < 1``.
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"rank r must be >= 1, got {r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.scaling = r, alpha / r
        weight = base.weight
        self.A = nn.Parameter(torch.empty(r, base.in_features, device=weight.device,
                                          dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=weight.device,
                                          dtype=weight.dtype))  # zero: no change at the start
        self.enabled = True

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in)`` -> ``(..., out)``."""
        y = self.base(x)
        if self.enabled:
            y = y + (x @ self.A.T @ self.B.T) * self.scaling  # two thin products, never B A
        return y

    def delta_weight(self) -> Tensor:
        """The update ``(alpha / r) B A`` as a full ``(out, in)`` matrix."""
        return self.scaling * self.B @ self.A

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W + (alpha / r) B A``: no extra cost at inference."""
        layer = nn.Linear(self.base.in_features, self.base.out_features,
                          bias=self.base.bias is not None, device=self.A.device, dtype=self.A.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer


def add_lora(model: nn.Module, targets: tuple[str, ...] = ("q_proj", "v_proj"), r: int = 4,
             alpha: float = 8.0) -> list[str]:
    """Freeze every parameter of ``model`` and wrap the named linear layers in :class:`LoRALinear`.

    Args:
        model: The model, changed in place.
        targets: Attribute names of the ``nn.Linear`` layers to adapt (e.g. ``q_proj``).
        r: Rank of each update.
        alpha: Scale numerator of each update.

    Returns:
        The qualified names of the wrapped layers.

    Raises:
        ValueError: If no layer matches ``targets``.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, r=r, alpha=alpha))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(f"no nn.Linear named one of {targets} in the model")
    return wrapped


def set_lora_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every :class:`LoRALinear` of ``model`` on or off."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.enabled = enabled


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``A`` and ``B`` matrices of every :class:`LoRALinear` in ``model``."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.A, m.B)]
