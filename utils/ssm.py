"""A diagonal linear state-space layer: the core shared by S4D, S5 and Mamba-like models.

Each of the ``C`` channels of the input drives its own ``N`` state variables:

    h_t = a * h_{t-1} + b * u_t        (element-wise, a in (0, 1): a decaying memory)
    y_t = sum_n c_n h_{t,n} + d * u_t

Because the recurrence is *linear* in ``h``, the same outputs have three forms, all here:

- **recurrent**: one step per token, state ``(C, N)``, the same size at every step (inference);
- **convolution**: ``y = K * u`` with the kernel ``K_s = sum_n c_n a_n^s b_n``, via FFT
  (training, time-invariant ``a``);
- **scan**: the associative combine ``(a1, x1) . (a2, x2) = (a1 a2, a2 x1 + x2)`` applied in
  ``log2 T`` parallel rounds (what Mamba uses once ``a`` depends on the input).

Parameters are real and the decay is ``a = exp(-exp(log_rate))``, a simplification of S4D's
complex diagonal (Gu et al., 2022) that keeps the code short.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor


def ssm_kernel(a: Tensor, b: Tensor, c: Tensor, length: int) -> Tensor:
    """Convolution kernel ``K[s, ch] = sum_n c[ch, n] a[ch, n]^s b[ch, n]``, ``s < length``.

    Args:
        a: Decays ``(C, N)``.
        b: Input weights ``(C, N)``.
        c: Output weights ``(C, N)``.
        length: Number of lags.

    Returns:
        ``(length, C)``.
    """
    s = torch.arange(length, device=a.device, dtype=a.dtype)
    powers = a.unsqueeze(0) ** s[:, None, None]  # (length, C, N)
    return (powers * (b * c).unsqueeze(0)).sum(-1)


def ssm_recurrent(u: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor,
                  h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run the recurrence token by token.

    Args:
        u: Input ``(B, T, C)``.
        a: Decays ``(C, N)``.
        b: Input weights ``(C, N)``.
        c: Output weights ``(C, N)``.
        d: Skip weights ``(C,)``.
        h0: Initial state ``(B, C, N)``, zeros if None.

    Returns:
        ``(y, h)``: outputs ``(B, T, C)`` and the final state ``(B, C, N)``.
    """
    B, T, C = u.shape
    h = u.new_zeros(B, C, a.shape[-1]) if h0 is None else h0
    ys = []
    for t in range(T):
        h = a * h + b * u[:, t, :, None]  # (B, C, N): the whole memory of the past
        ys.append((h * c).sum(-1) + d * u[:, t])
    return torch.stack(ys, dim=1), h


def ssm_convolution(u: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """All outputs at once: a causal convolution with :func:`ssm_kernel`, by FFT.

    Args:
        u: Input ``(B, T, C)``.
        a: Decays ``(C, N)``.
        b: Input weights ``(C, N)``.
        c: Output weights ``(C, N)``.
        d: Skip weights ``(C,)``.

    Returns:
        ``(B, T, C)``; O(T log T) per channel.
    """
    T = u.shape[1]
    K = ssm_kernel(a, b, c, T)  # (T, C)
    n_fft = 2 * T  # zero padding: a circular convolution of length 2T is the linear one
    y = torch.fft.irfft(torch.fft.rfft(u, n=n_fft, dim=1) * torch.fft.rfft(K, n=n_fft, dim=0),
                        n=n_fft, dim=1)[:, :T]
    return y + d * u


def ssm_scan(u: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """All outputs at once with a parallel prefix scan (Hillis-Steele, ``ceil(log2 T)`` rounds).

    Each element is a pair ``(A_t, X_t)`` meaning ``h_t = A_t h_{t-1} + X_t``. Combining an
    earlier pair with a later one gives ``(A1 A2, A2 X1 + X2)``; after round ``r`` every
    position holds the combination of the ``2^r`` steps ending at it.

    Args:
        u: Input ``(B, T, C)``.
        a: Decays ``(C, N)``.
        b: Input weights ``(C, N)``.
        c: Output weights ``(C, N)``.
        d: Skip weights ``(C,)``.

    Returns:
        ``(B, T, C)``.
    """
    B, T, C = u.shape
    X = b * u.unsqueeze(-1)  # (B, T, C, N): the input term of each step
    A = a.expand(B, T, *a.shape).clone()  # (B, T, C, N)
    shift = 1
    while shift < T:
        # position t absorbs the block ending at t - shift (earlier), if there is one
        A_prev = torch.cat([torch.ones_like(A[:, :shift]), A[:, :-shift]], dim=1)
        X_prev = torch.cat([torch.zeros_like(X[:, :shift]), X[:, :-shift]], dim=1)
        X = A * X_prev + X
        A = A * A_prev
        shift *= 2
    return (X * c).sum(-1) + d * u  # X_t is now h_t


class DiagonalSSM(nn.Module):
    """A diagonal linear state-space layer with learnable decays.

    Args:
        channels: Input and output width ``C``.
        state_size: State variables per channel ``N``.
        min_rate: Smallest initial decay rate ``-log(a)`` (longest memory).
        max_rate: Largest initial decay rate (shortest memory).

    The state of one sequence is ``channels * state_size`` numbers, whatever its length.
    """

    def __init__(self, channels: int, state_size: int = 16, min_rate: float = 1e-3,
                 max_rate: float = 1e-1) -> None:
        super().__init__()
        # decay rates spread log-uniformly: some channels remember long, some short
        rates = torch.exp(torch.linspace(math.log(min_rate), math.log(max_rate), state_size))
        self.log_rate = nn.Parameter(rates.log().repeat(channels, 1))  # (C, N)
        self.b = nn.Parameter(torch.ones(channels, state_size))
        self.c = nn.Parameter(torch.randn(channels, state_size) / math.sqrt(state_size))
        self.d = nn.Parameter(torch.ones(channels))

    def decay(self) -> Tensor:
        """``a = exp(-exp(log_rate))``, in (0, 1) for any parameter value: always stable."""
        return torch.exp(-torch.exp(self.log_rate))

    def forward(self, u: Tensor, mode: str = "convolution") -> Tensor:
        """Map ``(B, T, C)`` to ``(B, T, C)`` with ``mode`` in recurrent, convolution, scan.

        Raises:
            ValueError: On an unknown mode.
        """
        a = self.decay()
        if mode == "recurrent":
            return ssm_recurrent(u, a, self.b, self.c, self.d)[0]
        if mode == "convolution":
            return ssm_convolution(u, a, self.b, self.c, self.d)
        if mode == "scan":
            return ssm_scan(u, a, self.b, self.c, self.d)
        raise ValueError(f"unknown mode {mode!r}; choose recurrent, convolution or scan")

    def step(self, u_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One token of inference: ``u_t (B, C)`` and state ``(B, C, N)`` -> ``(y_t, h)``."""
        y, h = ssm_recurrent(u_t.unsqueeze(1), self.decay(), self.b, self.c, self.d, h)
        return y.squeeze(1), h
