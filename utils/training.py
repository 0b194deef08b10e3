"""A small, complete training loop in the spirit of nanoGPT's ``train.py``.

AdamW with weight decay on matrices only, linear warmup then cosine decay (or any schedule of
:mod:`utils.schedules`), gradient accumulation, gradient clipping, mixed precision on CUDA
(bf16, or fp16 with a gradient scaler on GPUs without native bf16, see
:mod:`utils.precision`), periodic evaluation, and checkpoints that resume exactly where
training stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.data import get_batch
from utils.device import get_device
from utils.precision import autocast, make_grad_scaler, select_precision
from utils.schedules import cosine_lr

_TORCH_VERSION = tuple(int(part) for part in torch.__version__.split(".")[:2])

# ----------------------------------------------------------------------------------------------
# Learning-rate schedule and gradient clipping


def lr_at(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """The trainer's default schedule: linear warmup, then cosine decay to ``min_lr``.

    The same function as :func:`utils.schedules.cosine_lr` (see it for the formula, the
    arguments and the errors), kept under this name for the labs and earlier chapters.
    """
    return cosine_lr(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps,
                     max_steps=max_steps)


def _clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Tensor version of :func:`clip_grad_norm`; never synchronises with the device."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, 2.0, dtype=torch.float32) for g in grads])
    total = torch.linalg.vector_norm(norms, 2.0)
    if math.isfinite(max_norm):
        # multiply by a tensor instead of branching on its value: no .item(), no GPU sync
        scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    The global norm is ``sqrt(sum of squares of every gradient entry)``; if it exceeds
    ``max_norm`` every gradient is multiplied by ``max_norm / norm``, which keeps the update's
    direction and bounds its size. Same result as ``torch.nn.utils.clip_grad_norm_``.

    Args:
        parameters: Tensors whose ``.grad`` is clipped in place (None grads are skipped).
        max_norm: Largest allowed norm, ``> 0`` (``math.inf`` only measures).

    Returns:
        The global norm before clipping.

    Raises:
        ValueError: If ``max_norm <= 0``.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    return _clip_grad_norm(parameters, max_norm).item()


# ----------------------------------------------------------------------------------------------
# Optimizer


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only, as in nanoGPT.

    Weight decay pulls weights towards 0. It is applied to the 2-D weights (linear layers and
    embeddings) and not to the 1-D ones (norm gains, biases), whose scale has a meaning of
    its own. The fused kernel is used on CUDA and on the CPU.

    Args:
        model: The model; call after moving it to its device.
        lr: Initial learning rate (the training loop overwrites it every step).
        weight_decay: Decoupled weight decay for the 2-D parameters.
        betas: Adam's moving-average coefficients.

    Returns:
        The optimizer, with two parameter groups (decayed, not decayed).

    Raises:
        ValueError: If ``lr`` or ``weight_decay`` is negative.
    """
    if lr < 0 or weight_decay < 0:
        raise ValueError(f"lr and weight_decay must be >= 0, got {lr} and {weight_decay}")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    device_type = params[0].device.type if params else "cpu"
    # one kernel for all tensors instead of a Python loop over them: on CUDA, and on the CPU
    # since PyTorch 2.4, where it makes the optimizer step about 4x faster for small models
    fused = device_type == "cuda" or (device_type == "cpu" and _TORCH_VERSION >= (2, 4))
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


# ----------------------------------------------------------------------------------------------
# Gradient accumulation


def accumulate_gradients(
    model: nn.Module,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    autocast_context: Callable[[], Any] | None = None,
) -> torch.Tensor:
    """Add to ``.grad`` the gradient of the mean loss over *all* real tokens of the batches.

    Each micro-batch's loss is the **sum** of its per-token cross-entropies divided by the
    number of real (target ``!= -100``) tokens in all micro-batches together. So the sum of
    the gradients equals the gradient of one big batch, even when the micro-batches hold
    different numbers of real tokens (padding, packed documents of different lengths); the
    common shortcut ``loss / k`` is exact only when every micro-batch holds the same number.

    Args:
        model: A model whose ``forward(x)`` returns ``(logits, ...)`` with logits ``(B, T, V)``.
        micro_batches: ``(x, y)`` pairs, each ``(B_i, T_i)``; ``y == -100`` marks padding.
        autocast_context: A function returning the context for the forward pass, or None.

    Returns:
        The mean loss over all real tokens (detached, float32).

    Raises:
        ValueError: If there are no micro-batches or no real tokens.
    """
    if not micro_batches:
        raise ValueError("accumulate_gradients needs at least one micro-batch")
    n_real = sum(int((y != -100).sum()) for _, y in micro_batches)
    if n_real == 0:
        raise ValueError("the micro-batches hold no real tokens (every target is -100)")
    total = torch.zeros(())
    for x, y in micro_batches:
        if autocast_context is None:
            logits = model(x)[0]
        else:
            with autocast_context():
                logits = model(x)[0]
        loss_sum = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                   ignore_index=-100, reduction="sum")
        (loss_sum / n_real).backward()
        total = total + loss_sum.detach().float().cpu() / n_real
    return total


# ----------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainConfig:
    """Settings of :func:`train`; the defaults are nanoGPT's small CPU character-level run.

    Attributes:
        max_steps: Optimizer steps to train for.
        batch_size: Sequences per micro-batch.
        block_size: Tokens per sequence.
        grad_accum_steps: Micro-batches per optimizer step (the effective batch is
            ``batch_size * grad_accum_steps`` sequences).
        max_lr: Peak learning rate.
        min_lr: Learning rate at the end of the cosine decay.
        warmup_steps: Linear warmup steps.
        lr_decay_steps: Step at which the decay reaches ``min_lr`` (None: ``max_steps``).
        weight_decay: AdamW weight decay on 2-D parameters.
        betas: AdamW betas.
        grad_clip: Clip the global gradient norm to this value (None: no clipping).
        eval_interval: Evaluate (and checkpoint) every this many steps, and at the end.
        eval_steps: Batches per evaluation.
        device: ``"auto"``/None, ``"cpu"``, ``"cuda"``, ... (see ``utils.device.get_device``).
        dtype: ``"auto"`` (bf16 autocast on GPUs with native bf16, fp16 autocast with a
            gradient scaler on older CUDA GPUs such as the T4, float32 elsewhere), or an
            explicit ``"float32"``, ``"bfloat16"`` or ``"float16"`` (see
            :func:`utils.precision.select_precision`).
        compile: Wrap the model in ``torch.compile``.
        seed: Seeds the batch sampling and dropout.
        checkpoint_path: Where to save checkpoints; training resumes from it if it exists.
        progress: Show a tqdm progress bar.
        target_val_loss: Stop after the first evaluation during training whose validation
            loss is at most this (None: train for ``max_steps``). The schedule still spans
            ``max_steps``, so the stopped run is the beginning of the full one (resume it
            from its checkpoint with ``target_val_loss=None``). The step is recorded as
            ``history["target_step"]``.
    """

    max_steps: int = 2000
    batch_size: int = 12
    block_size: int = 64
    grad_accum_steps: int = 1
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int | None = None
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_interval: int = 250
    eval_steps: int = 20
    device: str | None = None
    dtype: str = "auto"
    compile: bool = False
    seed: int = 0
    checkpoint_path: str | Path | None = None
    progress: bool = True
    target_val_loss: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "block_size", "grad_accum_steps",
                     "eval_interval", "eval_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError("TrainConfig.dtype must be 'auto', 'float32', 'bfloat16' or "
                             f"'float16', got {self.dtype!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        # raises on a bad schedule now rather than at step 0
        lr_at(0, max_lr=self.max_lr, min_lr=self.min_lr, warmup_steps=self.warmup_steps,
              max_steps=self.decay_steps)

    @property
    def decay_steps(self) -> int:
        """The step at which the learning rate reaches ``min_lr``."""
        return self.max_steps if self.lr_decay_steps is None else self.lr_decay_steps

    def lr(self, step: int) -> float:
        """The learning rate at ``step`` (see :func:`lr_at`)."""
        return lr_at(step, max_lr=self.max_lr, min_lr=self.min_lr,
                     warmup_steps=self.warmup_steps, max_steps=self.decay_steps)


def _check_data(data: torch.Tensor, name: str, config: TrainConfig) -> None:
    if data.dim() != 1 or data.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 1-D integer tensor of token ids, got "
                         f"shape {tuple(data.shape)} and dtype {data.dtype}")
    if len(data) <= config.block_size:
        raise ValueError(f"{name} has {len(data)} tokens, need more than "
                         f"block_size={config.block_size}")


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, config: TrainConfig) -> float:
    """Mean loss over ``config.eval_steps`` random batches of ``data``.

    The batches come from a generator seeded with ``config.seed + 1``, so every call sees the
    same batches: successive evaluations differ only because the model changed.

    Args:
        model: A model whose ``forward(x, y)`` returns ``(logits, loss)``.
        data: Token ids, shape ``(N,)``.
        config: Supplies ``batch_size``, ``block_size``, ``eval_steps``, ``dtype``, ``seed``.

    Returns:
        The mean cross-entropy loss (nats per token).
    """
    _check_data(data, "data", config)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed + 1)
    precision = select_precision(device, config.dtype)
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    for _ in range(config.eval_steps):
        x, y = get_batch(data, config.batch_size, config.block_size, generator, device)
        with autocast(device, precision):
            _, loss = model(x, y)
        total += loss.float()
    model.train(was_training)
    return total.item() / config.eval_steps


def train(
    model: nn.Module,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    config: TrainConfig | None = None,
    *,
    schedule: Callable[[int], float] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` on random windows of ``train_data``; evaluate on ``val_data``.

    Each optimizer step averages the gradient of ``grad_accum_steps`` micro-batches (each
    loss is divided by ``grad_accum_steps`` so the sum of gradients is their mean: every
    window holds ``block_size`` real tokens), clips the global norm, sets the learning rate
    from the schedule and takes an AdamW step. In fp16 (see ``TrainConfig.dtype``) the loss
    is scaled before ``backward``, the gradients are unscaled *before* clipping (so the clip
    sees the true norm), and a step whose gradients hold an inf or NaN is skipped while the
    scale is lowered.
    Every ``eval_interval`` steps (and at the end) it evaluates and, if
    ``config.checkpoint_path`` is set, saves a checkpoint with the optimizer state and the
    random-number-generator states. If that file exists when training starts, training
    resumes from it and produces the same parameters as an uninterrupted run.

    Args:
        model: A model whose ``forward(x, y)`` returns ``(logits, loss)``; moved to the device.
        train_data: Training token ids, shape ``(N,)``.
        val_data: Validation token ids, shape ``(M,)``.
        config: Settings (default: ``TrainConfig()``).
        schedule: A function ``step -> learning rate`` (e.g. from
            :func:`utils.schedules.make_schedule`) replacing the config's warmup + cosine;
            on resume, pass the same one.

    Returns:
        History dict of lists. Per optimizer step: ``step`` (0, 1, ...), ``train_loss`` (mean
        over its micro-batches), ``lr``, ``grad_norm`` (before clipping), ``skipped`` (True
        where the gradient scaler skipped the update). Per evaluation:
        ``val_step`` (steps done; 0 is before training), ``val_loss``, ``tokens_per_sec``
        (training throughput since the previous evaluation, NaN at step 0) and ``elapsed``
        (training seconds so far, evaluations excluded).

    Raises:
        ValueError: If the data are too short or not 1-D integer tensors.
    """
    config = config or TrainConfig()
    _check_data(train_data, "train_data", config)
    _check_data(val_data, "val_data", config)
    device = get_device(config.device)
    model.to(device)
    # token ids are small: keeping them on the device makes batch sampling a cheap gather
    train_data, val_data = train_data.to(device), val_data.to(device)
    optimizer = make_optimizer(model, config.max_lr, config.weight_decay, config.betas)
    precision = select_precision(device, config.dtype)
    scaler = make_grad_scaler(device, precision)  # None unless fp16

    history: dict[str, list[float]] = {k: [] for k in (
        "step", "train_loss", "lr", "grad_norm", "skipped", "val_step", "val_loss",
        "tokens_per_sec", "elapsed")}
    start_step = 0
    generator = torch.Generator().manual_seed(config.seed)  # batch sampling
    ckpt_path = Path(config.checkpoint_path) if config.checkpoint_path else None
    if ckpt_path is not None and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, model, optimizer)
        start_step, history = state["step"], state["history"]
        history.setdefault("skipped", [False] * len(history["step"]))  # older checkpoints
        if scaler is not None and "scaler" in state["extra"]:
            scaler.load_state_dict(state["extra"]["scaler"])
        generator.set_state(state["extra"]["batch_rng"].cpu())
        torch.set_rng_state(state["extra"]["torch_rng"].cpu())
        if "cuda_rng" in state["extra"] and device.type == "cuda":
            torch.cuda.set_rng_state(state["extra"]["cuda_rng"].cpu(), device)
    else:
        torch.manual_seed(config.seed)  # dropout

    run_model = torch.compile(model) if config.compile else model
    tokens_per_step = config.batch_size * config.block_size * config.grad_accum_steps
    train_time = history["elapsed"][-1] if history["elapsed"] else 0.0

    def log_eval(done: int, window_tokens: int, window_time: float) -> None:
        history["val_step"].append(done)
        history["val_loss"].append(evaluate(run_model, val_data, config))
        history["tokens_per_sec"].append(
            window_tokens / window_time if window_tokens else float("nan"))
        history["elapsed"].append(train_time)
        if ckpt_path is not None:
            extra = {"batch_rng": generator.get_state(), "torch_rng": torch.get_rng_state()}
            if device.type == "cuda":
                extra["cuda_rng"] = torch.cuda.get_rng_state(device)
            if scaler is not None:
                extra["scaler"] = scaler.state_dict()
            save_checkpoint(ckpt_path, model, optimizer, done, history, extra)

    if start_step == 0:
        log_eval(0, 0, 0.0)

    model.train()
    # per-step losses and norms stay on the device until the next evaluation: calling
    # .item() every step would make the CPU wait for the GPU each time
    pending_loss: list[torch.Tensor] = []
    pending_norm: list[torch.Tensor] = []
    pending_skip: list[torch.Tensor] = []
    window_start, window_steps = time.perf_counter(), 0
    bar = tqdm(range(start_step, config.max_steps), initial=start_step, total=config.max_steps,
               disable=not config.progress, desc="training", unit="step")
    for step in bar:
        lr = config.lr(step) if schedule is None else schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for _ in range(config.grad_accum_steps):
            x, y = get_batch(train_data, config.batch_size, config.block_size, generator)
            with autocast(device, precision):
                _, loss = run_model(x, y)
            loss = loss / config.grad_accum_steps
            (loss if scaler is None else scaler.scale(loss)).backward()
            loss_sum += loss.detach().float()
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        norm = _clip_grad_norm(model.parameters(), config.grad_clip or math.inf)
        if scaler is None:
            optimizer.step()
            pending_skip.append(torch.zeros((), dtype=torch.bool, device=norm.device))
        else:
            scaler.step(optimizer)  # does nothing if a gradient is inf or NaN
            scaler.update()  # lowers the scale after such a step, raises it now and then
            pending_skip.append(~torch.isfinite(norm))
        optimizer.zero_grad(set_to_none=True)

        history["step"].append(step)
        history["lr"].append(lr)
        pending_loss.append(loss_sum)
        pending_norm.append(norm)
        window_steps += 1
        done = step + 1
        if done % config.eval_interval == 0 or done == config.max_steps:
            history["train_loss"].extend(torch.stack(pending_loss).tolist())  # syncs
            history["grad_norm"].extend(torch.stack(pending_norm).tolist())
            history["skipped"].extend(torch.stack(pending_skip).tolist())
            pending_loss.clear()
            pending_norm.clear()
            pending_skip.clear()
            window_time = time.perf_counter() - window_start
            train_time += window_time
            log_eval(done, window_steps * tokens_per_step, window_time)
            bar.set_postfix(train=f"{history['train_loss'][-1]:.3f}",
                            val=f"{history['val_loss'][-1]:.3f}")
            window_start, window_steps = time.perf_counter(), 0
            target = config.target_val_loss
            if target is not None and history["val_loss"][-1] <= target:
                history["target_step"] = [done]  # the first evaluation at or below the target
                break
    bar.close()
    return history
