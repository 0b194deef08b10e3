"""One call that sizes a training run for the hardware at hand.

:func:`training_preset` returns the tokenizer's vocabulary size, the model's
:class:`~utils.model.GPTConfig` and the :class:`~utils.training.TrainConfig` for the device:

- **CPU**: a model of about 0.2M parameters trained for a few hundred steps, so that the
  chapter's notebook finishes in its time budget on one core;
- **CUDA**: a MiniMind-style model of several million parameters with a 4,096-token
  vocabulary, mixed precision (bf16 where the GPU has it natively, else fp16 with a gradient
  scaler: see :mod:`utils.precision`), fused AdamW and fused attention, and, on request,
  ``torch.compile`` (where Triton is installed);
- **Apple MPS**: a model in between, in float32.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from .device import get_device
from .model import GPTConfig
from .precision import select_precision
from .training import TrainConfig


@dataclass(frozen=True)
class TrainingPreset:
    """A training run sized for one kind of device.

    Attributes:
        name: ``"cpu"``, ``"mps"``, ``"cuda-bfloat16"`` or ``"cuda-float16"``.
        vocab_size: Size of the BPE vocabulary to train (``model.vocab_size``).
        model: The model's configuration.
        train: The trainer's configuration (``device`` set to the device given).
        sample_tokens: How many tokens to generate in the samples after training.
    """

    name: str
    vocab_size: int
    model: GPTConfig
    train: TrainConfig
    sample_tokens: int

    def describe(self, n_params: int | None = None) -> str:
        """One line: the preset's device, model shape, tokens per step and steps."""
        m, t = self.model, self.train
        size = f"{n_params / 1e6:.2f}M parameters, " if n_params is not None else ""
        return (f"{self.name}: {size}{m.n_layers} layers x d_model {m.d_model} "
                f"({m.n_heads} heads, {m.n_kv_heads} KV heads), vocabulary {m.vocab_size}, "
                f"context {m.context_length}; {t.batch_size * t.grad_accum_steps} x "
                f"{t.block_size} tokens per step, {t.max_steps} steps, dtype {t.dtype}"
                f"{', torch.compile' if t.compile else ''}")


def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def training_preset(device: torch.device | str | None = None,
                    compile: bool = False) -> TrainingPreset:
    """The training run this course uses on ``device``.

    Args:
        device: A device or its name; None picks the best available (see
            :func:`utils.device.get_device`).
        compile: Ask for ``torch.compile`` on CUDA; granted only where Triton, which it
            needs for GPU kernels, is installed (ignored on other devices).

    Returns:
        The :class:`TrainingPreset`.

    Raises:
        ValueError: If the device is unknown or not available.
    """
    device = get_device(None if device is None else str(device))
    if device.type == "cuda":
        precision = select_precision(device)
        vocab = 4096
        model = GPTConfig(vocab_size=vocab, context_length=256, d_model=256, n_layers=6,
                          n_heads=4, n_kv_heads=2, dropout=0.2)
        train = TrainConfig(max_steps=1500, batch_size=32, block_size=256, max_lr=1e-3,
                            min_lr=1e-4, warmup_steps=100, eval_interval=250, eval_steps=20,
                            device=str(device), dtype=precision.name,
                            compile=compile and _triton_available(), progress=True)
        return TrainingPreset(f"cuda-{precision.name}", vocab, model, train, sample_tokens=200)
    if device.type == "mps":
        vocab = 2048
        model = GPTConfig(vocab_size=vocab, context_length=128, d_model=192, n_layers=4,
                          n_heads=6, n_kv_heads=2, dropout=0.1)
        train = TrainConfig(max_steps=1500, batch_size=32, block_size=128, max_lr=2e-3,
                            min_lr=2e-4, warmup_steps=50, eval_interval=250, eval_steps=10,
                            device=str(device), dtype="float32", progress=True)
        return TrainingPreset("mps", vocab, model, train, sample_tokens=120)
    vocab = 1024
    model = GPTConfig(vocab_size=vocab, context_length=64, d_model=64, n_layers=2, n_heads=4,
                      n_kv_heads=2)
    train = TrainConfig(max_steps=300, batch_size=16, block_size=64, max_lr=3e-3, min_lr=3e-4,
                        warmup_steps=20, eval_interval=50, eval_steps=4, device=str(device),
                        dtype="float32", progress=True)
    return TrainingPreset("cpu", vocab, model, train, sample_tokens=60)
