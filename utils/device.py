"""Choosing where tensors live, and making runs repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def available_devices() -> list[str]:
    """Names of the devices this machine can use, e.g. ``["cuda:0", "cpu"]``.

    Returns:
        Device names, accelerators first, ``"cpu"`` always last.
    """
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def get_device(preference: str | None = None) -> torch.device:
    """Return a usable ``torch.device``.

    Args:
        preference: None or ``"auto"`` picks CUDA, then Apple MPS, then the CPU. Otherwise a
            device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Returns:
        The device.

    Raises:
        ValueError: If the device name is unknown or the device is not available here; the
            message lists the available devices.
    """
    if preference is None or preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = ", ".join(available_devices())
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {preference!r}; available devices: {available}") from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        if torch.cuda.is_available() and index < torch.cuda.device_count():
            return device
    elif device.type == "mps" and _mps_available():
        return device
    raise ValueError(f"device {preference!r} is not available; available devices: {available}")


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and all CUDA devices).

    Args:
        seed: The seed.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
