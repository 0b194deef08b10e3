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
# # 5 · Efficiency and the future
#
# Attention is exact, parallel and expressive, and it pays for all three with memory that grows
# with the square of the context and a cache that grows with every generated token. This
# chapter takes the price apart through four questions (L03-Q21 to Q24 of the course):
#
# 1. Where is the memory bottleneck, and what do the KV cache and FlashAttention change?
# 2. Can attention cost less than $O(n^2)$, and what does each shortcut lose?
# 3. Why do transformers train in parallel when RNNs cannot?
# 4. With unlimited compute, what would still be worth changing?
#
# **Prerequisites.** The self-attention chapter (especially L03-Q4, the cost of attention), the
# softmax, PyTorch's autograd, and what a recurrent network is.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer
# by measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source
# notes of this course were wrong (✏️); every number in them is computed by a cell above. At
# the end you write FlashAttention's inner loop yourself and a checker tells you whether it is
# right.
#
# Timings depend on your machine: the tables of times are yours, and the text only relies on
# their *shape* (slopes and which curve is lower). The whole notebook runs on a laptop CPU in
# about a minute and downloads nothing; on a GPU the experiments grow.

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
import copy
import math
import random

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.plots import use_style
from utils.quiz import quiz
from utils.timing import best_time

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
on_gpu = device.type == "cuda"
print("device:", device)


def flops_of(fn):
    """Matrix-product FLOPs that PyTorch's FlopCounterMode counts while fn() runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# %% [markdown]
# ## L03-Q21 · Where is the memory bottleneck (KV cache, FlashAttention)?
#
# > Where does a transformer run out of memory, and how do the KV cache and FlashAttention
# > help? Is FlashAttention a trade of memory for speed, or of speed for memory?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Which tensor of one attention layer has $n^2$ entries? Is there one per layer, per head,
#   or per sequence?
# - During generation, which keys and values are recomputed at every step if nothing is kept?
# - The softmax of a row needs the row's maximum and the sum of its exponentials. Can you get
#   both if the row arrives in pieces, one block of keys at a time?
# - A GPU has a small, very fast on-chip memory and a large, slower one (HBM). Which of the two
#   does the $n \times n$ matrix live in, and how often is it read and written?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q21**
#
# <div class="course-answer" data-question="L03-Q21">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Two tensors grow with the context.**
#
# - In training and in prompt processing, the **attention weights**: textbook attention
#   materialises the scores $S = QK^\top/\sqrt{d_k}$ and the weights $P = \operatorname{softmax}(S)$,
#   each $n \times n$ **per head, per sequence, per layer**, and autograd keeps $P$ for the
#   backward pass. That is $O(hn^2)$ memory per layer: it is what runs out first at long
#   context (L03-Q4 measured it).
# - In generation, the **KV cache**: the keys and values of every past token, in every layer,
#   $2 \cdot L \cdot n \cdot h_{kv} \cdot d_k$ numbers per sequence. It grows by one row per
#   token and, unlike the weights, lives as long as the conversation.
#
# **The KV cache trades memory for compute.** The keys and values of past tokens never change
# (the causal mask guarantees it), so keeping them means each new token needs only its own
# projections and one row of attention. Without the cache, step $t$ reruns the whole prefix:
# the total work to generate $n$ tokens goes from about $\sum_t t \propto n^2/2$ token-passes to
# $n$, a saving of order $n$ (the exact factor is measured below).
#
# **FlashAttention trades compute for memory, and still runs faster.** It never stores $S$ or
# $P$. It splits the keys into blocks, and for each query keeps only a running maximum $m$, a
# running sum $\ell$ of $e^{s - m}$ and a running, unnormalised output. When a new block raises
# the maximum, what was summed so far is rescaled by $e^{m_\text{old} - m_\text{new}}$: this
# **online softmax** (Milakov and Gimelshein, 2018) gives the exact result, block by block. For
# the backward pass it keeps one number per query (the log-sum-exp) and *recomputes* the tiles
# of $P$: more FLOPs, $O(n)$ instead of $O(n^2)$ memory. That is the "time for space" half.
#
# Why is it nevertheless faster on a GPU? Because the textbook version is limited by memory
# traffic, not by arithmetic: it writes $S$ to the GPU's main memory (HBM), reads it back for
# the softmax, writes $P$, and reads $P$ again for $PV$, about $4n^2$ elements moved per head.
# The fused kernel keeps every tile in on-chip SRAM and moves only $Q$, $K$, $V$ and the output,
# about $2n^2 d / B_r$ elements for query blocks of $B_r$ rows (Dao et al., 2022). Fewer bytes
# through the slow memory beat a few more FLOPs in the fast units. The FLOP count does not
# change its order: attention stays $O(n^2 d)$, and only its memory drops to $O(n)$.
#
# </details>

# %% [markdown]
# ### Show it: the memory of the textbook formula, measured
#
# We measure the **peak memory** of one head's attention ($d_k = 64$) for growing $n$, three
# ways: the textbook formula, PyTorch's fused `F.scaled_dot_product_attention`, and
# `utils.flash.tiled_attention` (built below) with blocks of 128 queries and 128 keys. On a
# CPU, `utils.flash.peak_memory_bytes` replays every allocation and free that the profiler saw;
# on a GPU it reads the allocator's peak.

# %%
from utils.flash import (
    attention_io_elements,
    flash_attention,
    peak_memory_bytes,
    saved_tensor_bytes,
    tiled_attention,
)


def explicit_attention(q, k, v, causal=False):
    """The textbook formula: the full (n, n) scores and weights exist in memory."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n, n)
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool, device=q.device).tril(),
                                    float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


d_head = 64
memory_sizes = [256, 512, 1024, 2048] + ([4096, 8192] if on_gpu else [])
rows = []
for n in memory_sizes:
    q_n, k_n, v_n = (torch.randn(1, 1, n, d_head, device=device) for _ in range(3))
    mib = 2**20
    rows.append({
        "n": n,
        "one n×n float32 matrix (MiB)": n * n * 4 / mib,
        "textbook peak (MiB)": peak_memory_bytes(lambda: explicit_attention(q_n, k_n, v_n), device)[1] / mib,
        "fused kernel peak (MiB)": peak_memory_bytes(
            lambda: F.scaled_dot_product_attention(q_n, k_n, v_n), device)[1] / mib,
        "tiled peak (MiB)": peak_memory_bytes(
            lambda: tiled_attention(q_n, k_n, v_n, block_q=128, block_k=128), device)[1] / mib,
    })
memory_table = pd.DataFrame(rows).set_index("n")
memory_table.map(lambda v: f"{v:.3g}")

# %% tags=["nbval-check-output"]
n_by_n = memory_table["one n×n float32 matrix (MiB)"]
print("textbook peak >= two n×n matrices (scores and weights alive together):",
      bool((memory_table["textbook peak (MiB)"] >= 2 * n_by_n).all()))
print("fused and tiled peaks < one n×n matrix from n = 1024 on:",
      bool((memory_table.loc[1024:, ["fused kernel peak (MiB)", "tiled peak (MiB)"]].max(axis=1)
            < n_by_n.loc[1024:]).all()))
growth = memory_table.loc[2048] / memory_table.loc[1024]
print("growth of the textbook peak from n = 1024 to 2048:",
      round(float(growth["textbook peak (MiB)"]), 1), "(n² would give 4)")

# %% [markdown]
# The textbook peak sits at two $n \times n$ matrices, because the scores and the softmax
# output are alive at the same time, and it quadruples when $n$ doubles. The fused kernel and
# the tiled loop stay far below a single $n \times n$ matrix: what they hold grows like $n$
# (the output, and one tile at a time).
#
# How large does this get in a real model? The pilot chapter's correction box (L03-Q4)
# recomputed the notes' "$n = 4096$, fp16: 32 MB (one layer!)": 32 MiB is one *head* for one
# sequence, and a layer of 32 heads holds 1 GiB. The notes make the same slip twice more in
# this question; the next cell recomputes those figures.

# %% tags=["nbval-check-output"]
def weights_mib(n, bytes_per_value=2):
    """One head's n×n attention weights for one sequence, in MiB (fp16 by default)."""
    return n * n * bytes_per_value / 2**20


print(f"n = 2048: {weights_mib(2048):.0f} MiB per head;  n = 16384: {weights_mib(16384):.0f} MiB per head")
gpt3_layers, gpt3_heads = 96, 96  # GPT-3 175B (Brown et al., 2020): 96 layers of 96 heads
print(f"n = 16384, one matrix per head for all {gpt3_heads} heads of all {gpt3_layers} layers: "
      f"{weights_mib(16384) * gpt3_heads * gpt3_layers / 2**20:,.1f} TiB per sequence")
print(f"the notes' '96 layers': {gpt3_layers} × {weights_mib(16384):.0f} MiB = "
      f"{gpt3_layers * weights_mib(16384) / 2**10:.0f} GiB (one head per layer)")

# %% [markdown]
# ### Build it: the online softmax
#
# The softmax of a row $s_1, \dots, s_n$ is $e^{s_j - m} / \ell$ with $m = \max_j s_j$ and
# $\ell = \sum_j e^{s_j - m}$. Both can be computed while the row streams past in blocks: keep
# the maximum so far $m$ and the sum so far $\ell$, and when a block brings a larger maximum
# $m'$, multiply the old sum by $e^{m - m'}$ (each of its terms was $e^{s - m}$ and should
# have been $e^{s - m'}$). The weighted sum of values gets the same treatment. Here is the
# loop for one query, written out:

# %%
def online_attention_one_query(q, k, v, block):
    """softmax(k q / sqrt(d)) v for one query q (d,), reading k and v `block` rows at a time."""
    m = torch.tensor(float("-inf"))  # running max of the scores
    total = torch.tensor(0.0)  # running sum of exp(score - m)
    acc = torch.zeros(v.shape[-1])  # running sum of exp(score - m) * value
    for j in range(0, len(k), block):
        s = k[j:j + block] @ q / math.sqrt(len(q))  # this block's scores only
        m_new = torch.maximum(m, s.max())
        alpha = torch.exp(m - m_new)  # how much the old terms shrink under the new max
        p = torch.exp(s - m_new)
        total = alpha * total + p.sum()
        acc = alpha * acc + p @ v[j:j + block]
        m = m_new
    return acc / total


q1, k1, v1 = torch.randn(16), torch.randn(64, 16), torch.randn(64, 5)
full = torch.softmax(k1 @ q1 / 4.0, dim=0) @ v1

# %% tags=["nbval-check-output"]
for block in (1, 8, 64):
    print(f"blocks of {block:2d} keys equal the full softmax:",
          torch.allclose(online_attention_one_query(q1, k1, v1, block), full, atol=1e-6))
big_scores = online_attention_one_query(50 * q1, k1, v1, 8)  # scores in the hundreds
print("stable for large scores (no overflow):", bool(torch.isfinite(big_scores).all()))

# %% [markdown]
# ### Explore it: watch the running output converge
#
# One query reads 64 keys in 8 blocks. Move the slider: the left panel shows the scores read so
# far and the running maximum; the right panel the running output $\text{acc}/\ell$ next to the
# exact output. After the last block they coincide, exactly, not approximately.

# %%
explore_k, explore_v = torch.randn(64, 16), torch.randn(64, 6)
explore_q = 1.5 * torch.randn(16)
explore_scores = explore_k @ explore_q / 4.0
explore_exact = torch.softmax(explore_scores, dim=0) @ explore_v


def draw_online(blocks_read):
    """Scores seen after `blocks_read` blocks of 8 keys, and the running output."""
    seen = blocks_read * 8
    running = online_attention_one_query(explore_q, explore_k[:seen], explore_v[:seen], 8)
    fig, (ax_s, ax_o) = plt.subplots(1, 2, figsize=(10, 3.3))
    colors = ["#392061" if j < seen else "#d4d4d4" for j in range(64)]
    ax_s.bar(range(64), explore_scores.numpy(), color=colors)
    ax_s.axhline(float(explore_scores[:seen].max()), color="#f75c03", ls="--", label="running max m")
    ax_s.set_title(f"{seen} of 64 keys read")
    ax_s.set_xlabel("key")
    ax_s.legend(loc="lower right")
    positions = np.arange(6)
    ax_o.bar(positions - 0.2, running.numpy(), width=0.4, color="#f75c03", label="running acc / ℓ")
    ax_o.bar(positions + 0.2, explore_exact.numpy(), width=0.4, fill=False, ls="--",
             edgecolor="black", label="exact output")
    ax_o.set_title(f"distance to the exact output: {(running - explore_exact).norm():.3f}")
    ax_o.set_xticks(positions, [f"dim {i}" for i in positions])
    low, high = ax_o.get_ylim()
    ax_o.set_ylim(low, high + 0.45 * (high - low))  # room for the legend above the bars
    ax_o.legend(loc="upper right", ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


interactive_figure(draw_online, blocks_read=[1, 2, 3, 4, 6, 8], initial={"blocks_read": 2})

# %% [markdown]
# `utils.flash.tiled_attention` is the same loop for whole blocks of queries at once (every
# tensor gets leading batch and head dimensions), with an optional causal mask that also skips
# the tiles above the diagonal. It is tested against PyTorch's attention for many block sizes:

# %% tags=["nbval-check-output"]
q_t, k_t, v_t = (torch.randn(2, 4, 300, 32, device=device) for _ in range(3))
for causal in (False, True):
    reference = F.scaled_dot_product_attention(q_t, k_t, v_t, is_causal=causal)
    print(f"causal={causal!s:5}: tiled (blocks 64×48) equals the fused kernel:",
          torch.allclose(tiled_attention(q_t, k_t, v_t, causal, block_q=64, block_k=48),
                         reference, atol=1e-5))

# %% [markdown]
# ### Show it: time for space in the backward pass
#
# `utils.flash.flash_attention` wraps the tiled forward pass in an autograd function. For the
# backward pass it saves $Q$, $K$, $V$, the output and one log-sum-exp per query, then
# recomputes each tile of scores and weights. We count two things on a sequence of 2048 tokens:
# the bytes autograd keeps between the forward and the backward pass
# (`utils.flash.saved_tensor_bytes`), and the matrix-product FLOPs of forward plus backward.

# %%
n_bwd = 2048
q_b, k_b, v_b = (torch.randn(1, 1, n_bwd, d_head, device=device, requires_grad=True) for _ in range(3))


def forward_backward(attention):
    """One forward and backward pass of an attention function; returns nothing."""
    out = attention(q_b, k_b, v_b)
    out.sum().backward()


backward_rows = []
for name, attention in [("textbook", explicit_attention),
                        ("flash (recompute)", lambda q, k, v: flash_attention(q, k, v, block=128))]:
    _, saved = saved_tensor_bytes(lambda attention=attention: attention(q_b, k_b, v_b))
    backward_rows.append({"version": name, "saved for backward (KiB)": saved / 2**10,
                          "FLOPs fwd + bwd / (n² d)": flops_of(lambda attention=attention:
                                                               forward_backward(attention))
                          / (n_bwd**2 * d_head)})
backward_table = pd.DataFrame(backward_rows).set_index("version")
print(backward_table.round(3).to_string())

# %% tags=["nbval-check-output"]
flop_ratio = backward_table["FLOPs fwd + bwd / (n² d)"]
print("FLOPs, in units of n²d: textbook", round(float(flop_ratio.iloc[0]), 2),
      "  flash", round(float(flop_ratio.iloc[1]), 2),
      f"  -> {float(flop_ratio.iloc[1] / flop_ratio.iloc[0] - 1):.1%} more work")
saved = backward_table["saved for backward (KiB)"]
print("textbook saves n² + 3nd floats (the weights P, and q, k, v):",
      saved.iloc[0] * 2**10 == 4 * (n_bwd**2 + 3 * n_bwd * d_head))
print("flash saves 4nd + n floats (q, k, v, the output, one log-sum-exp per query):",
      saved.iloc[1] * 2**10 == 4 * (4 * n_bwd * d_head + n_bwd))

# %% [markdown]
# The textbook pass costs $12n^2d$: $4n^2d$ forward ($QK^\top$ and $PV$) and $8n^2d$ backward
# (four products for $dV$, $dP$, $dQ$, $dK$). The recomputing pass adds one more $QK^\top$,
# $2n^2d$, for $14n^2d$: one sixth more arithmetic, in exchange for keeping no $n \times n$
# matrix at all. That is "time for space", and it is the same bargain as activation
# checkpointing, made for one operation.
#
# ### Show it: why it is still faster on a GPU, in bytes moved
#
# A GPU's arithmetic units are fed from HBM. `utils.flash.attention_io_elements` counts the
# elements one head's forward pass reads and writes there: the textbook version stores and
# reloads $S$ and $P$ ($4nd + 4n^2$); the fused version streams $K$ and $V$ past each block of
# $B_r$ queries ($\approx 2n^2d/B_r$). We also check the formula against the tiled loop itself,
# which counts every element it loads and stores (`io_counter`).

# %% tags=["nbval-check-output"]
counter = {}
q_io, k_io, v_io = (torch.randn(1000, d_head) for _ in range(3))
tiled_attention(q_io, k_io, v_io, block_q=128, block_k=128, io_counter=counter)
print("formula equals the loop's own count at n = 1000:",
      counter["read"] + counter["written"] == attention_io_elements(1000, d_head, 128)["tiled"])
io_rows = []
for n in [1024, 4096, 16384, 65536]:
    io = attention_io_elements(n, d_head, block_q=128)
    io_rows.append({"n": n, "textbook (MB, fp16)": io["standard"] * 2 / 1e6,
                    "fused (MB, fp16)": io["tiled"] * 2 / 1e6,
                    "ratio": io["standard"] / io["tiled"]})
print(pd.DataFrame(io_rows).set_index("n").round(1).to_string())

# %% [markdown]
# The ratio tends to $4n^2 / (2n^2d/B_r) = 2B_r/d = 4$ for $B_r = 128$ and $d = 64$: the fused
# kernel moves about a quarter of the bytes. The real kernels do better still (larger tiles,
# the causal half skipped), and on a GPU the textbook version also launches three kernels and
# waits for each. Since attention at these sizes is limited by memory bandwidth rather than by
# FLOPs, less traffic is less time: Dao et al. (2022) report, for example, a 3× faster training
# of GPT-2 at sequence length 1K.
#
# On this machine, here are the times of the textbook formula and the fused kernel (forward
# only). On a CPU the difference is smaller than on a GPU: a CPU's caches play the role of
# SRAM for both versions, with no explicit control.

# %%
time_rows = []
for n in memory_sizes:
    q_n, k_n, v_n = (torch.randn(1, 4, n, d_head, device=device) for _ in range(3))
    time_rows.append({"n": n,
                      "textbook (ms)": 1e3 * best_time(lambda: explicit_attention(q_n, k_n, v_n), device),
                      "fused kernel (ms)": 1e3 * best_time(
                          lambda: F.scaled_dot_product_attention(q_n, k_n, v_n), device)})
time_table = pd.DataFrame(time_rows).set_index("n")
time_table["textbook / fused"] = time_table["textbook (ms)"] / time_table["fused kernel (ms)"]
time_table.map(lambda v: f"{v:.3g}")

# %% [markdown]
# ### Show it: what the KV cache saves
#
# The course's small trained model (4 layers, context 128) generates text with and without a
# KV cache. We count the matrix-product FLOPs of each (with the explicit attention path, so
# every product is visible to the counter) after a 16-character prompt.

# %%
from utils.generation import generate
from utils.pretrained import load_pretrained

trained, char_tokenizer = load_pretrained(device=device)
for block in trained.blocks:
    block.attn.use_fused = False  # explicit products, so that FlopCounterMode sees them all
prompt = torch.tensor([char_tokenizer.encode("def attention(q,")], device=device)

def cumulative_flops(use_cache, new_tokens=96):
    """Generate greedily; return the FLOPs counted so far after each generated token."""
    totals = []
    with FlopCounterMode(display=False) as counter:
        hook = trained.register_forward_hook(lambda *_: totals.append(counter.get_total_flops()))
        try:
            generate(trained, prompt, new_tokens, top_k=1, use_cache=use_cache)
        finally:
            hook.remove()
    return np.array(totals)  # one entry per forward pass = per generated token


flops_cached, flops_uncached = cumulative_flops(True), cumulative_flops(False)
for block in trained.blocks:
    block.attn.use_fused = True
cache_rows = [{"tokens generated": n, "GFLOP with cache": flops_cached[n - 1] / 1e9,
               "GFLOP without": flops_uncached[n - 1] / 1e9,
               "saving ×": flops_uncached[n - 1] / flops_cached[n - 1]} for n in (16, 48, 96)]

# %% tags=["nbval-check-output"]
cache_table = pd.DataFrame(cache_rows).set_index("tokens generated")
print(cache_table.round(2).to_string())

# %% [markdown]
# The saving grows with the length. Without the cache, step $t$ reruns the whole prefix of
# $p + t$ tokens; with it, the prompt is processed once and every later step handles one token
# (plus one row of attention over the cache). For $n$ tokens after a prompt of $p$ that is
# $\sum_{t=0}^{n-1}(p + t) = pn + n(n-1)/2$ token passes against $p + n - 1$: the last column of
# the next cell. It matches the measured FLOPs closely; the measured saving is a little larger
# because the uncached passes also pay the quadratic attention term. The price is memory: the
# cache of this model holds $2 \times 4 \text{ layers} \times 128$ numbers per token, and L03-Q24
# measures how it grows.

# %% tags=["nbval-check-output"]
p_len = prompt.shape[1]
for n in (16, 48, 96):
    passes = sum(p_len + t for t in range(n)) / (p_len + n - 1)
    print(f"{n:3d} tokens after a {p_len}-character prompt: measured saving "
          f"{flops_uncached[n - 1] / flops_cached[n - 1]:5.1f}×, token passes {passes:5.1f}×")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "FlashAttention is space for time, or it turns O(N) work into O(1)"</strong></p>
#
# The learner's first answer: "FlashAttention, I don't know it well: either space for time, or
# a change of computation paradigm that turns something that needs N computations into O(1)".
# Neither. The FLOPs stay $O(n^2 d)$ (the cell above counts $14n^2d$ against $12n^2d$ for a
# forward and backward pass: *more*, not fewer), and the memory drops from $O(n^2)$ to $O(n)$.
# So it spends a little time to save space; it is faster anyway because it moves about a
# quarter of the bytes through slow memory (the table of bytes above). The learner's first
# half, "Q·K needs $O(n^2)$ memory", and their description of the KV cache were right.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: per head, not per layer; and the numbers of the memory hierarchy</strong></p>
#
# - "$n = 2048$: 8 MB (one layer)", "$n = 16$K: 512 MB (one layer)" and "96 layers: 96 × 512 MB
#   = 49 GB": the cell above gives $8$ and $512$ MiB, but **per head** and per sequence, as the
#   pilot chapter showed for the notes' 32 MB (L03-Q4). A GPT-3-sized model has 96 heads in
#   each of its 96 layers: one matrix per head at $n = 16384$ would be $4.5$ TiB per sequence,
#   not $48$ GiB. This is why no long-context model stores it.
# - "KV cache: inference time reduced $n$ times": the saving is of order $n$, but not $n$. For
#   96 characters after a 16-character prompt the cell above measures a saving of $56\times$
#   in FLOPs (not $96\times$), and for 16 characters $12\times$. It counts FLOPs; decoding time
#   is often limited by reading the weights and the cache, so the time saved can be smaller
#   still.
# - The memory hierarchy: the notes give HBM "500–1000 GB/s" and SRAM "19 TB/s (19× faster)",
#   with FlashAttention blocks of "about 20 MB". The FlashAttention paper (Dao et al., 2022)
#   gives, for an A100, HBM of 40–80 GB at **1.5–2.0 TB/s**, and 192 KB of SRAM on each of
#   108 streaming multiprocessors, about 19 TB/s in total: an order of magnitude faster, not
#   19×. The 20 MB is the SRAM of the whole chip, summed over the multiprocessors; a tile must
#   fit in one multiprocessor's 192 KB.
# - "Gradient checkpointing: time +30%": recomputing the forward pass once costs one forward
#   on top of a forward and a backward (about 1 + 2), so about a third more, in line with the
#   $14n^2d/12n^2d$ above for attention alone.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why does the backward pass need only one number per query?</strong></p>
#
# <details><summary>Answer</summary>
#
# Because the weights can be rebuilt from it: $P_{ij} = e^{s_{ij} - \text{lse}_i}$ with
# $\text{lse}_i = m_i + \log \ell_i$, and $s_{ij}$ is one dot product away. The softmax's
# backward pass also needs $\sum_j P_{ij}\, dP_{ij}$ per row, which equals
# $\sum_k dO_{ik} O_{ik}$, computable from the output and its gradient without $P$. The
# gradient test in `tests/test_flash.py` checks the result against autograd.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: FlashAttention removes the n² memory. Does the KV cache get the same cure?</strong></p>
#
# <details><summary>Answer</summary>
#
# No: the KV cache is not an intermediate, it is state that the next token genuinely needs,
# $O(n)$ per layer and sequence. It is shrunk by sharing keys and values between heads
# (multi-query and grouped-query attention), by storing them in fewer bits, and by allocating
# it in pages so that many sequences share memory without fragmentation (PagedAttention, Kwon et
# al., 2023). The inference chapter (MM-Q11) measures these. Removing the cache altogether
# needs a model with a fixed-size state, which is the subject of L03-Q22 and Q24.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q21")

# %% [markdown]
# ## L03-Q22 · Can attention cost less than O(n²)?
#
# > What are the ways to make self-attention cheaper than $O(n^2)$ in the sequence length, and
# > what does each one give up?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - In $\operatorname{softmax}(QK^\top)V$, what stops you from computing $K^\top V$ first?
#   What if the softmax were replaced by a product of features $\phi(q)\cdot\phi(k)$?
# - If each token only looked at the $w$ tokens before it, how much would attention cost? What
#   could it no longer do?
# - The $n \times n$ weight matrix of a trained model often has low rank. Could the $n$ keys be
#   summarised by $r \ll n$ combinations of them?
# - For each shortcut, think of a task that needs exactly what it throws away.
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q22**
#
# <div class="course-answer" data-question="L03-Q22">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Yes, by giving up *exact, all-pairs, softmax* attention in one of three ways.
#
# **1. Change the similarity: linear (kernelised) attention.** The softmax couples every query
# with every key before anything can be summed, so $QK^\top$ ($n \times n$) must come first.
# Replace $e^{q \cdot k}$ by a product of positive features $\phi(q) \cdot \phi(k)$ and the
# products reassociate:
#
# $$\text{out}_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}, \qquad \big(\phi(Q)\phi(K)^\top\big)V = \phi(Q)\big(\phi(K)^\top V\big).$$
#
# The cost drops from $O(n^2 d)$ to $O(n d^2)$ (Katharopoulos et al., 2020, with
# $\phi = \operatorname{elu} + 1$; Performer uses random features that approximate the
# softmax kernel, Choromanski et al., 2021). With a causal mask the sums become running sums,
# $S_t = S_{t-1} + \phi(k_t) v_t^\top$: **a recurrent network with a $d \times d$ matrix state**,
# which can still be trained in parallel (prefix sums) and decodes in constant memory. What it
# loses: the whole past is squeezed into a fixed $d \times d$ state, so exact retrieval among
# many items fails, and the kernel is smoother than the softmax, so attention cannot focus
# sharply.
#
# **2. Compute fewer pairs: sparse or local attention.** Each query attends to a window of $w$
# recent tokens (and possibly a few global tokens or strided positions): $O(nwd)$
# (Child et al., 2019; Beltagy et al., 2020; Zaheer et al., 2020). What it loses: anything
# farther than the window, in one layer; stacking $L$ layers extends the reach to about $Lw$,
# indirectly.
#
# **3. Compress the sequence: low-rank attention.** Project the $n$ keys and values to
# $r \ll n$ rows with learned $(r \times n)$ matrices: $O(nrd)$ (Linformer, Wang et al., 2020).
# What it loses: individual positions (each summary row mixes many tokens), and causality (a
# summary row mixes the future), so it suits encoders rather than language models.
#
# The learner's answer, "drop the softmax, use associativity to compute $KV$ first; it becomes
# an RNN that trains in parallel and whose inference memory does not depend on the length", is
# exactly route 1. Two cautions follow below: below the crossover length the "faster" method is
# slower, and every route loses something that a measurable task needs.
#
# </details>

# %% [markdown]
# ### Show it: linear attention is an RNN
#
# `utils.attention.linear_attention` computes the parallel forms. `utils.subquadratic.
# linear_attention_recurrent` runs the recurrence one token at a time with a state
# $(S, z)$ of size $d \times d_v + d$ that never grows. They must agree:

# %% tags=["nbval-check-output"]
from utils.attention import linear_attention
from utils.subquadratic import (
    linear_attention_recurrent,
    linformer_attention,
    sliding_window_attention,
    sliding_window_mask,
)

q_l, k_l, v_l = (torch.randn(2, 4, 200, 32, device=device) for _ in range(3))
parallel = linear_attention(q_l, k_l, v_l, causal=True)
recurrent, (state_S, state_z) = linear_attention_recurrent(q_l, k_l, v_l)
print("recurrent form equals the parallel causal form:", torch.allclose(recurrent, parallel, atol=1e-5))
print("state per head after 200 tokens:", tuple(state_S.shape[-2:]), "+", tuple(state_z.shape[-1:]),
      "(the same after 1 token or a million)")

# %% [markdown]
# ### Show it: the crossover length
#
# Softmax attention costs $4n^2d$ FLOPs per head, linear attention about $4nd^2$ (two products
# with a $d \times d$ state, plus the normaliser). We count both with `FlopCounterMode` and time
# both (non-causal, 4 heads of width 64) for growing $n$.

# %%
d_lin = 64
lin_sizes = [64, 128, 256, 512, 1024, 2048, 4096] + ([8192, 16384] if on_gpu else [])
rows = []
for n in lin_sizes:
    q_n, k_n, v_n = (torch.randn(1, 4, n, d_lin, device=device) for _ in range(3))
    rows.append({"n": n,
                 "softmax GFLOP": flops_of(lambda: explicit_attention(q_n, k_n, v_n)) / 1e9,
                 "linear GFLOP": flops_of(lambda: linear_attention(q_n, k_n, v_n)) / 1e9,
                 "softmax, fused (ms)": 1e3 * best_time(
                     lambda: F.scaled_dot_product_attention(q_n, k_n, v_n), device),
                 "linear (ms)": 1e3 * best_time(lambda: linear_attention(q_n, k_n, v_n), device)})
crossover = pd.DataFrame(rows).set_index("n")
faster = crossover.index[crossover["linear (ms)"] < crossover["softmax, fused (ms)"]]
print("measured: linear attention is faster from n =", int(faster.min()) if len(faster) else "never (in range)")
crossover.map(lambda v: f"{v:.3g}")

# %% tags=["nbval-check-output"]
fewer = crossover.index[crossover["linear GFLOP"] < crossover["softmax GFLOP"]]
print(f"by FLOPs, linear attention is cheaper from n = {int(fewer.min())} (d = {d_lin}): "
      "the crossover sits at n ≈ d")
print("softmax FLOPs / (4 n² d) =", round(float((crossover["softmax GFLOP"] * 1e9
                                                 / (4 * 4 * crossover.index**2 * d_lin)).mean()), 3))

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(crossover.index, crossover["softmax, fused (ms)"], "o-", label="softmax (fused kernel)")
ax.loglog(crossover.index, crossover["linear (ms)"], "s-", label="linear attention")
ax.set_xticks(crossover.index, [str(n) for n in crossover.index])
ax.minorticks_off()
ax.set_xlabel("sequence length n")
ax.set_ylabel("ms (best of repeats)")
ax.set_title(f"4 heads of width {d_lin}, non-causal")
ax.legend()
plt.show()

# %% [markdown]
# By FLOPs the two meet at $n = d$; in time the crossover moves to longer sequences, because
# the fused softmax kernel is much better optimised than three generic PyTorch products. The
# slopes tell the story that survives on any machine: softmax time grows like $n^2$, linear
# attention like $n$.
#
# ### Show it: local attention, as a mask and as a band
#
# A sliding window is a mask (`sliding_window_mask`). But a mask by itself saves nothing: the
# full $n \times n$ scores are still computed, then mostly thrown away. The savings come from
# computing only the band, as `sliding_window_attention` does: it cuts the queries into blocks
# of $w$ and scores each block against its own and the previous block's keys, $2nw$ scores in
# dense products.

# %% tags=["nbval-check-output"]
n_win, window = 1024, 64
q_w, k_w, v_w = (torch.randn(1, 4, n_win, d_lin, device=device) for _ in range(3))
band_mask = sliding_window_mask(n_win, window, device=device)
masked_full = F.scaled_dot_product_attention(q_w, k_w, v_w, attn_mask=band_mask)
banded = sliding_window_attention(q_w, k_w, v_w, window)
print("banded computation equals full attention with the window mask:",
      torch.allclose(banded, masked_full, atol=1e-5))
print(f"scores computed: full {n_win * n_win:,}, band blocks {2 * n_win * window:,} "
      f"(a fraction 2w/n = {2 * window / n_win:.3f})")

# %%
print(f"time, n = {n_win}, w = {window}: textbook formula "
      f"{1e3 * best_time(lambda: explicit_attention(q_w, k_w, v_w), device):.2f} ms, fused kernel "
      f"with the mask {1e3 * best_time(lambda: F.scaled_dot_product_attention(q_w, k_w, v_w, attn_mask=band_mask), device):.2f} ms, "
      f"band {1e3 * best_time(lambda: sliding_window_attention(q_w, k_w, v_w, window), device):.2f} ms")

# %% [markdown]
# The band version should be the fastest of the three, and its cost grows like $n$ at a fixed
# window. The fused kernel with a mask still computes every score.

# %% [markdown]
# ### Show it: what each shortcut loses, on associative recall
#
# A task that needs *exact retrieval over the whole context*: the input lists 24 pairs
# (key, value), each pair one position whose vector is the sum of a key embedding and a value
# embedding; the last position holds one of the keys; the model must output its value (16
# possible values, so chance is 1/16). One attention layer reads the last position against all
# pairs. We train four versions of that layer for the same few hundred steps:
#
# - **softmax**: full attention;
# - **linear**: `linear_attention` (elu + 1 features, width 16);
# - **window**: softmax over the last 4 positions only;
# - **low rank**: Linformer, the 25 positions projected to 4 learned summary rows.

# %%
n_key_tokens, n_value_tokens, n_pairs, d_recall = 64, 16, 24, 16
recall_steps = 600 if on_gpu else 250


def recall_batch(batch_size):
    """Keys (distinct within a sequence), values, and which pair is asked for."""
    keys = torch.stack([torch.randperm(n_key_tokens)[:n_pairs] for _ in range(batch_size)])
    values = torch.randint(0, n_value_tokens, (batch_size, n_pairs))
    asked = torch.randint(0, n_pairs, (batch_size,))
    return keys.to(device), values.to(device), asked.to(device)


class RecallLayer(nn.Module):
    """Embed the pairs and the query key, one attention layer, read out the value."""

    def __init__(self, kind, window=4, rank=4):
        super().__init__()
        self.kind, self.window = kind, window
        self.key_emb = nn.Embedding(n_key_tokens, d_recall)
        self.value_emb = nn.Embedding(n_value_tokens, d_recall)
        self.q, self.k, self.v = (nn.Linear(d_recall, d_recall) for _ in range(3))
        self.readout = nn.Linear(d_recall, n_value_tokens)
        self.E = nn.Parameter(torch.randn(rank, n_pairs + 1) / math.sqrt(n_pairs + 1))  # Linformer

    def forward(self, keys, values, asked):
        rows = torch.arange(len(keys), device=keys.device)
        x = self.key_emb(keys) + self.value_emb(values)  # (B, P, d): one position per pair
        x = torch.cat([x, self.key_emb(keys[rows, asked])[:, None]], dim=1)  # + the query key
        q, k, v = self.q(x[:, -1:]), self.k(x), self.v(x)  # only the last position reads
        if self.kind == "softmax":
            out = F.scaled_dot_product_attention(q, k, v)
        elif self.kind == "linear":
            out = linear_attention(q, k, v)
        elif self.kind == "window":
            out = F.scaled_dot_product_attention(q, k[:, -self.window:], v[:, -self.window:])
        else:  # low rank
            out = linformer_attention(q, k, v, self.E, self.E)
        return self.readout(out[:, 0])


recall_rows = []
for kind in ["softmax", "linear", "window", "low rank"]:
    layer = RecallLayer(kind).to(device)
    optimizer = torch.optim.Adam(layer.parameters(), lr=3e-3)
    for _ in range(recall_steps):
        keys, values, asked = recall_batch(128)
        loss = F.cross_entropy(layer(keys, values, asked), values[torch.arange(128), asked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        keys, values, asked = recall_batch(2000)
        accuracy = (layer(keys, values, asked).argmax(-1) == values[torch.arange(2000), asked])
    recall_rows.append({"attention": kind, "recall accuracy": accuracy.float().mean().item(),
                        "final training loss": loss.item()})
recall_table = pd.DataFrame(recall_rows).set_index("attention")
print(f"chance: {1 / n_value_tokens:.3f};  window 4 of {n_pairs} pairs sees the answer "
      f"{4 / n_pairs:.3f} of the time")
recall_table.round(3)

# %% [markdown]
# Full softmax attention learns the task (and is still improving when we stop); each shortcut
# stays near chance, and each fails in its own way:
#
# - the **window** sees the right pair only when it is among the last four, and is otherwise
#   left to guess;
# - **linear attention** must store 24 associations in a $16 \times 16$ state, and its smooth
#   kernel cannot single out one key: it ends far below softmax;
# - **low rank** keeps 4 mixtures of the 25 positions, which cannot hold 24 separate pairs.
#
# This is the known weakness of fixed-state models on recall-heavy tasks (Arora et al., 2024,
# measure it for many architectures, "Zoology"); it is why several recent models mix a few
# softmax attention layers into a mostly linear or recurrent stack.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "linear attention is a drop-in replacement, only slightly less expressive"</strong></p>
#
# Not the learner's mistake: their account of linear attention (drop the softmax,
# reassociate, get an RNN that trains in parallel and decodes in constant memory) is right. The
# trap is the notes' verdict on it, "expressiveness slightly lower". The recall table shows a
# task where the gap is not slight, and the timing table shows that below the crossover length
# linear attention is not even faster. The constant-size state that makes it cheap is exactly
# what limits how much it can retrieve.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the costs at n = 100K</strong></p>
#
# The notes (in Q24) compare the methods at $n = 100{,}000$, $d = 512$: "$O(nd^2) \approx$ 26M,
# $O(n^2 d) \approx$ 5B, about 200× faster", and "sparse ($w = 512$): $100$K × 512 = 51M;
# linear: $100$K × 512² = 26M". The cell below recomputes them:
#
# - $nd^2 = 26.2$ **billion**, not 26 million, and $n^2 d = 5.12$ **trillion**, not 5 billion:
#   both are 1000× too small. Their ratio, $n/d \approx 195$, is right.
# - The sparse figure leaves out $d$: $n w d$ is also $26.2$ billion. With $w = d = 512$, a
#   window and linear attention cost the *same*, not 51M against 26M.
#
# </div>

# %% tags=["nbval-check-output"]
n_notes, d_notes, w_notes = 100_000, 512, 512
print(f"n d²  = {n_notes * d_notes**2:.3g}")
print(f"n² d  = {n_notes**2 * d_notes:.3g}   ratio n²d / nd² = {n_notes / d_notes:.0f}")
print(f"n w d = {n_notes * w_notes * d_notes:.3g}   (n w without d: {n_notes * w_notes:.3g})")

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: if linear attention is an RNN, why did RNNs lose to transformers?</strong></p>
#
# <details><summary>Answer</summary>
#
# Because the RNNs that lost had a *nonlinear* recurrence, $h_t = \tanh(W h_{t-1} + U x_t)$,
# which must be computed step by step (L03-Q23). Linear attention's recurrence is *linear* in
# its state, so all states are prefix sums that can be computed in parallel. The same trick
# powers the state-space models of L03-Q24. What remains is the capacity of a fixed-size state,
# measured above; newer linear models add gating (forgetting) and larger states to soften it.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does a local window really limit what a deep model can see?</strong></p>
#
# <details><summary>Answer</summary>
#
# Less than in one layer: after $L$ layers of window $w$, information can travel $L \cdot w$
# positions, like the receptive field of a stack of convolutions. But it travels through
# intermediate positions, compressed at every hop, so precise long-range retrieval stays
# hard. Mistral 7B uses a window of 4096 tokens in each of 32 layers for a theoretical reach of
# about 131K tokens (Jiang et al., 2023); models such as Longformer add a few global tokens that
# every position can see.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q22")

# %% [markdown]
# ## L03-Q23 · Why do transformers train in parallel and RNNs do not?
#
# > A transformer processes all positions of a training sequence at once; an RNN goes one step
# > at a time. Where exactly does the difference come from, and what is teacher forcing?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Write the RNN's update $h_t = f(h_{t-1}, x_t)$. What must be known before $h_t$ can be
#   computed? Does knowing all the inputs $x_1, \dots, x_T$ in advance help?
# - In a transformer layer, what does position $t$ need from position $t-1$: its *output*, or
#   only its *input*?
# - During training we know the whole target text. What is fed as the input at position $t$:
#   the model's own prediction, or the true token?
# - At generation time, what changes?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q23**
#
# <div class="course-answer" data-question="L03-Q23">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Two ingredients, both needed.**
#
# 1. **Teacher forcing: the inputs are known.** In training, the input at position $t$ is the
#    *true* token $x_t$, not the model's prediction. So the input sequence is the text and the
#    targets are the same text shifted by one: position $t$ reads $x_{\le t}$ and predicts
#    $x_{t+1}$. Nothing the model computes is fed back as an input.
# 2. **No dependence between positions inside a layer's computation.** In a transformer layer,
#    position $t$ needs the *inputs* of positions $\le t$ (through attention, with the causal
#    mask to hide the future), never the *outputs* of position $t-1$ in the same layer. So all
#    $T$ positions are one batch of matrix products. The sequential depth is the number of
#    layers $L$, not the length $T$.
#
# An RNN has the first ingredient but not the second: $h_t = f(h_{t-1}, x_t)$ needs $h_{t-1}$,
# which needs $h_{t-2}$, and so on. Even with every input known (teacher forcing), the $T$
# steps form a chain: $T$ sequential matrix-vector products per layer. A GPU can only
# parallelise such a network across the *batch*; a transformer also parallelises across
# *positions*, which turns many small products into a few large ones.
#
# **At generation both are sequential**, because token $t+1$ is only known after token $t$ was
# sampled. But not equally: a transformer still processes the prompt in parallel, and per new
# token it pays one row of attention over the cache (growing with the context), while an RNN
# pays a constant step with a constant state.
#
# **The price of teacher forcing: exposure bias.** The model is trained only on true prefixes,
# but it generates from its own. Once it makes a mistake, it is in a situation it never saw in
# training, and mistakes can compound (Bengio et al., 2015).
#
# </details>

# %% [markdown]
# ### Show it: teacher forcing is a shift by one, and one forward pass gives every loss
#
# With the small trained model: the input is the text without its last character, the target
# is the text without its first. One forward pass gives a next-character loss at every
# position. Running the model separately on each prefix, as a generation loop would, gives the
# same losses.

# %% tags=["nbval-check-output"]
text = "Teacher forcing feeds the true text."
ids = torch.tensor([char_tokenizer.encode(text)], device=device)
inputs, targets = ids[:, :-1], ids[:, 1:]  # the whole training signal of this sequence
print("input :", repr(char_tokenizer.decode(inputs[0].tolist())))
print("target:", repr(char_tokenizer.decode(targets[0].tolist())))
with torch.no_grad():
    logits, _ = trained(inputs)  # (1, T, vocab): one forward pass
    parallel_losses = F.cross_entropy(logits[0], targets[0], reduction="none")
    one_by_one = torch.stack([F.cross_entropy(trained(inputs[:, :t + 1])[0][0, -1], targets[0, t])
                              for t in range(inputs.shape[1])])  # T forward passes
print(f"{inputs.shape[1]} losses from 1 forward pass equal those of {inputs.shape[1]} prefix passes:",
      torch.allclose(parallel_losses, one_by_one, atol=1e-4))

# %% [markdown]
# ### Show it: step time of a GRU and a transformer layer
#
# A one-layer GRU and a one-layer TinyGPT, both of width 128, do a forward and backward pass
# (a training step without the optimiser) on sequences of growing length $T$. We report the
# time per token, for one sequence at a time (batch 1) and for a batch of 16.

# %%
from utils.model import GPTConfig, TinyGPT

d_seq = 128
gru = nn.GRU(d_seq, d_seq, batch_first=True).to(device)
gru_embedding = nn.Embedding(char_tokenizer.vocab_size, d_seq).to(device)
lengths = [64, 256, 1024] + ([4096] if on_gpu else [])
one_layer = TinyGPT(GPTConfig.nano(char_tokenizer.vocab_size, n_layers=1, d_model=d_seq,
                                   context_length=max(lengths))).to(device)


def gru_step(x):
    out, _ = gru(gru_embedding(x))  # T sequential steps inside
    out.sum().backward()


def transformer_step(x):
    logits, _ = one_layer(x)  # all T positions at once
    logits.sum().backward()


step_rows = []
for batch in [1, 16]:
    for T in lengths:
        if batch * T > 8192 and not on_gpu:
            continue  # keep the CPU run short
        x = torch.randint(0, char_tokenizer.vocab_size, (batch, T), device=device)
        gru_t = best_time(lambda: gru_step(x), device, max_repeat=3)
        tf_t = best_time(lambda: transformer_step(x), device, max_repeat=3)
        step_rows.append({"batch": batch, "T": T, "GRU µs/token": 1e6 * gru_t / (batch * T),
                          "transformer µs/token": 1e6 * tf_t / (batch * T),
                          "GRU / transformer": gru_t / tf_t})
step_table = pd.DataFrame(step_rows).set_index(["batch", "T"])
step_table.map(lambda v: f"{v:.3g}")

# %% [markdown]
# Read the ratio column. With **one sequence**, the GRU is the slower one, even on a single
# CPU thread: each of its $T$ steps is a small matrix-*vector* product that must wait for the
# previous one, while the transformer layer does a few large matrix-*matrix* products over all
# positions (more arithmetic in total, since it also has a feed-forward network and a vocabulary
# head, but done far more efficiently). With a **batch of 16**, each GRU step becomes a
# $16 \times 128$ matrix product and the gap closes or reverses on a CPU: batching is the only
# parallelism an RNN has. On a GPU, with thousands of arithmetic units, the transformer's
# parallelism over positions wins at every batch size, which is what made training on long
# sequences affordable.
#
# ### Show it: exposure bias
#
# The small model was trained only with teacher forcing. We take 16 windows of held-out text,
# give the model 64 characters of each as a prompt, and compare two ways of producing the next
# 40 characters:
#
# - **teacher forced**: at each position the model sees the *true* text before it; we record
#   whether its top prediction is the true next character;
# - **free running**: the model generates greedily from its *own* previous characters; we
#   record whether each generated character equals the true one, and whether the whole
#   generation is still identical to the truth so far.

# %%
from utils.data import default_corpus, train_val_split

corpus_ids = torch.tensor(char_tokenizer.encode(default_corpus()))
held_out = train_val_split(corpus_ids, 0.1)[1]
n_windows, prompt_len, gen_len = 16, 64, 40
starts = torch.arange(n_windows) * (len(held_out) // n_windows)
windows = torch.stack([held_out[s:s + prompt_len + gen_len] for s in starts]).to(device)
truth = windows[:, prompt_len:]
with torch.no_grad():
    logits, _ = trained(windows[:, :-1])
    forced = logits[:, prompt_len - 1:].argmax(-1) == truth  # (16, 40)
    generated = generate(trained, windows[:, :prompt_len], gen_len, top_k=1)[:, prompt_len:]
free = generated == truth
still_identical = free.long().cumprod(dim=1).bool()
exposure = pd.DataFrame({"teacher-forced accuracy": forced.float().mean(0).cpu(),
                         "free-running accuracy": free.float().mean(0).cpu(),
                         "still identical": still_identical.float().mean(0).cpu()})

fig, ax = plt.subplots(figsize=(7, 4))
for column in exposure:
    ax.plot(exposure.index + 1, exposure[column], "o-", ms=3, label=column)
ax.set_xlabel("generated character")
ax.set_ylabel("fraction of the 16 windows")
ax.set_ylim(0, 1)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=9)
plt.tight_layout()
plt.show()
print("mean over the 40 characters:", {k: round(float(v), 3) for k, v in exposure.mean().items()})
print("one free-running sample:", repr(char_tokenizer.decode(generated[0].tolist())))
print("the true text:          ", repr(char_tokenizer.decode(truth[0].tolist())))

# %% [markdown]
# Teacher-forced accuracy stays level along the 40 characters: every prediction starts from
# true text. The free-running generations leave the true text after a few characters (the
# "still identical" curve falls to zero) and, from then on, match it far less often than the
# teacher-forced predictions do. Part of that is legitimate, since text has many valid continuations; but the
# sample shows the other part: fed its own output, the model drifts into repetitions and
# half-formed patterns that it never had to recover from in training. That is exposure bias.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "teacher forcing is what makes training parallel"</strong></p>
#
# Not the learner's mistake (they explained the RNN's chain $H(t) \leftarrow H(t-1)$
# correctly, and asked what teacher forcing is). The notes call teacher forcing "the key
# enabler" of parallel training, which invites the mistake. Teacher forcing is *necessary*
# (the inputs must be known in advance) but not *sufficient*: a GRU trained with teacher
# forcing, as above, is still a chain of $T$ dependent steps. Parallelism over positions
# comes from the architecture, whose positions do not wait for each other's outputs.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: invented speed-ups, and "no winner at inference"</strong></p>
#
# - The notes give "GPU utilisation < 30% for the RNN and > 90% for the transformer", a
#   "~100× speed-up", and "GPT-3 with an RNN: ~300 days instead of ~30 (10×)". No source is
#   given and none of these was measured; they are illustrations presented as data. The real
#   ratio depends on the hardware, the width and above all the batch size, as the step-time
#   table above shows (on one CPU thread, with a batch of 16, the GRU can even be the faster
#   one per token).
# - "Transformer training: the forward pass is 1 step." It is $L$ sequential steps, one per
#   layer (plus the sublayers inside each); what is parallel is the sequence dimension.
# - "At inference both are sequential: no winner." Both generate one token at a time, but a
#   transformer processes the prompt in parallel (the batch-1 rows of the table are the
#   prompt-processing case), and per generated token it pays one attention row over a growing
#   cache, where the RNN pays a constant step. Which one is cheaper depends on the context
#   length: that is the trade-off L03-Q24 measures.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how can exposure bias be reduced?</strong></p>
#
# <details><summary>Answer</summary>
#
# *Scheduled sampling* (Bengio et al., 2015) feeds the model its own predictions for a growing
# fraction of positions during training, which breaks the parallelism of a transformer's
# training step (the inputs are no longer known in advance). In practice, large language
# models keep plain teacher forcing and act at decoding time instead: sampling with a
# temperature and top-$p$ (MM-Q12) avoids the repetition loops that greedy decoding falls into,
# and fine-tuning on the model's own outputs (reinforcement learning from feedback) trains it
# on its own distribution.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: could an RNN be trained in parallel after all?</strong></p>
#
# <details><summary>Answer</summary>
#
# Yes, if its recurrence is *linear* in the state: $h_t = a_t \odot h_{t-1} + b_t$. Then the
# composition of two steps is again a step of the same form, and a parallel prefix scan
# computes all $h_t$ in $O(\log T)$ sequential rounds. Linear attention (L03-Q22) and
# state-space models (L03-Q24) are such RNNs; the GRU's gates depend nonlinearly on $h_{t-1}$,
# so it cannot be scanned this way.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q23")

# %% [markdown]
# ## L03-Q24 · What would you change with unlimited compute?
#
# > Suppose compute were free. Would the transformer still need improving, and in which
# > direction?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Unlimited *compute* is not unlimited *memory* or unlimited *time per token*. What grows
#   with every token a transformer reads or writes, whatever the compute budget?
# - Is there a layer that, like an RNN, keeps a fixed-size state, but, like attention, can be
#   trained in parallel?
# - A deployed model's weights are fixed. What happens if you fine-tune it on new text: what
#   does it gain, and what does it lose? Can the update be kept separate from the weights?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q24**
#
# <div class="course-answer" data-question="L03-Q24">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Compute does not buy everything. Three limits remain, and each is an active direction.
#
# **1. State that grows with the context.** A transformer's memory of the past is its KV cache:
# $O(n)$ per layer and sequence, read in full for every new token. Even with free arithmetic,
# memory capacity and bandwidth cap the context and the number of users per GPU. *State-space
# models* keep a fixed-size state instead. The core is a linear recurrence with a diagonal
# transition, per channel:
#
# $$h_t = a \odot h_{t-1} + b\,u_t, \qquad y_t = c^\top h_t + d\,u_t .$$
#
# Because it is linear, it has three equivalent forms: a recurrence (one step per token,
# constant state: for inference), a convolution with the kernel $K_s = c^\top \operatorname{diag}(a)^s b$
# (for training, in parallel), and a parallel scan. S4 (Gu et al., 2022) made this work on
# long sequences; Mamba (Gu and Dao, 2023) makes $a$, $b$, $c$ depend on the input
# ("selective"), which rules out the convolution but keeps the scan. The open question is the
# one L03-Q22 measured: a fixed state must compress, and exact recall suffers, which is why
# hybrids keep some attention layers.
#
# **2. Quadratic attention at very long context.** The learner's first point. With free compute
# the $n^2$ FLOPs would not matter, but the $n^2$ *time* at a fixed hardware speed still does
# for latency, and every sub-quadratic route of L03-Q22 loses something.
#
# **3. Frozen knowledge.** The learner's second point, and the deeper one: a trained model does
# not keep learning. Fine-tuning on new text teaches the new text and damages the old:
# **catastrophic forgetting** (McCloskey and Cohen, 1989; Kirkpatrick et al., 2017). Remedies
# include mixing old data back in (replay), penalising changes to important weights (EWC),
# retrieving knowledge at run time instead of storing it (RAG), and keeping updates *beside*
# the weights: a low-rank adapter (LoRA, Hu et al., 2021) trains $W + BA$ with $W$ frozen,
# learns less and forgets less (Biderman et al., 2024), and can be switched off to recover the
# original model exactly.
#
# So the answer is not "nothing, just scale it": memory per token, recall with bounded state,
# and learning after deployment are limits that more compute does not remove.
#
# </details>

# %% [markdown]
# ### Show it: one SSM layer, three forms
#
# `utils.ssm.DiagonalSSM` holds the decays $a = e^{-e^{\lambda}}$ (in $(0, 1)$ for any
# parameter $\lambda$, so always stable), and $b$, $c$, $d$, for 64 channels with 16 state
# variables each. Its three forms must give the same outputs:

# %% tags=["nbval-check-output"]
from utils.ssm import DiagonalSSM, ssm_kernel

ssm = DiagonalSSM(64, state_size=16).to(device)
u = torch.randn(2, 256, 64, device=device)
with torch.no_grad():
    y_recurrent = ssm(u, mode="recurrent")  # 256 sequential steps
    y_convolution = ssm(u, mode="convolution")  # one FFT convolution
    y_scan = ssm(u, mode="scan")  # log2(256) = 8 parallel rounds
print("convolution equals recurrence:", torch.allclose(y_convolution, y_recurrent, atol=1e-4))
print("scan equals recurrence:       ", torch.allclose(y_scan, y_recurrent, atol=1e-4))
print("sequential steps: recurrence", u.shape[1], " scan", math.ceil(math.log2(u.shape[1])),
      " convolution 1 (an FFT)")

# %% [markdown]
# ### Explore it: what the decay remembers
#
# The convolution kernel is the layer's memory: $K_s$ is how much an input $s$ steps ago
# still contributes. One channel with a single state variable has $K_s = c\,a^s b$, so the
# decay rate $\lambda$ ($a = e^{-\lambda}$) sets the memory length, about $1/\lambda$ steps.
# Move it, and watch the response to an input pulse at step 10.

# %%
def draw_memory(rate):
    """Kernel and pulse response of a one-state SSM channel with decay a = exp(-rate)."""
    a = torch.tensor([[math.exp(-rate)]])
    ones = torch.ones(1, 1)
    kernel = ssm_kernel(a, ones, ones, 100)[:, 0]
    pulse = torch.zeros(1, 100, 1)
    pulse[0, 10, 0] = 1.0
    from utils.ssm import ssm_convolution
    response = ssm_convolution(pulse, a, ones, ones, torch.zeros(1))[0, :, 0]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(kernel.numpy(), label="kernel K_s = a^s")
    ax.plot(response.numpy(), "--", label="response to a pulse at step 10")
    ax.axvline(10 + 1 / rate, color="gray", ls=":", label="pulse + 1/rate")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("step")
    ax.set_title(f"decay a = {math.exp(-rate):.3f}: memory of about {1 / rate:.0f} steps")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


interactive_figure(draw_memory, rate=[0.02, 0.05, 0.1, 0.2, 0.5], initial={"rate": 0.1})

# %% [markdown]
# `DiagonalSSM` spreads its initial rates from $10^{-3}$ to $10^{-1}$, so some channels remember
# for about a thousand steps and others for ten; training moves them.
#
# ### Show it: a constant state against a growing cache
#
# We generate 112 characters with the trained transformer and read the size of its KV cache
# after each token. Next to it: the state of a stack of the same depth and width made of
# `DiagonalSSM` layers with 16 state variables per channel, stepped token by token with
# `DiagonalSSM.step`.

# %% tags=["nbval-check-output"]
from utils.attention import KVCache


def cache_bytes(cache):
    """Bytes held by a KVCache: keys and values of every layer."""
    return sum(t.numel() * t.element_size() for t in cache.keys + cache.values if t is not None)


config = trained.config
cache = KVCache(config.n_layers)
ssm_stack = [DiagonalSSM(config.d_model, state_size=16).to(device) for _ in range(config.n_layers)]
states = [None] * config.n_layers
token = prompt[:, :1]
memory_rows = []
with torch.no_grad():
    for step in range(1, 113):
        logits, _ = trained(token, cache=cache)  # one new token against the cache
        token = logits[:, -1:].argmax(-1)
        u_t = torch.randn(1, config.d_model, device=device)  # stand-in input of the SSM stack
        for layer, ssm_layer in enumerate(ssm_stack):
            u_t, states[layer] = ssm_layer.step(u_t, states[layer])
        if step in (1, 16, 32, 64, 112):
            memory_rows.append({"tokens": step, "KV cache (KiB)": cache_bytes(cache) / 2**10,
                                "SSM state (KiB)": sum(s.numel() * s.element_size()
                                                       for s in states) / 2**10})
print(pd.DataFrame(memory_rows).set_index("tokens").to_string())
per_token = 2 * config.n_layers * config.n_kv_heads * config.head_dim * 4
print(f"KV cache per token: 2 × {config.n_layers} layers × {config.n_kv_heads * config.head_dim} "
      f"× 4 bytes = {per_token} bytes")

# %% [markdown]
# The cache grows by the same amount with every token, without bound; the SSM state is the same
# size after one token or a million. At this toy size the SSM state is larger than a short
# cache (16 numbers per channel against 2 per token), and the lines cross after 8 tokens (16
# state variables against 2 numbers per channel per token). For a real model the cache holds
# gigabytes per long conversation, which is the memory a fixed-state model saves.
#
# ### Show it: continual learning, forgetting, and a low-rank adapter
#
# New knowledge for the small model: a ledger of invented transactions ("ada gave bob 12 coins
# on day 3."), text unlike its Python documentation. We fine-tune it for a few dozen steps in
# two ways and measure the loss on the new text (learning) and on held-out documentation
# (forgetting):
#
# - **full fine-tuning**: every weight is trained;
# - **LoRA**: the base weights are frozen, and a rank-4 update $BA$ is trained beside each
#   attention projection (`utils.lora.add_lora`).

# %%
from utils.data import get_batch
from utils.lora import add_lora, lora_parameters, set_lora_enabled

ledger_rng = random.Random(0)
people = ["ada", "bob", "cleo", "dan", "eve", "finn", "gus", "hana"]
ledger = "".join(f"{giver} gave {taker} {ledger_rng.randint(2, 99)} coins on day "
                 f"{ledger_rng.randint(1, 30)}.\n"
                 for giver, taker in (ledger_rng.sample(people, 2) for _ in range(400)))
new_train, new_val = train_val_split(torch.tensor(char_tokenizer.encode(ledger)), 0.2)
old_val = held_out
steps_ft, batch_ft, block_ft = (200, 32, 128) if on_gpu else (30, 8, 64)


def loss_on(model, data):
    """Mean loss on 16 fixed windows of 128 characters of `data`."""
    x, y = get_batch(data, 16, 128, generator=torch.Generator().manual_seed(1), device=device)
    with torch.no_grad():
        return model(x, targets=y)[1].item()


def finetune(model, parameters, lr):
    """A few AdamW steps on the ledger; the same batches for every model."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    batches = torch.Generator().manual_seed(2)
    model.train()
    for _ in range(steps_ft):
        x, y = get_batch(new_train, batch_ft, block_ft, generator=batches, device=device)
        loss = model(x, targets=y)[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


base_weights = {name: p.detach().clone() for name, p in trained.named_parameters()}
full_model = copy.deepcopy(trained)
finetune(full_model, full_model.parameters(), lr=1e-3)
lora_model = copy.deepcopy(trained)
wrapped = add_lora(lora_model, targets=("q_proj", "k_proj", "v_proj", "o_proj"), r=4, alpha=8.0)
finetune(lora_model, lora_parameters(lora_model), lr=3e-3)

forgetting = pd.DataFrame([
    {"model": "base (before)", "loss on new text": loss_on(trained, new_val),
     "loss on old text": loss_on(trained, old_val)},
    {"model": "full fine-tuning", "loss on new text": loss_on(full_model, new_val),
     "loss on old text": loss_on(full_model, old_val)},
    {"model": "LoRA, adapter on", "loss on new text": loss_on(lora_model, new_val),
     "loss on old text": loss_on(lora_model, old_val)},
]).set_index("model")
set_lora_enabled(lora_model, False)
forgetting.loc["LoRA, adapter off"] = [loss_on(lora_model, new_val), loss_on(lora_model, old_val)]
set_lora_enabled(lora_model, True)
forgetting.round(3)

# %% tags=["nbval-check-output"]
n_lora = sum(p.numel() for p in lora_parameters(lora_model))
print(f"trainable parameters: full {trained.num_parameters():,}, LoRA {n_lora:,} "
      f"({n_lora / trained.num_parameters():.1%}) in {len(wrapped)} wrapped projections")
print("LoRA left the base weights untouched:",
      all(torch.equal(p, base_weights[name.replace(".base.", ".")])
          for name, p in lora_model.named_parameters() if not name.endswith((".A", ".B"))))
off = forgetting.loc["LoRA, adapter off"]
print("adapter off gives the base model back exactly:",
      bool((off == forgetting.loc["base (before)"]).all()))
print("both fine-tunings learned the new text:",
      bool((forgetting.iloc[1:3, 0] < forgetting.iloc[0, 0]).all()))
print("full fine-tuning forgot more of the old text than LoRA:",
      bool(forgetting.iloc[1, 1] > forgetting.iloc[2, 1] > forgetting.iloc[0, 1]))

# %% [markdown]
# Full fine-tuning learns the ledger fastest and damages the old knowledge most: a few dozen
# steps on new text raise the loss on the documentation sharply. LoRA, with a small fraction of
# the parameters, learns the ledger a little more slowly and forgets less, but *not nothing*:
# with the adapter on, the model is a different function. What LoRA guarantees is that the
# base weights are untouched, so switching the adapter off restores the original model to the
# last digit, and one base model can carry many adapters. That is modularity, not continual
# learning yet: the model still does not integrate new knowledge without a cost to the old.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "with unlimited compute, the main job is still to bring n² down to n"</strong></p>
#
# The learner's first point: "without changing the essence of QKV, the main thing is how to
# reduce $n^2$ to $n$". With compute truly unlimited, the $n^2$ FLOPs would be the one cost
# that no longer matters. What remains is memory, not arithmetic: the KV cache grows with every
# token (the table above), and a fixed-state alternative pays in recall (L03-Q22). The
# learner's second point, that a model "is fixed when it leaves the factory" and should keep
# learning like a person, is the limit that compute does not touch at all, and the forgetting
# table shows why it is hard.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: what LoRA guarantees</strong></p>
#
# The notes present LoRA as the way to let a model "keep updating, like a person growing", with
# "a few minutes of training". Two corrections, both measured above: with the adapter *on*,
# the model does forget part of its old text (less than with full fine-tuning, not zero); what
# is exact is the recovery of the base model with the adapter *off*, because the base weights
# never change. LoRA makes updates cheap and separable; it does not by itself solve catastrophic
# forgetting. (The notes' sizes, "a few MB, a few minutes", depend on the model; for this one
# the adapter has the parameter count printed above.) The notes' cost figures at $n = 100$K
# are corrected in L03-Q22.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why does Mamba give up the convolution form?</strong></p>
#
# <details><summary>Answer</summary>
#
# Because its $a$, $b$, $c$ depend on the current input ("selection"), so the system is no
# longer time-invariant: there is no single kernel $K$ to convolve with. The recurrence is
# still linear in the state, so the parallel scan still works (our `ssm_scan` accepts the same
# pair-combining rule with a different $a$ at each step), and Mamba implements it as a fused
# GPU kernel. Selection is what lets it choose what to keep in its fixed state, which narrows
# (but does not close) the recall gap of L03-Q22.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how could full fine-tuning forget less?</strong></p>
#
# <details><summary>Answer</summary>
#
# Mix old data back into the batches (replay), so the loss keeps asking for the old knowledge;
# or penalise moving the weights that mattered for it, $\lambda \sum_i F_i(\theta_i -
# \theta_i^*)^2$ with $F_i$ the Fisher information (elastic weight consolidation, Kirkpatrick et
# al., 2017); or lower the learning rate and train fewer steps, which trades learning for
# remembering. Try replay here: add windows of `old_val`'s training counterpart to each batch of
# `finetune` and re-measure the table.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q24")

# %% [markdown]
# ## Build it yourself
#
# Write FlashAttention's inner loop: attention over the keys **one block at a time**, with an
# online softmax. Your function must
#
# - accept `q` of shape `(..., Tq, d)`, `k` of shape `(..., Tk, d)`, `v` of shape
#   `(..., Tk, d_v)`, with any leading batch or head dimensions, and an int `block_size`;
# - read `k` and `v` in slices `[j : j + block_size]` (the last one may be shorter), keeping per
#   query a running maximum, a running sum and a running output, rescaled by
#   $e^{m_\text{old} - m_\text{new}}$ whenever the maximum grows;
# - return the output only, shape `(..., Tq, d_v)`, in the dtype of `q`, equal to
#   $\operatorname{softmax}(qk^\top/\sqrt{d})\,v$.
#
# The checker tries several cases (one block, partial last block, block size 1, heads,
# $d_v \ne d$, scores in the hundreds) and then records every tensor your function creates: a
# full $T_q \times T_k$ score matrix fails, even if the values are right. As committed, the
# stub raises `NotImplementedError`, and the checker says so.

# %%
def my_tiled_attention(q, k, v, block_size):
    """Your block-by-block attention: returns (..., Tq, d_v)."""
    # 1. running max m = -inf, running sum l = 0, running output acc = 0, per query
    # 2. for each block of keys: scores, new max, rescale l and acc, add the block's terms
    # 3. return acc / l
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_tiled_attention

check_tiled_attention(my_tiled_attention)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_tiled_attention(q, k, v, block_size):
#     scale = 1 / math.sqrt(q.shape[-1])
#     m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype, device=q.device)
#     l = torch.zeros((*q.shape[:-1], 1), dtype=q.dtype, device=q.device)
#     acc = torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)
#     for j in range(0, k.shape[-2], block_size):
#         s = q @ k[..., j:j + block_size, :].transpose(-2, -1) * scale  # (..., Tq, block)
#         m_new = torch.maximum(m, s.amax(-1, keepdim=True))
#         alpha = torch.exp(m - m_new)  # exp(-inf) = 0 on the first block
#         p = torch.exp(s - m_new)
#         l = alpha * l + p.sum(-1, keepdim=True)
#         acc = alpha * acc + p @ v[..., j:j + block_size, :]
#         m = m_new
#     return acc / l
# ```
#
# The statistics keep a trailing dimension of size 1 (`keepdim=True`) so that they broadcast
# over the keys and over the value dimension. `utils.flash.tiled_attention` is the same loop
# with blocks of queries, a causal mask and an optional count of the elements moved.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# This chapter added four modules, each tested against an independent reference in `tests/`:
#
# - `utils.flash`: `tiled_attention` (online softmax, blocks of queries and keys, causal),
#   `flash_attention` (the same with a recomputing backward pass), `attention_io_elements`
#   (bytes moved), and two meters, `peak_memory_bytes` and `saved_tensor_bytes`;
# - `utils.subquadratic`: `linear_attention_recurrent`, `sliding_window_mask`,
#   `sliding_window_attention` and `linformer_attention` (the parallel forms of linear
#   attention stay in `utils.attention`);
# - `utils.ssm`: `DiagonalSSM` and its recurrent, convolution and scan forms;
# - `utils.lora`: `LoRALinear`, `add_lora`, `set_lora_enabled`, `lora_parameters`;
#
# and `utils.timing.best_time`, the timer of every table above.
#
# ## Summary
#
# - **Q21** The $n \times n$ weights (per head, per sequence, per layer) are the training-time
#   bottleneck; the KV cache, which saves order-$n$ work per generated token, is the
#   inference-time one. FlashAttention's online softmax computes exact attention tile by tile:
#   $O(n)$ memory, a sixth more FLOPs with recomputation, and about a quarter of the HBM
#   traffic, which is why it is faster.
# - **Q22** Linear attention reassociates the products ($O(nd^2)$) and is an RNN with a
#   $d \times d$ state; local windows compute only a band ($O(nwd)$); low-rank projections
#   compress positions ($O(nrd)$). Below the crossover length they are not faster, and on
#   associative recall each loses what it threw away.
# - **Q23** Teacher forcing makes every input known; the absence of output-to-input
#   dependencies inside a layer makes all positions one batch of matrix products. An RNN keeps
#   a chain of $T$ steps and can only parallelise over the batch. Training on true prefixes has
#   a price: exposure bias at generation.
# - **Q24** Compute does not remove a growing cache, limited recall with bounded state, or
#   frozen knowledge. A diagonal SSM has a constant state and three equivalent forms;
#   fine-tuning forgets, LoRA forgets less and can be switched off exactly.
#
# Next: the challenge problems (L03-C1 to C4) put numbers on FLOPs, memory and cost.
#
# ## References
#
# - McCloskey, M., Cohen, N. J. (1989). *Catastrophic Interference in Connectionist Networks:
#   The Sequential Learning Problem*. Psychology of Learning and Motivation, 24.
# - Bengio, S., Vinyals, O., Jaitly, N., Shazeer, N. (2015). *Scheduled Sampling for Sequence
#   Prediction with Recurrent Neural Networks*. NeurIPS. arXiv:1506.03099.
# - Kirkpatrick, J. et al. (2017). *Overcoming Catastrophic Forgetting in Neural Networks*.
#   PNAS. arXiv:1612.00796.
# - Milakov, M., Gimelshein, N. (2018). *Online Normalizer Calculation for Softmax*.
#   arXiv:1805.02867.
# - Child, R., Gray, S., Radford, A., Sutskever, I. (2019). *Generating Long Sequences with
#   Sparse Transformers*. arXiv:1904.10509.
# - Beltagy, I., Peters, M. E., Cohan, A. (2020). *Longformer: The Long-Document Transformer*.
#   arXiv:2004.05150.
# - Brown, T. et al. (2020). *Language Models are Few-Shot Learners* (GPT-3). NeurIPS.
#   arXiv:2005.14165.
# - Katharopoulos, A., Vyas, A., Pappas, N., Fleuret, F. (2020). *Transformers are RNNs: Fast
#   Autoregressive Transformers with Linear Attention*. ICML. arXiv:2006.16236.
# - Wang, S., Li, B. Z., Khabsa, M., Fang, H., Ma, H. (2020). *Linformer: Self-Attention with
#   Linear Complexity*. arXiv:2006.04768.
# - Zaheer, M. et al. (2020). *Big Bird: Transformers for Longer Sequences*. NeurIPS.
#   arXiv:2007.14062.
# - Choromanski, K. et al. (2021). *Rethinking Attention with Performers*. ICLR.
#   arXiv:2009.14794.
# - Hu, E. J. et al. (2021). *LoRA: Low-Rank Adaptation of Large Language Models*. ICLR 2022.
#   arXiv:2106.09685.
# - Gu, A., Goel, K., Ré, C. (2022). *Efficiently Modeling Long Sequences with Structured State
#   Spaces* (S4). ICLR. arXiv:2111.00396.
# - Gu, A., Gupta, A., Goel, K., Ré, C. (2022). *On the Parameterization and Initialization of
#   Diagonal State Space Models* (S4D). NeurIPS. arXiv:2206.11893.
# - Dao, T., Fu, D. Y., Ermon, S., Rudra, A., Ré, C. (2022). *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness*. NeurIPS. arXiv:2205.14135.
# - Dao, T. (2023). *FlashAttention-2: Faster Attention with Better Parallelism and Work
#   Partitioning*. arXiv:2307.08691.
# - Gu, A., Dao, T. (2023). *Mamba: Linear-Time Sequence Modeling with Selective State Spaces*.
#   arXiv:2312.00752.
# - Jiang, A. Q. et al. (2023). *Mistral 7B*. arXiv:2310.06825.
# - Kwon, W. et al. (2023). *Efficient Memory Management for Large Language Model Serving with
#   PagedAttention*. SOSP. arXiv:2309.06180.
# - Arora, S. et al. (2024). *Zoology: Measuring and Improving Recall in Efficient Language
#   Models*. ICLR. arXiv:2312.04927.
# - Biderman, D. et al. (2024). *LoRA Learns Less and Forgets Less*. TMLR. arXiv:2405.09673.
