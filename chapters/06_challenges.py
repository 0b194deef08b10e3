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
# # 6 · Four challenge problems: FLOPs, memory, bandwidth and money
#
# The question sheet of Lecture 03 ends with four problems that tie the architecture of the
# previous chapters to the resources it consumes. This chapter works them out, by formula and
# by measurement (L03-C1 to C4 of the course):
#
# 1. How many FLOPs does a block cost, and what share is attention?
# 2. How much memory does training take?
# 3. Is a transformer compute-bound or memory-bound?
# 4. Why did decoder-only models win on economics?
#
# **Prerequisites.** Chapter 1 (self-attention and its $O(n^2 d + n d^2)$ cost); what a
# transformer block contains (attention, MLP, norms, residuals); matrix shapes; the idea of a
# gradient and of the AdamW optimiser. No GPU is needed.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: they count FLOPs and bytes with PyTorch's
# own instruments and time real kernels on your machine. Boxes mark a typical wrong first answer
# (⚠️) and places where the source notes of this course were wrong (✏️); every number in them is
# computed by a cell above. At the end you write four one-line estimators yourself and a checker
# grades them.
#
# **About the measurements.** Timings change from run to run and from machine to machine.
# Cells that *time* something print their results, but no claim of the text depends on the
# exact value; where the text quotes a measured figure it says "on the machine that built this
# page", and the cell that measured it is just above. Counts (FLOPs, bytes, parameters) are
# exact and the same everywhere. On a GPU the experiments grow automatically.
#
# The whole notebook runs on a laptop CPU in well under a minute; it downloads nothing.

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
import weakref
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from utils.accounting import (
    activation_memory_bytes,
    cost_per_million_tokens,
    count_parameters,
    flops_per_token,
    forward_flops,
    matmul_intensity,
    roofline_flops,
    training_state_bytes,
)
from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.model import Block, GPTConfig, TinyGPT
from utils.plots import use_style
from utils.quiz import quiz
from utils.timing import best_time

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
on_gpu = device.type == "cuda"
print("device:", device)


def timed(fn, **options):
    """Best time of fn() in seconds (utils.timing.best_time on this chapter's device).

    On a CPU it measures this thread's CPU time, which other programs on the machine barely
    disturb; on a GPU the wall clock after synchronising.
    """
    return best_time(fn, device, **options)


# A GPT-2-style block (LayerNorm, GELU MLP of width 4d, learned positions): the counting
# conventions of the papers this chapter quotes were written for it.
def gpt2_style(**overrides):
    """A small GPT-2-style configuration; any field can be overridden."""
    fields = dict(ffn="gelu", norm="layernorm", position="learned")
    fields.update(overrides)
    return GPTConfig.nano(**fields)


# Shapes of two real models, used for the paper-and-pencil parts (no weights are created).
minimind = GPTConfig.minimind2_small()  # MiniMind2-small, about 26M parameters
llama7b = GPTConfig(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, d_ff=11008,
                    tie_embeddings=False, context_length=4096)  # Llama-2-7B's shape
with torch.device("meta"):  # shapes only: no memory, no initialisation time
    n_minimind = count_parameters(TinyGPT(minimind))
    n_7b = count_parameters(TinyGPT(llama7b))
print(f"MiniMind2-small: {n_minimind:,} parameters;  Llama-2-7B shape: {n_7b:,} parameters")

# %% [markdown]
# ## L03-C1 · How many FLOPs does a block cost, and what share is attention?
#
# > Count the floating-point operations of one transformer block, forward and backward. What
# > share goes to attention and what share to the feed-forward network, and how does that
# > change with the width and the sequence length? How do you get from FLOPs to training time?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - A matrix product $(m \times k)(k \times n)$ does $mkn$ multiply-adds. How many FLOPs is
#   that?
# - List every matrix product of a block: the projections, the two products inside attention,
#   the MLP. Which ones grow with $T \cdot d^2$ and which with $T^2 \cdot d$?
# - The backward pass needs the gradient with respect to the input *and* to the weights of
#   every matmul. How many matmuls of the same size is that?
# - A GPU's datasheet gives a peak FLOP/s. Does a training run reach it?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-C1**
#
# <div class="course-answer" data-question="L03-C1">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Counting.** One multiply-add is 2 FLOPs, so $(m \times k)(k \times n)$ costs $2mkn$. For one
# sequence of $T$ tokens, width $d$, MLP width $f$ (GPT-2: $f = 4d$), one block does:
#
# | part | matmuls | forward FLOPs |
# |---|---|---|
# | Q, K, V and output projections | four $(T \times d)(d \times d)$ | $8Td^2$ |
# | attention scores $QK^\top$ and $AV$ | per head $(T \times d_h)(d_h \times T)$ and $(T \times T)(T \times d_h)$ | $4T^2 d$ |
# | MLP | $(T \times d)(d \times f)$ and back | $4Tdf = 16Td^2$ |
#
# in total $24Td^2 + 4T^2d$. The number of heads does not appear: the heads split $d$, they do
# not multiply the work. Norms, softmax, GELU and residual additions are $O(Td)$ and are left
# out (they cost *time*, though: see C3). A SwiGLU MLP with three matrices of width
# $f \approx \tfrac{8}{3}d$ costs the same $16Td^2$; grouped-query attention shrinks only the K
# and V projections.
#
# **Backward = 2 × forward.** For $Y = XW$ the backward pass computes $\partial X = \partial Y\,
# W^\top$ and $\partial W = X^\top \partial Y$: two matmuls of the forward's size. A training
# step is therefore $3\times$ the forward, $72Td^2 + 12T^2d$ per block. Summed over the model
# and divided by $T$ this is the famous **$6N$ FLOPs per token** ($2N$ forward) for a model of
# $N$ matmul parameters (Kaplan et al., 2020), plus the attention term.
#
# **The share of attention.** The part that mixes positions, $4T^2d$, is a fraction
# $\frac{4T^2d}{24Td^2 + 4T^2d} = \frac{T}{6d + T}$ of the block. It equals the MLP at
# $T = 4d$ and all the linear layers together at $T = 6d$. A causal kernel such as
# FlashAttention skips the masked upper triangle and does only half of it, $2T^2d$, which moves
# the crossovers to $8d$ and $12d$. With $d = 4096$ that is tens of thousands of tokens: at
# the lengths models are *trained* on, the MLP and the projections dominate, and attention's
# share grows only with long contexts. As models get wider at a fixed context, the share of
# attention *falls* (this is L01-Q1).
#
# **From FLOPs to time.** Training on $D$ tokens costs $C \approx 6ND$ FLOPs. A GPU never runs
# at its datasheet peak: the fraction it achieves on the model's FLOPs is the **model-FLOPs
# utilisation** (MFU; Chowdhery et al., 2022). Then
# $$t \approx \frac{6ND}{\text{GPUs} \times \text{peak} \times \text{MFU}}.$$
# Published large runs reach roughly 40-50 % MFU; the cells below measure it on this machine and
# recover it from a published training run.
#
# </details>

# %% [markdown]
# ### Show it: count the FLOPs of one block with PyTorch
#
# `torch.utils.flop_counter.FlopCounterMode` intercepts every matmul PyTorch runs and adds up
# $2mkn$. We run one GPT-2-style block (explicit attention, so that the $T \times T$ products
# are visible to the counter) forward, then forward and backward, and compare with the formula
# of `utils.accounting`, which is tested against the same counter.

# %%
T_c1, d_c1 = 128, 128
block_config = gpt2_style(vocab_size=1, d_model=d_c1, context_length=T_c1,
                          use_fused_attention=False)
block = Block(block_config)
x_block = torch.randn(1, T_c1, d_c1, requires_grad=True)  # one sequence

with FlopCounterMode(display=False) as counter:
    block(x_block)
counted_forward = counter.get_total_flops()
with FlopCounterMode(display=False) as counter:
    block(x_block).sum().backward()
counted_step = counter.get_total_flops()

one_layer = forward_flops(gpt2_style(vocab_size=1, d_model=d_c1, n_layers=1,
                                     context_length=T_c1), T_c1)
formula_forward = one_layer["total"] - one_layer["lm_head"]

# %% tags=["nbval-check-output"]
print(f"counted forward FLOPs:       {counted_forward:,}")
print(f"formula 24 T d^2 + 4 T^2 d:  {24 * T_c1 * d_c1**2 + 4 * T_c1**2 * d_c1:,}")
print("utils.accounting agrees:", formula_forward == counted_forward)
print("forward + backward = 3 x forward:", counted_step == 3 * counted_forward)
print("parts:", {k: v for k, v in one_layer.items() if k not in ("total", "lm_head")})

# %% [markdown]
# The counter and the formula agree to the last FLOP, and the backward pass costs exactly twice
# the forward. At $T = d = 128$ the attention scores are $4T^2d / (24Td^2 + 4T^2d) = 1/7$ of the
# block, as $T/(6d + T)$ predicts.
#
# ### Show it: the share of attention as width and length grow
#
# The table gives the share of the attention scores in the forward FLOPs of one block, for a
# GPT-2-small-like width ($d = 768$) and a 7B-like width ($d = 4096$, SwiGLU), counted dense
# (as `FlopCounterMode` and most MFU figures do) and with a causal kernel that skips the masked
# half.

# %%
def block_parts(config, seq_len, causal=False):
    """Forward FLOPs of one block by part; causal=True halves the attention scores."""
    one = forward_flops(replace(config, n_layers=1), seq_len)
    scores = one["attention_scores"] // (2 if causal else 1)
    return {"projections": one["attention_proj"], "scores": scores, "ffn": one["ffn"]}


gpt2_small = gpt2_style(vocab_size=50257, d_model=768, n_heads=12, n_layers=12,
                        context_length=1024)
rows = []
for name, config in [("d = 768 (GPT-2 small)", gpt2_small), ("d = 4096 (7B)", llama7b)]:
    for T in [512, 2048, 8192, 32768]:
        row = {"model": name, "T": T}
        for kernel, causal in [("dense", False), ("causal", True)]:
            parts = block_parts(config, T, causal)
            row[f"scores share, {kernel}"] = parts["scores"] / sum(parts.values())
        rows.append(row)
share_table = pd.DataFrame(rows).set_index(["model", "T"])

# %% tags=["nbval-check-output"]
print(share_table.round(3).to_string())

# %% [markdown]
# ### Explore it: where attention takes over
#
# Each frame stacks the three parts of the forward FLOPs of one block as the sequence grows.
# The dotted lines mark where the scores equal the MLP ($T = 4d$ dense, $8d$ causal) and where
# they equal everything else together ($6d$, $12d$).

# %%
lengths = np.unique(np.logspace(7, 17, 41, base=2).astype(int))  # 128 ... 131072 tokens


def draw_shares(d_model, kernel):
    """Stacked shares of projections, attention scores and MLP in one block's forward FLOPs."""
    config = gpt2_style(vocab_size=1, d_model=d_model, n_heads=max(1, d_model // 64),
                        context_length=int(lengths[-1]))
    causal = kernel == "causal kernel"
    parts = [block_parts(config, int(T), causal) for T in lengths]
    totals = np.array([sum(p.values()) for p in parts], dtype=float)
    stacks = [np.array([p[key] for p in parts]) / totals for key in ("projections", "scores", "ffn")]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.stackplot(lengths, *stacks, labels=["Q, K, V, O projections", "attention scores QKᵀ, AV",
                                           "MLP"], colors=["#6c8ebf", "#f75c03", "#392061"],
                 alpha=0.85)
    factor = 2 if causal else 1
    for multiple, label, side in [(4, "scores = MLP", "right"), (6, "scores = the rest", "left")]:
        T_cross = factor * multiple * d_model
        if T_cross <= lengths[-1]:
            ax.axvline(T_cross, color="black", linestyle=":", linewidth=1.2)
            shift = 0.95 if side == "right" else 1.05  # label on the outer side of its line
            ax.text(T_cross * shift, 0.04, f"{label}\nT = {T_cross:,}", fontsize=8, ha=side,
                    color="white")
    ax.set_xscale("log", base=2)
    ax.set_xlim(lengths[0], lengths[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("share of the block's forward FLOPs")
    ax.set_title(f"d_model = {d_model}, {kernel}")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.1), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


interactive_figure(draw_shares, d_model=[512, 768, 2048, 4096, 12288],
                   kernel=["dense count", "causal kernel"],
                   initial={"d_model": 4096, "kernel": "dense count"})

# %% [markdown]
# Slide the width up at a fixed length and the orange band shrinks: wider models spend a
# *smaller* share on attention. Slide the length up and it grows, with the crossover at a
# multiple of $d$. The causal kernel pushes every crossover twice as far.
#
# ### Show it: from FLOPs to time, on this machine
#
# Two measurements. First the machine's **matmul peak**: the FLOP/s of the fastest of three
# square matrix products, the best case any kernel can hope for (a CPU has no single datasheet number we could trust
# here; on a GPU compare with the datasheet too). Then a real **training step** (forward,
# backward, AdamW) of a small GPT: its FLOPs by the formula, divided by its measured time, give
# the achieved FLOP/s, and their ratio to the peak is the model-FLOPs utilisation.

# %%
mm_dtype = torch.bfloat16 if on_gpu else torch.float32
peak_flops = 0.0
for mm_size in ((2048, 4096, 8192) if on_gpu else (256, 512, 1024)):  # the best of three sizes
    a_mm = torch.randn(mm_size, mm_size, device=device, dtype=mm_dtype)
    b_mm = torch.randn(mm_size, mm_size, device=device, dtype=mm_dtype)
    c_mm = torch.empty(mm_size, mm_size, device=device, dtype=mm_dtype)
    seconds = timed(lambda: torch.mm(a_mm, b_mm, out=c_mm))  # noqa: B023 (called right here)
    peak_flops = max(peak_flops, 2 * mm_size**3 / seconds)

step_config = GPTConfig.nano(vocab_size=96, context_length=256 if on_gpu else 128,
                             d_model=512 if on_gpu else 128, n_heads=8 if on_gpu else 4,
                             n_layers=8 if on_gpu else 4)
step_model = TinyGPT(step_config).to(device)
optimizer = torch.optim.AdamW(step_model.parameters(), lr=1e-3)
B_step, T_step = (64 if on_gpu else 8), step_config.context_length
batch = torch.randint(96, (B_step, T_step + 1), device=device)


def train_step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
        _, loss = step_model(batch[:, :-1], batch[:, 1:])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


step_seconds = timed(train_step, min_total=0.5, max_repeat=3)
step_flops = flops_per_token(step_config, T_step) * B_step * T_step  # 6N + attention, per token
achieved = step_flops / step_seconds
print(f"matmul peak (best of three sizes, {str(mm_dtype)[6:]}): {peak_flops / 1e9:.1f} GFLOP/s")
print(f"training step: {step_flops / 1e9:.2f} GFLOP in {step_seconds * 1e3:.0f} ms "
      f"-> {achieved / 1e9:.1f} GFLOP/s, MFU = {achieved / peak_flops:.0%} of the matmul peak")

# %% [markdown]
# On the machine that built this page (its CPU, one thread) the training step reached
# 54.6 GFLOP/s, 54 % of the 102.0 GFLOP/s matmul peak measured just before. The rest
# of the time goes to work the formula does not count or that cannot run at the peak: norms,
# softmax, the optimizer, Python overhead and matmuls too small to keep the machine busy. Against
# a GPU's datasheet peak the same losses are why large runs report 40-50 % MFU.
#
# The $6ND$ rule itself can be checked against published runs. GPT-3 (175B parameters,
# 300B tokens) reports $3.14 \times 10^{23}$ training FLOPs (Brown et al., 2020, Table D.1).
# Llama 2 7B was trained on 2T tokens in 184,320 A100-80GB GPU-hours (Touvron et al., 2023,
# Table 2); with the A100's dense bf16 peak of 312 TFLOP/s (NVIDIA A100 datasheet) that fixes
# the MFU it ran at:

# %%
A100_PEAK, H100_PEAK = 312e12, 989e12  # dense bf16 FLOP/s, NVIDIA datasheets
gpt3_flops = 6 * 175e9 * 300e9
llama_flops = 6 * n_7b * 2e12
llama_mfu = llama_flops / (184_320 * 3600 * A100_PEAK)

# %% tags=["nbval-check-output"]
print(f"GPT-3: 6 N D = {gpt3_flops:.3g} FLOPs (reported: 3.14e+23)")
print(f"Llama 2 7B: 6 N D = {llama_flops:.3g} FLOPs -> implied MFU on A100s = {llama_mfu:.2f}")

# %% [markdown]
# The rule reproduces GPT-3's figure to within a third of a percent, and Llama 2's published
# GPU-hours imply an MFU near 40 %. The same arithmetic predicts a training run: MiniMind2-small
# on a "compute-optimal" 20 tokens per parameter (Hoffmann et al., 2022), on one H100 at an
# *assumed* 40 % MFU, and on this machine at the MFU just measured:

# %%
tokens_minimind = 20 * n_minimind
minimind_flops = flops_per_token(minimind, 512) * tokens_minimind  # 6N plus attention at T=512
print(f"MiniMind2-small, {tokens_minimind / 1e6:.0f}M tokens: {minimind_flops:.3g} FLOPs")
print(f"  one H100 at 40% MFU: {minimind_flops / (0.4 * H100_PEAK) / 60:.1f} minutes")
print(f"  this machine at the measured {achieved / 1e9:.1f} GFLOP/s: "
      f"{minimind_flops / achieved / 86400:.0f} days")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "a block costs O(n²·d)"</strong></p>
#
# Asked for the complexity of attention, the learner of the source notes answered
# "O(n²·d)". That is the cost of the part that mixes positions, and it is the part that grows
# fastest with $n$, but it is not the cost of the layer, let alone of the block: the
# projections ($8nd^2$) and the MLP ($16nd^2$) are $O(nd^2)$ and dominate until $n = 6d$ (dense)
# or $12d$ (causal), as the table and the figure above show. For a 7B-shaped model trained at
# 4096 tokens, the scores are a minority of the FLOPs. Big-O hides exactly the constants
# (6 and 4) that decide where the crossover lies.
#
# </div>

# %% [markdown]
# The notes themselves made the same slip with numbers. The cell below recomputes their
# examples with the full count (GPT-2 small: $f = 4d$; the 16K-token case with $d = 4096$ and a
# GELU MLP of width $4d$).

# %%
def dense_parts(T, d):
    """Forward FLOPs of a GPT-2-style block (f = 4d), dense attention scores."""
    return {"projections": 8 * T * d * d, "scores": 4 * T * T * d, "mlp": 16 * T * d * d}


notes_examples = [("GPT-2 small, n = 1024, d = 768", 1024, 768),
                  ("GPT-3, n = 2048, d = 12288", 2048, 12288),
                  ("n = 2048, d = 4096", 2048, 4096),
                  ("n = 16384, d = 4096", 16384, 4096)]

# %% tags=["nbval-check-output"]
for name, T, d in notes_examples:
    p = dense_parts(T, d)
    print(f"{name}: scores {p['scores']:.3g}, MLP {p['mlp']:.3g}, "
          f"scores share of the block {p['scores'] / sum(p.values()):.1%}")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: attention's FLOPs and where it becomes the bottleneck</strong></p>
#
# The notes count attention as $n^2 d$ and the MLP as $2 n d \cdot 4d$, and conclude that at
# $n = 2048$, $d = 4096$ "attention is the bottleneck" and that at $n = 16384$ it is "the absolute
# bottleneck". Counting 2 FLOPs per multiply-add and both products on each side:
#
# - attention scores are $4n^2d$, four times the notes' figure (GPT-2 small: $3.22 \times 10^9$,
#   not 805M; GPT-3 at 2048 tokens: $2.06 \times 10^{11}$, not 51B);
# - the MLP is $16nd^2$, twice the notes' figure ($9.66 \times 10^9$ for GPT-2 small,
#   $4.95 \times 10^{12}$ for GPT-3);
# - at $n = 2048$, $d = 4096$ the scores are only 7.7 % of the block: the MLP and the
#   projections are the bottleneck, not attention;
# - at $n = 16384 = 4d$ the scores *equal* the MLP ($4.40 \times 10^{12}$ each): this is exactly
#   the crossover, with the scores at 40 % of the block, not an "absolute" bottleneck.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why do papers count the masked half anyway?</strong></p>
#
# A causal kernel skips about half of the $T \times T$ work. Why do most MFU figures still count
# the dense $4T^2d$?
#
# <details><summary>Answer</summary>
#
# Convention and comparability. The $6N$ + dense-attention count is a property of the model,
# not of the kernel, so two systems training the same model can be compared by it. Counting the
# dense product slightly *flatters* a causal implementation's MFU (it is credited with FLOPs it
# skipped); at training lengths where the scores are a small share the difference is small, but
# at long contexts it is not, and careful papers say which count they use (Chowdhery et al.,
# 2022, write the attention term into their MFU formula explicitly).
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does generating a token also cost 2N FLOPs?</strong></p>
#
# With a KV cache, one new token goes through every weight once. What does it cost, and what
# is different about it?
#
# <details><summary>Answer</summary>
#
# About $2N$ FLOPs plus $4 t\, d$ per layer for attending to the $t$ cached positions: the same
# FLOPs per token as the forward pass of training. What differs is the *shape*: a single token
# is a $(1 \times d)(d \times d)$ matrix-vector product, which reads every weight from memory to
# do two FLOPs with it. The FLOP count says nothing about time here; the memory traffic does
# (C3 and C4).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-C1")

# %% [markdown]
# ## L03-C2 · How much memory does training take?
#
# > What does the forward pass have to keep for the backward pass? Where is the memory peak of
# > a training step, and how does activation checkpointing lower it? Add it all up, in bytes,
# > for MiniMind2-small and for a 7B model.

# %% [markdown]
# <details><summary>Hints</summary>
#
# - To compute $\partial W = X^\top \partial Y$ for $Y = XW$, which tensor of the forward pass
#   must still exist during the backward pass?
# - Besides the weights, what does AdamW keep per parameter? What does mixed precision add?
# - During the backward pass, activations are freed layer by layer while gradients appear
#   layer by layer. When is the sum largest?
# - If you throw a layer's activations away, what must you do to get them back?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-C2**
#
# <div class="course-answer" data-question="L03-C2">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Training memory has two parts with different scaling.
#
# **Per parameter, whatever the batch.** With mixed precision and AdamW: bf16 weights (2 bytes)
# and gradients (2), an fp32 master copy of the weights (4) and AdamW's two fp32 moments $m$ and
# $v$ (8): **16 bytes per parameter** (Rajbhandari et al., 2020). Plain fp32 training is also
# $4 + 4 + 8 = 16$. A 7B model needs about 108 GB for this alone: more than one 80 GB GPU, before
# a single activation, which is why large runs shard these states across GPUs (ZeRO, FSDP).
#
# **Per token, per layer: the activations.** Every operation whose backward pass needs its
# input (or output) keeps it: the inputs of the norms and of every matmul ($\partial W =
# X^\top \partial Y$ needs $X$), $Q$, $K$, $V$, the MLP's hidden pre- and post-activation, and,
# unless a fused kernel recomputes it, the softmax output, $a \cdot s^2$ per sequence and layer.
# Korthikanti et al. (2022) count $s b h (34 + 5 a s / h)$ bytes per layer for a GPT layer in
# 16-bit with dropout: linear in the batch $b$ and the width $h$, and quadratic in the length $s$
# only through the stored attention probabilities.
#
# **The peak.** The forward pass only adds activations; the backward pass frees each layer's
# activations after using them while the gradients appear. So the activations peak at the end of
# the forward pass, and the step's peak is weights + optimizer state + all activations (+ the
# gradients if they are kept between steps), plus the temporary buffers of the largest
# operation (often the logits and their gradient, $b \cdot s \cdot V$ values).
#
# **Checkpointing** (Chen et al., 2016) keeps only each block's input during the forward pass
# and recomputes the block's inside when the backward pass reaches it. The activations drop
# from $L \times$ (everything in a block) to $L \times$ (one $b \times s \times h$ tensor) plus
# one block's worth, at the price of a second forward pass: about $4/3$ of the FLOPs.
#
# </details>

# %% [markdown]
# ### Show it: count what the forward pass saves
#
# `torch.autograd.graph.saved_tensors_hooks(pack, unpack)` calls `pack` on every tensor that
# autograd saves for the backward pass. We count their bytes (once per storage, since the same
# tensor is often saved by two operations, and leaving out the weights, which exist anyway) for a
# small GPT-2-style model, and compare with `utils.accounting.activation_memory_bytes`, which
# implements the Korthikanti et al. count. The count runs on the CPU in fp32 so its numbers are
# the same on every machine.

# %%
class SavedTensorCounter:
    """Record the bytes autograd saves for the backward pass, and when they are freed.

    Inside ``with SavedTensorCounter(model) as c:`` every saved tensor that is not one of the
    model's parameters is counted once per storage. The saved tensors are wrapped in handles;
    when autograd frees a handle (after using it in the backward pass) its bytes leave ``live``.
    ``timeline`` records (phase, live activation bytes, gradient bytes) at every pack/unpack.
    """

    class _Handle:
        __slots__ = ("tensor", "__weakref__")

        def __init__(self, tensor):
            self.tensor = tensor

    def __init__(self, model):
        self.model = model
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.live = {}  # storage address -> [bytes, number of handles still alive]
        self.peak_saved = 0
        self.timeline = []

    def _release(self, key):
        self.live[key][1] -= 1
        if self.live[key][1] == 0:
            del self.live[key]

    def saved_bytes(self):
        return sum(size for size, _ in self.live.values())

    def record(self, phase):
        grads = sum(p.grad.nbytes for p in self.model.parameters() if p.grad is not None)
        self.timeline.append((phase, self.saved_bytes(), grads))

    def _pack(self, tensor):
        key = tensor.untyped_storage().data_ptr()
        if key in self.params:
            return tensor  # a weight: it is in memory anyway
        handle = self._Handle(tensor)
        entry = self.live.setdefault(key, [tensor.untyped_storage().nbytes(), 0])
        entry[1] += 1
        weakref.finalize(handle, self._release, key)
        self.peak_saved = max(self.peak_saved, self.saved_bytes())
        self.record("forward")
        return handle

    def _unpack(self, handle):
        if isinstance(handle, self._Handle):
            self.record("backward")
            return handle.tensor
        return handle

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


B_c2, T_c2 = 4, 128
idx_c2 = torch.randint(65, (B_c2, T_c2))
counts = {}
for fused in (False, True):
    config = gpt2_style(vocab_size=65, context_length=T_c2, use_fused_attention=fused)
    model_c2 = TinyGPT(config)
    with SavedTensorCounter(model_c2) as counter_c2:
        _, loss_c2 = model_c2(idx_c2, idx_c2)
    predicted = activation_memory_bytes(config, B_c2, T_c2, bytes_per_value=4)["total"]
    counts[fused] = (counter_c2.peak_saved, predicted)

# %% tags=["nbval-check-output"]
for fused, (measured, predicted) in counts.items():
    kind = "fused attention   " if fused else "explicit attention"
    print(f"{kind}: saved {measured:>10,} bytes, formula {predicted:>10,} bytes, "
          f"ratio {measured / predicted:.3f}")
print("the s x s probabilities (explicit - fused):",
      f"{counts[False][0] - counts[True][0]:,} bytes measured,",
      f"{4 * 4 * B_c2 * T_c2 * T_c2 * 4:,} = 4 layers x b x a x s^2 x 4 bytes")

# %% [markdown]
# The formula is within 2 % of what autograd really keeps; the small excess is the fp32
# log-probabilities that the cross-entropy saves and the norms' per-row statistics, which the
# formula leaves out. The difference between the two runs is the attention probabilities,
# $L \cdot b \cdot a \cdot s^2$ values, plus under 1 % of small per-row tensors: a fused kernel
# does not keep the probabilities and recomputes them in the backward pass instead.
#
# ### Show it: where the peak is
#
# The same counter also watches the backward pass: each saved tensor leaves `live` when autograd
# has used it and frees it, and the parameters' gradients appear. The plot is this timeline for
# the explicit-attention model.

# %%
model_c2 = TinyGPT(gpt2_style(vocab_size=65, context_length=T_c2, use_fused_attention=False))
weight_bytes = sum(p.nbytes for p in model_c2.parameters())
with SavedTensorCounter(model_c2) as timeline_counter:
    _, loss_c2 = model_c2(idx_c2, idx_c2)
    timeline_counter.record("end of forward")
    loss_c2.backward()
    timeline_counter.record("after backward")
phases = [phase for phase, _, _ in timeline_counter.timeline]
saved_mb = np.array([s for _, s, _ in timeline_counter.timeline]) / 1e6
grads_mb = np.array([g for _, _, g in timeline_counter.timeline]) / 1e6
peak_at = int(np.argmax(saved_mb + grads_mb))

fig, ax = plt.subplots(figsize=(8, 3.4))
steps = np.arange(len(phases))
ax.stackplot(steps, np.full(len(steps), weight_bytes / 1e6), saved_mb, grads_mb,
             labels=["weights", "saved activations", "gradients"],
             colors=["#bbbbbb", "#f75c03", "#392061"], alpha=0.85)
ax.axvline(phases.index("end of forward"), color="black", linestyle=":")
ax.text(phases.index("end of forward") + 1, ax.get_ylim()[1] * 0.9, "backward starts", fontsize=9)
ax.set_xlabel("saved-tensor events (forward, then backward)")
ax.set_ylabel("MB")
ax.set_title("memory held for the backward pass, one training step (fp32)")
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
print("the sum is largest at the end of the forward pass:",
      bool((saved_mb + grads_mb)[peak_at] == (saved_mb + grads_mb)[phases.index("end of forward")]))
print("after backward, activations held:", timeline_counter.timeline[-1][1], "bytes;",
      "gradients = weights:", timeline_counter.timeline[-1][2] == weight_bytes)

# %% [markdown]
# The saved activations grow through the forward pass and peak when the backward pass begins;
# from then on each layer's activations are freed as its gradients appear, so gradients (the
# size of the weights) replace activations (many times larger here). Optimizer states, constant
# through the step, sit on top of this picture. On a GPU, `torch.cuda.max_memory_allocated()`
# shows the same peak, plus temporary buffers that never become saved tensors:

# %%
if on_gpu:
    gpu_model = TinyGPT(gpt2_style(vocab_size=65, context_length=T_c2,
                                   use_fused_attention=False)).to(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    _, gpu_loss = gpu_model(idx_c2.to(device), idx_c2.to(device))
    after_forward = torch.cuda.memory_allocated() - base
    gpu_loss.backward()
    print(f"GPU: held after forward {after_forward / 1e6:.1f} MB, "
          f"step peak above the model {(torch.cuda.max_memory_allocated() - base) / 1e6:.1f} MB")
else:
    print("no GPU here: the counts above are what the allocator would have to hold")

# %% [markdown]
# ### Show it: activation checkpointing, memory for time
#
# A stack of four blocks, run plainly and with `torch.utils.checkpoint.checkpoint` around each
# block. We count the saved bytes and the FLOPs (exact), and time both (this machine).

# %%
ckpt_config = gpt2_style(vocab_size=1, context_length=128, use_fused_attention=False)
stack = nn.ModuleList([Block(ckpt_config) for _ in range(4)]).to(device)
x_stack = torch.randn(4, 128, ckpt_config.d_model, device=device, requires_grad=True)


def run_stack(use_checkpoint):
    """Loss of the 4-block stack; with use_checkpoint, each block is recomputed in backward."""
    h = x_stack
    for blk in stack:
        h = checkpoint(blk, h, use_reentrant=False) if use_checkpoint else blk(h)
    return h.pow(2).mean()


ckpt = {}
for use_checkpoint in (False, True):
    with SavedTensorCounter(stack) as saved_counter:
        run_stack(use_checkpoint)
    with FlopCounterMode(display=False) as flop_counter:
        run_stack(use_checkpoint).backward()
    ckpt[use_checkpoint] = (saved_counter.peak_saved, flop_counter.get_total_flops())
plain_s = timed(lambda: run_stack(False).backward(), min_total=0.3, max_repeat=3)
ckpt_s = timed(lambda: run_stack(True).backward(), min_total=0.3, max_repeat=3)

# %% tags=["nbval-check-output"]
(plain_bytes, plain_flops), (ck_bytes, ck_flops) = ckpt[False], ckpt[True]
print(f"saved for backward: {plain_bytes:,} bytes plain, {ck_bytes:,} with checkpointing "
      f"({plain_bytes / ck_bytes:.0f}x less)")
one_input = x_stack.numel() * 4  # fp32 bytes of one block input
print(f"saved with checkpointing = 4 block inputs + the last block's output (for the loss): "
      f"{ck_bytes == 5 * one_input}")
print(f"FLOPs of a step: {ck_flops / plain_flops:.3f} x the plain step")

# %%
print(f"time of a step with checkpointing: {ckpt_s / plain_s:.2f} x the plain "
      "step (this machine)")

# %% [markdown]
# With checkpointing, autograd keeps only each block's input (and the last block's output,
# which the loss needs): 16 times less here. The step does 1.24 times the FLOPs, not the 4/3 of
# the answer: PyTorch's non-reentrant checkpoint stops recomputing a block as soon as it has
# recreated every tensor the backward pass needs, so the last matmul of each MLP, whose output
# nobody saved, is not run again. On the machine that built this page the step took 1.38
# times as long (the cell above), more than the FLOP ratio: the recomputation also repeats the
# memory-bound operations (norms, softmax, GELU) that the FLOP count leaves out, and the
# checkpoint machinery has overhead of its own. Either way, checkpointing trades a fixed
# fraction of compute for most of the activation memory.
#
# ### Show it: the bill for MiniMind2-small and a 7B model
#
# Now the same accounting at scale, in bf16 mixed precision: MiniMind2-small at the batch of
# the notes (32 sequences of 512 tokens) and a Llama-2-7B-shaped model with one sequence of 4096
# tokens.

# %%
def training_bill(config, n_params, batch, seq_len):
    """Training memory in GB: state, and activations for three ways of storing them."""
    state = training_state_bytes(n_params)["total"]
    kept_scores = activation_memory_bytes(config, batch, seq_len, store_attention_scores=True)
    fused = activation_memory_bytes(config, batch, seq_len, store_attention_scores=False)
    checkpointed = config.n_layers * batch * seq_len * config.d_model * 2  # one bf16 input/layer
    return {"weights+grads+AdamW (16 B/param)": state / 1e9,
            "activations, scores stored": kept_scores["total"] / 1e9,
            "activations, fused attention": fused["total"] / 1e9,
            "activations, checkpointed (block inputs)": checkpointed / 1e9}


bill = pd.DataFrame({
    "MiniMind2-small, b=32, s=512": training_bill(minimind, n_minimind, 32, 512),
    "7B shape, b=1, s=4096": training_bill(llama7b, n_7b, 1, 4096),
})

# %% tags=["nbval-check-output"]
print(bill.round(2).to_string())

# %% [markdown]
# For the small model the activations dominate: the state is under half a gigabyte, the
# activations several gigabytes, and fused attention plus checkpointing cut them by more than an
# order of magnitude. For the 7B model it is the other way round: 108 GB of state that no single
# GPU holds, while checkpointed activations of one 4096-token sequence are about 1 GB. (The
# checkpointed row leaves out the one block being recomputed and the logits, which come back
# during the backward pass.)

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the memory goes into the n² attention matrix"</strong></p>
#
# Asked where a transformer's memory bottleneck is, the learner of the notes answered that
# memory is used "mainly during the computation: Q@K needs O(n²) memory". For a single long
# forward pass that is the term that grows fastest, but for training it is one item of many:
# the table above shows the stored attention probabilities as the difference between the first
# two activation rows, which a fused kernel removes entirely, while the $O(s \cdot h)$
# activations of every layer and the 16 bytes per parameter of optimizer state remain. For a 7B
# model the optimizer state alone does not fit on one GPU.
#
# </div>

# %% [markdown]
# The notes also estimate MiniMind's training memory (in the note on gradient accumulation) and
# the size of the attention matrix at 16K tokens. The cell below recomputes both.

# %%
notes_product = 32 * 512 * 512 * 8  # batch x seq x hidden x layers, the notes' formula
fp32_scores = activation_memory_bytes(minimind, 32, 512, bytes_per_value=4,
                                      store_attention_scores=True)["total"]
gpt3_heads = gpt3_layers = 96
scores_16k_per_head = 16384**2 * 2  # one fp16 s x s matrix

# %% tags=["nbval-check-output"]
print(f"the notes' product: {notes_product:,} values = {notes_product * 2 / 1e9:.3f} GB in bf16")
print(f"what is stored (formula): {bill.iloc[2, 0]:.2f} GB bf16 fused, "
      f"{bill.iloc[1, 0]:.2f} GB bf16 with scores, {fp32_scores / 1e9:.2f} GB fp32 with scores")
print(f"MiniMind state in fp32 (16 B/param): {16 * n_minimind / 1e6:.0f} MB")
print(f"16K-token scores: {scores_16k_per_head / 1e6:.0f} MB per head; x 96 heads x 96 layers = "
      f"{scores_16k_per_head * gpt3_heads * gpt3_layers / 1e12:.2f} TB per sequence")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: MiniMind's activations and the 16K attention matrix</strong></p>
#
# - The notes put MiniMind's activations at "batch 32 × seq 512 × hidden 512 × 8 layers ≈ 2GB".
#   That product is 67,108,864 values, 0.134 GB in bf16, and it is not what is stored: every
#   layer keeps many tensors per token (the table above). The count gives 2.58 GB in bf16 with
#   fused attention, 3.65 GB with the scores stored and 7.30 GB in fp32; the notes' 2 GB is
#   close to the first only by accident. Their per-parameter figures (weights 104 MB, AdamW
#   208 MB) agree with 16 bytes per parameter in fp32, 413 MB in all.
# - The notes give the attention matrix at 16K tokens as "512MB (single layer)" and "96 layers:
#   96×512MB = 49GB". 537 MB is the matrix of *one head*; GPT-3 has 96 heads per layer, so
#   storing them all for one sequence would take 4.95 TB, a hundred times more. That is why no
#   one stores them: FlashAttention (Dao et al., 2022) keeps only $O(s)$ statistics per head.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: checkpoint every block, or only some?</strong></p>
#
# Checkpointing all $L$ blocks stores $L$ inputs and recomputes everything once. Is there a
# better trade?
#
# <details><summary>Answer</summary>
#
# Yes. Checkpointing every $\sqrt{L}$-th block and recomputing segments of $\sqrt{L}$ blocks
# stores $O(\sqrt{L})$ tensors for one extra forward pass (Chen et al., 2016). *Selective*
# recomputation (Korthikanti et al., 2022) keeps the cheap-to-store, expensive-to-recompute
# tensors and recomputes only the attention probabilities, which are large but cheap to
# recompute; that removes the $5as/h$ term at a few percent of compute. FlashAttention does
# this inside the kernel.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what does gradient accumulation change in this bill?</strong></p>
#
# <details><summary>Answer</summary>
#
# Only the activations: they scale with the micro-batch, so accumulating 8 micro-batches of 4
# instead of one batch of 32 divides them by 8 and leaves the 16 bytes per parameter untouched
# (the gradients are summed in place). The cost is time: 8 smaller, less efficient passes.
# Checkpointing and accumulation combine; MM-Q8 treats accumulation in detail.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-C2")

# %% [markdown]
# ## L03-C3 · Compute-bound or memory-bound?
#
# > Is a transformer limited by how fast the GPU computes or by how fast it moves data? Answer
# > per operation: a large matmul, softmax, a normalisation, attention, generating one token.
# > How does operator fusion help?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - An H100 does about 989 TFLOP/s in bf16 but reads its memory at about 3.35 TB/s. How many
#   FLOPs must an operation do per byte it reads or writes to keep the arithmetic busy?
# - Count FLOPs and bytes for an $n \times n$ matmul, and for a softmax over a row. Which one
#   grows with $n$?
# - When a single token is generated, how often is each weight of the model used after it is
#   read from memory?
# - If three elementwise operations run one after the other, how often does the data travel
#   to memory and back? And if they run as one kernel?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-C3**
#
# <div class="course-answer" data-question="L03-C3">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# It depends on the operation, and one number decides: the **arithmetic intensity** $I$, the
# FLOPs an operation does per byte it moves between memory and the chip. A machine with peak
# $P$ FLOP/s and bandwidth $W$ bytes/s runs it at most at $\min(P,\ I \cdot W)$: the **roofline**
# (Williams et al., 2009). Below the *ridge point* $I^* = P / W$ an operation is memory-bound;
# above it, compute-bound. For an H100 in bf16, $I^* \approx 989/3.35 \approx 295$ FLOP/byte.
#
# - **A large matmul** $(n \times n)(n \times n)$: $2n^3$ FLOPs over $3 \cdot 2n^2$ bytes, so
#   $I = n/3$. Past $n \approx 900$ it is compute-bound. The projections and the MLP in
#   training, with thousands of tokens per batch, are large matmuls.
# - **Softmax, norms, GELU, residual adds**: a handful of FLOPs per element read and written,
#   $I \approx 1$. Always memory-bound, far below the ridge: they do a tiny share of the FLOPs
#   but a visible share of the time (Ivanov et al., 2021).
# - **Attention with the $T \times T$ matrix materialised**: $QK^\top$ per head does
#   $2T^2d_h$ FLOPs and writes $T^2$ scores, so $I \approx d_h$ in bf16 (about 120 for
#   $d_h = 128$), and the softmax over the scores has $I \approx 1$: standard attention is
#   memory-bound. FlashAttention (Dao et al., 2022) never writes the
#   matrix: it fuses the two matmuls and the softmax into one kernel that keeps the tiles in
#   on-chip SRAM.
# - **Generating one token** (batch 1): every weight is read once and used for one
#   multiply-add, $I \approx 1$ in bf16. Decoding is memory-bound by a factor of ~300 on an
#   H100; batching $B$ sequences reuses each weight $B$ times and raises $I$ to about $B$.
#
# **Fusion** turns several memory-bound operations into one kernel, so the data crosses the
# memory bus once instead of once per operation. The FLOPs do not change; the bytes do, and for a
# memory-bound operation time is bytes over bandwidth. `torch.compile`, fused norm kernels and
# FlashAttention are all fusion.
#
# So "GPU utilisation" in training is high in the matmuls and low everywhere else, and in
# small-batch inference it is low almost everywhere: the limit is memory bandwidth, not FLOPs.
#
# </details>

# %% [markdown]
# ### Show it: arithmetic intensities, by counting
#
# FLOPs and the minimum bytes moved (each input read once, each output written once), in bf16,
# against the ridge points of two GPUs from their datasheets (A100: 312 TFLOP/s, about
# 2.0 TB/s; H100 SXM: 989 TFLOP/s, 3.35 TB/s).

# %%
P = 2  # bytes per bf16 value
d_op, T_op, dh = 4096, 4096, 128
operations = {  # name: (FLOPs, bytes moved)
    "matmul 4096 x 4096 x 4096": (2 * 4096**3, P * 3 * 4096**2),
    "MLP up-projection, 4096 tokens": (2 * T_op * d_op * 4 * d_op,
                                       P * (T_op * d_op + 4 * d_op * d_op + T_op * 4 * d_op)),
    "QK^T of one head, T = 4096, d_h = 128": (2 * T_op * T_op * dh, P * (2 * T_op * dh + T_op**2)),
    "softmax over a 4096 x 4096 score matrix": (5 * T_op**2, P * 2 * T_op**2),  # max,sub,exp,sum,div
    "RMSNorm of 4096 tokens": (4 * T_op * d_op, P * (2 * T_op * d_op + d_op)),  # sq,sum,scale,weight
    "decode 1 token: x @ W (4096 x 4096)": (2 * d_op * d_op, P * (d_op * d_op + 2 * d_op)),
    "decode 64 tokens at once: X @ W": (2 * 64 * d_op * d_op, P * (d_op * d_op + 2 * 64 * d_op)),
}
ridges = {"A100": 312e12 / 2.0e12, "H100": 989e12 / 3.35e12}
intensity_table = pd.DataFrame(
    [{"operation": name, "FLOP per byte": flops / moved,
      **{f"bound on {gpu}": "compute" if flops / moved > ridge else "memory"
         for gpu, ridge in ridges.items()}}
     for name, (flops, moved) in operations.items()]).set_index("operation")

# %% tags=["nbval-check-output"]
print({gpu: round(ridge) for gpu, ridge in ridges.items()}, "FLOP/byte at the ridge")
print(intensity_table.round(1).to_string())
print("matmul_intensity(4096, 4096, 4096) =", round(matmul_intensity(4096, 4096, 4096), 1))

# %% [markdown]
# Only the large matmuls clear the ridge. Everything that touches each value a few times, and
# generating a token one at a time, sits two orders of magnitude below it: on an H100 a batch-1
# decoding step can use at most $I \cdot W / P \approx 1/295$ of the peak.
#
# ### Show it: a roofline of this machine, measured
#
# We measure this machine's two roofs, the matmul peak of C1 and the memory bandwidth (an
# elementwise add of three large vectors: two read, one written), then time real operators and
# place each at its (counted intensity, measured FLOP/s). Inputs are fp32 on the CPU and bf16 on
# a GPU.

# %%
dtype_op = torch.bfloat16 if on_gpu else torch.float32
p_op = torch.finfo(dtype_op).bits // 8
n_stream = 2**27 if on_gpu else 2**23
u, v, w_out = (torch.randn(n_stream, device=device, dtype=dtype_op) for _ in range(3))
bandwidth = 3 * n_stream * p_op / timed(lambda: torch.add(u, v, out=w_out))

rows_op, width_op = (8192, 4096) if on_gpu else (2048, 1024)
x_op = torch.randn(rows_op, width_op, device=device, dtype=dtype_op)
gamma = torch.ones(width_op, device=device, dtype=dtype_op)
d_dec = 4096 if on_gpu else 2048
W_dec = torch.randn(d_dec, d_dec, device=device, dtype=dtype_op)
x_dec1 = torch.randn(1, d_dec, device=device, dtype=dtype_op)
x_dec64 = torch.randn(64, d_dec, device=device, dtype=dtype_op)
n_small = 128
a_small = torch.randn(n_small, n_small, device=device, dtype=dtype_op)


beta = torch.zeros(width_op, device=device, dtype=dtype_op)


def layernorm_unfused(x):
    """LayerNorm as separate PyTorch operations: each one a trip through memory."""
    centred = x - x.mean(-1, keepdim=True)
    variance = (centred * centred).mean(-1, keepdim=True)
    return centred * torch.rsqrt(variance + 1e-5) * gamma + beta


elements = rows_op * width_op
measured_ops = {  # name: (function, FLOPs, minimum bytes)
    f"matmul {mm_size}": (lambda: torch.mm(a_mm, b_mm, out=c_mm), 2 * mm_size**3,
                          3 * mm_size**2 * torch.finfo(mm_dtype).bits // 8),
    f"matmul {n_small}": (lambda: a_small @ a_small, 2 * n_small**3, 3 * n_small**2 * p_op),
    "decode, batch 64": (lambda: x_dec64 @ W_dec, 2 * 64 * d_dec**2,
                         p_op * (d_dec**2 + 2 * 64 * d_dec)),
    "decode, batch 1": (lambda: x_dec1 @ W_dec, 2 * d_dec**2, p_op * (d_dec**2 + 2 * d_dec)),
    "softmax": (lambda: torch.softmax(x_op, dim=-1), 5 * elements, 2 * p_op * elements),
    "LayerNorm, fused kernel": (lambda: F.layer_norm(x_op, (width_op,), gamma, beta, 1e-5),
                                7 * elements, 2 * p_op * elements),
    "LayerNorm, separate ops": (lambda: layernorm_unfused(x_op), 7 * elements,
                                2 * p_op * elements),
}
placed = {}
for name, (fn, flops, moved) in measured_ops.items():
    placed[name] = (flops / moved, flops / timed(fn))

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.2))
intensities = np.logspace(-2, 3, 200)
ax.plot(intensities, [roofline_flops(i, peak_flops, bandwidth) / 1e9 for i in intensities],
        color="black", label="roofline of this machine (measured)")
ridge_here = peak_flops / bandwidth
ax.axvline(ridge_here, color="grey", linestyle=":")
ax.text(ridge_here * 1.1, peak_flops / 1e9 * 0.02, f"ridge\n{ridge_here:.0f} FLOP/byte",
        fontsize=8)
for (name, (intensity, flops_s)), colour in zip(placed.items(), plt.cm.tab10.colors,
                                                strict=False):
    ax.scatter(intensity, flops_s / 1e9, color=colour, s=45, zorder=3, label=name)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("arithmetic intensity (FLOP per byte, counted)")
ax.set_ylabel("achieved GFLOP/s (measured)")
ax.set_title(f"roofline: peak {peak_flops / 1e9:.0f} GFLOP/s, bandwidth {bandwidth / 1e9:.1f} GB/s")
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
plt.show()
print(f"ridge of this machine: {ridge_here:.1f} FLOP/byte")
for name, (intensity, flops_s) in placed.items():
    roof = roofline_flops(intensity, peak_flops, bandwidth)
    print(f"  {name:<24} intensity {intensity:7.2f}  {flops_s / 1e9:6.1f} GFLOP/s "
          f"= {flops_s / roof:4.0%} of the roof above it")
left = [f for i, f in placed.values() if i < ridge_here]
right = [f for i, f in placed.values() if i >= ridge_here]
print(f"left of the ridge: at most {max(left) / 1e9:.1f} GFLOP/s; right of it: at least "
      f"{min(right) / 1e9:.1f} GFLOP/s")
print(f"decoding, batch 64 / batch 1: "
      f"{placed['decode, batch 64'][1] / placed['decode, batch 1'][1]:.1f}x the FLOP/s")

# %% [markdown]
# A shared CPU is a noisy place to measure (the points move from run to run), but the pattern
# is stable. On the machine that built this page the ridge sat at about 4 FLOP/byte.
# The operations left of it (batch-1 decoding, softmax, the norms) ran at 25.5 GFLOP/s or
# less, the ones right of it (the matmuls, batch-64 decoding) at 72.0 GFLOP/s or more, and
# batching 64 tokens made the same weight matrix deliver 3.8 times the FLOP/s of batch 1,
# because every weight read from memory is used 64 times. The LayerNorm written as separate
# operations falls far below the roof over its counted intensity: it moves many more bytes than
# the minimum we counted (the next cell). A point can sit *above* the sloped roof when its data
# came from the CPU's caches, which are faster than the main-memory bandwidth measured here.
#
# Notice how low this machine's ridge is compared with a GPU's 295: a CPU has little arithmetic
# per byte of bandwidth, so memory-bound operations cost it relatively little. On a GPU the same
# softmax or norm runs at a few tenths of a percent of the peak, which is why fusion and
# FlashAttention matter so much more there.
#
# ### Show it: operator fusion
#
# The LayerNorm written as separate operations reads and writes the full tensor several times;
# PyTorch's fused `F.layer_norm` kernel reads it once and writes it once. The FLOPs are the same
# (the roofline above counts 7 per element for both). Counting full-size passes through memory
# predicts the saving of a memory-bound operation:

# %% tags=["nbval-check-output"]
# full-size reads + writes of each separate operation:
# mean (1 read), x - mean (read, write), centred * centred (read, write), its mean (1 read),
# centred * rsqrt (read, write), * gamma (read, write), + beta (read, write)
passes_unfused = 1 + 2 + 2 + 1 + 2 + 2 + 2
passes_fused = 2  # read x, write the output
print(f"full-size memory passes: separate ops {passes_unfused}, fused {passes_fused} "
      f"-> predicted speed-up {passes_unfused / passes_fused:.1f}x if memory-bound")
check_x = torch.randn(64, 256, dtype=torch.float64)
gamma_64, beta_64 = torch.rand(256, dtype=torch.float64), torch.rand(256, dtype=torch.float64)
centred_64 = check_x - check_x.mean(-1, keepdim=True)
by_hand = centred_64 * torch.rsqrt(centred_64.pow(2).mean(-1, keepdim=True) + 1e-5)
print("same result:", torch.allclose(F.layer_norm(check_x, (256,), gamma_64, beta_64, 1e-5),
                                     by_hand * gamma_64 + beta_64))

# %%
fused_s = timed(measured_ops["LayerNorm, fused kernel"][0], min_total=0.1)
unfused_s = timed(measured_ops["LayerNorm, separate ops"][0], min_total=0.1)
print(f"LayerNorm of {rows_op} x {width_op}: separate ops {unfused_s * 1e3:.2f} ms, fused "
      f"{fused_s * 1e3:.2f} ms -> measured speed-up {unfused_s / fused_s:.1f}x")

# %% [markdown]
# On the machine that built this page the fused kernel was 32.5 times faster (the cell
# above), more than the 6 times the pass count predicts. The passes explain part of it; the
# rest is what the pass count leaves out: the separate version allocates a fresh temporary
# tensor for each intermediate result and runs general-purpose reduction kernels, while the
# fused kernel is one vectorised loop over each row. (PyTorch's `F.rms_norm` would be the
# natural choice for an RMSNorm model, but on the CPU of PyTorch 2.13 it was no faster than the
# separate operations, which is why the demonstration uses LayerNorm.)

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the GPU is not the bottleneck; data and the network are"</strong></p>
#
# Asked how the heads of multi-head attention run on a GPU, the learner of the notes answered
# that they "can all be computed in parallel, so the GPU should not be the bottleneck; it is
# more the data and the network". Data loading and communication can indeed limit a badly
# configured cluster, but inside the GPU the limit is usually the GPU's *memory bandwidth*:
# every operation in the table above except the large matmuls is memory-bound, and batch-1
# decoding can use at most about 1/295 of an H100's arithmetic. Parallel is not the same as
# efficient: eight heads that each stream their own $T \times T$ matrix through memory are
# parallel *and* memory-bound.
#
# </div>

# %% tags=["nbval-check-output"]
notes_hbm, notes_sram = (0.5e12, 1.0e12), 19e12  # the notes' HBM range and SRAM bandwidth
a100_hbm = (1.5e12, 2.0e12)  # A100 40 GB / 80 GB, as quoted by Dao et al. (2022)
print("SRAM / HBM bandwidth with the notes' HBM figures:",
      [round(notes_sram / b) for b in notes_hbm])
print("SRAM / HBM bandwidth with the A100's HBM:", [round(notes_sram / b, 1) for b in a100_hbm])
print("best case for batch-1 decoding on an H100:", f"{1 / ridges['H100']:.2%} of peak")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: bandwidths, "compute-bound" attention and utilisation</strong></p>
#
# - The notes give GPU memory (HBM) as "500-1000 GB/s" and on-chip SRAM as "19 TB/s (19×
#   faster)". The A100 of the FlashAttention paper has 1.5-2.0 TB/s of HBM bandwidth next to
#   about 19 TB/s of SRAM (Dao et al., 2022), so SRAM is 9.5-12.7 times faster, not 19-38; an
#   H100 has 3.35 TB/s (NVIDIA datasheet).
# - The notes list `Q@K.T` and `Attn@V` among the "compute-bound, high utilisation" parts. With
#   the score matrix materialised, $QK^\top$ of a 128-wide head has an intensity of about 120
#   FLOP/byte (the table above), below the A100's and the H100's ridge points: standard
#   attention is memory-bound, which is the whole premise of FlashAttention.
# - The notes claim training runs at ">90%" GPU utilisation. Measured as MFU, large published
#   runs reach about 40-50 %: PaLM reports 46.2 % (Chowdhery et al., 2022), and Llama 2's
#   published GPU-hours imply 0.39 (C1). A GPU that is "busy" 90 % of the time is not doing 90 %
#   of its peak FLOPs.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what does `torch.compile` fuse, and what can it not?</strong></p>
#
# <details><summary>Answer</summary>
#
# Its default backend (TorchInductor) fuses chains of elementwise and reduction operations
# (norms, activations, residual adds, the scaling and masking around a softmax) into generated
# kernels, so their intermediate tensors never reach memory. By default it calls vendor
# libraries for the large matmuls, which are compute-bound already. Fusing attention needs more
# than chaining operations: the online-softmax algorithm of FlashAttention, which lives in
# PyTorch's `F.scaled_dot_product_attention` kernels; the compiler can recognise common
# hand-written attention patterns and swap that kernel in, but it does not derive the algorithm
# itself. Compiling takes seconds to minutes, which is why this chapter shows fusion with a
# ready-made fused kernel instead.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how large a batch makes decoding compute-bound?</strong></p>
#
# <details><summary>Answer</summary>
#
# With bf16 weights, a decoding step over $B$ sequences has $I \approx B$ FLOP/byte for the
# weight matmuls, so it reaches the H100's ridge near $B \approx 295$. In practice the KV cache
# pushes that further away: every sequence reads its own cache, which batching does not share,
# so attention during decoding stays memory-bound at any batch size. This is why serving
# systems batch aggressively, why grouped-query attention (fewer K/V heads) matters, and why
# inference is priced so differently from training (C4).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-C3")

# %% [markdown]
# ## L03-C4 · Why did decoder-only models win on economics?
#
# > The original transformer had an encoder and a decoder; GPT kept only the decoder. Why did
# > that simpler design win, in terms of cost? What does a million generated tokens cost, and what
# > would an architecture that is twice as cheap be worth?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - At an equal number of parameters, how many layers does each token of the prompt pass through
#   in an encoder-decoder, and in a decoder-only model?
# - In a chat, turn 5 contains turns 1 to 4. Which model can keep the keys and values it
#   computed for them, and which must recompute them? What does the causal mask have to do
#   with it?
# - Cost per token = FLOPs per token / (achieved FLOP/s) × price per second. Which of the three
#   does an architecture change?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-C4**
#
# <div class="course-answer" data-question="L03-C4">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Not by being cheaper per token in FLOPs. At an equal parameter count an encoder-decoder
# sends each input token through the encoder only and each output token through the decoder
# only, about half the FLOPs per token of a decoder-only model that sends every token through
# all its layers (Raffel et al., 2020, make this comparison for T5). Decoder-only models won
# on *total* cost, which FLOPs per token leave out:
#
# 1. **One stack, one objective, every token a target.** Next-token prediction turns any text
#    into training data with no pairing into inputs and outputs, and every position of every
#    sequence gives a loss term. The same model then does every task by prompting (Radford et
#    al., 2019; Brown et al., 2020): one model to train, serve and maintain, instead of one per
#    task. Wang et al. (2022) found causal decoder-only models the best for zero-shot use after
#    plain self-supervised pretraining; models that see their input bidirectionally
#    (encoder-decoders among them) did best only after multitask finetuning.
# 2. **Caches that stay valid.** Under the causal mask, the keys and values of a prefix do not
#    depend on anything that comes after it. So a KV cache survives from one turn of a
#    conversation to the next, and a shared prefix (a system prompt, a document) can be computed
#    once and reused across requests: *prompt caching*, which providers sell at a discount. In a
#    bidirectional encoder every token's representation changes when text is appended, so the
#    input must be re-encoded at every turn.
# 3. **Simpler systems.** One kind of layer, one cache, one kernel path to optimise, and one
#    scaling recipe: engineering effort spent once benefits every model.
#
# **Cost per million tokens.** With $F$ FLOPs per token ($2N$ to generate or read a token, $6N$
# to train on it), a GPU of peak $P$ running at utilisation $u$, priced $c$ per hour:
# $$\text{cost per } 10^6 \text{ tokens} = \frac{10^6 F}{P\,u} \cdot \frac{c}{3600}.$$
# Generation at a small batch is memory-bound (C3) and costs far more than this compute-bound
# figure; batching is what brings it down.
#
# **A 2× cheaper architecture** halves the compute bill of everything it serves and trains. At
# the scale of a large service that is a large sum of money, one reason why FlashAttention,
# grouped-query attention, mixture-of-experts and speculative decoding spread so quickly.
# The cells put numbers on it, with the price as an explicit assumption you can change.
#
# </details>

# %% [markdown]
# ### Show it: FLOPs per token, encoder-decoder against decoder-only
#
# Take width $d$ and GPT-2-style layers ($12d^2$ parameters each; a decoder layer with
# cross-attention has $16d^2$). An encoder-decoder with 12 + 12 layers has $336d^2$
# parameters; a decoder-only model with the same parameters has 28 layers. Count the matmul
# FLOPs of a 1024-token prompt and a 256-token answer (at these lengths the attention scores
# add little; C1).

# %%
d4 = 1024
enc_layers = dec_layers = 12
params_encdec = enc_layers * 12 * d4**2 + dec_layers * 16 * d4**2
decoder_only_layers = params_encdec // (12 * d4**2)
prompt_len, answer_len = 1024, 256

decoder_only_flops = (prompt_len + answer_len) * 2 * decoder_only_layers * 12 * d4**2
encdec_flops = (prompt_len * 2 * enc_layers * 12 * d4**2  # the encoder reads the prompt
                + prompt_len * 2 * dec_layers * 2 * d4**2  # cross-attention K, V of the prompt
                + answer_len * 2 * dec_layers * 14 * d4**2)  # decoder: self-attn, MLP, cross Q, O

# %% tags=["nbval-check-output"]
print(f"same parameters: {params_encdec / d4**2:.0f} d^2; decoder-only layers: {decoder_only_layers}")
print(f"decoder-only {decoder_only_flops:.3g} FLOPs, encoder-decoder {encdec_flops:.3g} FLOPs "
      f"-> ratio {encdec_flops / decoder_only_flops:.2f}")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "decoder-only won because it needs fewer FLOPs"</strong></p>
#
# The learner of the notes did not answer this one; it is the tempting answer, because
# "dropping the encoder" sounds like dropping half the work. The cell above shows the opposite
# at equal size: the encoder-decoder does about half the FLOPs per token. What the decoder-only
# model saves is elsewhere: data preparation, the number of models, and, in serving,
# recomputation, because its caches stay valid. The next cells measure that.
#
# </div>

# %% [markdown]
# ### Show it: a causal prefix never changes, a bidirectional one does
#
# With the course's trained TinyGPT: the logits of a prefix are the same whether or not more
# text follows, and decoding the continuation on top of the prefix's KV cache gives the same
# result as recomputing everything. Then the same check with one attention layer without the
# causal mask.

# %%
from utils.attention import KVCache, causal_mask, scaled_dot_product_attention
from utils.pretrained import load_pretrained

tiny, tok = load_pretrained()
prefix_ids = torch.tensor([tok.encode("def forward(self, x):\n    return ")])
suffix_ids = torch.tensor([tok.encode("self.proj(x)")])
full_ids = torch.cat([prefix_ids, suffix_ids], dim=1)
P_len = prefix_ids.shape[1]
with torch.no_grad():
    logits_prefix, _ = tiny(prefix_ids)
    logits_full, _ = tiny(full_ids)
    cache = KVCache(tiny.config.n_layers)
    tiny(prefix_ids, cache=cache)  # the prefix once, into the cache
    logits_cached, _ = tiny(suffix_ids, cache=cache)  # only the new tokens

    x_emb = tiny.tok_emb(full_ids)[0]  # (T, d): one attention layer on the embeddings
    x_pre = x_emb[:P_len]
    bidir_full = scaled_dot_product_attention(x_emb, x_emb, x_emb)[:P_len]
    bidir_prefix = scaled_dot_product_attention(x_pre, x_pre, x_pre)
    causal_full = scaled_dot_product_attention(x_emb, x_emb, x_emb,
                                               mask=causal_mask(len(x_emb)))[:P_len]
    causal_prefix = scaled_dot_product_attention(x_pre, x_pre, x_pre, mask=causal_mask(P_len))

# %% tags=["nbval-check-output"]
print("TinyGPT: prefix logits unchanged by the suffix:",
      torch.allclose(logits_full[:, :P_len], logits_prefix, atol=1e-4))
print("TinyGPT: suffix from the prefix's KV cache = full recomputation:",
      torch.allclose(logits_cached, logits_full[:, P_len:], atol=1e-4))
print("one causal layer: prefix outputs unchanged:", torch.allclose(causal_full, causal_prefix,
                                                                    atol=1e-5))
print("one bidirectional layer: prefix outputs unchanged:",
      torch.allclose(bidir_full, bidir_prefix, atol=1e-5))

# %% [markdown]
# ### Show it: what the cache saves over a conversation
#
# A conversation of 10 turns, each with a 200-token user message and a 300-token reply. A
# decoder-only server that keeps the KV cache (or a prompt cache) processes every token once. A
# model that must re-read the whole history at each turn (a bidirectional encoder, or a
# decoder-only server that throws its cache away) processes the history again and again.

# %%
turns, user_tokens, reply_tokens = 10, 200, 300
with_cache = turns * (user_tokens + reply_tokens)
reencode = sum(k * user_tokens + (k - 1) * reply_tokens + reply_tokens
               for k in range(1, turns + 1))  # history + new message, then the reply

# %% tags=["nbval-check-output"]
print(f"tokens processed with a kept cache: {with_cache:,}; re-reading the history: "
      f"{reencode:,} ({reencode / with_cache:.1f}x)")

# %% [markdown]
# The ratio grows linearly with the number of turns (the re-read total is quadratic). Providers
# pass part of this saving on: cached input tokens are billed at a fraction of the normal input
# price (OpenAI, 2024: half; Anthropic, 2024: a tenth for cache reads). An encoder-decoder
# cannot offer this for its encoder, because its prefix representations are not reusable.
#
# ### Show it: the price of a million tokens
#
# Now the money. The price of a GPU-hour is **an assumption** you should change: on-demand
# quotes for one H100 SXM ranged from about \$2 to \$5 per hour in May 2026 (Mercatus, 2026,
# comparing cloud providers), and large contracts pay less. The utilisation is an assumption
# too, set from the published runs of C1.

# %%
GPU_DOLLARS_PER_HOUR = 2.50  # ASSUMPTION: one H100 SXM on demand; change it to your price
MFU_ASSUMED = 0.40  # ASSUMPTION: near what Llama 2 (C1) and PaLM report for training
H100_BANDWIDTH = 3.35e12  # bytes/s, NVIDIA datasheet


def decode_dollars_per_million(n_params, batch, dollars_per_hour=GPU_DOLLARS_PER_HOUR):
    """Cost of generating 1e6 tokens with bf16 weights on one H100, by the roofline.

    Each decoding step reads every weight once (2 N bytes, at the full bandwidth: a best case)
    and does 2 N FLOPs per sequence in the batch (at the assumed MFU). The KV cache is left
    out, so real costs are higher. Returns dollars.
    """
    compute_s = 2 * n_params * batch / (H100_PEAK * MFU_ASSUMED)
    step_seconds = max(compute_s, 2 * n_params / H100_BANDWIDTH)
    return 1e6 / batch * step_seconds * dollars_per_hour / 3600


cost_rows = {
    "train on (6N, MFU 0.4)": cost_per_million_tokens(6 * n_7b, H100_PEAK, MFU_ASSUMED,
                                                      GPU_DOLLARS_PER_HOUR),
    "read a prompt (2N, MFU 0.4)": cost_per_million_tokens(2 * n_7b, H100_PEAK, MFU_ASSUMED,
                                                           GPU_DOLLARS_PER_HOUR),
    **{f"generate, batch {b} (roofline)": decode_dollars_per_million(n_7b, b)
       for b in (1, 8, 64, 512)},
}
print(f"7B model on one H100 at ${GPU_DOLLARS_PER_HOUR}/hour: dollars per million tokens")
for name, dollars in cost_rows.items():
    print(f"  {name:<32} {dollars:8.3f}")

# %% [markdown]
# With the assumed price, generating with a 7B model one sequence at a time costs about \$2.8
# per million tokens even in this best case, a hundred times the cost of reading a prompt,
# because the GPU spends the step reading weights. At batch 64 the same weights serve 64
# sequences and the cost falls by the same factor, until the arithmetic becomes the limit
# (near batch $0.4 \times 295 \approx 118$ at the assumed utilisation) and generating costs
# what reading a prompt costs. The figure below lets you change the model size and the price.

# %%
batches = np.unique(np.logspace(0, 10, 31, base=2).astype(int))  # 1 ... 1024
model_sizes = {"1B": 1e9, "7B": float(n_7b), "70B": 7e10}


def draw_cost(model, dollars_per_hour):
    """Dollars per million generated tokens against the batch size (H100 roofline)."""
    n = model_sizes[model]
    decode = [decode_dollars_per_million(n, int(b), dollars_per_hour) for b in batches]
    prompt = cost_per_million_tokens(2 * n, H100_PEAK, MFU_ASSUMED, dollars_per_hour)
    train = cost_per_million_tokens(6 * n, H100_PEAK, MFU_ASSUMED, dollars_per_hour)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(batches, decode, color="#f75c03", label="generate (roofline, best case)")
    ax.axhline(prompt, color="#392061", linestyle="--", label="read a prompt (2N, MFU 0.4)")
    ax.axhline(train, color="#6c8ebf", linestyle="-.", label="train on (6N, MFU 0.4)")
    batch_star = MFU_ASSUMED * H100_PEAK / H100_BANDWIDTH  # where the two limits meet
    ax.axvline(batch_star, color="grey", linestyle=":")
    ax.text(batch_star * 1.08, prompt * 4, f"compute-bound\nfrom batch {batch_star:.0f}",
            fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(min(decode[-1], prompt) / 3, decode[0] * 3)
    ax.set_xlabel("sequences decoded together (batch)")
    ax.set_ylabel("$ per million tokens")
    ax.set_title(f"{model} model, one H100 at ${dollars_per_hour:.2f}/hour (assumed)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


interactive_figure(draw_cost, model=list(model_sizes), dollars_per_hour=[1.5, 2.5, 4.0],
                   initial={"model": "7B", "dollars_per_hour": 2.5})

# %% [markdown]
# ### Show it: what "2× cheaper" is worth
#
# Two more assumptions, both labelled: a service that generates 100 billion tokens a day with a
# 7B-sized model served at batch 64, and a training run the size of Llama 2 7B's
# (184,320 GPU-hours; Touvron et al., 2023), priced at the same assumed rate per GPU-hour.

# %%
TOKENS_PER_DAY = 100e9  # ASSUMPTION: a large service's daily output
serving_per_year = TOKENS_PER_DAY * 365 / 1e6 * decode_dollars_per_million(n_7b, 64)
training_run = 184_320 * GPU_DOLLARS_PER_HOUR
print(f"serving, one year: ${serving_per_year / 1e6:.2f}M -> a 2x cheaper architecture saves "
      f"${serving_per_year / 2e6:.2f}M a year")
print(f"training a Llama-2-7B-sized model: ${training_run / 1e6:.2f}M -> saves "
      f"${training_run / 2e6:.2f}M per run")

# %% [markdown]
# Under these best-case serving numbers, halving the cost saves about \$0.8M a year at this
# volume (and proportionally more at larger ones), every year the model is served, while the
# training saving, about \$0.23M, comes once per run. This asymmetry, serving dominating training for a popular model, is why the
# architecture changes of recent years (grouped-query attention, quantised KV caches,
# speculative decoding, mixture-of-experts) mostly target inference.

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: where does the often-quoted "$4.6M to train GPT-3" come from?</strong></p>
#
# The notes quote it without a source. Can you reproduce it from $6ND$?
#
# <details><summary>Answer</summary>
#
# It is Lambda's 2020 estimate (Li, 2020): GPT-3's $3.14 \times 10^{23}$ FLOPs on V100 GPUs
# assumed to sustain 28 TFLOP/s, priced at \$1.50 per GPU-hour. The cell below redoes the
# arithmetic: 356 GPU-years and \$4.67M. It is a cloud-rental estimate for one run, not
# what OpenAI paid, and it assumes a utilisation (28 of the V100's 125 TFLOP/s peak, 22 %)
# that the cell makes visible.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
v100_seconds = 3.14e23 / 28e12
print(f"{v100_seconds / 3600 / 24 / 365:.0f} GPU-years, ${v100_seconds / 3600 * 1.5 / 1e6:.2f}M, "
      f"utilisation of the 125 TFLOP/s peak: {28 / 125:.0%}")

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: when is an encoder-decoder still the better deal?</strong></p>
#
# <details><summary>Answer</summary>
#
# When the input is long, read once, and the output is short and conditioned on all of it,
# with no conversation growing turn by turn: translation, summarisation of a fixed document,
# speech recognition. Then the encoder's bidirectional view is an advantage, the input is
# encoded once anyway, and the cheaper per-token cost of the split (the first cell of this
# section) pays. Whisper (Radford et al., 2023) is an encoder-decoder for that reason.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-C4")

# %% [markdown]
# ## Build it yourself
#
# Four one-line estimators, one per problem. Each must return **one number** (an `int` or a
# `float`). Fill them in and run the checker below each: it tries several cases (a tiny model,
# MiniMind, a 7B model) and, if something is off, names the case and the likely mistake without
# showing the formula. As committed, the stubs raise `NotImplementedError` and the checkers say
# so.
#
# 1. `block_flops(seq_len, d_model, d_ff)`: forward matmul FLOPs of one GPT-2-style block for one
#    sequence: four $d \times d$ projections, the dense $QK^\top$ and $AV$ of all heads, and a
#    two-matrix MLP of width `d_ff`.
# 2. `checkpointed_training_bytes(n_params, n_layers, n_tokens, d_model)`: bytes that
#    mixed-precision AdamW training with full activation checkpointing keeps for the whole step:
#    16 bytes per parameter plus each layer's bf16 input ($n_\text{tokens} \times d$ values).
# 3. `roofline_time(flops, bytes_moved, peak_flops, bandwidth)`: the shortest time, in seconds,
#    of a kernel when arithmetic and memory traffic overlap perfectly.
# 4. `cost_per_million(n_params, peak_flops, mfu, dollars_per_hour)`: dollars to *generate* a
#    million tokens with a dense model, compute-bound at utilisation `mfu`.

# %%
def block_flops(seq_len, d_model, d_ff):
    """Forward FLOPs of one transformer block (one sequence)."""
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import (
    check_block_flops,
    check_checkpointed_training_bytes,
    check_cost_per_million,
    check_roofline_time,
)

check_block_flops(block_flops)

# %%
def checkpointed_training_bytes(n_params, n_layers, n_tokens, d_model):
    """Bytes kept through a checkpointed, mixed-precision AdamW training step."""
    raise NotImplementedError("replace this line with your implementation")


check_checkpointed_training_bytes(checkpointed_training_bytes)

# %%
def roofline_time(flops, bytes_moved, peak_flops, bandwidth):
    """Lower bound on a kernel's time in seconds."""
    raise NotImplementedError("replace this line with your implementation")


check_roofline_time(roofline_time)

# %%
def cost_per_million(n_params, peak_flops, mfu, dollars_per_hour):
    """Dollars per million generated tokens, compute-bound."""
    raise NotImplementedError("replace this line with your implementation")


check_cost_per_million(cost_per_million)

# %% [markdown]
# <details><summary>Solutions (open them after you have tried)</summary>
#
# ```python
# def block_flops(seq_len, d_model, d_ff):
#     T, d = seq_len, d_model
#     projections = 4 * 2 * T * d * d    # Q, K, V, output
#     attention = 2 * 2 * T * T * d      # Q K^T and A V, all heads together
#     mlp = 2 * 2 * T * d * d_ff         # up and down
#     return projections + attention + mlp
#
# def checkpointed_training_bytes(n_params, n_layers, n_tokens, d_model):
#     state = (2 + 2 + 4 + 8) * n_params              # bf16 w, bf16 g, fp32 master, fp32 m and v
#     checkpoints = 2 * n_layers * n_tokens * d_model  # one bf16 input per layer
#     return state + checkpoints
#
# def roofline_time(flops, bytes_moved, peak_flops, bandwidth):
#     return max(flops / peak_flops, bytes_moved / bandwidth)
#
# def cost_per_million(n_params, peak_flops, mfu, dollars_per_hour):
#     seconds = 1e6 * 2 * n_params / (peak_flops * mfu)
#     return seconds / 3600 * dollars_per_hour
# ```
#
# The tested versions of these formulas live in `utils.accounting` (`forward_flops`,
# `training_state_bytes`, `roofline_flops`, `cost_per_million_tokens`).
#
# </details>

# %% [markdown]
# ## Summary
#
# - **C1** A block costs $24Td^2 + 4T^2d$ forward FLOPs and three times that to train; attention
#   scores are a share $T/(6d + T)$ (half with a causal kernel), equal to the MLP at $T = 4d$.
#   Training time is $6ND$ over (GPUs × peak × MFU); $6ND$ reproduces GPT-3's reported compute
#   and Llama 2's GPU-hours imply an MFU near 40 %.
# - **C2** Training memory is 16 bytes per parameter plus activations that grow with batch ×
#   length × width × layers (and with $s^2$ if the probabilities are stored). The activations
#   peak at the start of the backward pass; checkpointing keeps one tensor per block and buys
#   the rest back with about a third more compute.
# - **C3** Arithmetic intensity decides: only large matmuls clear the ridge point (about 295
#   FLOP/byte on an H100); norms, softmax, materialised attention and small-batch decoding are
#   memory-bound. Fusion cuts bytes, not FLOPs.
# - **C4** Decoder-only models are not cheaper per token in FLOPs; they won on total cost: one
#   model and objective for everything, and causal caches that can be reused across turns and
#   requests. Generation cost is set by memory bandwidth and batching as much as by FLOPs.
#
# ## References
#
# - Williams, S., Waterman, A., Patterson, D. (2009). *Roofline: An Insightful Visual
#   Performance Model for Multicore Architectures*. Communications of the ACM 52(4).
# - Chen, T., Xu, B., Zhang, C., Guestrin, C. (2016). *Training Deep Nets with Sublinear
#   Memory Cost*. arXiv:1604.06174.
# - Radford, A. et al. (2019). *Language Models are Unsupervised Multitask Learners*. OpenAI
#   technical report (GPT-2).
# - Kaplan, J. et al. (2020). *Scaling Laws for Neural Language Models*. arXiv:2001.08361.
# - Brown, T. et al. (2020). *Language Models are Few-Shot Learners*. NeurIPS.
#   arXiv:2005.14165. (GPT-3; training compute in Table D.1.)
# - Raffel, C. et al. (2020). *Exploring the Limits of Transfer Learning with a Unified
#   Text-to-Text Transformer*. JMLR 21. arXiv:1910.10683. (T5; cost of encoder-decoder and
#   decoder-only variants.)
# - Rajbhandari, S., Rasley, J., Ruwase, O., He, Y. (2020). *ZeRO: Memory Optimizations Toward
#   Training Trillion Parameter Models*. SC20. arXiv:1910.02054.
# - Li, C. (2020). *OpenAI's GPT-3 Language Model: A Technical Overview*. Lambda blog, June 2020.
# - Ivanov, A., Dryden, N., Ben-Nun, T., Li, S., Hoefler, T. (2021). *Data Movement Is All You
#   Need: A Case Study on Optimizing Transformers*. MLSys. arXiv:2007.00072.
# - Chowdhery, A. et al. (2022). *PaLM: Scaling Language Modeling with Pathways*.
#   arXiv:2204.02311. (Model-FLOPs utilisation, 46.2 %.)
# - Dao, T., Fu, D., Ermon, S., Rudra, A., Ré, C. (2022). *FlashAttention: Fast and
#   Memory-Efficient Exact Attention with IO-Awareness*. NeurIPS. arXiv:2205.14135.
# - Hoffmann, J. et al. (2022). *Training Compute-Optimal Large Language Models*.
#   arXiv:2203.15556. (Chinchilla; about 20 tokens per parameter.)
# - Korthikanti, V. et al. (2022). *Reducing Activation Recomputation in Large Transformer
#   Models*. arXiv:2205.05198.
# - Wang, T. et al. (2022). *What Language Model Architecture and Pretraining Objective Work Best
#   for Zero-Shot Generalization?* ICML. arXiv:2204.05832.
# - Radford, A. et al. (2023). *Robust Speech Recognition via Large-Scale Weak Supervision*.
#   ICML. arXiv:2212.04356. (Whisper.)
# - Touvron, H. et al. (2023). *Llama 2: Open Foundation and Fine-Tuned Chat Models*.
#   arXiv:2307.09288. (7B: 2T tokens, 184,320 A100-80GB GPU-hours, Table 2.)
# - NVIDIA. *V100 Tensor Core GPU* datasheet (2020): 125 TFLOP/s tensor peak. *A100 Tensor Core
#   GPU* datasheet (2021): 312 TFLOP/s dense bf16, 2.0 TB/s (80 GB). *H100 Tensor Core GPU*
#   datasheet (2023): 989 TFLOP/s dense bf16 (SXM), 3.35 TB/s.
# - OpenAI (2024). *Prompt Caching in the API*, announcement, October 2024 (cached input tokens
#   at half price). Anthropic (2024). *Prompt caching* documentation (cache reads at 10 % of the
#   base input price).
# - Mercatus (2026). *Cloud GPU pricing*, https://www.mercatus-ai.com/blog/cloud-gpu-pricing,
#   May 2026 (on-demand H100 SXM quotes of about \$2-5 per GPU-hour; the chapter's price is an
#   assumption within that range).
