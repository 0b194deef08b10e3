"""Character-level training benchmark with nanoGPT's CPU baseline settings.

nanoGPT's README trains a 4-layer, 4-head, 128-wide model with context 64 and batch 12 for
2000 iterations on tiny Shakespeare on a CPU and reaches a validation loss of about 1.88.
This script trains the course's TinyGPT with the same settings and reports the validation
loss, the training throughput and the wall time.

Usage::

    python benchmarks/train_char.py                        # the default corpus
    python benchmarks/train_char.py --text input.txt       # any UTF-8 text file
    python benchmarks/train_char.py --device cuda --max-steps 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

# run as a script from anywhere: make the repository's ``utils`` importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data import CharTokenizer, load_text, train_val_split  # noqa: E402
from utils.model import GPTConfig, TinyGPT  # noqa: E402
from utils.training import TrainConfig, evaluate, train  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--text", default=None, help="UTF-8 text file (default: the course corpus)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--ffn", default="swiglu", choices=["swiglu", "gelu", "relu"])
    p.add_argument("--norm", default="rmsnorm", choices=["rmsnorm", "layernorm"])
    p.add_argument("--position", default="rope", choices=["rope", "learned", "sinusoidal", "none"])
    p.add_argument("--max-lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--eval-interval", type=int, default=500)
    p.add_argument("--eval-batches", type=int, default=200,
                   help="batches for the final validation loss")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: PyTorch's choice)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    text = load_text(args.text)
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids, args.val_fraction)

    torch.manual_seed(args.seed)
    model = TinyGPT(GPTConfig(
        vocab_size=tok.vocab_size, context_length=args.block_size, d_model=args.d_model,
        n_layers=args.n_layers, n_heads=args.n_heads, ffn=args.ffn, norm=args.norm,
        position=args.position,
        dropout=args.dropout,
    ))
    config = TrainConfig(
        max_steps=args.max_steps, batch_size=args.batch_size, block_size=args.block_size,
        max_lr=args.max_lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, betas=(0.9, args.beta2), grad_clip=args.grad_clip,
        eval_interval=args.eval_interval, eval_steps=20, device=args.device, dtype=args.dtype,
        compile=args.compile, seed=args.seed, progress=args.progress,
    )
    source = args.text or "default corpus (pydoc_data.topics)"
    print(f"text: {source}: {len(text):,} characters, vocabulary {tok.vocab_size}, "
          f"{len(train_ids):,} train / {len(val_ids):,} val tokens")

    start, cpu_start = time.perf_counter(), time.process_time()
    history = train(model, train_ids, val_ids, config)
    wall, cpu_time = time.perf_counter() - start, time.process_time() - cpu_start
    device = next(model.parameters()).device
    for step, loss in zip(history["val_step"], history["val_loss"], strict=True):
        print(f"  step {step:5d}: val loss {loss:.4f}")

    final = TrainConfig(batch_size=args.batch_size, block_size=args.block_size,
                        eval_steps=args.eval_batches, dtype=args.dtype, seed=args.seed)
    val_loss = evaluate(model, val_ids, final)
    train_loss = evaluate(model, train_ids, final)
    train_tokens = args.max_steps * args.batch_size * args.block_size
    tokens_per_sec = train_tokens / history["elapsed"][-1]
    print(f"device: {device} ({torch.get_num_threads()} CPU threads)")
    print(f"parameters: {model.num_parameters():,}")
    print(f"final loss on {args.eval_batches} batches: train {train_loss:.4f}, "
          f"val {val_loss:.4f}")
    print(f"training throughput: {tokens_per_sec:,.0f} tokens/s "
          f"({history['elapsed'][-1]:.1f} s training, evaluations excluded)")
    print(f"wall time (training with evaluations): {wall:.1f} s")
    if device.type == "cpu":
        # on a shared machine wall-clock time includes waiting for a core; CPU time does not
        print(f"CPU time: {cpu_time:.1f} s, {train_tokens / cpu_time:,.0f} training tokens per "
              f"CPU-second (evaluations included)")
    return {"val_loss": val_loss, "train_loss": train_loss, "tokens_per_sec": tokens_per_sec,
            "wall_time": wall, "cpu_time": cpu_time}


if __name__ == "__main__":
    main()
