"""Tests of utils.training (schedule, clipping, accumulation, loop, checkpoints) and utils.plots."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from utils import training
from utils.data import CharTokenizer, default_corpus, train_val_split
from utils.model import GPTConfig, TinyGPT
from utils.schedules import make_schedule
from utils.training import (
    TrainConfig,
    accumulate_gradients,
    clip_grad_norm,
    evaluate,
    load_checkpoint,
    lr_at,
    make_optimizer,
    save_checkpoint,
    train,
)

matplotlib.use("Agg")

SCHEDULE = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=100)


def _tiny_model(vocab_size: int = 32, **overrides) -> TinyGPT:
    torch.manual_seed(0)
    fields = dict(n_layers=2, n_heads=2, d_model=32, context_length=16)
    fields.update(overrides)
    return TinyGPT(GPTConfig(vocab_size=vocab_size, **fields))


def _random_stream(n: int = 2000, vocab_size: int = 32) -> torch.Tensor:
    return torch.randint(vocab_size, (n,), generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------
# learning-rate schedule


def test_lr_schedule_ends() -> None:
    assert lr_at(0, **SCHEDULE) == pytest.approx(1e-3 / 10)
    assert lr_at(9, **SCHEDULE) == pytest.approx(1e-3)  # last warmup step reaches max_lr
    assert lr_at(10, **SCHEDULE) == pytest.approx(1e-3)  # cosine starts at max_lr
    assert lr_at(55, **SCHEDULE) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down
    assert lr_at(100, **SCHEDULE) == pytest.approx(1e-4)
    assert lr_at(101, **SCHEDULE) == pytest.approx(1e-4)
    assert lr_at(10_000, **SCHEDULE) == pytest.approx(1e-4)


def test_lr_schedule_shape() -> None:
    lrs = [lr_at(s, **SCHEDULE) for s in range(120)]
    warmup, decay = lrs[:10], lrs[10:101]
    assert all(a < b for a, b in zip(warmup, warmup[1:], strict=False))
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert min(lrs) >= 1e-4 and max(lrs) <= 1e-3 * (1 + 1e-12)
    # no warmup: start at max_lr
    assert lr_at(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=10) == 1.0


def test_lr_schedule_bad_inputs() -> None:
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, **SCHEDULE)
    with pytest.raises(ValueError, match="min_lr"):
        lr_at(0, max_lr=1e-4, min_lr=1e-3, warmup_steps=0, max_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_at(0, max_lr=1e-3, min_lr=0.0, warmup_steps=20, max_steps=10)


# ---------------------------------------------------------------------------------------------
# clipping


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e6])
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    g = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,), (2, 2, 2), (1,)]
    ours = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    ref = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for a, b in zip(ours, ref, strict=True):
        a.grad = torch.randn(a.shape, generator=g)
        b.grad = a.grad.clone()
    ours.append(torch.nn.Parameter(torch.zeros(3)))  # a parameter without a gradient
    norm = clip_grad_norm(ours, max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-6)
    for a, b in zip(ours, ref, strict=False):
        torch.testing.assert_close(a.grad, b.grad)
    new_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in ref))
    assert new_norm <= max_norm * (1 + 1e-5) or new_norm == pytest.approx(norm)


def test_clip_grad_norm_bad_inputs() -> None:
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm([], 0.0)
    assert clip_grad_norm([torch.nn.Parameter(torch.zeros(2))], 1.0) == 0.0


# ---------------------------------------------------------------------------------------------
# optimizer and gradient accumulation


def test_make_optimizer_decays_matrices_only() -> None:
    model = _tiny_model(bias=True)
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"]) and no_decay["params"]
    n_opt = sum(p.numel() for group in opt.param_groups for p in group["params"])
    assert n_opt == model.num_parameters()  # the tied matrix appears once
    with pytest.raises(ValueError):
        make_optimizer(model, lr=-1.0)


def test_accumulated_micro_batches_give_the_big_batch_gradient() -> None:
    model = _tiny_model()
    data = _random_stream()
    x = torch.stack([data[i : i + 16] for i in range(0, 8 * 16, 16)])  # (8, 16)
    y = torch.stack([data[i + 1 : i + 17] for i in range(0, 8 * 16, 16)])

    _, loss = model(x, y)
    loss.backward()
    big = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    k = 4
    for xm, ym in zip(x.chunk(k), y.chunk(k), strict=True):
        _, loss = model(xm, ym)
        (loss / k).backward()  # mean of means == mean over the big batch (equal sizes)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, big[n], rtol=1e-4, atol=1e-6, msg=n)


def test_train_accumulation_equals_big_batch() -> None:
    # 4 micro-batches of 2 draw the same windows as one batch of 8 from the same generator
    data = _random_stream()
    common = dict(max_steps=1, block_size=16, eval_interval=1, eval_steps=1, device="cpu",
                  progress=False, warmup_steps=0)
    big = train(_tiny_model(), data, data, TrainConfig(batch_size=8, **common))
    acc = train(_tiny_model(), data, data,
                TrainConfig(batch_size=2, grad_accum_steps=4, **common))
    assert acc["train_loss"][0] == pytest.approx(big["train_loss"][0], rel=1e-5)
    assert acc["grad_norm"][0] == pytest.approx(big["grad_norm"][0], rel=1e-4)


# ---------------------------------------------------------------------------------------------
# the training loop


def test_training_lowers_validation_loss_on_default_corpus() -> None:
    text = default_corpus()
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text))
    train_ids, val_ids = train_val_split(ids, 0.1)
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig.nano(tok.vocab_size, n_layers=2, d_model=64, context_length=32))
    config = TrainConfig(max_steps=150, batch_size=16, block_size=32, max_lr=3e-3, min_lr=3e-4,
                         warmup_steps=10, eval_interval=50, eval_steps=5, device="cpu",
                         progress=False)
    history = train(model, train_ids, val_ids, config)
    assert history["val_step"] == [0, 50, 100, 150]
    assert history["step"] == list(range(150))
    for key in ("train_loss", "lr", "grad_norm"):
        assert len(history[key]) == 150
    first, last = history["val_loss"][0], history["val_loss"][-1]
    assert first == pytest.approx(math.log(tok.vocab_size), rel=0.1)  # uniform guess at init
    assert last < 0.7 * first  # about 2.6 nats, from 4.5
    assert all(t > 0 for t in history["tokens_per_sec"][1:])
    assert history["lr"][0] == pytest.approx(3e-4) and history["lr"][-1] < 3.1e-4


def test_evaluate_is_deterministic() -> None:
    model = _tiny_model()
    data = _random_stream()
    config = TrainConfig(batch_size=4, block_size=16, eval_steps=3)
    assert evaluate(model, data, config) == evaluate(model, data, config)
    assert model.training  # restored


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path) -> None:
    data = _random_stream()
    common = dict(batch_size=4, block_size=16, max_lr=3e-3, min_lr=3e-4, warmup_steps=2,
                  lr_decay_steps=10, eval_interval=3, eval_steps=2, device="cpu",
                  progress=False)
    # dropout checks that the random-number state is restored too
    full_model = _tiny_model(dropout=0.1)
    full = train(full_model, data, data, TrainConfig(max_steps=10, **common))

    path = tmp_path / "ckpt.pt"
    first_model = _tiny_model(dropout=0.1)
    train(first_model, data, data, TrainConfig(max_steps=5, checkpoint_path=path, **common))
    assert load_checkpoint(path, _tiny_model(dropout=0.1))["step"] == 5

    torch.manual_seed(123)  # a different global state must not matter
    resumed_model = TinyGPT(first_model.config)  # fresh weights, replaced by the checkpoint
    resumed = train(resumed_model, data, data,
                    TrainConfig(max_steps=10, checkpoint_path=path, **common))

    assert resumed["step"] == full["step"] == list(range(10))
    assert resumed["lr"] == pytest.approx(full["lr"])
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-5)
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def test_checkpoint_functions_live_in_utils_checkpoint() -> None:
    from utils import checkpoint

    assert training.save_checkpoint is checkpoint.save_checkpoint
    assert training.load_checkpoint is checkpoint.load_checkpoint


def test_save_and_load_checkpoint(tmp_path) -> None:
    model = _tiny_model()
    opt = make_optimizer(model, 1e-3)
    path = tmp_path / "sub" / "c.pt"
    save_checkpoint(path, model, opt, step=7, history={"step": [0, 1]})
    other = _tiny_model(vocab_size=32)
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    state = load_checkpoint(path, other, make_optimizer(other, 1e-3))
    assert state["step"] == 7 and state["history"] == {"step": [0, 1]}
    assert state["model_config"]["d_model"] == 32
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt", model)


def test_train_bad_inputs() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float8")
    assert TrainConfig(dtype="float16").dtype == "float16"
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(max_lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=0.0)
    model = _tiny_model()
    config = TrainConfig(max_steps=1, warmup_steps=0, block_size=16, device="cpu",
                         progress=False)
    with pytest.raises(ValueError, match="train_data"):
        train(model, torch.arange(100).view(10, 10), torch.arange(100), config)
    with pytest.raises(ValueError, match="val_data has 10 tokens"):
        train(model, torch.arange(100), torch.arange(10), config)
    with pytest.raises(ValueError):
        train(model, torch.arange(100), torch.arange(100),
              TrainConfig(max_steps=1, warmup_steps=0, block_size=16, device="no-such-device",
                          progress=False))


# ---------------------------------------------------------------------------------------------
# token-weighted accumulation


def _padded_documents(lengths: list[int], width: int, vocab: int = 32):
    """One (1, width) micro-batch per document: real tokens, then targets of -100."""
    g = torch.Generator().manual_seed(3)
    batches = []
    for n in lengths:
        ids = torch.randint(vocab, (width + 1,), generator=g)
        x, y = ids[:-1].clone()[None], ids[1:].clone()[None]
        y[0, n:] = -100
        batches.append((x, y))
    return batches


def test_accumulate_gradients_equals_the_big_batch_with_unequal_token_counts() -> None:
    micro = _padded_documents([16, 3, 9, 1], width=16)
    model = _tiny_model()
    x = torch.cat([m[0] for m in micro])
    y = torch.cat([m[1] for m in micro])
    _, loss = model(x, y)  # reference: one batch, mean over its real tokens
    loss.backward()
    big = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    mean = accumulate_gradients(model, micro)
    assert mean.item() == pytest.approx(loss.item(), rel=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, big[n], rtol=1e-4, atol=1e-6, msg=n)

    # the shortcut loss / k weights the 1-token document like the 16-token one: wrong here
    model.zero_grad()
    for xm, ym in micro:
        (model(xm, ym)[1] / len(micro)).backward()
    name = "blocks.0.attn.q_proj.weight"
    assert not torch.allclose(dict(model.named_parameters())[name].grad, big[name], rtol=1e-2)


def test_accumulate_gradients_bad_inputs() -> None:
    model = _tiny_model()
    with pytest.raises(ValueError, match="at least one"):
        accumulate_gradients(model, [])
    x = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="no real tokens"):
        accumulate_gradients(model, [(x, torch.full((1, 4), -100))])


# ---------------------------------------------------------------------------------------------
# schedules and mixed precision inside the trainer


def test_train_follows_a_given_schedule() -> None:
    data = _random_stream()
    schedule = make_schedule("wsd", max_lr=2e-3, min_lr=0.0, warmup_steps=2, max_steps=8,
                             decay_fraction=0.25)
    history = train(_tiny_model(), data, data,
                    TrainConfig(max_steps=8, batch_size=2, block_size=16, eval_interval=8,
                                warmup_steps=2, eval_steps=1, device="cpu", progress=False),
                    schedule=schedule)
    assert history["lr"] == pytest.approx([schedule(s) for s in range(8)])
    assert history["lr"][5] == 2e-3 and history["lr"][-1] == pytest.approx(1e-3)


def _one_step(dtype: str, **overrides) -> tuple[dict, TinyGPT]:
    model = _tiny_model()
    fields = dict(max_steps=1, batch_size=4, block_size=16, eval_interval=1, eval_steps=1,
                  device="cpu", progress=False, warmup_steps=0, dtype=dtype)
    fields.update(overrides)
    return train(model, _random_stream(), _random_stream(), TrainConfig(**fields)), model


def test_fp16_unscales_before_clipping() -> None:
    # the recorded norm is that of the true gradients: as in float32, not 65536 times larger
    h32, _ = _one_step("float32")
    h16, _ = _one_step("float16")
    assert h16["grad_norm"][0] == pytest.approx(h32["grad_norm"][0], rel=2e-2)
    assert h16["skipped"] == [False] and h32["skipped"] == [False]
    assert h16["train_loss"][0] == pytest.approx(h32["train_loss"][0], rel=1e-2)


def test_fp16_skips_a_step_whose_gradients_overflow(monkeypatch) -> None:
    # a loss scale of 2**40 makes the fp16 gradients overflow to inf: the step must be skipped
    # (weights untouched, weight decay included) and the scale halved
    created = []

    def huge_scaler(device, precision):
        scaler = torch.amp.GradScaler(torch.device(device).type, init_scale=2.0**40)
        created.append(scaler)
        return scaler

    monkeypatch.setattr(training, "make_grad_scaler", huge_scaler)
    before = {n: p.detach().clone() for n, p in _tiny_model().named_parameters()}
    history, model = _one_step("float16")
    assert history["skipped"] == [True]
    assert not math.isfinite(history["grad_norm"][0])
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
    assert created[0].get_scale() == 2.0**39

    # with the default scale the same step is taken
    monkeypatch.undo()
    history, model = _one_step("float16")
    assert history["skipped"] == [False]
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


def test_fp16_resume_restores_the_scaler(tmp_path) -> None:
    data = _random_stream()
    common = dict(batch_size=2, block_size=16, max_lr=3e-3, min_lr=3e-4, warmup_steps=1,
                  lr_decay_steps=6, eval_interval=3, eval_steps=1, device="cpu",
                  progress=False, dtype="float16")
    full_model = _tiny_model()
    full = train(full_model, data, data, TrainConfig(max_steps=6, **common))
    path = tmp_path / "fp16.pt"
    train(_tiny_model(), data, data, TrainConfig(max_steps=3, checkpoint_path=path, **common))
    assert "scaler" in load_checkpoint(path, _tiny_model())["extra"]
    resumed_model = _tiny_model()
    resumed = train(resumed_model, data, data,
                    TrainConfig(max_steps=6, checkpoint_path=path, **common))
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-5)
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# plots (smoke tests)


def test_plots() -> None:
    import matplotlib.pyplot as plt

    from utils.plots import attention_heatmap, plot_history, plot_lr_schedule, use_style

    use_style()
    history = {"step": list(range(200)), "train_loss": [3 - i / 100 for i in range(200)],
               "val_step": [0, 100, 200], "val_loss": [3.0, 2.0, 1.5]}
    ax = plot_history(history)
    assert len(ax.lines) == 3
    ax = plot_lr_schedule([lr_at(s, **SCHEDULE) for s in range(120)])
    assert len(ax.lines[0].get_xdata()) == 120
    weights = torch.softmax(torch.randn(4, 4), dim=-1)
    ax = attention_heatmap(weights, x_labels=list("abcd"), y_labels=list("abcd"), title="t")
    assert ax.get_title() == "t"
    with pytest.raises(ValueError):
        attention_heatmap(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="x_labels"):
        attention_heatmap(weights, x_labels=["a"])
    with pytest.raises(ValueError, match="train_loss"):
        plot_history({"step": [1]})
    plt.close("all")
