"""Which number format to train in: bf16, fp16 with a gradient scaler, or float32.

Mixed precision runs the matrix multiplications in a 16-bit format under ``torch.autocast``
while the weights, the optimizer state and the loss stay in float32.

- **bf16** has float32's exponent range, so gradients neither overflow nor underflow: it
  needs no scaler. GPUs compute in it natively from NVIDIA's Ampere generation (compute
  capability 8.0: A100, RTX 30xx) on.
- **fp16** has a much narrower range (largest 65504, smallest normal ~6e-5): small gradients
  underflow to zero. A **gradient scaler** multiplies the loss by a large factor before
  ``backward`` and divides the gradients by it before the update; when a gradient overflows
  to inf it skips that step and lowers the factor. This is the choice for older GPUs such as
  the T4 (compute capability 7.5), whose tensor cores do fp16 but not bf16.
- **float32** everywhere else (the CPU, Apple's MPS): no autocast, no scaler.

``torch.cuda.is_bf16_supported()`` is not the right test: by default it also answers True
where bf16 is only *emulated* (a T4), which runs without tensor cores.

References:
1) Micikevicius et al. (2018), Mixed Precision Training. ICLR. (fp16 + loss scaling)
2) Kalamkar et al. (2019), A Study of BFLOAT16 for Deep Learning Training. arXiv:1905.12322.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

_NAMES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Precision:
    """A training number format.

    Attributes:
        name: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        autocast_dtype: The dtype of ``torch.autocast``, or None for no autocast.
        use_scaler: Whether the loss must be scaled (fp16 only).
    """

    name: str
    autocast_dtype: torch.dtype | None
    use_scaler: bool


FLOAT32 = Precision("float32", None, False)
BFLOAT16 = Precision("bfloat16", torch.bfloat16, False)
FLOAT16 = Precision("float16", torch.float16, True)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` is a GPU that computes in bf16 natively (not emulated).

    Args:
        device: A CUDA device (anything else answers False).

    Returns:
        True on ROCm GPUs and on NVIDIA GPUs of compute capability 8.0 or higher.
    """
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.version.hip:
        return True
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def select_precision(device: torch.device | str, requested: str = "auto") -> Precision:
    """The number format to train in on ``device``.

    Args:
        device: Where training runs.
        requested: ``"auto"`` (bf16 on GPUs with native bf16, fp16 with a scaler on older CUDA
            GPUs, float32 elsewhere) or an explicit ``"float32"``, ``"bfloat16"`` or
            ``"float16"``.

    Returns:
        The :class:`Precision`.

    Raises:
        ValueError: If ``requested`` is unknown, or asks for a 16-bit format on a device type
            that has no autocast for it (``float16`` needs CUDA or the CPU; ``bfloat16`` needs
            CUDA with native bf16 or the CPU).
    """
    if requested not in _NAMES:
        raise ValueError(f"unknown precision {requested!r}; choose from {_NAMES}")
    device = torch.device(device)
    if requested == "float32":
        return FLOAT32
    if requested == "auto":
        if device.type != "cuda":
            return FLOAT32
        return BFLOAT16 if native_bf16(device) else FLOAT16
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"{requested} training is supported on CUDA and the CPU, not on "
                         f"{device.type!r}; use 'float32'")
    if requested == "bfloat16":
        if device.type == "cuda" and not native_bf16(device):
            cap = torch.cuda.get_device_capability(device)
            raise ValueError(f"this GPU (compute capability {cap[0]}.{cap[1]}) has no native "
                             "bf16; use 'float16' (with a gradient scaler) or 'auto'")
        return BFLOAT16
    return FLOAT16


def autocast(device: torch.device | str, precision: Precision) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for a 16-bit precision, or a context that does nothing for float32.

    Args:
        device: Where the forward pass runs.
        precision: From :func:`select_precision`.

    Returns:
        A context manager to wrap the forward pass (and the loss) in.
    """
    if precision.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=precision.autocast_dtype)


def make_grad_scaler(device: torch.device | str, precision: Precision,
                     init_scale: float = 2.0**16) -> torch.amp.GradScaler | None:
    """A gradient scaler when ``precision`` needs one (fp16), else None.

    Args:
        device: Where training runs.
        precision: From :func:`select_precision`.
        init_scale: The first loss scale (PyTorch's default, 65536).

    Returns:
        ``torch.amp.GradScaler`` or None.
    """
    if not precision.use_scaler:
        return None
    return torch.amp.GradScaler(torch.device(device).type, init_scale=init_scale)
