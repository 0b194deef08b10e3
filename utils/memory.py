"""Measuring the memory a training step needs: saved activations and the device's peak.

During the forward pass autograd keeps, for every operation, the tensors its backward will
need (inputs of matrix multiplications, normalisation statistics, attention outputs, ...).
Those **saved tensors** are the activation memory of training: they live until backward has
used them, and they grow with the number of tokens in the batch. The weights, their gradients
and the optimizer state do not depend on the batch.

:class:`SavedTensorCounter` counts the saved tensors' bytes through
``torch.autograd.graph.saved_tensors_hooks`` on any device; :func:`cuda_peak_bytes` reads
the CUDA allocator's high-water mark around a function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn


def _storage_key(t: Tensor) -> tuple[str, int]:
    storage = t.untyped_storage()
    return (str(t.device), storage.data_ptr())


class SavedTensorCounter:
    """Count the bytes of the tensors autograd saves for backward inside a ``with`` block.

    Each storage is counted once (several saved views of one tensor, or one tensor saved by
    several operations, occupy its memory once), with its full size (a saved view keeps its
    whole storage alive). Storages of the tensors in ``exclude`` (usually the model's
    parameters, which exist anyway) are not counted.

    Args:
        exclude: Tensors whose storage is not counted.

    Attributes:
        bytes: Bytes of distinct saved storages.
        n_saved: Number of tensors handed to autograd (before deduplication).

    Example::

        with SavedTensorCounter([*model.parameters(), *model.buffers()]) as counter:
            loss = model(x, y)[1]
        print(counter.bytes)
    """

    def __init__(self, exclude: Iterable[Tensor] = ()) -> None:
        self._excluded = {_storage_key(t) for t in exclude}
        self._seen: set[tuple[str, int]] = set()
        self.bytes = 0
        self.n_saved = 0
        self._hooks: Any = None

    def _pack(self, t: Tensor) -> Tensor:
        self.n_saved += 1
        key = _storage_key(t)
        if key not in self._seen and key not in self._excluded:
            self._seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t  # keep the tensor itself: the backward pass still works

    def __enter__(self) -> SavedTensorCounter:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def activation_bytes(model: nn.Module, x: Tensor, y: Tensor | None = None,
                     autocast: Callable[[], Any] | None = None) -> int:
    """Bytes of the activations that one forward pass of ``model`` keeps for backward.

    Args:
        model: A model whose ``forward(x, y)`` returns ``(logits, loss)``; its parameters and
            buffers (e.g. RoPE tables), which exist whatever the batch, are not counted.
        x: Input ids ``(B, T)``.
        y: Targets ``(B, T)``; with them the loss's saved tensors count too.
        autocast: A function returning the context to run the forward pass in (e.g.
            ``lambda: utils.precision.autocast(device, precision)``), or None.

    Returns:
        The bytes (the graph is freed afterwards; no backward runs).

    Raises:
        ValueError: If gradients are disabled (nothing would be saved).
    """
    if not torch.is_grad_enabled():
        raise ValueError("gradients are disabled (torch.no_grad?): autograd saves nothing")
    with SavedTensorCounter([*model.parameters(), *model.buffers()]) as counter:
        if autocast is None:
            model(x, y)
        else:
            with autocast():
                model(x, y)
    return counter.bytes


def cuda_peak_bytes(fn: Callable[[], Any], device: torch.device | str = "cuda") -> int:
    """The CUDA allocator's peak during ``fn()``, in bytes (everything allocated, not only
    what ``fn`` allocated: weights and optimizer state already on the GPU count too).

    Args:
        fn: The work to measure, e.g. one training step.
        device: A CUDA device.

    Returns:
        ``torch.cuda.max_memory_allocated`` after ``fn``, with the peak reset before it.

    Raises:
        ValueError: If ``device`` is not a CUDA device.
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"cuda_peak_bytes needs a CUDA device, got {device}")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def training_state_bytes(model: nn.Module, optimizer_slots: int = 2) -> dict[str, int]:
    """Bytes of the parts of training memory that do not depend on the batch.

    Args:
        model: The model (tied weights counted once).
        optimizer_slots: Optimizer tensors per parameter (AdamW: 2, the two moments).

    Returns:
        ``{"weights": ..., "gradients": ..., "optimizer": ...}``, each with the parameters'
        own dtype.
    """
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"weights": weights, "gradients": weights, "optimizer": optimizer_slots * weights}
