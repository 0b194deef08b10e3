"""Plots used across the chapters: attention heatmaps, loss curves, learning-rate schedules."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes


def use_style() -> None:
    """Apply the course's plotting style (seaborn "whitegrid", readable font sizes)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.figsize": (7, 4), "figure.dpi": 100, "axes.titleweight": "bold"})


def _new_ax(ax: Axes | None, figsize: tuple[float, float] = (7, 4)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def attention_heatmap(
    weights: torch.Tensor | np.ndarray,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draw attention weights as a heatmap: one row per query, one column per key.

    Args:
        weights: Attention weights, shape ``(Tq, Tk)``.
        x_labels: ``Tk`` key labels (for example the tokens), or None.
        y_labels: ``Tq`` query labels, or None.
        ax: Axes to draw on (default: a new figure).
        title: Optional title.

    Returns:
        The axes.

    Raises:
        ValueError: If ``weights`` is not 2-D or a label list has the wrong length.
    """
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else weights
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (Tq, Tk), got shape {w.shape}")
    if x_labels is not None and len(x_labels) != w.shape[1]:
        raise ValueError(f"got {len(x_labels)} x_labels for {w.shape[1]} keys")
    if y_labels is not None and len(y_labels) != w.shape[0]:
        raise ValueError(f"got {len(y_labels)} y_labels for {w.shape[0]} queries")
    size = max(3.0, min(12.0, 0.4 * max(w.shape)))
    ax = _new_ax(ax, figsize=(size + 1, size))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(w.max())), aspect="auto")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if x_labels is not None:
        ax.set_xticks(range(w.shape[1]), [str(s) for s in x_labels], rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(w.shape[0]), [str(s) for s in y_labels])
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: dict[str, list[float]], ax: Axes | None = None) -> Axes:
    """Plot training loss per step and validation loss at the evaluation steps.

    Args:
        history: The dict returned by :func:`utils.training.train` (keys ``step``,
            ``train_loss`` and optionally ``val_step``, ``val_loss``).
        ax: Axes to draw on (default: a new figure).

    Returns:
        The axes.

    Raises:
        ValueError: If ``history`` lacks ``step`` or ``train_loss``.
    """
    for key in ("step", "train_loss"):
        if key not in history:
            raise ValueError(f"history has no {key!r} entry (keys: {sorted(history)})")
    ax = _new_ax(ax)
    steps = np.asarray(history["step"], dtype=float)
    loss = np.asarray(history["train_loss"], dtype=float)
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="train (per step)")
    window = max(1, len(loss) // 50)
    if window > 1:
        # a moving average shows the trend under the mini-batch noise
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", lw=2, label="train (smoothed)")
    if history.get("val_loss"):
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange", lw=2,
                label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.legend()
    return ax


def plot_lr_schedule(lrs: Sequence[float], ax: Axes | None = None) -> Axes:
    """Plot a learning rate per step.

    Args:
        lrs: Learning rate at steps ``0, 1, ...``.
        ax: Axes to draw on (default: a new figure).

    Returns:
        The axes.
    """
    ax = _new_ax(ax)
    ax.plot(range(len(lrs)), lrs, color="tab:green", lw=2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return ax
