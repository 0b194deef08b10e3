"""Checkpoints: the model, the optimizer, the step and the history in one file.

A checkpoint written by :func:`save_checkpoint` lets :func:`utils.training.train` resume a run
exactly: it also stores the random-number-generator states (and a gradient scaler's state)
in its ``extra`` dict, so the resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    history: dict[str, list[float]],
    extra: dict[str, Any] | None = None,
) -> None:
    """Save model, optimizer, step and history to ``path`` (written atomically).

    Args:
        path: Destination file; its folder is created if needed.
        model: The model (not a ``torch.compile`` wrapper).
        optimizer: Its optimizer, or None.
        step: Optimizer steps done so far.
        history: Training history.
        extra: Anything else to store (the trainer stores its random-number-generator states).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history,
        "model_config": asdict(config) if is_dataclass(config) else None,
        "extra": extra or {},
    }
    # write then rename, so an interrupted save never leaves a truncated checkpoint
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``).

    Args:
        path: The checkpoint file.
        model: A model with the same architecture; tensors are moved to its device.
        optimizer: If given, its state is restored too.

    Returns:
        The whole checkpoint dict (keys ``model``, ``optimizer``, ``step``, ``history``,
        ``model_config``, ``extra``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    device = next(model.parameters()).device
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        if state["optimizer"] is None:
            raise ValueError(f"checkpoint {str(path)!r} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    return state
