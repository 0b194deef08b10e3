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
# # 2 · Multi-head attention, one question at a time
#
# Chapter 1 built *one* attention head. Every transformer runs several side by side: GPT-2
# small has 12 per layer, MiniMind 8. This chapter asks why, through eight questions (L03-Q7 to
# Q12 of the course, and MM-Q5 and MM-Q6 of the MiniMind notes):
#
# 1. Why more than one head?
# 2. How many parameters do $h$ heads have, compared with one head?
# 3. What do different heads learn? (with a head explorer of the course's trained model)
# 4. How do the heads run in parallel on a GPU?
# 5. Why is each head $d_\text{model}/h$ wide?
# 6. What happens with one head of width $d_\text{model}$?
# 7. Why separate Q, K and V projections?
# 8. Why does MiniMind use 8 heads (and 2 KV heads)?
#
# **Prerequisites.** Chapter 1 (scaled dot-product attention, queries, keys and values, the
# causal mask), PyTorch's `view`/`transpose`, and what a training loss curve shows.
#
# **How to use this chapter.** As in chapter 1: read the question, open the hints if you are
# stuck, *write your own answer* in the "Your answer" cell, then open the answer and run the
# cells that check it. ⚠️ boxes mark a typical wrong first answer (from the learner of the
# source notes) or a trap; ✏️ boxes mark places where the source notes are wrong, with the
# number recomputed by a cell above. At the end you write multi-head attention yourself and a
# checker tells you what, if anything, is wrong.
#
# Everything runs on a laptop CPU in about a minute (eight tiny trainings of a few hundred
# steps each, and the course's small trained model); on a GPU the trainings run longer.

# %% [markdown]
# Setup: the libraries, one seed for the whole chapter, the device, and the plotting style.

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
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from utils.accounting import attention_flops, count_parameters, kv_cache_bytes
from utils.attention import MultiHeadAttention, causal_mask
from utils.device import get_device, set_seed
from utils.plots import attention_heatmap, use_style
from utils.quiz import quiz

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
print("device:", device)

# %% [markdown]
# ## L03-Q7 · Why more than one head?
#
# > A transformer layer splits its attention into $h$ heads of width $d_\text{model}/h$ instead
# > of running one head of width $d_\text{model}$. What does it gain? Is it faster?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - One head gives each query *one* probability distribution over the positions. What if a
#   token needs two different things from two different places?
# - Count the multiply-adds of $QK^\top$ and $AV$ for one head of width $d$ and for $h$ heads
#   of width $d/h$.
# - The output of one head at position $i$ is a weighted *average* of value vectors. What does
#   an average forget?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q7**
#
# <div class="course-answer" data-question="L03-Q7">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Not speed: $h$ heads of width $d_k = d_\text{model}/h$ cost the same as one head of width
# $d_\text{model}$. The projections are the same four $d_\text{model} \times d_\text{model}$
# matrices either way, and the two attention products cost
# $h \cdot 2 \cdot 2T^2 d_k = 4T^2 d_\text{model}$ FLOPs whatever $h$ is.
#
# What $h$ heads buy is **$h$ independent attention patterns per token**. One head gives query
# $i$ a single distribution $\alpha_{i\cdot}$ over the positions, and its output is one
# weighted average $\sum_j \alpha_{ij} v_j$. If position $i$ needs information from two places
# at once (say the subject of the sentence *and* the previous word), one head must split its
# weight between them, and their values get **averaged into the same vector**: the sum
# $0.5\,v_a + 0.5\,v_b$ no longer says which part came from where. Vaswani et al. (2017)
# put it as "with a single attention head, averaging inhibits this". With two heads, head 1
# puts its weight on $a$, head 2 on $b$, and because each head has its own slice of $W_O$,
# the two results land in *different directions* of the output: nothing is averaged away.
#
# In formulas, $\text{MHA}(X) = \sum_{h} \operatorname{softmax}(Q_h K_h^\top/\sqrt{d_k})\,
# X W_V^{h} W_O^{h}$: a **sum of $h$ attention layers**, each with its own pattern and its own
# low-rank map $W_V^h W_O^h$ from what it reads to what it writes (Elhage et al., 2021).
#
# </details>

# %% [markdown]
# ### Show it: the same FLOPs for every $h$
#
# We count the matrix multiplications of the course's `MultiHeadAttention` with PyTorch's
# `FlopCounterMode` (explicit path, so every product is a visible `matmul`) and compare them
# with the formula of `utils.accounting`: $2T d \cdot 4d$ for the four projections plus
# $4T^2 d$ for the scores and the weighted sum. The sizes are the notes' example,
# $d_\text{model} = 512$ and $n = 100$ tokens.

# %% tags=["nbval-check-output"]
T_flops, d_flops = 100, 512
rows = []
for h in [1, 2, 4, 8, 16]:
    layer = MultiHeadAttention(d_flops, h, use_fused=False)
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, T_flops, d_flops))
    rows.append({"heads": h, "head width": d_flops // h, "measured FLOPs": counter.get_total_flops(),
                 "formula": 2 * T_flops * d_flops * 4 * d_flops + attention_flops(T_flops, d_flops)})
flop_table = pd.DataFrame(rows).set_index("heads")
print(flop_table.to_string())
print("the same for every h:", flop_table["measured FLOPs"].nunique() == 1,
      "| formula exact:", bool((flop_table["measured FLOPs"] == flop_table["formula"]).all()))
print(f"QK^T alone: {2 * T_flops**2 * d_flops / 1e6:.2f} MFLOPs; QK^T + AV: "
      f"{attention_flops(T_flops, d_flops) / 1e6:.2f} MFLOPs")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the attention FLOPs of their example</strong></p>
#
# For $d_\text{model} = 512$ and $n = 100$ the notes give "about 10M FLOPs" for the attention
# of one head and of eight heads. The equality is right, the number is half of it: $QK^\top$
# alone is $2n^2 d = 10.24$ MFLOPs, and $QK^\top$ plus $AV$ is $20.48$ MFLOPs (the cell above;
# 10.24 million would be the count of *multiply-adds*, one FLOP each, or of one of the two
# products). The four projections cost another $8nd^2 \approx 210$ MFLOPs, ten times more at
# this length.
#
# </div>

# %% [markdown]
# ### Show it: a task that needs two things at once
#
# A small synthetic task makes "two things at once" concrete. Each sequence holds the 16 tokens
# `0 … 15` in a random order, and each position also carries a random number, its *payload*
# $c_j \sim \mathcal{N}(0, 1)$, added to the token's embedding along a learned direction. At the
# position of token $a$ the model must output two numbers: the payload of token $a+1$ and the
# payload of token $a-1$ (mod 16), wherever they are in the sequence. So every position must
# *find* two other positions by content and *read* one number from each: one pattern for the
# successor, one for the predecessor.
#
# The model is one attention layer (bidirectional: any position may be read) between an
# embedding and a small MLP readout, trained with the mean squared error. Predicting 0 scores
# 1.0, the variance of a payload. We build it from the course's `MultiHeadAttention`; the
# `tie` option, used in MM-Q5, makes two projections share one weight matrix.

# %%
N_TOK = 16  # tokens per sequence, each exactly once


def pointer_batch(batch_size, generator):
    """Random orders of the 16 tokens, a payload per position, and the targets.

    Returns tokens (B, 16) long, payloads (B, 16), and targets (B, 16, 2): for the token a at
    each position, the payloads stored at the positions of tokens a+1 and a-1 (mod 16).
    """
    tokens = torch.argsort(torch.rand(batch_size, N_TOK, generator=generator), dim=1)
    payloads = torch.randn(batch_size, N_TOK, generator=generator)
    payload_of_token = torch.empty_like(payloads).scatter_(1, tokens, payloads)  # (B, token)
    successor = payload_of_token.gather(1, (tokens + 1) % N_TOK)
    predecessor = payload_of_token.gather(1, (tokens - 1) % N_TOK)
    return tokens, payloads, torch.stack([successor, predecessor], dim=-1)


class PointerModel(nn.Module):
    """Embedding -> one multi-head attention layer (+ residual) -> MLP readout."""

    def __init__(self, d_model, n_heads, n_out=2, tie=None):
        super().__init__()
        self.tok_emb = nn.Embedding(N_TOK, d_model)
        self.payload_dir = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))
        self.attn = MultiHeadAttention(d_model, n_heads)
        if tie == "Q=K":  # one matrix for queries and keys: the scores become symmetric
            self.attn.k_proj = self.attn.q_proj
        elif tie == "K=V":  # one matrix for keys and values
            self.attn.v_proj = self.attn.k_proj
        self.readout = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(),
                                     nn.Linear(4 * d_model, n_out))

    def forward(self, tokens, payloads, return_weights=False):
        x = self.tok_emb(tokens) + payloads[..., None] * self.payload_dir  # (B, T, d)
        if return_weights:
            y, weights = self.attn(x, return_weights=True)  # weights (B, h, T, T)
            return self.readout(x + y), weights
        return self.readout(x + self.attn(x))


def train_pointer(n_heads, targets=(0, 1), tie=None, d_model=16, steps=300, batch_size=64):
    """Train a PointerModel; targets (0,) = successor only, (0, 1) = both. Returns model, losses."""
    generator = torch.Generator().manual_seed(1)  # every run sees the same batches
    model = PointerModel(d_model, n_heads, len(targets), tie).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        tokens, payloads, y = (t.to(device) for t in pointer_batch(batch_size, generator))
        loss = F.mse_loss(model(tokens, payloads), y[..., list(targets)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


pointer_steps = 1500 if device.type == "cuda" else 300
head_counts = [1, 2, 4, 8, 16]  # at d_model = 16: head widths 16, 8, 4, 2, 1
started = time.perf_counter()
sweep = {h: train_pointer(h, steps=pointer_steps) for h in head_counts}  # MM-Q6 reuses all five
print(f"{len(sweep)} models of {pointer_steps} steps trained in {time.perf_counter() - started:.1f} s")


def final_loss(losses, last=50):
    """Mean training loss over the last steps (the batches are fresh: no overfitting)."""
    return float(np.mean(losses[-last:]))


# %%
def smooth(values, window=10):
    """Moving average, for readable loss curves."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, ax = plt.subplots(figsize=(7, 3.6))
for h, colour in [(1, "#c2410c"), (2, "#392061"), (4, "#15803d")]:
    ax.plot(smooth(sweep[h][1]), color=colour, label=f"{h} head{'s' * (h > 1)} of width {16 // h}")
ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
ax.text(110, 0.53, "floor of one head with payload-blind weights", color="grey")
ax.set_xlabel("training step")
ax.set_ylabel("MSE (predicting 0 gives 1.0)")
ax.set_title("the same width (d_model = 16), the same parameters, 1 vs 2 vs 4 heads")
ax.set_ylim(0, 1.1)
ax.legend()
plt.show()

# %%
print("final MSE: " + ", ".join(f"{h} head(s) {final_loss(sweep[h][1]):.3f}" for h in (1, 2, 4)))

# %% tags=["nbval-check-output"]
print("parameters of the three models equal:",
      len({count_parameters(sweep[h][0]) for h in (1, 2, 4)}) == 1)
print("one head ends at least 5x worse than two heads:",
      final_loss(sweep[1][1]) > 5 * final_loss(sweep[2][1]))

# %% [markdown]
# Why is one head so much worse? Suppose its weights at position $i$ put $\alpha$ on the
# successor and $\beta$ on the predecessor. Then the payloads reach position $i$ only through
# the single number $\alpha c_\text{succ} + \beta c_\text{pred}$, and no readout can recover
# two independent numbers from one: the best it can do leaves a mean squared error of at least
# $0.5$ (the dashed line). The one-head model goes well below that line because it found a
# loophole: its keys also see the payloads, so the *weights* $\alpha, \beta$ themselves shift
# with $c_\text{succ} - c_\text{pred}$ and leak a second number. It is a fragile code that
# gradient descent finds slowly (the red curve is still creeping down at the end); two heads
# solve the task directly. Let us look at *how*: for
# each head of the trained 2-head model, the mean attention weight that a position puts on the
# position of its successor and of its predecessor.

# %%
def pointer_attention_targets(model, n_batches=4):
    """Mean weight per head on the successor's and the predecessor's position: (h, 2)."""
    generator = torch.Generator().manual_seed(2)
    totals = 0.0
    with torch.no_grad():
        for _ in range(n_batches):
            tokens, payloads, _ = (t.to(device) for t in pointer_batch(256, generator))
            _, weights = model(tokens, payloads, return_weights=True)  # (B, h, T, T)
            position_of = torch.argsort(tokens, dim=1)  # position_of[b, token]
            succ_pos = position_of.gather(1, (tokens + 1) % N_TOK)  # (B, T)
            pred_pos = position_of.gather(1, (tokens - 1) % N_TOK)
            on_succ = weights.gather(-1, succ_pos[:, None, :, None].expand(-1, weights.shape[1], -1, 1))
            on_pred = weights.gather(-1, pred_pos[:, None, :, None].expand(-1, weights.shape[1], -1, 1))
            totals = totals + torch.stack([on_succ.mean(dim=(0, 2, 3)), on_pred.mean(dim=(0, 2, 3))], -1)
    return (totals / n_batches).cpu()


for h in (1, 2):
    split = pointer_attention_targets(sweep[h][0])
    print(f"{h} head(s): mean weight on (successor, predecessor) per head:",
          [tuple(round(float(v), 2) for v in row) for row in split])

# %% tags=["nbval-check-output"]
split_two = pointer_attention_targets(sweep[2][0])  # rows: heads; columns: successor, predecessor
print("the two heads mix successor and predecessor in different proportions:",
      bool(abs(torch.linalg.det(split_two)) > 0.05))

# %% [markdown]
# The heads need not each pick one target. Each of the two heads reads its own *mixture*
# $\alpha_h c_\text{succ} + \beta_h c_\text{pred}$ and writes it along its own direction of the
# output (its slice of $W_O$). Two different mixtures are two equations for two unknowns: as
# long as the $2 \times 2$ matrix of weights printed above is invertible (its determinant is
# not 0), the readout can solve for both payloads, and the loss goes to 0. One head delivers
# one mixture, one equation, and must resort to the loophole.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "more heads are also there to speed things up"</strong></p>
#
# The learner first answered that one head learns one kind of relation, $N$ heads up to $N$
# kinds, "and another possibility is that it is for parallel speed-up". The first half is the
# point. The second is not: the FLOP table above is identical for 1 and 16 heads, and heads
# run in parallel *because* they are independent, not to go faster than one wide head (L03-Q10
# times it). Splitting is about **what** can be computed at the same cost, not **how fast**.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: couldn't one wide head use some channels for the successor and others for the predecessor?</strong></p>
#
# <details><summary>Answer</summary>
#
# No: the channels of one head share one softmax. The score $q_i \cdot k_j$ sums over *all*
# $d_k$ channels, so the head computes one set of weights, and every channel of its value is
# averaged with those same weights. Splitting channels into groups that each have *their own*
# softmax is exactly what multi-head attention is. That is why the sum of $h$ heads of width
# $d/h$ is more expressive in this respect than one head of width $d$, at the same cost.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what if the heads were full width and averaged instead of concatenated?</strong></p>
#
# The notes ask: give each of the $h$ heads the full width $d_k = d_\text{model}$ and average
# their outputs instead of concatenating them. What happens to cost and to specialisation?
#
# <details><summary>Answer</summary>
#
# The parameters and the FLOPs of the projections and of the attention products grow $h$-fold
# (each head has its own $d \times d$ $W_Q$, $W_K$, $W_V$). Averaging is a fixed linear map,
# so it is a special case of an output projection $W_O$ applied to the concatenation, and the
# heads can still specialise: each has its own softmax. What you buy with the extra cost is
# width per head (a score matrix of rank up to $d$ instead of $d/h$, L03-Q11); what you lose is
# the free lunch of the standard design, where more heads cost nothing.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q7")

# %% [markdown]
# ## L03-Q8 · How many parameters do h heads have, compared with one head?
#
# > A layer with 8 heads: does it have 8 times the attention parameters of a layer with one
# > head? And what changes with grouped-query attention (GQA) or multi-query attention (MQA)?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Write down the shapes of $W_Q$, $W_K$, $W_V$ and $W_O$ for one head of width
#   $d_\text{model}$, then for $h$ heads of width $d_\text{model}/h$.
# - Does splitting a matrix's output columns into $h$ groups add any numbers?
# - In GQA, several query heads share one key head and one value head. Which matrices shrink?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q8**
#
# <div class="course-answer" data-question="L03-Q8">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Exactly the same number. Head $h$ has its own $W_Q^h, W_K^h, W_V^h \in \mathbb{R}^{d \times
# d_k}$ and its own block $W_O^h \in \mathbb{R}^{d_k \times d}$ of the output projection. With
# $d_k = d/h$, stacking the $h$ heads' matrices side by side gives one $d \times d$ matrix per
# role, and the implementation stores exactly that: one `nn.Linear(d, d)` per role, whose
# output is then *viewed* as $h$ heads. A view adds no parameters. So, without biases,
#
# $$P_\text{MHA} = \underbrace{d \cdot d}_{W_Q} + \underbrace{2 \cdot d \cdot h_{kv} d_k}_{W_K,\,W_V}
# + \underbrace{d \cdot d}_{W_O} = 4d^2 \quad \text{when } h_{kv} = h,$$
#
# independent of $h$. **Grouped-query attention** (Ainslie et al., 2023) keeps $h$ query heads
# but only $h_{kv} < h$ key/value heads, each shared by a group of $h / h_{kv}$ query heads, so
# only $W_K$ and $W_V$ shrink, to $d \times h_{kv} d_k$. **Multi-query attention** (Shazeer,
# 2019) is the extreme $h_{kv} = 1$. The point of both is less the parameters than the KV
# cache, which shrinks by the same factor $h / h_{kv}$ (MM-Q6).
#
# "8 heads = 8× the parameters" would be true only for 8 heads that are each as wide as the
# model: $4 \cdot 8 d^2 = 32 d^2$ (with $W_O$ mapping $8d$ channels back to $d$).
#
# </details>

# %% [markdown]
# ### Show it: count them
#
# `count_parameters` of the course's `MultiHeadAttention` at MiniMind's width $d = 512$, for
# $h = 1 \dots 16$ and three choices of key/value heads, next to the formula above.

# %% tags=["nbval-check-output"]
d_count = 512


def attention_params_formula(d, n_heads, n_kv_heads):
    head_dim = d // n_heads
    return 2 * d * d + 2 * d * n_kv_heads * head_dim  # W_Q and W_O, then W_K and W_V


rows, all_match = [], True
for h in [1, 2, 4, 8, 16]:
    row = {"heads": h, "head width": d_count // h}
    for label, n_kv in [("MHA (h_kv = h)", h), ("GQA (h_kv = 2)", min(2, h)), ("MQA (h_kv = 1)", 1)]:
        counted = count_parameters(MultiHeadAttention(d_count, h, n_kv_heads=n_kv))
        all_match &= counted == attention_params_formula(d_count, h, n_kv)
        row[label] = counted
    rows.append(row)
print(pd.DataFrame(rows).set_index("heads").to_string())
print("count_parameters == formula everywhere:", all_match)
print(f"4 d^2 = {4 * d_count**2:,}; eight full-width heads would need 32 d^2 = {32 * d_count**2:,}")

# %% [markdown]
# The MHA column is constant: 1,048,576 parameters for 1 head or 16. GQA and MQA shrink only
# the key and value projections, and their saving *grows* with $h$, because the narrower heads
# make each shared key/value head narrower too: with 16 heads and one key/value head, $W_K$
# and $W_V$ are $512 \times 32$ each.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "8 heads are 8 times one head"</strong></p>
#
# The learner's first answer: "8 heads should be 8 times a single head, but the model has other
# parts such as the residual and the FFN, so the whole model is not simply ×8". The caveat about
# the rest of the model is beside the point, because the attention layer itself does not grow:
# the $h$ heads *split* the width $d$ rather than each getting all of it. The table shows the
# count is flat in $h$. (A residual connection, by the way, has no parameters at all.)
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: where do the biases go?</strong></p>
#
# With `bias=True`, how many parameters does the layer add, and does that depend on $h$?
#
# <details><summary>Answer</summary>
#
# One bias per output channel of each projection: $d$ for $W_Q$ and $W_O$, $h_{kv} d_k$ for
# $W_K$ and $W_V$, so $4d$ for plain MHA, again independent of $h$. The cell below checks it.
# Many recent models (LLaMA, MiniMind) drop these biases; GPT-2 kept them.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
print("biases add 4d for every h:",
      all(count_parameters(MultiHeadAttention(d_count, h, bias=True))
          - count_parameters(MultiHeadAttention(d_count, h)) == 4 * d_count for h in [1, 4, 16]))

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is the attention layer the bulk of a model's parameters?</strong></p>
#
# <details><summary>Answer</summary>
#
# Usually not. A block has $4d^2$ attention parameters (less with GQA) and about $8d^2$ in a
# $4d$-wide MLP (SwiGLU with $d_\text{ff} \approx 8d/3$ has the same: three $d \times
# d_\text{ff}$ matrices). So about two thirds of a block's parameters sit in the feed-forward
# network, and small models such as MiniMind spend a large share on the embedding table as well.
# The block chapter (L03-Q19) and the challenge L03-C1 count them.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q8")

# %% [markdown]
# ## L03-Q9 · What do different heads learn?
#
# > After training, do the heads of a layer do different things? What decides which head
# > learns what, and does every head matter?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - All heads of a layer see the same input and are trained on the same loss. What is
#   different between them at step 0?
# - If two heads started with *identical* weights, would their gradients differ?
# - How would you test whether a head matters? Think of switching it off.
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q9**
#
# <div class="course-answer" data-question="L03-Q9">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Trained heads do visibly different things. Studies of trained models find heads that look
# at the **previous token**, heads that look at **the first token** or at separators (a
# "resting place" when there is nothing useful to read: Clark et al., 2019, saw BERT's heads
# park on `[SEP]`, and Xiao et al., 2023, named such positions *attention sinks*), heads that follow **syntactic relations** (Clark et al., 2019;
# Voita et al., 2019), and heads that **copy** earlier patterns (induction heads; Olsson et al.,
# 2022). Many heads are broad and hard to name, and many can be removed with little loss
# (Michel, Levy and Neubig, 2019; Voita et al., 2019): a few heads do most of the work.
#
# **What makes them differ** is not the initial values by themselves but two things together:
#
# 1. **Symmetry breaking.** The heads are interchangeable by construction. If two heads
#    started equal they would receive equal gradients and stay equal forever (a cell below
#    shows it). Random initialisation makes them *different*, and that is all it does: it
#    does not choose *what* each head becomes.
# 2. **Training pressure.** Each head's gradient depends on what the others already do: once
#    one head carries the previous token, another head gains more by reading something else.
#    The division of labour in the L03-Q7 task appeared this way. Which head ends up doing
#    what depends on the seed; *that* there is a division depends on the task.
#
# To find out what the heads of a trained model do, look at their attention maps, summarise
# them with simple scores, and switch heads off one at a time to see which ones the loss needs.
#
# </details>

# %% [markdown]
# ### Explore it: every head of the course's trained model
#
# The course ships a small character-level GPT (4 layers of 4 heads, $d_\text{model} = 128$,
# trained on the course's default corpus of Python documentation; chapter 1, L03-Q2 met its
# previous-token head). Choose a layer and a head; each row is a query character, each column
# a character it may read. A space is shown as `␣`.

# %%
from utils.attention_maps import attention_maps, previous_token_scores
from utils.data import default_corpus, train_val_split
from utils.head_ablation import ablate_heads, head_ablation_losses, head_contributions
from utils.interactive import interactive_figure
from utils.pretrained import load_pretrained

trained, char_tokenizer = load_pretrained()
n_layers, n_heads = trained.config.n_layers, trained.config.n_heads
explorer_text = "for x in range(10):\n    print(x, x * x)"
explorer_ids = torch.tensor(char_tokenizer.encode(explorer_text))
explorer_maps = attention_maps(trained, explorer_ids)  # (layers, heads, T, T)
shown_chars = [{" ": "␣", "\n": "⏎"}.get(c, c) for c in explorer_text]
print(f"{len(explorer_text)} characters; maps of shape {tuple(explorer_maps.shape)}")


def draw_head(layer, head):
    """The attention map of one head of the trained model on the explorer text."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    attention_heatmap(explorer_maps[layer, head], shown_chars, shown_chars, ax=ax,
                      title=f"layer {layer}, head {head}")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


interactive_figure(draw_head, layer=list(range(n_layers)), head=list(range(n_heads)),
                   initial={"layer": 0, "head": 1})

# %% [markdown]
# A few things to look for: a sharp line just below the diagonal (a previous-token head, e.g.
# layer 0, head 1); maps whose rows spread over many characters (broad, averaging heads, common
# in layer 1); maps that light up on repeated characters such as the `x`s.
#
# ### Show it: name the heads with simple scores
#
# Four scores per head, averaged over 8 windows of 128 characters the model did not train on:
#
# - **previous token**: the mean weight of position $i$ on $i-1$;
# - **first token**: the mean weight on position 0 (a sink);
# - **same character**: the mean weight on earlier positions that hold the same character as
#   the query (a crude *content* score: it depends on what the tokens are, not where);
# - **entropy** of each row, in nats: low = sharp, high = spread out.
#
# Each score comes with what *uniform* causal attention (every allowed position weighted
# equally) would give, so that "high" means something.

# %%
held_out = train_val_split(torch.tensor(char_tokenizer.encode(default_corpus())), 0.1)[1]
windows = held_out[: 8 * 129].view(8, 129)  # 8 windows; inputs are the first 128 characters
inputs, targets = windows[:, :-1], windows[:, 1:]
T_ctx = inputs.shape[1]
maps = attention_maps(trained, inputs)  # (8, layers, heads, T, T)

same_char = (inputs[:, :, None] == inputs[:, None, :]).tril(-1).float()  # (B, i, j): j < i, same
has_same = same_char.sum(-1) > 0  # queries with an earlier copy of their character
uniform = causal_mask(T_ctx).float() / torch.arange(1, T_ctx + 1)[:, None]  # (T, T)

on_same = (maps * same_char[:, None, None]).sum(-1)  # (B, layers, heads, T)
weights_same = has_same[:, None, None].float()
entropy = -(maps * maps.clamp_min(1e-12).log()).sum(-1)  # (B, layers, heads, T)
scores = {
    "previous token": previous_token_scores(trained, inputs),
    "first token": maps[..., 1:, 0].mean(dim=(0, -1)),
    "same character": (on_same * weights_same).sum(dim=(0, -1)) / weights_same.sum(dim=(0, -1)),
    "entropy": entropy.mean(dim=(0, -1)),
}
baseline = {  # the same scores for uniform causal attention over the same windows
    "previous token": uniform.diagonal(-1).mean(),
    "first token": uniform[1:, 0].mean(),
    "same character": ((same_char * uniform).sum(-1) * has_same).sum() / has_same.sum(),
    "entropy": torch.log(torch.arange(1, T_ctx + 1).float()).mean(),
}
base_loss, ablated_losses = head_ablation_losses(trained, inputs, targets)
head_table = pd.DataFrame(
    {name: values.flatten().numpy() for name, values in scores.items()}
    | {"loss rise when zeroed": (ablated_losses - base_loss).flatten().numpy()},
    index=[f"L{layer} H{head}" for layer in range(n_layers) for head in range(n_heads)])
print("uniform attention would score:",
      {name: round(float(value), 3) for name, value in baseline.items()})
print(f"loss with every head on: {base_loss:.3f}")
head_table.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, values, title, cmap in [
    (axes[0], scores["previous token"], "previous-token score", "Purples"),
    (axes[1], ablated_losses - base_loss, "loss rise when the head is zeroed", "Oranges"),
]:
    image = ax.imshow(values.numpy(), cmap=cmap)
    ax.grid(False)
    for (layer, head), value in np.ndenumerate(values.numpy()):
        dark = value > 0.6 * float(values.max())  # white digits on dark cells
        ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=10,
                color="white" if dark else "black")
    ax.set_xticks(range(n_heads), [f"head {h}" for h in range(n_heads)])
    ax.set_yticks(range(n_layers), [f"layer {layer}" for layer in range(n_layers)])
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
strongest_prev = divmod(int(scores["previous token"].argmax()), n_heads)
most_needed = divmod(int((ablated_losses - base_loss).argmax()), n_heads)
print("strongest previous-token head (layer, head):", strongest_prev,
      "| head whose removal hurts most:", most_needed)
print(f"largest first-token score: {float(scores['first token'].max()):.3f} at (layer, head) "
      f"{divmod(int(scores['first token'].argmax()), n_heads)} "
      f"(uniform: {float(baseline['first token']):.3f}); no head puts twice the uniform weight "
      f"on position 0: {bool((scores['first token'] < 2 * baseline['first token']).all())}")
print("heads whose removal costs less than 0.02 nats:",
      int(((ablated_losses - base_loss) < 0.02).sum()), "of", n_layers * n_heads)

# %% [markdown]
# What the table and the maps say about this small model:
#
# - **Previous-token heads** sit in layer 0: head 1 and head 2 put about half of each row's
#   weight on the previous character, far above the uniform baseline (layer 3 has weaker
#   ones, heads 0 and 2). Layer 0's are also the heads
#   the model needs most: zeroing layer 0, head 1 raises the loss more than any other head.
#   For a character model this makes sense: the previous character is the best single clue
#   for the next one, and later layers build on it.
# - **No first-token head.** The largest first-token score (layer 1, head 2, printed above) is
#   only a little above what uniform attention would give, and most heads are below it.
#   Attention sinks are typical of larger models trained on longer contexts; this one, with a
#   context of 128 characters, did not grow one.
# - **Broad heads** fill layer 1: the highest entropies of the model (still below the uniform
#   baseline), and almost free to remove.
#   They average over the context, a cheap summary of "what kind of text is this".
# - **Content** (same-character) scores are only modestly above the baseline, and the trained
#   record of the model (`load_pretrained().info["induction_scores"]`) shows no induction head:
#   a model trained for minutes has not learned to copy.
# - **Redundancy**: several heads can be zeroed at a cost of a few hundredths of a nat, as
#   Michel et al. (2019) found for much larger models.
#
# ### Show it: training, not initialisation, makes the heads differ
#
# Two checks of the answer. First, the same architecture *before* training: a freshly
# initialised model's heads are all nearly uniform, so the specialisation above was learned.

# %% tags=["nbval-check-output"]
from utils.model import TinyGPT

fresh = TinyGPT(trained.config).eval()  # same architecture, random weights
fresh_prev = previous_token_scores(fresh, inputs)
print(f"best previous-token score: trained {float(scores['previous token'].max()):.2f}, "
      f"fresh {float(fresh_prev.max()):.2f} (uniform: {float(baseline['previous token']):.2f})")

# %% [markdown]
# Second, symmetry. We give all four heads of a layer *identical* weights (copy head 0's rows
# of $W_Q$, $W_K$, $W_V$ and its columns of $W_O$ into the other heads), take ten gradient steps
# on a random regression loss, and check whether the heads are still identical.

# %% tags=["nbval-check-output"]
clone_layer = MultiHeadAttention(32, 4).to(device)
hs = clone_layer.head_dim
with torch.no_grad():
    for proj in (clone_layer.q_proj, clone_layer.k_proj, clone_layer.v_proj):
        proj.weight.copy_(proj.weight[:hs].repeat(4, 1))  # every head gets head 0's rows
    clone_layer.o_proj.weight.copy_(clone_layer.o_proj.weight[:, :hs].repeat(1, 4))
start_q = clone_layer.q_proj.weight.detach().clone()
x_sym, y_sym = torch.randn(8, 10, 32, device=device), torch.randn(8, 10, 32, device=device)
opt_sym = torch.optim.SGD(clone_layer.parameters(), lr=0.1)
for _ in range(10):
    loss_sym = F.mse_loss(clone_layer(x_sym, causal=True), y_sym)
    opt_sym.zero_grad()
    loss_sym.backward()
    opt_sym.step()
w_q_heads = clone_layer.q_proj.weight.view(4, hs, 32)
print("the weights did change:", not torch.allclose(clone_layer.q_proj.weight, start_q))
print("all four heads still identical:",
      all(torch.allclose(w_q_heads[0], w_q_heads[h], atol=1e-6) for h in range(1, 4)))

# %% [markdown]
# Identical heads get identical gradients and stay copies of each other: four heads that are
# really one. Random initialisation is what breaks this tie; what each head then becomes is
# decided by the data and the loss.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the heads differ because of the initial values of Q, K and V"</strong></p>
#
# That was the learner's first answer. The initial values are necessary (without different
# starting points the heads would stay copies, as just shown) but they do not choose the roles:
# a fresh model has no previous-token head, and retraining with another seed gives a model
# whose previous-token head may sit at another index. The roles come from training: each head's
# gradient depends on the task and on what the other heads already provide.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: invented head tables</strong></p>
#
# The notes attribute to Clark et al. (2019) a table "heads 5–6: direct objects, heads 8–10:
# prepositions, heads 2–4: subject–verb", and the MiniMind notes describe "in English
# translation, heads 1–2 learn syntax, 3–4 long-distance dependencies, 5–6 semantics, 7–8
# position". Neither table is in the papers. Clark et al. analyse individual heads of BERT-base
# named *layer-head* (their direct-object head, for instance, is head 8-10: layer 8, head 10),
# and Vaswani et al. (2017) only show a few example attention maps. Roles belong to individual
# heads of one trained model, not to ranges of head numbers, and they change from one training
# run to the next. What can be said about a given model has to be measured, as above.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what exactly does "zeroing a head" change?</strong></p>
#
# <details><summary>Answer</summary>
#
# The layer's output is a sum of one term per head, $\sum_h y_h W_O^{h}$ (see L03-Q12), so
# zeroing $y_h$ just before $W_O$ removes exactly that head's term and leaves the other heads
# untouched *in this layer*. Later layers then see a different input, so the effect on the loss
# includes everything downstream. `utils.head_ablation` does this with a hook on `o_proj`; its
# tests check that the change equals the head's contribution recomputed by hand. The cell below
# checks it on layer 0 of the trained model. (Zeroing is the bluntest ablation; replacing a head's
# output by its *mean* over the data is gentler and often preferred in interpretability work.)
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
block0 = trained.blocks[0]
x0 = block0.norm1(trained.tok_emb(explorer_ids[None]))  # the input of layer 0's attention
with torch.no_grad():
    full_out = block0.attn(x0, causal=True)
    with ablate_heads(block0.attn, [(0, 1)]):
        without_h1 = block0.attn(x0, causal=True)
print("output change == head 1's contribution:",
      torch.allclose(full_out - without_h1, head_contributions(block0.attn, x0)[:, 1], atol=1e-5))

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: if some heads can be removed, why train them?</strong></p>
#
# <details><summary>Answer</summary>
#
# Because it is hard to know in advance which ones. Michel et al. (2019) found that many heads
# of a trained model can be pruned at test time, and that which heads become important is
# decided early in training, by training. Voita et al. (2019) pruned most encoder heads of a
# translation model with a small loss in BLEU, keeping a few specialised ones (positional,
# syntactic, rare-word heads). Pruning after training is cheap; guessing the right number
# before training is not.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q9")

# %% [markdown]
# ## L03-Q10 · How do the heads run in parallel on a GPU?
#
# > The heads are independent. How does an implementation run them at the same time, and why
# > is that faster than a Python loop over heads?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - After `q = x @ W_Q` of shape `(B, T, d)`, what does `q.view(B, T, h, d_k).transpose(1, 2)`
#   give? Does it copy or compute anything?
# - A batched matrix product `(B, h, T, d_k) @ (B, h, d_k, T)` treats which dimensions as
#   "batch"?
# - What does a GPU pay per kernel launch, and how many launches does a loop over $h$ heads
#   make?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q10**
#
# <div class="course-answer" data-question="L03-Q10">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# The heads are never computed one by one. The implementation
#
# 1. projects **all heads at once** with one $d \times d$ matrix per role: `q = x @ W_Q`, one
#    large matrix product instead of $h$ thin ones;
# 2. **splits** the channels into heads with a reshape, `(B, T, d) -> (B, T, h, d_k) -> (B, h,
#    T, d_k)`: no arithmetic, only a different view of the same numbers;
# 3. runs attention as **batched** matrix products over the combined batch `(B, h)`: to the
#    kernel, $h$ heads of a batch of $B$ look like a batch of $B \cdot h$ independent
#    single-head problems;
# 4. puts the heads back side by side (`transpose` + `reshape`, which copies once) and applies
#    $W_O$, again one large product.
#
# Why one big product beats $h$ small ones: each kernel launch and each pass of Python costs a
# fixed overhead (microseconds on a GPU), and a small product of width $d_k$ cannot keep
# thousands of GPU cores busy or reuse what it loads from memory often enough. One batched call
# amortises the overhead and gives the hardware enough independent work. Fused kernels
# (FlashAttention, PyTorch's `scaled_dot_product_attention`) go one step further: they never
# write the $h \times T \times T$ score tensor to memory at all (chapter 5).
#
# </details>

# %% [markdown]
# ### Show it: a loop over heads, batched heads, and the fused kernel
#
# Three implementations of the same attention (no projections, $d = 256$, $h = 16$ heads of
# width 16, one sequence): a Python loop over heads, the reshape-and-batch version, and
# PyTorch's fused kernel. First they must agree; then we time them over sequence lengths.

# %%
def heads_loop(q, k, v, n_heads):
    """Attention head by head: slice each head's channels, attend, concatenate."""
    d_head = q.shape[-1] // n_heads
    outs = []
    for h in range(n_heads):
        cols = slice(h * d_head, (h + 1) * d_head)
        weights = torch.softmax(q[..., cols] @ k[..., cols].transpose(-2, -1) / math.sqrt(d_head), -1)
        outs.append(weights @ v[..., cols])
    return torch.cat(outs, dim=-1)


def split_heads(t, n_heads):
    """(B, T, C) -> (B, h, T, C // h): a view, no copy."""
    B, T, C = t.shape
    return t.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def heads_batched(q, k, v, n_heads):
    """All heads in one batched product: the heads become a batch dimension."""
    qh, kh, vh = (split_heads(t, n_heads) for t in (q, k, v))  # (B, h, T, d_head)
    weights = torch.softmax(qh @ kh.transpose(-2, -1) / math.sqrt(qh.shape[-1]), -1)  # (B, h, T, T)
    B, _, T, _ = qh.shape
    return (weights @ vh).transpose(1, 2).reshape(B, T, -1)


def heads_fused(q, k, v, n_heads):
    qh, kh, vh = (split_heads(t, n_heads) for t in (q, k, v))
    B, _, T, _ = qh.shape
    return F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(B, T, -1)


# %% tags=["nbval-check-output"]
q_t, k_t, v_t = (torch.randn(1, 64, 256, device=device) for _ in range(3))
reference = heads_loop(q_t, k_t, v_t, 16)
print("batched == loop:", torch.allclose(heads_batched(q_t, k_t, v_t, 16), reference, atol=1e-5))
print("fused   == loop:", torch.allclose(heads_fused(q_t, k_t, v_t, 16), reference, atol=1e-4))
print("split_heads is a view of the same memory:",
      split_heads(q_t, 16).data_ptr() == q_t.data_ptr())

# %%
from utils.timing import best_time  # best of repeats: thread CPU time, or synced wall clock

lengths = [16, 64, 256, 1024] + ([4096] if device.type == "cuda" else [])
rows = []
for T_len in lengths:
    qkv = [torch.randn(1, T_len, 256, device=device) for _ in range(3)]
    row = {"T": T_len}
    for name, fn in [("loop over heads", heads_loop), ("batched", heads_batched), ("fused", heads_fused)]:
        row[name + " (ms)"] = 1e3 * best_time(lambda: fn(*qkv, 16), device, min_total=0.15)
    rows.append(row)
timing = pd.DataFrame(rows).set_index("T")
timing["loop / batched"] = timing["loop over heads (ms)"] / timing["batched (ms)"]
print(f"device: {device}, torch threads: {torch.get_num_threads()}; the batched score tensor at "
      f"T = {lengths[-1]}: 16 x {lengths[-1]} x {lengths[-1]} floats = {16 * lengths[-1]**2 * 4 / 2**20:.0f} MiB")
timing.round(3)

# %% [markdown]
# Your numbers depend on the machine; the ones stored with this page were measured on the
# book's build machine, a CPU. The pattern to look for:
#
# - at **short sequences** the loop loses clearly: each head's products are tiny, and the
#   16 trips through Python and the operator dispatch cost more than the arithmetic;
# - at **long sequences** on a CPU the batched version need not win, and may even lose: it
#   materialises all 16 score matrices $T \times T$ at once (64 MiB at $T = 1024$ in float32),
#   which no longer fits in the cache, while the loop works on one at a time. On a GPU, where
#   a launch costs microseconds and one thin product leaves most cores idle, batching wins;
# - the **fused** kernel is the fastest at every length, because it neither loops in Python
#   nor writes the score matrices to memory.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the heads parallelise fully, so the GPU is not the bottleneck"</strong></p>
#
# The learner answered that the heads "can be computed completely in parallel; the GPU should
# not be the bottleneck, it is more the data and the network". The first half is right. The
# second mixes two levels. Across machines, data loading and communication can indeed limit a
# training run. But *inside* the GPU, independent heads do not make the work free: the
# attention products read and write $h \times T \times T$ scores, which is *memory* traffic,
# and at batch size 1 during generation each step has too little arithmetic per byte to keep
# the GPU busy. Whether a step is limited by compute or by memory is a property of its shapes,
# measured in L03-C3; FlashAttention exists because attention is often memory-bound.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: utilisation figures that were never measured</strong></p>
#
# The notes state GPU utilisations for three scenarios: "&gt;90%" for training with batch 256,
# "&lt;30%" for inference with batch 1, "high" for long sequences. No measurement stands behind
# them, and they depend on the GPU, the kernels and the model size. The direction is right
# (small batches underuse a GPU), the figures are not evidence. What this page can measure,
# it measures: the timings in the table above, on the machine that ran it.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why does `view` work for the split but the merge needs `reshape` (or `contiguous`)?</strong></p>
#
# <details><summary>Answer</summary>
#
# `q.view(B, T, h, d_k)` only reinterprets the last dimension: the memory layout already has
# each token's $d$ channels in a row, so no data moves. `transpose(1, 2)` then swaps two
# strides, still without copying. After attention, the `(B, h, T, d_k)` result must become
# `(B, T, h·d_k)` with each token's heads *adjacent in memory*, which the transposed layout is
# not; `view` refuses, and `reshape` (or `.contiguous().view`) makes the one copy needed.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: with batch size 1 and 8 heads, how do servers keep a GPU busy?</strong></p>
#
# <details><summary>Answer</summary>
#
# By not running batch size 1: an inference server batches the requests of many users
# together (continuous or dynamic batching, as in vLLM; Kwon et al., 2023), so every weight read
# from memory serves many tokens. The KV cache makes each new token cheap in FLOPs but adds
# memory traffic for the cached keys and values, which is what GQA and MQA shrink (MM-Q6 and
# chapter 5).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q10")

# %% [markdown]
# ## L03-Q11 · Why is each head d_model / h wide?
#
# > Why $d_k = d_\text{model}/h$, and not 64 whatever the model, or $d_\text{model}$ for every
# > head? Is it forced?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - What must the width of the attention layer's *output* be, given the residual connection?
#   Which matrix produces that output?
# - How do the parameters and FLOPs of the layer depend on $h \cdot d_k$?
# - Head $h$'s score matrix $Q_h K_h^\top$ is $T \times T$. What is its largest possible rank?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q11**
#
# <div class="course-answer" data-question="L03-Q11">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# It is a **convention that keeps the cost fixed**, not a law.
#
# - The residual connection needs the layer's *output* to be $d_\text{model}$ wide. That output
#   comes from $W_O \in \mathbb{R}^{h d_k \times d_\text{model}}$, which maps *any* total head
#   width $h d_k$ back to $d_\text{model}$. So the residual does not force $h d_k = d_\text{model}$.
# - The cost does motivate it. Parameters are $2 d\,(h d_k) + 2 d\,(h_{kv} d_k)$ and the
#   attention products cost $4T^2 (h d_k)$: everything depends on $h d_k$. Fixing
#   $h d_k = d_\text{model}$ makes the number of heads a free choice at constant cost, which is
#   how Vaswani et al. (2017) compared head counts in their Table 3 (rows A).
# - The price of narrow heads: head $h$'s score matrix $Q_h K_h^\top = X W_Q^h (X W_K^h)^\top$
#   has rank at most $d_k$. With $d_k$ smaller than the sequence length, a head cannot
#   express every attention pattern; Bhojanapalli et al. (2020) call this the *low-rank
#   bottleneck* and argue for setting $d_k$ independently of $h$. In our L03-Q7 task, 16 heads
#   of width 1 learned slowest for that reason (MM-Q6).
#
# Some models do break the convention: Gemma 7B (Gemma Team, 2024) has $d_\text{model} = 3072$
# and 16 heads of width 256, a total head width of 4096.
#
# </details>

# %% [markdown]
# ### Show it: $h \cdot d_k \neq d_\text{model}$ works, and the rank limit
#
# First, 4 heads of width 64 in a model of width 128 (total head width 256): $W_O$ maps 256
# channels back to 128, and the residual sum works.

# %% tags=["nbval-check-output"]
d_res, h_wide, dk_wide, T_res = 128, 4, 64, 10
x_res = torch.randn(1, T_res, d_res, device=device)
W_Q, W_K, W_V = (torch.randn(d_res, h_wide * dk_wide, device=device) / math.sqrt(d_res) for _ in range(3))
W_O = torch.randn(h_wide * dk_wide, d_res, device=device) / math.sqrt(h_wide * dk_wide)
heads_out = heads_batched(x_res @ W_Q, x_res @ W_K, x_res @ W_V, h_wide)  # (1, T, 256)
residual_out = x_res + heads_out @ W_O  # (1, T, 128)
print("head outputs:", tuple(heads_out.shape), "-> after W_O and the residual:", tuple(residual_out.shape))

# %% [markdown]
# Second, the rank of one head's score matrix for a sequence of 32 random tokens, as the head
# width shrinks (the scores before the softmax; the softmax is applied row by row and can
# change the rank, but it cannot add detail that the scores do not contain).

# %% tags=["nbval-check-output"]
T_rank, d_rank = 32, 64
x_rank = torch.randn(T_rank, d_rank, dtype=torch.float64)
for d_k in [1, 2, 4, 8, 16, 32, 64]:
    Wq, Wk = torch.randn(d_rank, d_k, dtype=torch.float64), torch.randn(d_rank, d_k, dtype=torch.float64)
    rank = int(torch.linalg.matrix_rank((x_rank @ Wq) @ (x_rank @ Wk).T))
    print(f"d_k = {d_k:2d}: rank of the {T_rank}x{T_rank} score matrix = {rank}")

# %% [markdown]
# The rank is $\min(d_k, T)$: a head of width 4 can only produce score matrices built from 4
# directions, however long the sequence. In practice $d_k$ stays at 64 or 128 in most models,
# while $d_\text{model}$ and $h$ grow together. The cell below computes the head width of a
# few published configurations (MiniMind's from its repository).

# %% tags=["nbval-check-output"]
published = {  # name: (d_model, n_heads) as published
    "Transformer base (Vaswani et al., 2017)": (512, 8),
    "BERT-base / GPT-2 small": (768, 12),
    "GPT-3 175B (Brown et al., 2020)": (12288, 96),
    "MiniMind2-small": (512, 8),
}
for name, (d_model_pub, h_pub) in published.items():
    print(f"{name}: d_model {d_model_pub} / {h_pub} heads = head width {d_model_pub // h_pub}")

# %% [markdown]
# The notes' head widths for BERT-base, GPT-2 and GPT-3 agree with these: here the notes are right.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the residual makes $d_k = d_\text{model}/h$ inevitable"</strong></p>
#
# The learner answered that the heads together should learn exactly $d_\text{model}$ dimensions
# "to be added to the residual, so it must be this formula". The intent (keep the total
# width, and with it the cost, fixed) is right, and the notes praised the answer as complete.
# But it is not *forced*: the residual constrains the output of $W_O$, and $W_O$ can map any
# $h \cdot d_k$ to $d_\text{model}$, as the first cell above shows and Gemma 7B does. The real
# reason is the budget: with $h d_k = d_\text{model}$, parameters and FLOPs do not depend on $h$.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why do large models keep $d_k$ near 128 instead of letting it grow with $d_\text{model}$?</strong></p>
#
# <details><summary>Answer</summary>
#
# Two reasons. Quality: more heads of a useful width give more independent patterns, and
# beyond a width of 64–128 a single head gains little (the rank argument only needs $d_k$ to be
# large compared with the patterns a head must express, not with $d_\text{model}$). Hardware:
# fused attention kernels are written and tuned for head widths such as 64 and 128, which fit
# their tiles in on-chip memory. So a bigger model gets more heads, not wider ones.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does the query/key width have to equal the value width?</strong></p>
#
# <details><summary>Answer</summary>
#
# No. The scores only need $q$ and $k$ to match ($d_k$); the values may have another width
# $d_v$, and $W_O$ then maps $h d_v$ to $d_\text{model}$. Vaswani et al. (2017) already wrote
# $d_k$ and $d_v$ separately; DeepSeek-V2's multi-head latent attention (DeepSeek-AI, 2024) uses
# different widths for its query/key and value heads.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q11")

# %% [markdown]
# ## L03-Q12 · What happens with one head of width d_model?
#
# > Set $h = 1$, so $d_k = d_\text{model}$. Is multi-head attention then exactly the
# > single-head attention of chapter 1? What does $W_O$ still do?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Write the output for $h = 1$: $\operatorname{softmax}(\cdot)\,(X W_V)\,W_O$. Where could the
#   brackets go?
# - Is the product of two $d \times d$ matrices any more general than one $d \times d$ matrix?
# - For $h > 1$, each head's output is multiplied by its own block of $W_O$. Can one $W_V$
#   absorb all of them?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q12**
#
# <div class="course-answer" data-question="L03-Q12">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# With one head, multi-head attention **is** single-head attention, and $W_O$ adds nothing
# it could compute. Matrix products associate:
#
# $$\operatorname{softmax}\!\Big(\tfrac{QK^\top}{\sqrt d}\Big)\,(X W_V)\,W_O
#   = \operatorname{softmax}\!\Big(\tfrac{QK^\top}{\sqrt d}\Big)\,X\,(W_V W_O),$$
#
# and $W_V W_O$ is just another $d \times d$ matrix. Any function the layer computes with
# $(W_V, W_O)$ it computes with $(W_V' = W_V W_O,\ W_O' = I)$, and vice versa: the two
# parametrisations have exactly the same expressive power. $W_O$ only costs $d^2$ extra
# parameters. (It can still change *training*, since gradient descent on a product of
# matrices behaves differently from gradient descent on one matrix, but not *what* can be
# represented.)
#
# With $h > 1$ heads it is different, because each head $h$ has its own weights $A_h$:
#
# $$\text{MHA}(X) = \sum_h A_h\, X\, W_V^h W_O^h .$$
#
# Each $W_V^h W_O^h$ ($d \times d$, rank at most $d_k$) can be folded per head, but the heads
# cannot share one $W_V$: without $W_O$, head $h$ could only write to its own $d_k$ channels of
# the output. $W_O$ is what lets every head write to *all* $d_\text{model}$ channels of the
# residual stream, and what mixes the heads.
#
# </details>

# %% [markdown]
# ### Show it: fold $W_O$ into $W_V$ for one head
#
# We take the course's `MultiHeadAttention` with one head, build a copy whose value projection
# is $W_V W_O$ and whose output projection is the identity, and compare outputs. (`nn.Linear`
# stores $W^\top$, so in code the folded weight is `o_proj.weight @ v_proj.weight`.)

# %% tags=["nbval-check-output"]
def fold_output_into_values(layer):
    """A copy of a MultiHeadAttention whose W_V absorbs W_O and whose W_O is the identity."""
    folded = MultiHeadAttention(layer.d_model, layer.n_heads).to(layer.q_proj.weight.device)
    folded.load_state_dict(layer.state_dict())
    with torch.no_grad():
        folded.v_proj.weight.copy_(layer.o_proj.weight @ layer.v_proj.weight)
        folded.o_proj.weight.copy_(torch.eye(layer.d_model))
    return folded


x_fold = torch.randn(2, 12, 64, device=device)
for h in [1, 4]:
    layer = MultiHeadAttention(64, h).to(device)
    with torch.no_grad():
        error = (layer(x_fold, causal=True) - fold_output_into_values(layer)(x_fold, causal=True)).abs().max()
    print(f"h = {h}: folding W_O into W_V keeps the output: {bool(error < 1e-5)}")

# %% [markdown]
# For $h = 1$ the fold is exact (up to rounding). For $h = 4$ it fails: the folded $W_V W_O$
# mixes all heads' value channels *before* the attention weights, but each head applies its
# own weights. The next cell shows what $W_O$ buys: with $W_O = I$, each head changes only its
# own 16 of the 64 output channels; with a learned $W_O$, every head writes to all 64.
# `head_contributions` (from `utils.head_ablation`) splits a layer's output into one term per
# head.

# %% tags=["nbval-check-output"]
layer4 = MultiHeadAttention(64, 4).to(device)
identity_out = MultiHeadAttention(64, 4).to(device)
identity_out.load_state_dict(layer4.state_dict())
with torch.no_grad():
    identity_out.o_proj.weight.copy_(torch.eye(64))
for name, lay in [("W_O = I", identity_out), ("learned W_O", layer4)]:
    contributions = head_contributions(lay, x_fold)  # (B, h, T, 64)
    channels = [int((contributions[:, h].abs().amax(dim=(0, 1)) > 1e-6).sum()) for h in range(4)]
    print(f"{name:12s}: output channels each head writes to: {channels}")
print("the per-head terms sum to the layer's output:",
      torch.allclose(head_contributions(layer4, x_fold).sum(1), layer4(x_fold, causal=True), atol=1e-5))

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: $W_O$ adds no expressive power when $h = 1$</strong></p>
#
# The notes say that with $h = 1$, multi-head attention is "slightly more expressive" than
# plain self-attention because $W_O$ "provides an extra space of nonlinear combinations", and
# conclude "approximately degenerate, but not completely". $W_O$ is linear, and for one head it
# folds exactly into $W_V$: the first cell above reproduces the layer's output without it. The
# two are *exactly* as expressive; $W_O$ matters only for $h > 1$, where it lets each head write
# to the whole residual stream. (It also fixes the output width when $h d_k \ne d_\text{model}$,
# L03-Q11.)
#
# </div>

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "then $W_O$ is useless and can be dropped"</strong></p>
#
# The learner's own answer, "it degenerates into self-attention", was right, and the fold
# proves it. The trap is the step after it: concluding that $W_O$ is redundant in general. For
# $h > 1$ dropping $W_O$ confines each head to its own $d_k$ channels (the second cell above)
# and removes the only place where heads are combined. Even for $h = 1$, keeping the $W_O$ of
# a standard layer costs little and keeps one code path for every $h$.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can $W_Q$ and $W_K$ be folded the same way?</strong></p>
#
# <details><summary>Answer</summary>
#
# Yes, per head: the scores depend on $W_Q^h$ and $W_K^h$ only through the product
# $W_Q^h W_K^{h\top}$, a $d \times d$ matrix of rank at most $d_k$ (the "QK circuit" of Elhage
# et al., 2021); likewise $W_V^h W_O^h$ is the "OV circuit". Storing the factors is cheaper
# ($2 d d_k$ numbers instead of $d^2$) and enforces the low rank; folding is a tool for
# *analysing* a head, not for running it.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can $W_O$ be folded into the next layer instead?</strong></p>
#
# <details><summary>Answer</summary>
#
# Not in a transformer block: the attention output is *added* to the residual stream, and the
# stream then passes through a normalisation (RMSNorm or LayerNorm) before the next linear map.
# Neither the addition with the stream nor the normalisation commutes with $W_O$, so it cannot
# move past them.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q12")

# %% [markdown]
# ## MM-Q5 · Why separate Q, K and V projections?
#
# > Why does attention use three projection matrices? What would be lost with one: the scores
# > $XX^\top$ (no projections) or a single shared $W$ for queries and keys, or for keys and
# > values?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Is $x_i \cdot x_j$ equal to $x_j \cdot x_i$? What does that say about "$i$ attends to $j$"
#   versus "$j$ attends to $i$"?
# - With $Q = K = XW$, what is the score of a token with itself, $\lVert x_i W \rVert^2$,
#   compared with the others?
# - Think of a relation that has a direction: "$b$ comes after $a$". Can a symmetric score
#   matrix encode it?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q5**
#
# <div class="course-answer" data-question="MM-Q5">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# The score is a bilinear form, $s_{ij} = x_i\, W_Q W_K^\top\, x_j^\top = x_i M x_j^\top$.
#
# - **No projections** ($XX^\top$, $M = I$): nothing to learn about *what* to match, and the
#   scores are symmetric.
# - **Tied queries and keys** ($W_Q = W_K = W$, $M = WW^\top$): $M$ is symmetric (and positive
#   semi-definite), so $s_{ij} = s_{ji}$: "$i$ is interested in $j$" exactly as much as "$j$ is
#   interested in $i$". Relations with a direction (*follows*, *is the object of*, *refers
#   back to*) cannot be expressed by the scores alone. The self-score $s_{ii} = \lVert x_i W
#   \rVert^2 \ge 0$ also cannot be pushed below zero, so a token never learns to look away
#   from itself through a negative self-score.
# - **Separate $W_Q$ and $W_K$**: $M$ can be any matrix of rank $\le d_k$, asymmetric included.
# - **Separate $W_K$ and $W_V$**: what makes a position *findable* (its key) can differ from
#   what it *hands over* (its value), as in chapter 1's previous-token head, which matched on
#   position and returned the word. Tying them forces one projection to do both; with enough
#   width it can keep the two in different directions, so this tie hurts less than $Q = K$.
#
# A concrete impossibility for $Q = K$: let every token $a$ look for its successor $a+1$
# around a cycle $0 \to 1 \to \dots \to 15 \to 0$. Token $a$ must score its successor above its
# predecessor: $s(a, a{+}1) > s(a, a{-}1) = s(a{-}1, a)$ by symmetry. Chaining this around the
# cycle gives $s(0,1) > s(15,0) > s(14,15) > \dots > s(0,1)$, a contradiction: some token must
# fail.
#
# </details>

# %% [markdown]
# ### Show it: the scores of tied projections are symmetric

# %% tags=["nbval-check-output"]
X_sym = torch.randn(6, 16, dtype=torch.float64)
W_shared = torch.randn(16, 8, dtype=torch.float64)
W_q_sep, W_k_sep = torch.randn(16, 8, dtype=torch.float64), torch.randn(16, 8, dtype=torch.float64)
S_tied = (X_sym @ W_shared) @ (X_sym @ W_shared).T
S_sep = (X_sym @ W_q_sep) @ (X_sym @ W_k_sep).T
print("tied Q = K: scores symmetric:", torch.allclose(S_tied, S_tied.T),
      "| self-scores >= 0:", bool((S_tied.diagonal() >= 0).all()))
print("separate Q, K: scores symmetric:", torch.allclose(S_sep, S_sep.T))

# %% [markdown]
# ### Show it: a task with a direction
#
# We reuse the L03-Q7 task with one target only: at the position of token $a$, output the
# payload of token $a+1$. One head of width 16, trained three ways: separate projections,
# $W_Q = W_K$, and $W_K = W_V$ (the `tie` option shares one `nn.Linear` between two roles).

# %%
tie_runs = {tie: train_pointer(1, targets=(0,), tie=tie, steps=pointer_steps)[1]
            for tie in [None, "Q=K", "K=V"]}
fig, ax = plt.subplots(figsize=(7, 3.6))
for (tie, losses), colour in zip(tie_runs.items(), ["#392061", "#c2410c", "#15803d"], strict=True):
    label = {None: "separate W_Q, W_K, W_V", "Q=K": "W_Q = W_K (symmetric scores)",
             "K=V": "W_K = W_V"}[tie]
    ax.plot(smooth(losses), color=colour, label=label)
ax.set_xlabel("training step")
ax.set_ylabel("MSE (predicting 0 gives 1.0)")
ax.set_title("find the payload of token a+1: one head, width 16")
ax.set_ylim(0, 1.1)
ax.legend()
plt.show()
print("final MSE: " + ", ".join(f"{tie or 'separate'} {final_loss(losses):.3f}"
                                for tie, losses in tie_runs.items()))

# %% tags=["nbval-check-output"]
print("Q = K ends at least 10x worse than separate projections:",
      final_loss(tie_runs["Q=K"]) > 10 * final_loss(tie_runs[None]))

# %% [markdown]
# Separate projections and $W_K = W_V$ both solve the task; tied queries and keys plateau far
# above them, as the cycle argument predicts: with symmetric scores, a token's successor
# and predecessor compete on equal terms somewhere around the cycle.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "Q, K and V are separate because that is the standard design"</strong></p>
#
# This is the "surface answer" the MiniMind notes start from, and it explains nothing. The
# reasons are testable: tie $W_Q$ and $W_K$ and a directed relation becomes unlearnable (the
# cell above); tie $W_K$ and $W_V$ and, in this task, nothing breaks, because one projection
# of width 16 has room for both the token (for matching) and the payload (for reading).
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: merging K and V is not necessarily a failure</strong></p>
#
# The notes argue that merging keys and values makes attention "inaccurate", with a
# search-engine story in which raw text is compared instead of keywords. In the run above,
# $W_K = W_V$ learns the task as well as separate projections (the final losses printed above).
# What a shared projection costs is *capacity*: matching features and content features must
# share $d_k$ dimensions, which matters when both need many. The asymmetry of $Q$ and $K$, not
# the separation of $K$ and $V$, is what a single matrix cannot replace.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: do positions rescue tied queries and keys?</strong></p>
#
# Add positional information (learned vectors added to the input, or RoPE rotating $q$ and
# $k$). Are the scores of a $W_Q = W_K$ head still symmetric?
#
# <details><summary>Answer</summary>
#
# Yes. Added position vectors only change the inputs $x_i$, and $x_i M x_j^\top$ with a
# symmetric $M$ stays symmetric whatever the inputs contain. With RoPE, $u = xW$ is rotated by
# its position, and the score $u_m^\top R_{n-m} u_n$ is symmetric too, because the transpose of
# a rotation by $n - m$ is the rotation by $m - n$. The cell after these follow-ups checks it
# with the course's RoPE. Only the causal mask breaks the symmetry, by hiding one direction altogether. Some
# models do share $Q$ and $K$ on purpose (the Reformer, Kitaev et al., 2020, for its
# hashing-based attention) and accept the cost.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does a token attend most to itself under $Q = K$?</strong></p>
#
# <details><summary>Answer</summary>
#
# Not necessarily: $s_{ii} = \lVert u_i \rVert^2$ (with $u = xW$) while
# $s_{ij} = u_i \cdot u_j$ can be larger when $u_j$ is longer and points the same way (chapter 1,
# L03-Q1, has the two-token example). Self-scores are never negative, but the winner depends
# on lengths as well as directions.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
from utils.positional import apply_rope_cos_sin, rope_cos_sin

u_rope = X_sym @ W_shared  # (6, 8): tied projection of six tokens
cos, sin = rope_cos_sin(torch.arange(6), 8)
u_rot = apply_rope_cos_sin(u_rope, cos.double(), sin.double())  # the same rotation for q and k
S_rope = u_rot @ u_rot.T
print("tied Q = K with RoPE: scores still symmetric:", torch.allclose(S_rope, S_rope.T),
      "| and RoPE did change them:", not torch.allclose(S_rope, S_tied))

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q5")

# %% [markdown]
# ## MM-Q6 · Why does MiniMind use 8 heads (and 2 KV heads)?
#
# > MiniMind2-small has $d_\text{model} = 512$, 8 query heads and 2 key/value heads. Why 8,
# > rather than 4 or 16? And why only 2 heads for keys and values?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - At a fixed width, what do more heads give, and what does each head lose?
# - What did Vaswani et al. (2017) measure when they varied $h$ at constant cost?
# - During generation, what has to be stored for every past token, and how does it scale with
#   the number of key/value heads?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q6**
#
# <div class="course-answer" data-question="MM-Q6">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **8 heads** is a trade-off at fixed width, with a broad optimum and no magic. More heads give
# more independent attention patterns per layer (L03-Q7); narrower heads have lower-rank scores
# (L03-Q11). Vaswani et al. (2017, Table 3, rows A) varied $h$ from 1 to 32 at constant cost in
# the base translation model ($d_\text{model} = 512$): one head was clearly worse, 8 and 16 were
# the best and equal within noise, and 32 heads of width 16 were worse again. With
# $d_\text{model} = 512$, 8 heads give the customary head width of 64, which fused attention
# kernels handle well. MiniMind inherits this: it is a common, safe choice, not a measured
# optimum for MiniMind.
#
# **2 KV heads** is grouped-query attention (Ainslie et al., 2023): the 8 query heads form 2
# groups of 4, and each group shares one key head and one value head. During generation, the
# keys and values of every past token are kept in the KV cache; its size is proportional to the
# number of KV heads, so 2 instead of 8 shrinks the cache (and the memory traffic of every
# decoding step) by 4×. Ainslie et al. report quality close to full multi-head attention at a
# speed close to multi-query attention ($h_{kv} = 1$, Shazeer, 2019). The parameters saved are a
# side effect (L03-Q8).
#
# </details>

# %% [markdown]
# ### Show it: a head-count sweep at fixed width
#
# The L03-Q7 runs were a sweep already: one attention layer of width 16 with 1, 2, 4, 8 and 16
# heads, same data, same steps. Below is each model's final loss (mean of the last 50 steps).

# %%
sweep_table = pd.DataFrame({
    "head width": [16 // h for h in head_counts],
    "final MSE": [final_loss(sweep[h][1]) for h in head_counts],
    "steps to reach MSE 0.1": [next((i for i, v in enumerate(smooth(sweep[h][1])) if v < 0.1), None)
                               for h in head_counts],
}, index=pd.Index(head_counts, name="heads"))
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(head_counts, sweep_table["final MSE"], "o-", color="#392061")
ax.set_xscale("log", base=2)
ax.set_xticks(head_counts, [f"{h}\n(width {16 // h})" for h in head_counts])
ax.set_xlabel("heads (head width) at d_model = 16")
ax.set_ylabel("final MSE")
ax.set_title("the L03-Q7 task: too few heads fail, too many learn slower")
plt.show()
sweep_table.round(3)

# %% tags=["nbval-check-output"]
print("1 head is the worst of the five:", sweep_table["final MSE"].idxmax() == 1)
print("16 heads of width 1 reach MSE 0.1 later than 2 heads of width 8:",
      (sweep_table.loc[16, "steps to reach MSE 0.1"] or 10**9) > (sweep_table.loc[2, "steps to reach MSE 0.1"] or 10**9))

# %% [markdown]
# One head cannot deliver two payloads (L03-Q7). At the other end, heads of width 1 have
# scores $q_i k_j$ that are products of two *numbers*: a query can only prefer the largest or
# the smallest key, so each head can fetch the payloads of at most two tokens, and the model
# must spread the 16 payloads over its 16 heads; it gets there, but last. On
# this toy task the optimum is broad (2 to 8 heads); the shape, bad at both ends, is the same
# as in Vaswani et al.'s table:
#
# | heads $h$ | $d_k = d_v$ | dev perplexity | dev BLEU |
# |---|---|---|---|
# | 1 | 512 | 5.29 | 24.9 |
# | 4 | 128 | 5.00 | 25.5 |
# | 8 (base) | 64 | 4.92 | 25.8 |
# | 16 | 32 | 4.91 | 25.8 |
# | 32 | 16 | 5.01 | 25.4 |
#
# (Vaswani et al., 2017, Table 3 rows A and the base row; English-to-German, newstest2013,
# constant computation. The paper: "single-head attention is 0.9 BLEU worse than the best
# setting, quality also drops off with too many heads.")
#
# ### Show it: what the 2 KV heads save in MiniMind

# %% tags=["nbval-check-output"]
from utils.model import GPTConfig

minimind = GPTConfig.minimind2_small()
minimind_mha = GPTConfig.minimind2_small()
minimind_mha.n_kv_heads = minimind.n_heads  # the same model with 8 KV heads
print(f"MiniMind2-small: d_model {minimind.d_model}, {minimind.n_heads} query heads of width "
      f"{minimind.head_dim}, {minimind.n_kv_heads} KV heads")
for name, cfg in [("8 KV heads (MHA)", minimind_mha), ("2 KV heads (GQA)", minimind)]:
    cache = kv_cache_bytes(cfg, batch_size=1, seq_len=minimind.context_length, bytes_per_value=2)
    attn = count_parameters(MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads))
    print(f"{name}: KV cache for one sequence of {minimind.context_length} tokens (bf16) = "
          f"{cache / 2**20:.2f} MiB; attention parameters per layer = {attn:,}")
print("the cache shrinks by", kv_cache_bytes(minimind_mha, 1, 512) // kv_cache_bytes(minimind, 1, 512))

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "the more heads, the better"</strong></p>
#
# The MiniMind notes' surface answer, "multiple heads can attend to different aspects", invites
# this extrapolation. At a fixed width, every extra head is narrower. Both the toy sweep above
# and Vaswani et al.'s table get worse at the high end: heads of width 16 (in a 512-wide model)
# or of width 1 (in our 16-wide one) cannot express as much per head, and the number of heads
# that the task can use is limited.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the "original paper" table and the 7±2 argument</strong></p>
#
# - The notes print a table "from the original paper" with heads 1/4/8/16/32, scores "baseline,
#   +2.3, +3.8, +2.1, −1.2" and training times "1×, 1.1×, 1.2×, 1.5×, 2×". It is invented. The
#   paper's numbers are in the table above: the spread is 0.9 BLEU, 16 heads tie with 8, and
#   no training times per head count are reported (the cost was held constant by design).
# - "8 heads can express $2^8 = 256$ combination patterns" is not an argument: a head is not an
#   on/off switch, its output is a continuous vector, and by the same logic 9 heads would be
#   twice as good as 8.
# - "Human short-term memory holds 7±2 chunks (Miller, 1956), so 8 heads is right" is not an
#   argument either: nothing in a transformer is a human working memory, and successful models
#   use 12 (GPT-2 small), 16, 32 or 96 (GPT-3) heads per layer.
#
# The honest answer is the one above: 8 is a convention at $d_\text{model} = 512$ that gives
# heads of width 64, in the broad optimum that Vaswani et al. measured.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why not 1 KV head (MQA) and save even more?</strong></p>
#
# <details><summary>Answer</summary>
#
# Multi-query attention (Shazeer, 2019) does shrink the cache by the full factor $h$, but all
# query heads must then read the same keys and values, which costs quality (Ainslie et al.,
# 2023, measure the gap). GQA with a few KV heads recovers most of the
# quality of full MHA while keeping most of MQA's speed; it also splits evenly across GPUs
# when a model is sharded by heads (each GPU keeps at least one KV head). MiniMind's 2 KV heads
# sit in that middle.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how would you choose the number of heads for a new model?</strong></p>
#
# <details><summary>Answer</summary>
#
# Pick the head width first (64 or 128, what the attention kernels are tuned for), then
# $h = d_\text{model} / d_k$; then choose the KV heads from the inference budget (how long the
# contexts, how many concurrent users, how much memory). If in doubt, run a small sweep like the
# one above on the real data at a small scale: the optimum is broad, so a rough answer is enough.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q6")

# %% [markdown]
# ## Build it yourself
#
# Write causal multi-head self-attention from its weights, in the cell below. It must
#
# - take `x` of shape `(B, T, C)` and four `(C, C)` weight matrices, applied as `x @ w` (so
#   `q = x @ w_q`), and the number of heads `n_heads` (which divides `C`);
# - give head `h` the channels `h * C // n_heads` to `(h + 1) * C // n_heads - 1` of q, k and v;
# - scale each head's scores by `1 / sqrt(C // n_heads)` and apply the causal mask;
# - concatenate the heads' outputs back to `(B, T, C)` and multiply by `w_o`;
# - return a tensor of shape `(B, T, C)` in the dtype of `x`, without modifying the inputs.
#
# Then run the checker: it tries your function with 1, 3 and 4 heads, one token, heads of
# width 1 and large inputs, and names what is wrong (a missing split, the wrong scale, a
# reshape that mixes tokens, a forgotten mask or `w_o`, shapes, dtypes, NaNs, exceptions). As
# committed, the stub raises `NotImplementedError`, and the checker says so.

# %%
def my_multihead_attention(x, w_q, w_k, w_v, w_o, n_heads):
    """Your causal multi-head self-attention: (B, T, C) -> (B, T, C)."""
    # 1. project: q, k, v of shape (B, T, C)
    # 2. split into heads: (B, n_heads, T, C // n_heads)
    # 3. scaled dot-product attention per head, with the causal mask
    # 4. merge the heads back to (B, T, C), then apply w_o
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_multihead_attention

check_multihead_attention(my_multihead_attention)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_multihead_attention(x, w_q, w_k, w_v, w_o, n_heads):
#     B, T, C = x.shape
#     d_head = C // n_heads
#     q, k, v = ((x @ w).view(B, T, n_heads, d_head).transpose(1, 2) for w in (w_q, w_k, w_v))
#     scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)          # (B, h, T, T)
#     causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
#     scores = scores.masked_fill(~causal, float("-inf"))
#     y = torch.softmax(scores, dim=-1) @ v                          # (B, h, T, d_head)
#     return y.transpose(1, 2).reshape(B, T, C) @ w_o
# ```
#
# `view(B, T, n_heads, d_head)` before `transpose(1, 2)` keeps each token's channels together;
# `reshape(B, n_heads, T, d_head)` directly would cut across tokens. On the way back,
# `transpose` then `reshape` (not `view`: the transposed tensor is not contiguous).
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# The multi-head layer itself has been in `utils.attention.MultiHeadAttention` since chapter 1
# (explicit and fused paths side by side, grouped-query heads, RoPE, KV cache). This chapter
# adds `utils.head_ablation`, the tools used in L03-Q9 and L03-Q12 to take a trained model apart
# head by head:
#
# - `head_contributions(layer, x)`: each head's term $y_h W_O^{h}$ of a layer's output,
#   `(B, h, T, d_model)`; they sum to the output;
# - `ablate_heads(model, [(layer, head), ...])`: a context manager that zeroes those heads'
#   outputs (a hook on `o_proj`, removed on exit);
# - `head_ablation_losses(model, inputs, targets)`: the loss with each head zeroed in turn.
#
# Its tests recompute every head's contribution by hand from the weights (with GQA and biases)
# and check that zeroing a head changes the layer's output by exactly that contribution.
# `utils.attention_maps` (per-head attention maps, previous-token and induction scores) came
# with the trained model.
#
# ## Summary
#
# - **L03-Q7** $h$ heads of width $d/h$ cost the same FLOPs and parameters as one head of width
#   $d$, and give each token $h$ independent attention patterns. One head averages what it
#   reads; in our two-target task it stayed far above the multi-head models' loss.
# - **L03-Q8** Attention has $4d^2$ parameters (no biases) for every $h$; GQA and MQA shrink
#   only $W_K$ and $W_V$, to $d \cdot h_{kv} d_k$ each.
# - **L03-Q9** Trained heads specialise: in the course's model, previous-token heads in layer 0
#   (the ones the loss needs most), broad averaging heads in layer 1 (nearly free to remove),
#   no first-token or induction head yet. Random initialisation breaks the symmetry between
#   heads; training decides their roles.
# - **L03-Q10** Heads run as one batched computation: one projection per role, a reshape, and
#   batched products over (batch × heads). The loop over heads loses at short lengths; fused
#   kernels win everywhere.
# - **L03-Q11** $d_k = d/h$ keeps the cost independent of $h$; it is not forced by the
#   residual ($W_O$ maps any $h d_k$ to $d$). Narrow heads have low-rank scores.
# - **L03-Q12** With one head, $W_O$ folds into $W_V$ exactly: no extra expressive power. With
#   more heads it lets every head write to the whole residual stream.
# - **MM-Q5** Tied $W_Q = W_K$ makes the scores symmetric and a directed relation unlearnable;
#   tied $W_K = W_V$ only shares capacity.
# - **MM-Q6** Head count has a broad optimum at fixed width (our sweep and Vaswani et al.'s
#   Table 3); MiniMind's 8 heads give the usual width 64, and its 2 KV heads shrink the KV cache
#   4×.
#
# Next: position (L03-Q13 to Q16), since attention by itself does not know the order of the
# tokens.
#
# ## References
#
# - Miller, G. A. (1956). *The Magical Number Seven, Plus or Minus Two*. Psychological Review
#   63(2). (Cited only to say that it does not bear on head counts.)
# - Vaswani, A. et al. (2017). *Attention Is All You Need*. NeurIPS. arXiv:1706.03762.
#   (Section 3.2.2 and Table 3.)
# - Radford, A. et al. (2019). *Language Models are Unsupervised Multitask Learners* (GPT-2).
#   OpenAI technical report.
# - Devlin, J. et al. (2019). *BERT: Pre-training of Deep Bidirectional Transformers for
#   Language Understanding*. NAACL. arXiv:1810.04805.
# - Clark, K., Khandelwal, U., Levy, O., Manning, C. D. (2019). *What Does BERT Look At? An
#   Analysis of BERT's Attention*. BlackboxNLP. arXiv:1906.04341.
# - Michel, P., Levy, O., Neubig, G. (2019). *Are Sixteen Heads Really Better than One?*
#   NeurIPS. arXiv:1905.10650.
# - Voita, E., Talbot, D., Moiseev, F., Sennrich, R., Titov, I. (2019). *Analyzing Multi-Head
#   Self-Attention: Specialized Heads Do the Heavy Lifting, the Rest Can Be Pruned*. ACL.
#   arXiv:1905.09418.
# - Shazeer, N. (2019). *Fast Transformer Decoding: One Write-Head is All You Need*.
#   arXiv:1911.02150.
# - Bhojanapalli, S., Yun, C., Rawat, A. S., Reddi, S., Kumar, S. (2020). *Low-Rank Bottleneck
#   in Multi-head Attention Models*. ICML. arXiv:2002.07028.
# - Brown, T. et al. (2020). *Language Models are Few-Shot Learners* (GPT-3). NeurIPS.
#   arXiv:2005.14165.
# - Kitaev, N., Kaiser, Ł., Levskaya, A. (2020). *Reformer: The Efficient Transformer*. ICLR.
#   arXiv:2001.04451.
# - Elhage, N. et al. (2021). *A Mathematical Framework for Transformer Circuits*. Transformer
#   Circuits Thread (Anthropic).
# - Olsson, C. et al. (2022). *In-context Learning and Induction Heads*. Transformer Circuits
#   Thread (Anthropic). arXiv:2209.11895.
# - Ainslie, J. et al. (2023). *GQA: Training Generalized Multi-Query Transformer Models from
#   Multi-Head Checkpoints*. EMNLP. arXiv:2305.13245.
# - Kwon, W. et al. (2023). *Efficient Memory Management for Large Language Model Serving with
#   PagedAttention* (vLLM). SOSP. arXiv:2309.06180.
# - Xiao, G., Tian, Y., Chen, B., Han, S., Lewis, M. (2023). *Efficient Streaming Language
#   Models with Attention Sinks*. arXiv:2309.17453 (ICLR 2024).
# - Gemma Team (2024). *Gemma: Open Models Based on Gemini Research and Technology*.
#   arXiv:2403.08295.
# - DeepSeek-AI (2024). *DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts
#   Language Model*. arXiv:2405.04434.
# - Gong, J. (2024). *MiniMind* (GitHub repository jingyaogong/minimind): the MiniMind2-small
#   configuration.
