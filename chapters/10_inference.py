# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Inference (MiniMind, part 3)
#
# A trained language model only scores the next token. Turning it into text takes a loop:
# run the model, pick a token, append it, run again. This chapter takes that loop apart
# through two questions (MM-Q11 and MM-Q12 of the course):
#
# 1. What does the KV cache save, and how do GQA, MQA, paging and quantisation shrink it?
# 2. Greedy, temperature or top-p sampling?
#
# We run everything on the course's trained model, a 4-layer character-level TinyGPT
# (`utils.pretrained.load_pretrained`), and compute the memory of MiniMind2-small's and
# LLaMA-7B's caches, checked against the bytes of real cache objects.
#
# **Prerequisites.** Chapter 1 (causal self-attention, and the KV cache's first appearance in
# L03-Q5), chapter 2 (grouped-query attention, MM-Q6), chapter 3 (RoPE), chapter 8 (tokens
# and logits). Lab 3 asks you to build the cache and the samplers; this chapter explains and
# measures them.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer
# by measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source
# notes of this course were wrong (✏️); every number in them is computed by a cell above. At
# the end you write the min-p filter yourself and a checker tells you whether it is right.
#
# The whole notebook runs on a laptop CPU in about a minute; it downloads nothing. On a GPU
# the speed experiment switches to a MiniMind2-sized model and longer generations.

# %% jupyter={"source_hidden": true} tags=["remove-cell"]
# Course setup cell: makes the course package `utils` importable here (Colab, JupyterLab,
# your own machine), installing it with pip the first time; otherwise it does nothing.
import importlib.util
import os
import subprocess
import sys

_spec = os.environ.get("LLM_COURSE_PIP_SPEC", "llm-internals-utils @ https://github.com/socratic-llm/llm-internals-course/archive/refs/heads/main.zip")


def _course_ready():
    """Import the course package; stop with advice if another `utils` hides it."""
    sys.modules.pop("utils", None)
    try:
        import utils
    except ModuleNotFoundError:
        return False
    if getattr(utils, "__course__", None) != "llm-internals":
        where = getattr(utils, "__file__", None) or list(getattr(utils, "__path__", []))
        raise RuntimeError(
            f"`import utils` finds {where}, which is not the course package. If it is "
            "your own file or folder, rename it (e.g. to my_utils.py) and run this cell "
            "again; if it is an installed package, run `pip uninstall utils`."
        )
    return True


if not _course_ready():
    _where = "Google Colab" if "google.colab" in sys.modules else "this machine"
    print(f"Installing the course package on {_where}: pip install {_spec!r} (once, ~1 min)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", _spec], check=True)
    importlib.invalidate_caches()
    _course_ready()

# %%
import dataclasses
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from utils.accounting import kv_cache_bytes
from utils.attention import KVCache, MultiHeadAttention
from utils.device import get_device, set_seed
from utils.generation import (
    apply_repetition_penalty,
    generate,
    min_p_filter,
    top_k_filter,
    top_p_filter,
)
from utils.interactive import interactive_figure
from utils.model import GPTConfig, TinyGPT
from utils.paged_cache import BlockPool, PagedKVCache
from utils.plots import use_style
from utils.pretrained import load_pretrained
from utils.quiz import quiz

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
model, tok = load_pretrained(device=device)  # eval mode, float32
print("device:", device)
print(model.config.n_layers, "layers,", model.config.n_heads, "heads of",
      model.config.head_dim, "| vocabulary", model.config.vocab_size,
      "characters | context", model.config.context_length)


def encode(text: str) -> torch.Tensor:
    """A prompt as a (1, T) batch of token ids on the device."""
    return torch.tensor([tok.encode(text)], device=device)


def decode(ids: torch.Tensor) -> str:
    return tok.decode(ids.tolist())


# %% [markdown]
# ## MM-Q11 · What does the KV cache save, and how do GQA, MQA, paging and quantisation shrink it?
#
# > A model generates one token at a time. Without a cache, step $t$ runs the model on all
# > $t$ tokens again. What exactly is recomputed, why can it be stored, and why does training
# > never use a cache? How large is the cache of MiniMind2-small, and of LLaMA-7B, and what
# > do grouped-query attention, multi-query attention, paging and int8 storage do to it?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - In a causal model, which tokens does the key of token 5 in layer 3 depend on? Does it
#   change when token 6 is appended?
# - At step $t$ the model needs one new output: the logits of the *last* position. Which
#   intermediate results of the other positions does that output read?
# - In training, how many forward passes does a sequence of $T$ tokens take? Is anything
#   computed twice?
# - Count the numbers stored per token: layers × (keys and values) × KV heads × head size.
#   Then bytes per number.
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q11**
#
# <div class="course-answer" data-question="MM-Q11">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **What is saved.** With a causal mask, the hidden state of token $j$ in every layer depends
# only on tokens $\le j$. So the key $k_j$ and value $v_j$ of every layer are fixed once token
# $j$ is known: appending tokens never changes them. The uncached loop nevertheless recomputes
# them at every step, for every layer, and also recomputes all the old positions' outputs,
# which nobody reads (only the last position's logits pick the next token). A **KV cache**
# keeps the keys and values of every layer; a step then runs the model on the *one* new token:
# its projections and MLP cost $O(L d^2)$ instead of $O(t L d^2)$, and its attention reads the
# $t$ cached keys and values, $O(t L d)$. Over $N$ new tokens the uncached loop processes
# $\sum_t t \approx N^2/2$ token positions (once the context is full, $N \times$ context), the
# cached one $N$ plus the prompt once.
#
# **Why training has no cache.** Training already computes every position's logits in **one
# parallel forward pass** over the whole sequence (the causal mask, not a loop, keeps each
# position from seeing the future). Each key and value is computed exactly once; there is no
# later step to reuse it in, and the next batch is different text. The cache does not fix a
# property of inference ("the KV do not change"); it fixes a property of the *sequential
# loop*, which recomputes the past.
#
# **How large.** Per token, the cache stores $2 \times L \times H_{kv} \times d_{head}$ numbers
# (keys and values, every layer), so for a batch of $B$ sequences of $T$ tokens:
#
# $$\text{bytes} = 2 \cdot L \cdot B \cdot T \cdot H_{kv} \cdot d_{head} \cdot \text{bytes per number}.$$
#
# MiniMind2-small ($L=8$, 2 KV heads of 64, bf16) needs 4 KiB per token; LLaMA-7B
# ($L = 32$, **32** KV heads of 128: full multi-head attention) needs 512 KiB per token, 1 GiB
# for 2,048 tokens. The weights do not depend on $B$ and $T$; the cache grows with both, so
# at long contexts and large batches it, not the weights, fills the accelerator.
#
# **How to shrink it.** Fewer KV heads: grouped-query attention (GQA, Ainslie et al., 2023)
# shares each KV head among a group of query heads, multi-query attention (MQA, Shazeer, 2019)
# has one KV head for all; the cache shrinks by $H/H_{kv}$, at some cost in quality. Fewer
# bytes: int8 storage with one scale per vector halves a 16-bit cache, with a small, measurable
# error. Less waste: a **paged** cache (vLLM's PagedAttention, Kwon et al., 2023) takes
# fixed-size blocks from a shared pool as a sequence grows, instead of reserving the maximum
# length per sequence, and lets sequences with a common prefix share its blocks.
#
# </details>

# %% [markdown]
# ### Cached and uncached decoding give the same tokens
#
# `utils.generation.generate` runs either loop. Both are greedy here, so any difference in
# the tokens would be a bug of the cache.

# %% tags=["nbval-check-output"]
prompt = encode("The function returns")
cached = generate(model, prompt, 100, temperature=0.0)
uncached = generate(model, prompt, 100, temperature=0.0, use_cache=False)
print("same 100 tokens:", torch.equal(cached, uncached))
print(repr(decode(cached[0])))

# %% [markdown]
# Why may the keys be stored? Because of the causal mask. The cell below appends five tokens
# to a prompt and compares the keys of the *last* layer for the old positions: identical. The
# same two-layer experiment without the causal mask (a bidirectional encoder, like BERT) shows
# what would happen otherwise: every old key changes when a token is appended, and there is
# nothing to cache.

# %% tags=["nbval-check-output"]
def last_layer_keys(idx: torch.Tensor) -> torch.Tensor:
    """Keys (B, H, T, hs) of the model's last layer, read from a cache filled by one pass."""
    cache = KVCache(model.config.n_layers)
    with torch.no_grad():
        model(idx, cache=cache)
    return cache.keys[-1]


short = encode("The function returns")
longer = encode("The function returns a list")
T0 = short.shape[1]
print("causal model, old keys unchanged:",
      torch.allclose(last_layer_keys(short), last_layer_keys(longer)[:, :, :T0], atol=1e-5))

torch.manual_seed(1)
layer1, layer2 = MultiHeadAttention(32, 4), MultiHeadAttention(32, 4)
x = torch.randn(1, 12, 32)
with torch.no_grad():
    for causal in (True, False):
        k_short = layer2.k_proj(layer1(x[:, :8], causal=causal))  # keys of layer 2, 8 tokens
        k_long = layer2.k_proj(layer1(x, causal=causal))  # the same 8 tokens, then 4 more
        print(f"causal={causal}: keys of the first 8 tokens unchanged after appending 4:",
              torch.allclose(k_short, k_long[:, :8], atol=1e-6))

# %% [markdown]
# ### The work saved, counted and timed
#
# With a prompt of $P$ tokens and $N$ new ones, the uncached loop runs the model on
# $\sum_{t=P}^{P+N-1} \min(t, \text{context})$ token positions, the cached loop on $P + N - 1$.
# That ratio is exact; the measured speedup is smaller, because a step of a small model also
# pays a fixed cost (Python, kernel launches) that no cache removes.

# %% tags=["nbval-check-output"]
def positions_processed(P: int, N: int, ctx: int, cached: bool) -> int:
    """Token positions the model runs on while generating N tokens after a P-token prompt."""
    if cached and P + N - 1 <= ctx:
        return P + N - 1
    return sum(min(t, ctx) for t in range(P, P + N))


P = 16
for N in (16, 48, 112):
    u = positions_processed(P, N, model.config.context_length, cached=False)
    c = positions_processed(P, N, model.config.context_length, cached=True)
    print(f"N = {N:3d}: uncached {u:5d} positions, cached {c:4d}, ratio {u / c:.2f}")

# %% [markdown]
# Now the clock. On a CPU the course's small model is timed; on a GPU a model with
# MiniMind2-small's shapes (random weights: the speed does not depend on them) and up to 512
# new tokens, where the difference is much larger.

# %%
if device.type == "cuda":
    speed_config = dataclasses.replace(GPTConfig.minimind2_small(), context_length=1024)
    speed_model = TinyGPT(speed_config).to(device).eval()
    new_tokens = [32, 128, 256, 512]
else:
    speed_model, new_tokens = model, [16, 48, 112]  # 16 + 112 = the 128-token context
speed_prompt = torch.randint(0, speed_model.config.vocab_size, (1, 16), device=device)


def seconds(fn) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


generate(speed_model, speed_prompt, 2, temperature=0.0)  # warm-up
timings = []
for N in new_tokens:  # best of two runs: the machine may be busy with something else
    t_c = min(seconds(lambda N=N: generate(speed_model, speed_prompt, N, temperature=0.0))
              for _ in range(2))
    t_u = min(seconds(lambda N=N: generate(speed_model, speed_prompt, N, temperature=0.0,
                                           use_cache=False)) for _ in range(2))
    timings.append((N, t_c, t_u))
speed = pd.DataFrame(timings, columns=["new tokens", "cached s", "uncached s"])
speed["speedup"] = speed["uncached s"] / speed["cached s"]
print(speed.round(3).to_string(index=False))

fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(9, 3.2))
ax_t.plot(speed["new tokens"], speed["uncached s"], "o-", label="uncached")
ax_t.plot(speed["new tokens"], speed["cached s"], "o-", label="KV cache")
ax_t.set(xlabel="new tokens", ylabel="seconds", title="generation time")
ax_t.legend()
ax_s.plot(speed["new tokens"], speed["speedup"], "o-", color="C2")
ax_s.axhline(1, color="grey", lw=0.8)
ax_s.set(xlabel="new tokens", ylabel="uncached / cached", title="measured speedup")
fig.tight_layout()
plt.show()

# %% [markdown]
# The uncached time grows faster than linearly with the number of new tokens (each step
# reruns a longer prefix), the cached one linearly, so the speedup grows with the length
# (timings on a shared machine are noisy; the position counts above are exact). On this small
# model the cached step is
# dominated by fixed per-step costs, which is why the measured ratio stays below the ratio of
# positions counted above. `benchmarks/kv_cache_speed.py` repeats the measurement on
# MiniMind2-small's shapes and compares the cached step with the memory-bandwidth bound.
#
# ### Training needs no cache: one parallel pass gives every position's logits
#
# Training scores all $T$ next tokens of a sequence at once. The cell compares the logits of
# one forward pass over 64 characters with the logits of a token-by-token cached loop over
# the same characters: the same numbers, computed once each, in one call instead of 64.

# %% tags=["nbval-check-output"]
text = encode("Return the number of items in a container. The argument may be a")[:, :64]
with torch.no_grad():
    parallel, _ = model(text)  # (1, 64, V): one pass, every position
    cache = KVCache(model.config.n_layers)
    stepwise = torch.cat([model(text[:, t : t + 1], cache=cache)[0] for t in range(64)], dim=1)
print("one parallel pass == 64 cached steps:", torch.allclose(parallel, stepwise, atol=1e-4))

# %% [markdown]
# ### How large is the cache? MHA, GQA and MQA at MiniMind2-small's and LLaMA-7B's sizes
#
# `utils.accounting.kv_cache_bytes` is the formula of the answer. The table evaluates it for
# 2,048 cached tokens, one sequence, 16-bit numbers, with the number of KV heads of each
# variant (MiniMind2-small really uses GQA with 2 KV heads; LLaMA-7B really uses full MHA).

# %% tags=["nbval-check-output"]
minimind = GPTConfig.minimind2_small()
llama7b = GPTConfig(vocab_size=32000, context_length=2048, d_model=4096, n_layers=32,
                    n_heads=32, d_ff=11008)  # Touvron et al. (2023), table 2: MHA, 32 heads
rows = []
for name, cfg, kv_options in (("MiniMind2-small", minimind, (8, 2, 1)),
                              ("LLaMA-7B", llama7b, (32, 8, 1))):
    for n_kv in kv_options:
        variant = dataclasses.replace(cfg, n_kv_heads=n_kv)
        kind = "MHA" if n_kv == cfg.n_heads else ("MQA" if n_kv == 1 else "GQA")
        per_token = kv_cache_bytes(variant, 1, 1, bytes_per_value=2)
        rows.append((name, kind, n_kv, per_token, kv_cache_bytes(variant, 1, 2048, 2) / 2**20))
memory = pd.DataFrame(rows, columns=["model", "attention", "KV heads", "bytes per token",
                                     "MiB at 2,048 tokens"])
print(memory.to_string(index=False))

# %% [markdown]
# The formula is only worth something if a real cache holds that many bytes. The first check
# runs a MiniMind2-small-shaped model (random weights) on 64 tokens and reads the bytes that
# its `KVCache` holds; the second fills a cache with LLaMA-7B's shapes for 16 tokens in bf16
# (no model: 7B parameters do not fit in this notebook; the cache does not care where its
# keys come from).

# %% tags=["nbval-check-output"]
mm_model = TinyGPT(minimind).eval()
mm_cache = KVCache(minimind.n_layers)
with torch.no_grad():
    mm_model(torch.randint(0, minimind.vocab_size, (1, 64)), cache=mm_cache)
print("MiniMind2-small, 64 tokens, float32: cache holds", mm_cache.nbytes, "bytes; formula",
      kv_cache_bytes(minimind, 1, 64, bytes_per_value=4))
del mm_model

llama_cache = KVCache(llama7b.n_layers)
kv = torch.zeros(1, 32, 16, 128, dtype=torch.bfloat16)  # (B, H_kv, T, head_dim)
for layer in range(llama7b.n_layers):
    llama_cache.update(layer, kv, kv)
print("LLaMA-7B, 16 tokens, bf16: cache holds", llama_cache.nbytes, "bytes; formula",
      kv_cache_bytes(llama7b, 1, 16, bytes_per_value=2))
print("LLaMA-7B at 2,048 tokens:", kv_cache_bytes(llama7b, 1, 2048, 2) / 2**30, "GiB")

# %% [markdown]
# The notes compute cache sizes with three products. Here they are, as numbers of elements
# and as bytes in a 16-bit format, beside MiniMind2-small's real shapes:

# %% tags=["nbval-check-output"]
for label, elements in (("2 x 2048 x 4 x 128 (notes, one LLaMA layer)", 2 * 2048 * 4 * 128),
                        ("512 x 8 x 2 x 512 (notes, MiniMind, 512 tokens)", 512 * 8 * 2 * 512),
                        ("512 x 8 x 2 x 128 (MiniMind2: 2 KV heads of 64)", 512 * 8 * 2 * 128),
                        ("1 x 8 x 2 x 512 (notes, one more token)", 1 * 8 * 2 * 512),
                        ("1 x 8 x 2 x 128 (MiniMind2, one more token)", 1 * 8 * 2 * 128)):
    print(f"{label:50s} {elements:>10,} elements = {elements * 2 / 2**20:8.3f} MiB in 16 bits")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: LLaMA-7B's cache, elements versus bytes, and a cache "times 512 steps"</strong></p>
#
# - The notes give LLaMA-7B "num_kv_heads = 4 # GQA". LLaMA-7B has **32 KV heads**: full
#   multi-head attention (Touvron et al., 2023). GQA came later (Ainslie et al., 2023) and is
#   used by Llama 2's larger models (34B, 70B), not by the 7B ones. Its cache is therefore
#   **524,288 bytes per token** in bf16 and **1 GiB** (1,024 MiB) at 2,048 tokens, not 64 MB;
#   the table and the real 16-token cache above agree on it.
# - "2 × 2048 × 4 × 128 = 2MB" counts **elements**: 2,097,152 of them. In 16-bit numbers that
#   is 4 MiB per layer, not 2 MB; the unit was lost, and the head count was wrong anyway.
# - "512 × 8 × 2 × 512 = 4MB" is elements too (4,194,304), which would be 8 MiB in 16 bits.
#   And MiniMind2 does not store 512 numbers per token per layer for keys: it stores 2 KV
#   heads of 64, **128**. Its real cache at 512 tokens is 512 × 8 × 2 × 128 = 1,048,576
#   numbers, **2 MiB** in bf16 (4,096 bytes per token, the table). Likewise the "8KB per
#   step" is 8,192 elements (16 KiB in 16 bits) for the assumed 512-wide keys; MiniMind2's real
#   increment is 2,048 elements, **4 KiB**.
# - "128MB × 512 steps = 65GB" multiplies a cache by the number of steps that fill it. A cache
#   of 512 tokens *is* the state after 512 steps: it grows by one token per step to that size;
#   it is not stored once per step.
# - The "GPU utilisation 95% / 30% / 60%" and "100 ms / 1000 ms / 120 ms (8.3× faster)"
#   figures were not measured. The speedups measured above depend on the model, the length
#   and the machine; `benchmarks/kv_cache_speed.py` prints them for MiniMind2-small's shapes.
#
# </div>

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "at inference the K and V do not change, so they can be cached"</strong></p>
#
# That was the first answer in the notes. The keys and values of past tokens do not change
# in training either: within a forward pass each one is computed once and never revised. What
# makes them *reusable* is the **causal mask** (the cell above: without it every old key
# changed when tokens were appended), and what makes caching *worth it* is the **sequential
# loop** of generation, which, without a cache, recomputes the whole past at every step.
# Training has no such loop: one parallel pass produces every position's logits (the
# 64-character cell above), so there is nothing to cache.
#
# </div>

# %% [markdown]
# ### Preallocated buffers instead of a copy per step
#
# A cache that appends with `torch.cat` copies all of itself at every step, so generating
# $N$ tokens copies $O(N^2)$ numbers. `utils.attention.KVCache` preallocates a buffer per
# layer and writes each new step into it; without a known maximum length it doubles its
# capacity when full, so $N$ steps reallocate only $\log_2 N$ times. Its `keys` and `values`
# are views of the filled part, `nbytes` counts them and `allocated_bytes` the buffers.

# %% tags=["nbval-check-output"]
grow = KVCache(model.config.n_layers)
generate(model, prompt, 100, temperature=0.0, cache=grow)
fixed = KVCache(model.config.n_layers, max_length=model.config.context_length)
generate(model, prompt, 100, temperature=0.0, cache=fixed)
print("cached steps:", grow.length, "| buffer allocations, doubling:", grow.n_allocations,
      "| with max_length:", fixed.n_allocations, "(one per layer)")
print("bytes used:", grow.nbytes, "| allocated, doubling:", grow.allocated_bytes,
      "| with max_length:", fixed.allocated_bytes)

# %% [markdown]
# ### An int8 cache: memory saved, error measured
#
# `KVCache(n, quantize="int8")` stores every key and value vector as int8 codes and one scale,
# $x \approx \text{code} \cdot \max|x| / 127$. Each entry's rounding error is at most half a
# step. Does that matter for the logits? The cell feeds the same 112 characters through a
# float32 cache and an int8 cache and compares every next-token distribution.

# %% tags=["nbval-check-output"]
source = "The function returns a new list of the items of the sequence. If the argument is a"
ids = encode(source * 2)[:, :112]
plain_cache = KVCache(model.config.n_layers)
int8_cache = KVCache(model.config.n_layers, quantize="int8")
with torch.no_grad():
    logits_fp = torch.cat([model(ids[:, t : t + 1], cache=plain_cache)[0] for t in range(112)], 1)
    logits_q8 = torch.cat([model(ids[:, t : t + 1], cache=int8_cache)[0] for t in range(112)], 1)
err = (logits_q8 - logits_fp).abs()
kl = (logits_fp.softmax(-1) * (logits_fp.log_softmax(-1) - logits_q8.log_softmax(-1))).sum(-1)
print(f"bytes: float32 {plain_cache.nbytes:,}, int8 codes + float32 scales {int8_cache.nbytes:,}"
      f" ({int8_cache.nbytes / plain_cache.nbytes:.3f} of float32)")
print(f"largest logit error {err.max():.2f} (logits spread with std {logits_fp.std():.1f});"
      f" mean KL {kl.mean():.1e} nats")
differ = (logits_fp.argmax(-1) != logits_q8.argmax(-1))[0]
top2 = logits_fp[0].softmax(-1).topk(2).values  # (112, 2)
print(f"top token differs at {int(differ.sum())} of 112 positions; there the float32 top-two "
      f"probabilities are {[[round(v, 3) for v in row] for row in top2[differ].tolist()]}")
q8_tokens = generate(model, prompt, 100, temperature=0.0,
                     cache=KVCache(model.config.n_layers, quantize="int8"))
print("greedy, 100 tokens with the int8 cache: first difference from float32 at new token",
      next((i for i in range(100) if q8_tokens[0, -100 + i] != cached[0, -100 + i]), None))

# %% [markdown]
# Against a float32 cache the codes take a quarter of the bytes, plus one 4-byte scale per
# vector of 32 one-byte codes, 0.281 of the float32 cache in all; against the bf16 cache a
# real deployment uses, int8 halves the codes. The logits move by a few hundredths, against a
# spread of several units, and the distributions by a tiny KL divergence. Where the top token
# changed (once in 112 positions), the model was hesitating between two almost equally likely
# characters, and the cache's rounding error was enough to swap them. The 100-token greedy run
# met no such near-tie and produced the same text as the float32 cache; a run that meets one
# continues differently from there. So an int8 cache is *not* guaranteed to be token-for-token
# exact, and its tests (`tests/test_kv_cache_variants.py`) bound the logit error instead. Smaller
# formats (int4, 2-bit) need per-channel scales for the keys, which have outlier channels
# (Liu et al., 2024, KIVI).
#
# ### A paged cache: blocks, a block table, and the memory it does not waste
#
# A server does not know in advance how long a reply will be. A contiguous cache reserves the
# maximum length for every sequence; a paged one takes blocks of, say, 16 time steps from a
# shared pool when a sequence needs them, and keeps a **block table** per sequence. The cell
# draws 64 requests whose total length (prompt + reply) is uniform between 20 and 2,048
# tokens and counts the cache slots each scheme reserves beyond those used.

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
lengths = rng.integers(20, 2049, size=64)  # tokens each request ends up with
max_len, block = 2048, 16
used = lengths.sum()
contiguous = 64 * max_len  # reserve the maximum length for each request
paged = (np.ceil(lengths / block) * block).sum()  # whole blocks, at most one partly empty
print(f"slots used {used:,}; contiguous reserves {contiguous:,} ({1 - used / contiguous:.1%} "
      f"wasted); paged reserves {int(paged):,} ({1 - used / paged:.2%} wasted)")
print(f"paged waste per sequence < one block: {(paged - used) / 64:.1f} < {block} slots")

# %% [markdown]
# The waste of the contiguous scheme depends entirely on how far the requests fall short of
# the maximum (about half, for this uniform mix); the paged waste is under one block per
# sequence, whatever the lengths. `utils.paged_cache.PagedKVCache` is such a cache over a
# `BlockPool`. It has the interface of `KVCache`, so the model and `generate` use it
# unchanged, and it must give exactly the tokens of the uncached loop:

# %% tags=["nbval-check-output"]
pool = BlockPool(model.config.n_layers, n_blocks=64, block_size=16)
paged_cache = PagedKVCache(pool)
paged_out = generate(model, prompt, 100, temperature=0.0, cache=paged_cache)
print("paged cache, same 100 tokens as the uncached loop:", torch.equal(paged_out, uncached))
print(f"{paged_cache.length} cached steps in {paged_cache.n_blocks} blocks of 16, block table"
      f" {paged_cache.block_tables[0]}; blocks free in the pool: {pool.n_free}")

# %% [markdown]
# ### Prefix sharing
#
# Two requests often start with the same text (a system prompt, or several samples of one
# prompt). With blocks, the second sequence can point at the first one's blocks instead of
# recomputing and storing them: `fork()` copies the block table and raises the blocks'
# reference counts. A block is copied only when one of the sequences writes into it (copy on
# write), which happens to the last, partly filled block. Below, one prompt of 41 characters
# is processed once, then continued in two ways; each continuation must equal the uncached
# generation from its own full prompt.

# %% tags=["nbval-check-output"]
shared_prompt = encode("The function returns a new list of the it")  # 41 characters
pool = BlockPool(model.config.n_layers, n_blocks=32, block_size=16)
first = PagedKVCache(pool)
with torch.no_grad():
    model(shared_prompt, cache=first)
print(f"prompt of {shared_prompt.shape[1]} characters: {pool.n_used} blocks")
second = first.fork()
print("after fork:", pool.n_used, "blocks (shared)")
branches = {}
with torch.no_grad():
    for cache, start in ((first, "e"), (second, "s")):
        idx = torch.cat([shared_prompt, encode(start)], dim=1)
        for _ in range(30):  # greedy decoding, one token per step, on this branch's cache
            logits, _ = model(idx[:, -1:] if cache.length == idx.shape[1] - 1 else idx,
                              cache=cache)
            idx = torch.cat([idx, logits[:, -1:].argmax(-1)], dim=1)
        branches[start] = idx
for start, idx in branches.items():
    reference = generate(model, idx[:, : shared_prompt.shape[1] + 1], 30, temperature=0.0,
                         use_cache=False)
    print(f"branch {start!r}: equals uncached generation: {torch.equal(idx, reference)};"
          f" {decode(idx[0, shared_prompt.shape[1]:])!r}")
print("blocks in use:", pool.n_used, "| without sharing:", first.n_blocks + second.n_blocks,
      "| shared block ids:", sorted(set(first.block_tables[0]) & set(second.block_tables[0])))

# %% [markdown]
# The two branches share the prompt's two full blocks; each owns a copy of the third (the
# prompt's last 9 characters, copied on the first write) and its own new blocks. At 16
# characters per block the saving is small; with a 2,000-token system prompt shared by a
# batch of 32 requests, it is 31 copies of 2,000 tokens' keys and values.
#
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why cache keys and values, but not queries?</strong></p>
#
# <details><summary>Answer</summary>
#
# A query is used once: query $t$ asks "which past tokens matter for predicting token
# $t+1$?" at step $t$ and never again, since later steps need only the newest query. Keys and
# values are read by *every later* query, so they are the ones worth keeping. (For the same
# reason the old positions' attention outputs and MLP outputs are not cached either: only
# their keys and values, in every layer, are read again.)
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: at what batch size does LLaMA-7B's cache outweigh its weights?</strong></p>
#
# <details><summary>Answer</summary>
#
# Its 6.7B parameters take about 13.4 GB in bf16. At 2,048 tokens one sequence's cache is
# 1 GiB, so from about a dozen sequences on the cache is larger than the model (cell below),
# and at 8,192 tokens from about four. This is why serving systems care so much about GQA,
# paging and quantised caches: the cache, not the weights, limits the batch, and the batch
# sets the throughput.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
weights_bytes = 6.7e9 * 2
for T in (2048, 8192):
    per_seq = kv_cache_bytes(llama7b, 1, T, bytes_per_value=2)
    print(f"T = {T}: cache per sequence {per_seq / 2**30:.0f} GiB; exceeds the weights from "
          f"batch {math.ceil(weights_bytes / per_seq)}")

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what happens when generation runs past the context window?</strong></p>
#
# <details><summary>Answer</summary>
#
# The model only knows positions up to its context length. `generate` then keeps the last
# `context_length` tokens; with learned positions (or to reproduce the uncached loop exactly
# with RoPE) every key must be recomputed at its new position, so the cache is rebuilt from
# the window at every step and loses its advantage. Models with RoPE can instead keep the
# cached keys and drop the oldest ("sliding window" caches, or "attention sinks" that keep
# the first few tokens too, Xiao et al., 2024): the keys carry relative positions, so they
# stay valid, but the result is no longer the same as rerunning the window.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q11")

# %% [markdown]
# ## MM-Q12 · Greedy, temperature or top-p sampling?
#
# > The model gives a probability for every possible next token. Should we always take the
# > most likely one (greedy), or draw at random? If we draw, what do temperature, top-k,
# > top-p and min-p change, and when does each make sense?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Run greedy decoding for a few hundred tokens. What does the text do?
# - Divide the logits by $T$ before the softmax. What happens as $T \to 0$? As $T \to \infty$?
# - Suppose the many unlikely tokens together carry 5% of the probability at every step. How
#   many of them does pure sampling pick in a 200-token text?
# - Top-k keeps a fixed number of tokens; top-p a fixed mass. Which adapts to how confident
#   the model is?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q12**
#
# <div class="course-answer" data-question="MM-Q12">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Greedy** picks $\arg\max_i p_i$ at every step. It is deterministic and often right for
# short, factual answers, but in open-ended text it falls into **loops**: once a phrase has
# been produced, the context that made it most likely comes back, and so does the phrase
# (Holtzman et al., 2020). It is also only step-wise optimal: the most likely *sequence* can
# start with a less likely token (beam search looks for it, and loops even more).
#
# **Sampling** draws $i$ with probability $p_i$. Pure sampling at $T = 1$ reproduces the
# model's distribution, including its long tail of individually unlikely but collectively
# frequent tokens, so it derails: a few bad draws per text are enough.
#
# The knobs reshape the distribution before the draw:
#
# - **Temperature** divides the logits: $p_i \propto e^{z_i / T}$. $T < 1$ sharpens
#   (entropy falls; $T \to 0$ is greedy), $T > 1$ flattens ($T \to \infty$ is uniform).
# - **Top-k** keeps the $k$ most likely tokens (Fan et al., 2018): a fixed number, whatever
#   the shape.
# - **Top-p (nucleus)** keeps the **smallest set of most likely tokens whose mass reaches
#   $p$** (Holtzman et al., 2020): one token when the model is sure, many when it is not.
# - **Min-p** keeps tokens with $p_i \ge p_{\min} \cdot p_{\max}$ (Nguyen et al., 2024): the
#   threshold scales with the model's confidence and, unlike top-p, stays sensible at high
#   temperatures.
# - A **repetition penalty** (Keskar et al., 2019) lowers the logits of tokens that already
#   occur, which breaks loops but also penalises tokens that *should* repeat.
#
# In practice: greedy (or $T \approx 0$) where one right answer exists; $T$ around 0.7–1 with
# top-p 0.9–0.95 or min-p 0.05–0.1 for open-ended text. The cells below measure each effect
# on the course's model.
#
# </details>

# %% [markdown]
# ### A real next-token distribution
#
# The course's model reads characters. After the prompt below, which characters does it
# expect next, and how sure is it?

# %%
def next_token_logits(text: str) -> torch.Tensor:
    """The model's logits (V,) for the character after ``text``."""
    with torch.no_grad():
        logits, _ = model(encode(text))
    return logits[0, -1].float().cpu()


def entropy_bits(probs: torch.Tensor) -> float:
    nz = probs[probs > 0]
    return float(-(nz * nz.log2()).sum())


def show(ids: torch.Tensor) -> list[str]:
    return [repr(tok.decode([int(i)]))[1:-1] for i in ids]


context = "The value of the "
z = next_token_logits(context)
p = z.softmax(-1)
top = torch.topk(p, 10)
print(f"after {context!r}: entropy {entropy_bits(p):.2f} bits "
      f"(uniform over {len(p)} characters: {math.log2(len(p)):.2f})")
print(pd.DataFrame({"next": show(top.indices), "p": top.values.numpy().round(3)}).T
      .to_string(header=False))

# %% [markdown]
# ### Temperature: the notes' example, recomputed
#
# The notes illustrate temperature with the logits $[8, 7, 6, 2, 1]$. The cell computes the
# softmax at their three temperatures, and the entropy at the three temperatures of their
# entropy list.

# %% tags=["nbval-check-output"]
notes_logits = torch.tensor([8.0, 7.0, 6.0, 2.0, 1.0], dtype=torch.float64)
for T in (1.0, 0.5, 2.0):
    probs = (notes_logits / T).softmax(-1)
    print(f"T = {T}: p = {probs.numpy().round(3).tolist()}, entropy {entropy_bits(probs):.2f}"
          " bits")
for T in (0.1, 10.0):
    print(f"T = {T}: entropy {entropy_bits((notes_logits / T).softmax(-1)):.3f} bits")
print(f"uniform over 5 tokens: {math.log2(5):.3f} bits")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the temperature example</strong></p>
#
# - At $T = 1$ the notes give $[0.61, 0.22, 0.08, 0.04, 0.02]$. The softmax of
#   $[8, 7, 6, 2, 1]$ is **[0.664, 0.244, 0.090, 0.002, 0.001]**: the last two logits are 6
#   and 7 below the top, so their probabilities are $e^{-6}$ and $e^{-7}$ times the top one,
#   not a fifteenth and a thirtieth of it. (The notes' five numbers also sum to 0.97.)
# - At $T = 2$ they give $[0.37, 0.25, 0.18, 0.10, 0.08]$; the softmax of
#   $[4, 3.5, 3, 1, 0.5]$ is **[0.487, 0.295, 0.179, 0.024, 0.015]**: again the two low
#   logits get far less than the notes say.
# - At $T = 0.5$ their $[0.88, 0.11, 0.01, 0, 0]$ is close (0.867, 0.117, 0.016).
# - Of their entropies "0.3, 1.2 and 2.3 bits at $T$ = 0.1, 1 and 10", the last two are right
#   (1.22 and 2.27 bits), the first is not: at $T = 0.1$ the top logit leads by 10 in scaled
#   units, the distribution is one-hot to three decimals, **0.001 bits**. At $T = 10$ the
#   entropy approaches, but cannot pass, $\log_2 5 = 2.32$ bits.
#
# </div>

# %% [markdown]
# ### Top-p: the rule, corrected
#
# The notes explain top-p with $p = [0.4, 0.3, 0.15, 0.1, 0.03, 0.02]$ and the rule "keep
# tokens while the cumulative probability is $\le p$". The cell applies that rule and the
# correct one (the smallest set of most likely tokens whose mass **reaches** $p$, which is
# what `utils.generation.top_p_filter` does) at their two values of $p$.

# %% tags=["nbval-check-output"]
notes_probs = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.03, 0.02], dtype=torch.float64)
for top_p in (0.9, 0.5):
    cumulative = notes_probs.cumsum(0)
    notes_rule = int((cumulative <= top_p + 1e-12).sum())  # "while cumsum <= p"
    kept = top_p_filter(notes_probs.log(), top_p) > float("-inf")
    print(f"p = {top_p}: 'cumsum <= p' keeps {notes_rule} token(s), mass "
          f"{float(notes_probs[:notes_rule].sum()):.2f}; smallest set reaching p: "
          f"{int(kept.sum())} tokens, mass {float(notes_probs[kept].sum()):.2f}, "
          f"renormalised {(notes_probs[kept] / notes_probs[kept].sum()).numpy().round(3).tolist()}")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: top-p keeps the smallest set whose mass reaches p</strong></p>
#
# The rule "keep tokens while the cumulative probability is $\le p$" would keep **3** tokens
# (mass 0.85) at $p = 0.9$ and **1** token (0.40) at $p = 0.5$: a kept mass *below* $p$, and
# with a confident model (top token above $p$) no token at all. The notes' own results, 4
# tokens and 2 tokens, follow the correct rule: keep the **smallest set of most likely tokens
# whose total probability reaches $p$**, i.e. include the token that crosses $p$ (Holtzman et
# al., 2020). Their renormalised probabilities at $p = 0.9$, $[0.42, 0.32, 0.16, 0.10]$, are
# right to two digits (0.421, 0.316, 0.158, 0.105).
#
# </div>

# %% [markdown]
# ### How many tokens survive? Entropy and kept-set size against the setting
#
# On the real distribution above, the cell varies each knob and counts the tokens left and
# the entropy of what is sampled from. Top-k keeps a fixed count; top-p and min-p keep what
# the distribution's shape allows.

# %%
def kept_and_entropy(logits: torch.Tensor, temperature: float = 1.0, **knob) -> tuple[int, float]:
    """Tokens left after temperature and one filter, and the entropy of the result (bits)."""
    z = logits / temperature
    if "top_k" in knob:
        z = top_k_filter(z, knob["top_k"])
    if "top_p" in knob:
        z = top_p_filter(z, knob["top_p"])
    if "min_p" in knob:
        z = min_p_filter(z, knob["min_p"])
    probs = z.softmax(-1)
    return int((probs > 0).sum()), entropy_bits(probs)


temperatures = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
p_values = [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
min_p_values = [0.3, 0.2, 0.1, 0.05, 0.02, 0.01]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
axes[0].plot(temperatures, [kept_and_entropy(z, T)[1] for T in temperatures], "o-")
axes[0].axhline(math.log2(len(z)), color="grey", ls="--", lw=0.8, label="uniform")
axes[0].set(xlabel="temperature", ylabel="entropy (bits)", title="temperature flattens")
axes[0].legend()
for T, style in ((0.7, "o-"), (1.0, "s-"), (1.5, "^-")):
    axes[1].plot(p_values, [kept_and_entropy(z, T, top_p=v)[0] for v in p_values], style,
                 label=f"T = {T}")
    axes[2].plot(min_p_values, [kept_and_entropy(z, T, min_p=v)[0] for v in min_p_values],
                 style, label=f"T = {T}")
axes[1].set(xlabel="top-p", ylabel="tokens kept", title="top-p: kept set grows with p and T")
axes[2].set(xlabel="min-p", ylabel="tokens kept", title="min-p: kept set vs threshold")
axes[2].invert_xaxis()
for ax in axes[1:]:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Temperature and top-p interact: at a high temperature the distribution is flatter, so the
# same $p$ needs more tokens, including the tail that $T$ has just inflated. Min-p's
# threshold is relative to the top token *after* temperature, so it cuts that tail too.
#
# Try both knobs yourself on the same distribution. The bars are the 24 most likely next
# characters; the dark ones are the nucleus that top-p keeps.

# %%
y_max = 1.1 * float((z / 0.5).softmax(-1).max())


def draw_nucleus(temperature: float, top_p: float):
    probs = (z / temperature).softmax(-1)
    kept = top_p_filter(z / temperature, top_p) > float("-inf")
    order = torch.argsort(probs, descending=True)[:24]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    colours = ["C0" if kept[i] else "lightgrey" for i in order]
    ax.bar(range(24), probs[order].numpy(), color=colours)
    ax.set_xticks(range(24), show(order), fontsize=8)
    ax.set_ylim(0, y_max)  # the same scale in every frame
    ax.set_ylabel("probability")
    cut = (z / temperature).masked_fill(~kept, float("-inf")).softmax(-1)
    ax.set_title(f"after {context!r}: T = {temperature}, top-p = {top_p} keeps "
                 f"{int(kept.sum())} of {len(z)}; entropy {entropy_bits(probs):.2f} bits, "
                 f"{entropy_bits(cut):.2f} after the cut", fontsize=10)
    fig.tight_layout()
    return fig


interactive_figure(draw_nucleus, temperature=[0.5, 0.75, 1.0, 1.5, 2.0],
                   top_p=[0.5, 0.8, 0.9, 0.95], initial={"temperature": 1.0, "top_p": 0.9})

# %% [markdown]
# ### Greedy loops, measured
#
# The cell continues three prompts for 160 characters under five decoding rules (one seeded
# generator; the same batch of prompts for each) and measures repetition with the share of
# **distinct character 8-grams** in the continuations (1.0: no 8-character string occurs
# twice) and the length of the longest substring that repeats.

# %%
prompts = ["The function ", "If the object ", "A new list is "]
width = min(len(s) for s in prompts)
batch = torch.tensor([tok.encode(s)[:width] for s in prompts], device=device)


def distinct_ngrams(text: str, n: int = 8) -> float:
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams)


def longest_repeat(text: str) -> int:
    """Length of the longest substring that occurs at least twice (overlaps allowed)."""
    best = 0
    for n in range(1, len(text)):
        seen, found = set(), False
        for i in range(len(text) - n + 1):
            if text[i : i + n] in seen:
                found = True
                break
            seen.add(text[i : i + n])
        if not found:
            break
        best = n
    return best


settings = {
    "greedy": dict(temperature=0.0),
    "greedy + penalty 1.3": dict(temperature=0.0, repetition_penalty=1.3),
    "sample T = 1": dict(temperature=1.0),
    "T = 0.8, top-p 0.9": dict(temperature=0.8, top_p=0.9),
    "T = 1, min-p 0.1": dict(temperature=1.0, min_p=0.1),
}
samples, rows = {}, []
for name, kwargs in settings.items():
    g = torch.Generator(device=device).manual_seed(0)
    out = generate(model, batch, 160, generator=g, **kwargs)
    texts = [decode(row[width:]) for row in out]
    samples[name] = texts
    rows.append((name, np.mean([distinct_ngrams(t) for t in texts]),
                 np.mean([longest_repeat(t) for t in texts])))
repetition = pd.DataFrame(rows, columns=["decoding", "distinct 8-grams", "longest repeat"])
print(repetition.round(2).to_string(index=False))
print()
for name in ("greedy", "greedy + penalty 1.3", "sample T = 1", "T = 0.8, top-p 0.9"):
    print(f"{name}: {samples[name][0]!r}")

# %% [markdown]
# Greedy decoding falls into a loop ("of the string of the string ...") within a few dozen
# characters: its distinct-8-gram share is the lowest and its longest repeated substring the
# longest in the table. The repetition penalty breaks the exact loop but not all repetition,
# and in a character-level model it punishes almost every common letter and the space, which
# the text *must* repeat; with word or subword tokens it is more selective. Sampling has no
# loop; pure sampling at $T = 1$ produces invented words, and top-p and min-p, which cut the
# tail, produce fewer of them.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "sampling is there to add diversity and avoid repetition"</strong></p>
#
# That was the first answer in the notes, and it is half of the story. Diversity for its own
# sake is easy: pure sampling at $T = 1$ has as much of it as any rule (table above) and the
# least coherent text,
# because it also draws from the model's long tail. The cell below measures that tail on real
# next-character distributions: the many unlikely characters together carry enough mass that
# a long text picks some of them. The point of the knobs is to sample from the *reliable
# part* of the distribution: temperature, top-p and min-p remove the tail and keep the
# uncertainty the model really has. And "avoid repetition" is the job of no sampler in
# particular: greedy loops because of how it chooses, and a penalty is a separate tool.
#
# </div>

# %% tags=["nbval-check-output"]
with torch.no_grad():
    logits_all, _ = model(encode(source))
probs_all = logits_all[0].softmax(-1)  # (T, V): the next-character distribution at each position
tail = torch.stack([p[~(top_p_filter(p.log(), 0.9) > float("-inf"))].sum() for p in probs_all])
print(f"over {len(tail)} positions: mean mass outside the 0.9-nucleus {tail.mean():.3f}; "
      f"expected tail draws in 160 characters of pure sampling: {160 * tail.mean():.1f}")

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is greedy at least the most likely text?</strong></p>
#
# <details><summary>Answer</summary>
#
# No. The notes' example is right about this: if step 1 offers "很" (0.4) and "非常" (0.35),
# and the best continuations have 0.5 and 0.6, then the sequence through the less likely first
# word has the larger probability ($0.35 \times 0.6 = 0.21 > 0.4 \times 0.5 = 0.20$). Beam
# search keeps the $b$ best partial sequences to find such paths. But for open-ended text the
# *most likely* sequence is not the best one either: it is bland and repetitive, which is why
# Holtzman et al. (2020) found human text far less probable, per token, than beam-search text.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: temperature first, or the filter first?</strong></p>
#
# <details><summary>Answer</summary>
#
# It matters for top-p and min-p, not for top-k (dividing by $T > 0$ keeps the order). Hugging
# Face and `utils.generation.sample_next_token` apply temperature first, so the nucleus is
# computed on the distribution that is actually sampled: at a high $T$ it grows to cover the
# flattened tail. Filtering first and then raising the temperature keeps the nucleus of the
# $T = 1$ distribution and only flattens the probabilities within it, a different sampler.
# The cell below shows both on the real distribution.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
for T in (0.5, 2.0):
    after = int((top_p_filter(z / T, 0.9) > float("-inf")).sum())
    before = int((top_p_filter(z, 0.9) > float("-inf")).sum())
    print(f"T = {T}: nucleus (p = 0.9) computed after temperature {after} tokens, "
          f"before temperature {before} tokens")

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why does the repetition penalty divide positive logits but multiply negative ones?</strong></p>
#
# <details><summary>Answer</summary>
#
# To lower the logit in both cases. Dividing a negative logit by 1.3 would *raise* it
# ($-2 / 1.3 = -1.54$), making the token more likely. CTRL's rule (Keskar et al., 2019),
# used by Hugging Face and `utils.generation.apply_repetition_penalty`, divides positive
# logits and multiplies negative ones. Its flaw is that it depends on where zero is: adding a
# constant to all logits changes nothing in the softmax but changes the penalty. OpenAI's API
# uses additive "presence" and "frequency" penalties instead.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
demo = torch.tensor([[2.0, -2.0, 0.5]])
penalised = apply_repetition_penalty(demo, torch.tensor([[0, 1]]), 1.3)[0]
print("logits [2, -2, 0.5], tokens 0 and 1 seen, penalty 1.3 ->",
      [round(v, 3) for v in penalised.tolist()])

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q12")

# %% [markdown]
# ## Build it yourself
#
# Write the min-p filter of MM-Q12 as a **mask**. Your function must
#
# - take `logits` of shape `(B, V)` (one row of next-token logits per sequence) and a float
#   `min_p` in $[0, 1]$;
# - return a `(B, V)` tensor of dtype `torch.bool`, True where the token's probability
#   (softmax over its row) is at least `min_p` times the largest probability of that row.
#
# The checker tries one row, a batch, `min_p` 0 and 1 and very negative logits. As committed,
# the stub raises `NotImplementedError`, and the checker says so.

# %%
def my_min_p(logits, min_p):
    """Your min-p mask: (B, V) bool, True = keep."""
    # 1. probabilities of each row
    # 2. each row's largest probability
    # 3. keep the tokens at or above min_p times it
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_min_p

check_min_p(my_min_p)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_min_p(logits, min_p):
#     probs = torch.softmax(logits, dim=-1)
#     return probs >= min_p * probs.amax(dim=-1, keepdim=True)
# ```
#
# Since $p_i / p_{\max} = e^{z_i - z_{\max}}$, the same mask needs no softmax at all:
# `logits >= logits.amax(-1, keepdim=True) + math.log(min_p)` (for `min_p > 0`), which is
# how `utils.generation.min_p_filter` computes it.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# - `utils.attention.KVCache(n_layers, max_length=None, quantize=None)`: preallocated
#   per-layer buffers (doubling when no maximum is given), `nbytes` and `allocated_bytes`,
#   optional int8 storage (`quantize_int8` / `dequantize_int8`).
# - `utils.paged_cache`: `BlockPool` (blocks, free list, reference counts) and
#   `PagedKVCache` (block tables, `fork` for prefix sharing with copy on write), usable
#   wherever a `KVCache` is.
# - `utils.generation`: `top_k_filter`, `top_p_filter`, `min_p_filter`,
#   `apply_repetition_penalty`, `sample_next_token` and `generate` (which takes any of the
#   caches through `cache=`).
#
# Their tests check every cache against the uncached loop, token for token in float64 (int8
# within a tolerance), and every filter against a brute-force reference. The min-p filter
# agrees with the mask of the exercise's solution on the real distribution:

# %% tags=["nbval-check-output"]
for v in (0.05, 0.2):
    mask = z.softmax(-1) >= v * z.softmax(-1).max()
    print(f"min_p = {v}: min_p_filter keeps the same {int(mask.sum())} tokens:",
          torch.equal(min_p_filter(z, v) > float("-inf"), mask))

# %% [markdown]
# ## Summary
#
# - **MM-Q11** With a causal mask the keys and values of past tokens never change, so the
#   generation loop can keep them instead of rerunning the whole prefix at every step: the
#   tokens are identical and the work per step drops from the whole context to one token.
#   Training computes every position in one parallel pass and has nothing to reuse. The cache
#   takes $2 L H_{kv} d_{head}$ numbers per token: 4 KiB in bf16 for MiniMind2-small (GQA,
#   2 KV heads), 512 KiB for LLaMA-7B (full MHA, 32 KV heads), 1 GiB at 2,048 tokens. GQA and
#   MQA divide it by $H / H_{kv}$, int8 storage halves a 16-bit cache at a small measured
#   error, paging cuts the waste of reserving the maximum length to under one block per
#   sequence and lets prompts share blocks.
# - **MM-Q12** Greedy decoding is deterministic and loops; pure sampling reproduces the
#   model's long tail and derails. Temperature sharpens or flattens, top-k keeps a fixed
#   count, top-p the smallest set that reaches a mass $p$, min-p the tokens within a factor of
#   the top one; a repetition penalty attacks loops directly, with side effects.
#
# Next: why transformers replaced RNNs, and why bigger models are better (MM-Q13, MM-Q14).
#
# ## References
#
# - Pope, R. et al. (2023). *Efficiently Scaling Transformer Inference*. MLSys.
#   arXiv:2211.05102. (KV-cache memory, multi-query attention at scale.)
# - Shazeer, N. (2019). *Fast Transformer Decoding: One Write-Head is All You Need*.
#   arXiv:1911.02150. (Multi-query attention.)
# - Ainslie, J. et al. (2023). *GQA: Training Generalized Multi-Query Transformer Models from
#   Multi-Head Checkpoints*. EMNLP. arXiv:2305.13245.
# - Touvron, H. et al. (2023). *LLaMA: Open and Efficient Foundation Language Models*.
#   arXiv:2302.13971. (LLaMA-7B: 32 layers, 32 heads, width 4096.)
# - Touvron, H. et al. (2023). *Llama 2: Open Foundation and Fine-Tuned Chat Models*.
#   arXiv:2307.09288. (GQA in the 34B and 70B models only.)
# - Kwon, W. et al. (2023). *Efficient Memory Management for Large Language Model Serving with
#   PagedAttention*. SOSP. arXiv:2309.06180. (vLLM: blocks, block tables, copy on write.)
# - Liu, Z. et al. (2024). *KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache*.
#   ICML. arXiv:2402.02750.
# - Xiao, G. et al. (2024). *Efficient Streaming Language Models with Attention Sinks*. ICLR.
#   arXiv:2309.17453.
# - Holtzman, A. et al. (2020). *The Curious Case of Neural Text Degeneration*. ICLR.
#   arXiv:1904.09751. (Greedy and beam-search loops; nucleus sampling.)
# - Fan, A., Lewis, M., Dauphin, Y. (2018). *Hierarchical Neural Story Generation*. ACL.
#   arXiv:1805.04833. (Top-k sampling.)
# - Nguyen, M. et al. (2024). *Turning Up the Heat: Min-p Sampling for Creative and Coherent
#   LLM Outputs*. arXiv:2407.01082.
# - Keskar, N. S. et al. (2019). *CTRL: A Conditional Transformer Language Model for
#   Controllable Generation*. arXiv:1909.05858. (The repetition penalty.)
# - Gong, J. (2024). *MiniMind: train a 26M-parameter GPT from scratch*. GitHub repository
#   jingyaogong/minimind.
