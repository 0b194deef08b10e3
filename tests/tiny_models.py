"""A tiny TinyGPT for generation tests, shared by the tests of sampling and of KV caches."""

from __future__ import annotations

import torch

from utils.model import GPTConfig, TinyGPT


def tiny_model(dtype: torch.dtype = torch.float32, **overrides: object) -> TinyGPT:
    """A 2-layer, 4-head model (vocabulary 13, context 16 unless overridden), seeded, eval mode.

    Its weights are scaled up 20× from the 0.02 initialisation, so its logits are sharp and
    greedy paths differ from prompt to prompt.
    """
    fields: dict[str, object] = dict(
        vocab_size=13, context_length=16, d_model=32, n_layers=2, n_heads=4
    )
    fields.update(overrides)
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(**fields))  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)
    return model.to(dtype).eval()
