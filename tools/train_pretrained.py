"""Train the small character model that ships in ``utils/pretrained/`` and write its file.

Usage::

    python -m tools.train_pretrained            # writes utils/pretrained/tiny-pydoc-char.pt
    python -m tools.train_pretrained --device cuda --max-steps 10000 --out /tmp/longer.pt
    python -m tools.train_pretrained --help     # every setting

The defaults reproduce the shipped file: a 4-layer, 4-head, 128-wide TinyGPT (RoPE, SwiGLU,
RMSNorm, tied embeddings) with context 128, trained with ``utils.training.train`` on the
course's default corpus (``utils.data.default_corpus()``, Python's ``pydoc_data.topics``)
with a character tokenizer and the 90/10 head/tail split of ``utils.data.train_val_split``.
The run is seeded (same weights and losses on every run on one machine); on an idle 2-core CPU
(``OMP_NUM_THREADS=2``) it takes about 4 minutes, 3.1 M training tokens. The file
holds float16 weights and the training record (corpus SHA-256, split, every setting, final
losses, per-head attention scores, versions); ``utils.pretrained.load_pretrained`` reads it.
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from utils.attention_maps import induction_scores, previous_token_scores
from utils.data import CharTokenizer, default_corpus, train_val_split
from utils.model import GPTConfig, TinyGPT
from utils.pretrained import (
    DEFAULT_MODEL,
    FORMAT_VERSION,
    load_pretrained_file,
    pack_state_dict,
    sha256_text,
)
from utils.training import TrainConfig, evaluate, train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "utils" / "pretrained" / f"{DEFAULT_MODEL}.pt"
CORPUS_NAME = "utils.data.default_corpus() (pydoc_data.topics help texts)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line settings; the defaults reproduce the shipped model."""
    p = argparse.ArgumentParser(
        prog="python -m tools.train_pretrained", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write")
    p.add_argument("--name", default=DEFAULT_MODEL, help="model name stored in the file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps or auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="auto: bf16 autocast on CUDA, float32 elsewhere")
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--context", type=int, default=128, help="context length = block size")
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--max-lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-steps", type=int, default=10, help="batches per periodic evaluation")
    p.add_argument("--eval-batches", type=int, default=100,
                   help="batches for the final train and validation losses")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p.parse_args(argv)


@torch.no_grad()
def stream_loss(model: TinyGPT, ids: torch.Tensor, context: int, batch_size: int = 64) -> float:
    """Mean next-token loss over ``ids`` cut into consecutive windows of ``context`` tokens."""
    n = (len(ids) - 1) // context
    x, y = ids[: n * context].view(n, context), ids[1 : n * context + 1].view(n, context)
    total = 0.0
    for i in range(0, n, batch_size):
        _, loss = model(x[i : i + batch_size], y[i : i + batch_size])
        total += loss.item() * len(x[i : i + batch_size])
    return total / n


def head_scores(model: TinyGPT, val_ids: torch.Tensor, context: int, seed: int) -> dict:
    """Previous-token scores on validation text and induction scores on repeated tokens."""
    n = min(8, len(val_ids) // context)
    text = val_ids[: n * context].view(n, context)
    period = context // 2
    block = torch.randint(model.config.vocab_size, (8, period),
                          generator=torch.Generator().manual_seed(seed))
    return {
        "previous_token_scores": previous_token_scores(model, text).tolist(),
        "induction_scores": induction_scores(model, block.repeat(1, 2), period).tolist(),
        "head_scores_note": (
            f"previous-token: first {n} windows of {context} validation tokens; induction: 8 "
            f"blocks of {period} uniformly random token ids, each written twice (seed {seed})"
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate, write the file and return its training record."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    text = default_corpus()
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids, args.val_fraction)

    torch.manual_seed(args.seed)
    gpt_config = GPTConfig.nano(
        tok.vocab_size, context_length=args.context, n_layers=args.n_layers,
        n_heads=args.n_heads, d_model=args.d_model)
    model = TinyGPT(gpt_config)
    train_config = TrainConfig(
        max_steps=args.max_steps, batch_size=args.batch_size, block_size=args.context,
        max_lr=args.max_lr, min_lr=args.min_lr, warmup_steps=min(args.warmup_steps,
                                                                 args.max_steps),
        weight_decay=args.weight_decay, betas=(0.9, args.beta2), grad_clip=args.grad_clip,
        eval_interval=args.eval_interval, eval_steps=args.eval_steps, device=args.device,
        dtype=args.dtype, seed=args.seed, progress=args.progress)
    print(f"corpus: {CORPUS_NAME}: {len(text):,} characters, vocabulary {tok.vocab_size}, "
          f"{len(train_ids):,} train / {len(val_ids):,} val tokens")
    print(f"model: {model.num_parameters():,} parameters; training {args.max_steps} steps of "
          f"{args.batch_size} x {args.context} tokens on {args.device} "
          f"({torch.get_num_threads()} CPU threads)")

    start = time.perf_counter()
    history = train(model, train_ids, val_ids, train_config)
    train_wall = time.perf_counter() - start
    for step, loss in zip(history["val_step"], history["val_loss"], strict=True):
        print(f"  step {step:5d}: val loss {loss:.4f}")

    # every figure below describes the shipped weights: float16, cast back to float32
    packed = pack_state_dict(model.state_dict(), torch.float16)
    model.float().cpu().eval()
    model.load_state_dict({k: v.float() for k, v in packed.items()})
    final = TrainConfig(batch_size=args.batch_size, block_size=args.context,
                        eval_steps=args.eval_batches, dtype="float32", seed=args.seed)
    val_loss = evaluate(model, val_ids, final)
    train_loss = evaluate(model, train_ids, final)
    val_loss_full = stream_loss(model, val_ids, args.context)

    info: dict[str, Any] = {
        "name": args.name,
        "corpus": CORPUS_NAME,
        "corpus_sha256": sha256_text(text),
        "corpus_chars": len(text),
        "split": {"val_fraction": args.val_fraction, "train_tokens": len(train_ids),
                  "val_tokens": len(val_ids),
                  "rule": "utils.data.train_val_split: first part trains, last part validates"},
        "gpt_config": asdict(gpt_config),
        "train_config": {k: (str(v) if isinstance(v, Path) else v)
                         for k, v in asdict(train_config).items()},
        "steps": history["step"][-1] + 1,
        "tokens_seen": (history["step"][-1] + 1) * args.batch_size * args.context,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_loss_full": val_loss_full,
        "final_eval": {"batches": args.eval_batches, "batch_size": args.batch_size,
                       "block_size": args.context, "generator_seed": args.seed + 1,
                       "function": "utils.training.evaluate",
                       "val_loss_full": "tools.train_pretrained.stream_loss: every validation "
                                        "token once, in consecutive block_size windows"},
        "history": {k: history[k] for k in ("val_step", "val_loss", "elapsed")},
        "train_seconds": history["elapsed"][-1],
        "wall_seconds": train_wall,
        "device": str(args.device),
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "weights_dtype": "float16",
        "command": shlex.join(["python", "-m", "tools.train_pretrained",
                               *(sys.argv[1:] if argv is None else argv)]),
        **head_scores(model, val_ids, args.context, args.seed),
    }
    state = {
        "format": FORMAT_VERSION,
        "model_config": asdict(gpt_config),
        "tokenizer": {"type": "char", "chars": "".join(tok.itos)},
        "model": packed,
        "info": info,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    load_pretrained_file(out)  # fails loudly if the file cannot be read back

    print(f"final loss on {args.eval_batches} batches: train {train_loss:.4f}, "
          f"val {val_loss:.4f}; whole validation split {val_loss_full:.4f} "
          f"(uniform guess: ln {tok.vocab_size} = {math.log(tok.vocab_size):.4f})")
    print(f"training time: {info['train_seconds']:.1f} s without evaluations, "
          f"{train_wall:.1f} s with them")
    print("previous-token score per layer (rows) and head (columns):")
    for layer, row in enumerate(info["previous_token_scores"]):
        print(f"  layer {layer}: " + "  ".join(f"{s:.3f}" for s in row))
    print("induction score per layer and head:")
    for layer, row in enumerate(info["induction_scores"]):
        print(f"  layer {layer}: " + "  ".join(f"{s:.3f}" for s in row))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {out.stat().st_size:,} bytes)")
    return info


if __name__ == "__main__":
    main()
