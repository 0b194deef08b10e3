"""Tests of ``TrainConfig.target_val_loss``: stop at the first evaluation that reaches a loss."""

from __future__ import annotations

import torch

from utils.model import GPTConfig, TinyGPT
from utils.training import TrainConfig, train

COMMON = dict(batch_size=4, block_size=8, eval_interval=2, eval_steps=2, max_lr=3e-3,
              min_lr=3e-4, warmup_steps=2, progress=False, seed=0)


def _model() -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(GPTConfig(vocab_size=7, n_layers=1, n_heads=2, d_model=16, context_length=8))


def _data() -> torch.Tensor:
    # a repeating pattern: the model learns it within a few steps, so the loss falls fast
    return torch.arange(600) % 7


def test_stops_at_the_first_evaluation_at_or_below_the_target() -> None:
    data = _data()
    full = train(_model(), data, data, TrainConfig(max_steps=40, **COMMON))
    losses = full["val_loss"][1:]  # the evaluations during training (index 0 is step 0)
    assert losses[0] > losses[-1]  # the loss does fall, so a target in between is reachable
    target = (losses[0] + losses[-1]) / 2
    first = next(i for i, loss in enumerate(losses) if loss <= target)
    expected_step = full["val_step"][1 + first]

    stopped = train(_model(), data, data,
                    TrainConfig(max_steps=40, target_val_loss=target, **COMMON))

    assert stopped["target_step"] == [expected_step]
    assert stopped["val_step"][-1] == expected_step < 40
    assert len(stopped["step"]) == expected_step
    # the stopped run is the beginning of the full run: same schedule, same losses
    assert stopped["lr"] == full["lr"][:expected_step]
    torch.testing.assert_close(torch.tensor(stopped["val_loss"]),
                               torch.tensor(full["val_loss"][: 2 + first]))


def test_unreached_or_absent_target_trains_every_step() -> None:
    data = _data()
    for target in (None, -1.0):  # no target; a cross-entropy can never be negative
        history = train(_model(), data, data,
                        TrainConfig(max_steps=10, target_val_loss=target, **COMMON))
        assert "target_step" not in history
        assert history["step"] == list(range(10))


def test_resuming_a_stopped_run_finishes_the_full_run(tmp_path) -> None:
    data = _data()
    full_model = _model()
    full = train(full_model, data, data, TrainConfig(max_steps=20, **COMMON))
    target = full["val_loss"][3]  # reached at the third evaluation during training, step 6

    path = tmp_path / "run.pt"
    stopped = train(_model(), data, data, TrainConfig(
        max_steps=20, target_val_loss=target, checkpoint_path=path, **COMMON))
    assert stopped["target_step"][0] <= full["val_step"][3]
    resumed_model = _model()
    resumed = train(resumed_model, data, data,
                    TrainConfig(max_steps=20, checkpoint_path=path, **COMMON))

    assert resumed["step"] == list(range(20))
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
