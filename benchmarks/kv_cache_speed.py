"""KV-cache speedup on MiniMind2-small's shapes, and cached decoding against the bandwidth bound.

Random weights (the speed does not depend on them), prompt of 16 tokens, greedy decoding,
float32 on the CPU (bf16 autocast on CUDA). For each number of new tokens it times
``generate`` with and without the cache and prints the speedup. Then it measures the memory
bandwidth of this machine (a large tensor copy) and prints the time a decoding step cannot
beat: every step reads all the weights once, so ``weight bytes / bandwidth`` per token.

    python benchmarks/kv_cache_speed.py                 # 128 and 512 new tokens
    python benchmarks/kv_cache_speed.py --new 32 128    # other lengths
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from utils.device import get_device
from utils.generation import generate
from utils.model import GPTConfig, TinyGPT


def bandwidth(device: torch.device, n_bytes: int = 256 * 2**20) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n_bytes / best


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--prompt", type=int, default=16)
    args = parser.parse_args()
    device = get_device()
    torch.manual_seed(0)
    context = args.prompt + max(args.new)
    config = dataclasses.replace(GPTConfig.minimind2_small(), context_length=context)
    model = TinyGPT(config).to(device).eval()
    idx = torch.randint(0, config.vocab_size, (1, args.prompt), device=device)
    print(f"device {device}, threads {torch.get_num_threads()}, MiniMind2-small shapes "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), prompt {args.prompt}")
    generate(model, idx, 4, temperature=0.0)  # warm-up
    for n in args.new:  # best of three cached runs (cheap); one uncached run (slow)
        cached = min(timed(lambda n=n: generate(model, idx, n, temperature=0.0))
                     for _ in range(3))
        uncached = timed(lambda n=n: generate(model, idx, n, temperature=0.0, use_cache=False))
        print(f"{n:4d} new tokens: cached {cached:7.2f} s ({n / cached:6.1f} tok/s), "
              f"uncached {uncached:7.2f} s, speedup {uncached / cached:5.1f}x")
    bw = bandwidth(device)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bound = weight_bytes / bw
    n = max(args.new)
    step = min(timed(lambda: generate(model, idx, n, temperature=0.0)) for _ in range(3)) / n
    print(f"measured bandwidth {bw / 1e9:.1f} GB/s; weights {weight_bytes / 2**20:.1f} MiB "
          f"-> at least {bound * 1e3:.2f} ms per token; cached decoding {step * 1e3:.2f} ms "
          f"per token = {step / bound:.1f}x the bound")


if __name__ == "__main__":
    main()
