"""Byte-level BPE: the course's tokenizer next to the Hugging Face `tokenizers` library.

Trains a vocabulary (default 4096 tokens) on a text (default: the course corpus) with both,
then encodes the whole text with both, and prints the times side by side. The course's goal:
training in at most 10 s and encoding at least 1 MB/s on one core. `tokenizers` is optional:
without it only the course's figures are printed.

Usage::

    OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 python benchmarks/tokenizer_speed.py
    python benchmarks/tokenizer_speed.py --vocab-size 6400 --text input.txt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data import load_text  # noqa: E402
from utils.tokenizer import BPETokenizer  # noqa: E402

EOT = "<|endoftext|>"


def _best_of(repeats: int, fn):
    """Smallest wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", default=None, help="UTF-8 text file (default: the course corpus)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = p.parse_args(argv)
    text = load_text(args.text)
    n_bytes = len(text.encode("utf-8"))
    print(f"text: {len(text):,} characters, {n_bytes:,} UTF-8 bytes; vocab_size {args.vocab_size}")
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}")

    def ours_train():
        return BPETokenizer.train(text, args.vocab_size, special_tokens=[EOT])

    train_s, ours = _best_of(args.repeats, ours_train)

    def ours_encode():
        ours._cache.clear()  # a cold cache: every distinct chunk is encoded once per run
        return ours.encode(text)

    encode_s, ids = _best_of(args.repeats, ours_encode)
    rows = [("utils.tokenizer", train_s, encode_s, len(ids))]

    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        print("(the tokenizers library is not installed: pip install tokenizers)")
    else:
        def hf_train():
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(
                vocab_size=args.vocab_size, special_tokens=[EOT], show_progress=False,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator([text], trainer)
            return tok

        hf_train_s, hf = _best_of(args.repeats, hf_train)
        hf_encode_s, enc = _best_of(args.repeats, lambda: hf.encode(text))
        rows.append(("tokenizers (Rust)", hf_train_s, hf_encode_s, len(enc.ids)))

    print(f"\n{'':20} {'train (s)':>10} {'encode (s)':>11} {'encode MB/s':>12} {'tokens':>9}")
    for name, t_train, t_encode, n in rows:
        print(f"{name:20} {t_train:10.2f} {t_encode:11.3f} {n_bytes / t_encode / 1e6:12.2f} {n:9,}")
    print(f"\ngoal: train <= 10 s ({'met' if train_s <= 10 else 'NOT met'}), "
          f"encode >= 1 MB/s ({'met' if n_bytes / encode_s >= 1e6 else 'NOT met'})")


if __name__ == "__main__":
    main()
