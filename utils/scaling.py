"""Scaling laws in miniature: a sweep runner and the power-law fit ``L(N) = E + A / N^alpha``.

The sweep trains a list of :class:`utils.model.TinyGPT` configurations with
:func:`utils.training.train`, each for a given number of steps, and records per run the
parameters, the tokens seen, the training FLOPs (:func:`utils.accounting.flops_per_token`) and
the final validation loss. The fit follows Kaplan et al. (2020) and Hoffmann et al. (2022): an
irreducible loss ``E`` plus a power law in the model size ``N``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .accounting import flops_per_token
from .model import GPTConfig, TinyGPT
from .training import TrainConfig, train


def power_law(n: Any, E: float, A: float, alpha: float) -> np.ndarray:
    """``E + A * n**(-alpha)``, elementwise, as float64."""
    return E + A * np.asarray(n, dtype=np.float64) ** (-alpha)


@dataclass
class PowerLawFit:
    """Least-squares fit of ``loss = E + A * N**(-alpha)``.

    Attributes:
        E, A, alpha: The fitted parameters (``A >= 0``).
        E_se, A_se, alpha_se: Standard errors from the linearised least-squares covariance
            ``s^2 (J^T J)^{-1}`` with ``s^2 = rss / (n - 3)``; NaN with 3 points or fewer.
        rss: Residual sum of squares.
        n_points: Number of points fitted.
        at_bound: The exponent ran to an end of its search range: the points do not
            determine all three parameters (e.g. a straight line in log n).
    """

    E: float
    A: float
    alpha: float
    E_se: float
    A_se: float
    alpha_se: float
    rss: float
    n_points: int
    at_bound: bool = False

    def predict(self, n: Any) -> np.ndarray:
        """The fitted curve at sizes ``n``."""
        return power_law(n, self.E, self.A, self.alpha)


def _linear_part(n: np.ndarray, loss: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """For a fixed alpha the model is linear in (E, A): solve it; return (E, A, rss)."""
    x = n ** (-alpha)
    design = np.stack([np.ones_like(x), x], axis=1)
    (E, A), *_ = np.linalg.lstsq(design, loss, rcond=None)
    if A < 0:  # a decreasing law needs A >= 0: the best such fit is a constant
        E, A = float(loss.mean()), 0.0
    rss = float(((E + A * x - loss) ** 2).sum())
    return float(E), float(A), rss


def fit_power_law(n: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray,
                  alpha_range: tuple[float, float] = (1e-3, 3.0)) -> PowerLawFit:
    """Fit ``loss = E + A * n**(-alpha)`` by least squares (variable projection).

    For each alpha the best ``(E, A)`` is a linear least-squares problem, so the search is
    one-dimensional: a log-spaced grid over ``alpha_range`` and then a golden-section
    refinement around the best grid point.

    Args:
        n: Model sizes (or any positive x), shape ``(k,)``, ``k >= 3``.
        loss: Losses, shape ``(k,)``.
        alpha_range: Where to search for the exponent.

    Returns:
        A :class:`PowerLawFit`.

    Raises:
        ValueError: On fewer than 3 points, different lengths, or non-positive ``n``.
    """
    n_arr = np.asarray(n, dtype=np.float64).ravel()
    l_arr = np.asarray(loss, dtype=np.float64).ravel()
    if n_arr.shape != l_arr.shape or len(n_arr) < 3:
        raise ValueError(f"need >= 3 (n, loss) pairs of equal length, got {len(n_arr)} and "
                         f"{len(l_arr)}")
    if not (n_arr > 0).all() or not np.isfinite(l_arr).all():
        raise ValueError("n must be positive and loss finite")
    scale = math.exp(np.log(n_arr).mean())  # fit in units of the geometric mean: well conditioned
    m = n_arr / scale

    def rss(log_alpha: float) -> float:
        return _linear_part(m, l_arr, math.exp(log_alpha))[2]

    grid = np.linspace(math.log(alpha_range[0]), math.log(alpha_range[1]), 400)
    values = [rss(g) for g in grid]
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(80):  # golden section on [lo, hi]
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if rss(a) < rss(b):
            hi = b
        else:
            lo = a
    alpha = math.exp((lo + hi) / 2)
    E, A_scaled, res = _linear_part(m, l_arr, alpha)
    A = A_scaled * scale**alpha  # back to the units of n
    se = [float("nan")] * 3
    k = len(n_arr)
    if k > 3 and A_scaled > 0:
        x = m ** (-alpha)
        jac = np.stack([np.ones_like(x), x, -A_scaled * x * np.log(m)], axis=1)
        cov = res / (k - 3) * np.linalg.pinv(jac.T @ jac)
        # the standard error of A in the units of n (the delta method, ignoring alpha's share)
        se = [math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0)) * scale**alpha,
              math.sqrt(max(cov[2, 2], 0.0))]
    at_bound = not (alpha_range[0] * 1.01 < alpha < alpha_range[1] / 1.01)
    return PowerLawFit(E=E, A=A, alpha=alpha, E_se=se[0], A_se=se[1], alpha_se=se[2], rss=res,
                       n_points=k, at_bound=at_bound)


@dataclass
class LogLinearFit:
    """Straight-line fit of ``log(loss - E)`` against ``log n``: ``loss = E + A n^-alpha``.

    Attributes:
        A, alpha: Intercept ``exp(b)`` and minus the slope.
        alpha_se: Standard error of the slope (NaN with 2 points).
        E: The irreducible loss that was assumed (0: Kaplan et al.'s pure power law).
    """

    A: float
    alpha: float
    alpha_se: float
    E: float

    def predict(self, n: Any) -> np.ndarray:
        """The fitted curve at sizes ``n``."""
        return power_law(n, self.E, self.A, self.alpha)


def fit_log_linear(n: Any, loss: Any, E: float = 0.0) -> LogLinearFit:
    """Fit ``A`` and ``alpha`` of ``loss = E + A n^-alpha`` for a known ``E``.

    With ``E`` given, ``log(loss - E) = log A - alpha log n`` is a straight line: ordinary
    least squares gives the slope, its standard error and the intercept.

    Raises:
        ValueError: On fewer than 2 points or some ``loss <= E`` (the log is undefined).
    """
    x = np.log(np.asarray(n, dtype=np.float64).ravel())
    gap = np.asarray(loss, dtype=np.float64).ravel() - E
    if len(x) < 2 or x.shape != gap.shape:
        raise ValueError("need >= 2 (n, loss) pairs of equal length")
    if (gap <= 0).any():
        raise ValueError(f"every loss must be above E={E}")
    y = np.log(gap)
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    intercept = float(y.mean() - slope * x.mean())
    se = float("nan")
    if len(x) > 2:
        resid = y - (intercept + slope * x)
        se = math.sqrt(float((resid**2).sum()) / (len(x) - 2) / float((xc**2).sum()))
    return LogLinearFit(A=math.exp(intercept), alpha=-slope, alpha_se=se, E=E)


def parabola_minimum(n: Any, loss: Any) -> float:
    """The ``n`` at the vertex of a parabola fitted to ``loss`` against ``log n``.

    This is Hoffmann et al.'s (2022) second approach: along one IsoFLOP curve the loss is
    roughly a parabola in ``log N``; its vertex estimates the compute-optimal size.

    Raises:
        ValueError: On fewer than 3 points or a parabola that opens downwards.
    """
    x = np.log(np.asarray(n, dtype=np.float64).ravel())
    y = np.asarray(loss, dtype=np.float64).ravel()
    if len(x) < 3:
        raise ValueError("need >= 3 points for a parabola")
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        raise ValueError("the fitted parabola has no minimum (it opens downwards)")
    return float(math.exp(-b / (2 * a)))


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token (and learned position) embeddings, Kaplan et al.'s ``N``."""
    return sum(p.numel() for name, p in model.named_parameters() if "emb" not in name)


def steps_for_flops(flops: float, config: GPTConfig, train_config: TrainConfig) -> int:
    """Optimizer steps that spend about ``flops`` training FLOPs (at least 1)."""
    per_step = flops_per_token(config, train_config.block_size) * (
        train_config.batch_size * train_config.block_size * train_config.grad_accum_steps)
    return max(1, round(flops / per_step))


def run_sweep(configs: Sequence[GPTConfig], steps: Sequence[int], train_data: torch.Tensor,
              val_data: torch.Tensor, train_config: TrainConfig, n_evals: int = 8,
              seed: int = 0) -> list[dict[str, Any]]:
    """Train each configuration for its number of steps; return one row per run.

    Every run seeds the model's initialisation with ``seed`` and samples the same batches
    (``train_config.seed``), so a row does not depend on the runs before it. The warmup is
    ``min(train_config.warmup_steps, steps // 10)`` and the schedule is the one of
    ``train_config`` stretched to the run (``min_lr == max_lr`` gives a constant rate, whose
    intermediate losses are meaningful: Hoffmann et al.'s first approach reads them).

    Args:
        configs: Model configurations.
        steps: Optimizer steps for each configuration (same length as ``configs``).
        train_data, val_data: Token ids, shape ``(N,)``.
        train_config: Batch, block size, learning rates, device, eval_steps, ...
        n_evals: Validation evaluations per run (besides the one before training).
        seed: Seed of the model initialisation.

    Returns:
        Rows with ``d_model``, ``n_layers``, ``params`` (all), ``non_embedding``, ``steps``,
        ``tokens``, ``flops`` (training FLOPs, ``flops_per_token * tokens``), ``val_loss``
        (final), ``seconds``, and the curve ``curve_flops``/``curve_loss`` (validation loss
        after each evaluation, training FLOPs spent by then; step 0 excluded).
    """
    if len(configs) != len(steps):
        raise ValueError(f"{len(configs)} configs but {len(steps)} step counts")
    rows = []
    for config, n_steps in zip(configs, steps, strict=True):
        n_steps = int(n_steps)
        torch.manual_seed(seed)
        model = TinyGPT(config)
        run = replace(train_config, max_steps=n_steps,
                      eval_interval=max(1, math.ceil(n_steps / n_evals)),
                      warmup_steps=min(train_config.warmup_steps, n_steps // 10),
                      lr_decay_steps=None, progress=False, checkpoint_path=None)
        start = time.perf_counter()
        history = train(model, train_data, val_data, run)
        tokens_per_step = run.batch_size * run.block_size * run.grad_accum_steps
        per_token = flops_per_token(config, run.block_size)
        rows.append({
            "d_model": config.d_model, "n_layers": config.n_layers,
            "params": model.num_parameters(), "non_embedding": non_embedding_parameters(model),
            "steps": n_steps, "tokens": n_steps * tokens_per_step,
            "flops": float(per_token * n_steps * tokens_per_step),
            "val_loss": history["val_loss"][-1], "seconds": time.perf_counter() - start,
            "curve_flops": [float(per_token * s * tokens_per_step)
                            for s in history["val_step"][1:]],
            "curve_loss": list(history["val_loss"][1:]),
        })
    return rows


def loss_at_flops(row: dict[str, Any], flops: float, rtol: float = 0.05) -> float:
    """A run's validation loss after ``flops`` training FLOPs, read off its curve.

    Linear interpolation in ``log(flops)`` between the evaluations of :func:`run_sweep`;
    a budget up to ``rtol`` beyond either end reads the end point (step counts are
    rounded); NaN further outside.
    """
    x = np.log(np.asarray(row["curve_flops"], dtype=np.float64))
    y = np.asarray(row["curve_loss"], dtype=np.float64)
    target = math.log(flops)
    slack = math.log1p(rtol)
    if target < x[0] - slack or target > x[-1] + slack:
        return float("nan")
    return float(np.interp(target, x, y))
