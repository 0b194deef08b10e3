"""Time to a target validation loss on tiny Shakespeare, side by side with nanoGPT.

Two presets, each with nanoGPT's settings for the same job:

- ``cpu`` (default): nanoGPT's CPU run (4 layers, 4 heads, width 128, context 64, batch 12,
  2000 iterations). Issue 14 measured nanoGPT on this machine type: validation loss 1.886
  after 2000 iterations, 90 s of wall time.
- ``gpu``: nanoGPT's ``config/train_shakespeare_char.py`` (6 layers, 6 heads, width 384,
  context 256, batch 64, dropout 0.2, 5000 iterations). nanoGPT's README: validation loss
  1.4697 after about 3 minutes on an A100. Runs on a CPU too (try ``--max-steps 5``).

The course's ``TinyGPT`` trains with ``utils.training.train`` until the first evaluation at
or below ``--target-loss`` (the wall time to that point, evaluations and checkpoints
included, is the headline figure); then the run resumes from its checkpoint and finishes all
``--max-steps`` steps, so the final loss is that of the full run with the same schedule.

Usage::

    python benchmarks/train_char.py --text input.txt                 # CPU preset
    python benchmarks/train_char.py --text input.txt --preset gpu    # nanoGPT's GPU setup
    python benchmarks/train_char.py --text input.txt --no-full       # stop at the target
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

# run as a script from anywhere: make the repository's ``utils`` importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.accounting import flops_per_token  # noqa: E402
from utils.data import CharTokenizer, load_text, train_val_split  # noqa: E402
from utils.model import GPTConfig, TinyGPT  # noqa: E402
from utils.training import TrainConfig, evaluate, train  # noqa: E402

# nanoGPT's settings for each preset; eval_interval/eval_steps are the course's choice for
# finding the target (nanoGPT evaluates every 250 iterations, on 20 batches in the CPU
# command of its README and 200 in the GPU config)
PRESETS: dict[str, dict[str, float | int]] = {
    "cpu": dict(n_layers=4, n_heads=4, d_model=128, block_size=64, batch_size=12,
                max_steps=2000, max_lr=1e-3, min_lr=1e-4, warmup_steps=100, dropout=0.0,
                beta2=0.99, target_loss=1.886, eval_interval=50, eval_steps=20),
    "gpu": dict(n_layers=6, n_heads=6, d_model=384, block_size=256, batch_size=64,
                max_steps=5000, max_lr=1e-3, min_lr=1e-4, warmup_steps=100, dropout=0.2,
                beta2=0.99, target_loss=1.47, eval_interval=250, eval_steps=200),
}

# nanoGPT's figures, quoted from issue 14 (time, step and loss); never measured here
NANOGPT: dict[str, dict[str, str]] = {
    "cpu": dict(time="90 s", step="2000", loss="1.886",
                source="tiny Shakespeare; issue 14: nanoGPT's CPU run, this machine type",
                tokens="17,067 (derived: 2000 x 12 x 64 / 90 s, evaluations included)"),
    "gpu": dict(time="about 3 min (A100)", step="5000 (end of run)", loss="1.4697",
                source="tiny Shakespeare; issue 14, from nanoGPT's README, one A100",
                tokens="not quoted"),
}

# dense tensor-core peaks (bf16; fp16 on the T4 and V100, which lack bf16) from NVIDIA's data
# sheets, in TFLOP/s, for the model-FLOPs utilisation; a longer name comes before its prefix
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "A10": 125.0,
               "L40S": 362.0, "L40": 181.0, "L4": 121.0, "T4": 65.0, "V100": 125.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="nanoGPT's CPU or GPU settings; the flags below override them")
    p.add_argument("--text", default=None, help="UTF-8 text file (default: the course corpus)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--target-loss", type=float, default=None,
                   help="validation loss to reach (preset: cpu 1.886, gpu 1.47)")
    p.add_argument("--no-full", action="store_true",
                   help="stop at the target instead of finishing --max-steps")
    for name, kind in (("max-steps", int), ("batch-size", int), ("block-size", int),
                       ("n-layers", int), ("n-heads", int), ("d-model", int),
                       ("max-lr", float), ("min-lr", float), ("warmup-steps", int),
                       ("dropout", float), ("beta2", float), ("eval-interval", int),
                       ("eval-steps", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="(preset)")
    p.add_argument("--lr-decay-steps", type=int, default=None,
                   help="step at which the cosine decay reaches --min-lr (default: --max-steps)")
    p.add_argument("--eval-batches", type=int, default=200,
                   help="batches for the final train and validation losses")
    p.add_argument("--ffn", default="swiglu", choices=["swiglu", "gelu", "relu"])
    p.add_argument("--norm", default="rmsnorm", choices=["rmsnorm", "layernorm"])
    p.add_argument("--position", default="rope", choices=["rope", "learned", "sinusoidal", "none"])
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: PyTorch's choice)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak for the FLOPs utilisation (default: known GPUs)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    args = p.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.warmup_steps > args.max_steps:  # a short smoke test, e.g. --max-steps 5
        print(f"note: warmup shortened from {args.warmup_steps} to --max-steps {args.max_steps}")
        args.warmup_steps = args.max_steps
    return args


def peak_flops(device: torch.device, tflops: float | None) -> float | None:
    """The device's peak FLOP/s: ``tflops`` if given, else a known GPU's, else None."""
    if tflops is not None:
        return tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value * 1e12
    return None


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    text = load_text(args.text)
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids, args.val_fraction)
    source = args.text or "default corpus (pydoc_data.topics)"
    print(f"text: {source}: {len(text):,} characters, vocabulary {tok.vocab_size}, "
          f"{len(train_ids):,} train / {len(val_ids):,} val tokens")

    torch.manual_seed(args.seed)
    model = TinyGPT(GPTConfig(
        vocab_size=tok.vocab_size, context_length=args.block_size, d_model=args.d_model,
        n_layers=args.n_layers, n_heads=args.n_heads, ffn=args.ffn, norm=args.norm,
        position=args.position, dropout=args.dropout,
    ))
    with tempfile.TemporaryDirectory() as tmp:
        settings = dict(
            max_steps=args.max_steps, batch_size=args.batch_size, block_size=args.block_size,
            max_lr=args.max_lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps,
            lr_decay_steps=args.lr_decay_steps, weight_decay=args.weight_decay,
            betas=(0.9, args.beta2), grad_clip=args.grad_clip,
            eval_interval=args.eval_interval, eval_steps=args.eval_steps, device=args.device,
            dtype=args.dtype, compile=args.compile, seed=args.seed, progress=args.progress,
            checkpoint_path=Path(tmp) / "run.pt",
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        history = train(model, train_ids, val_ids,
                        TrainConfig(target_val_loss=args.target_loss, **settings))
        wall_to_target = time.perf_counter() - start
        cpu_to_target = time.process_time() - cpu_start
        reached = history.get("target_step", [None])[0]
        steps_done = len(history["step"])
        train_time_to_target = history["elapsed"][-1]
        tokens_to_target = steps_done * args.batch_size * args.block_size
        if reached is not None and not args.no_full and steps_done < args.max_steps:
            # same run, same schedule: continue from the checkpoint written at the target
            rest = train(model, train_ids, val_ids, TrainConfig(**settings))
            history = rest
        full_wall = time.perf_counter() - start

    device = next(model.parameters()).device
    for step, loss in zip(history["val_step"], history["val_loss"], strict=True):
        if step % 500 == 0 or step == reached or step == history["val_step"][-1]:
            mark = "  <- first at or below the target" if step == reached else ""
            print(f"  step {step:5d}: val loss {loss:.4f} ({args.eval_steps} batches){mark}")

    final = TrainConfig(batch_size=args.batch_size, block_size=args.block_size,
                        eval_steps=args.eval_batches, dtype=args.dtype, seed=args.seed)
    val_loss = evaluate(model, val_ids, final)
    train_loss = evaluate(model, train_ids, final)
    steps_total = len(history["step"])
    tokens_per_sec = steps_total * args.batch_size * args.block_size / history["elapsed"][-1]
    flops = flops_per_token(model.config, args.block_size)
    peak = peak_flops(device, args.peak_tflops)
    mfu = f"{tokens_per_sec * flops / peak:.1%}" if peak else "n/a (give --peak-tflops)"

    nano = NANOGPT[args.preset]
    n_threads = torch.get_num_threads()
    threads = f" ({n_threads} thread{'s' * (n_threads != 1)})" if device.type == "cpu" else ""
    print(f"device: {device}{threads}, {model.num_parameters():,} parameters, "
          f"{flops / 1e6:.2f} MFLOP per training token (utils.accounting.flops_per_token)")
    target = f"val <= {args.target_loss}"
    rows = [
        (f"wall time to {target}",
         f"{wall_to_target:.1f} s" if reached else "not reached", nano["time"]),
        ("  of which training (evaluations excluded)",
         f"{train_time_to_target:.1f} s" if reached else "-", "-"),
        # on a shared machine wall time includes waiting for a core; CPU time does not
        ("  CPU time of the process (all threads)",
         f"{cpu_to_target:.1f} s" if reached else "-", "-"),
        ("step of the first evaluation at the target", str(reached or "-"), nano["step"]),
        ("training tokens/s (evaluations excluded)", f"{tokens_per_sec:,.0f}", nano["tokens"]),
        ("model-FLOPs utilisation", mfu, "-"),
        (f"final val loss ({args.eval_batches} batches; train)",
         f"{val_loss:.4f} ({train_loss:.4f}) at step {steps_total}", nano["loss"]),
        ("wall time of the whole run", f"{full_wall:.1f} s", "-"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'':{width}}  {'course (this run)':28}  nanoGPT ({nano['source']})")
    for label, ours, theirs in rows:
        print(f"{label:{width}}  {ours:28}  {theirs}")
    return {"wall_to_target": wall_to_target, "cpu_to_target": cpu_to_target,
            "target_step": float(reached or "nan"), "tokens_to_target": tokens_to_target,
            "val_loss": val_loss, "train_loss": train_loss, "tokens_per_sec": tokens_per_sec}


if __name__ == "__main__":
    main()
