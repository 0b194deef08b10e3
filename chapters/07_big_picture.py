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
# # 7 · The big picture: compute, conditional computation, the Bitter Lesson, emergence
#
# Before the course takes the transformer apart (Lecture 03), Lecture 01 asks four questions
# about where the field is going and why (L01-Q1 to Q4 of the course):
#
# 1. Why does the feed-forward network's share of compute grow as models grow?
# 2. Must every token pass through every FFN, or can computation be conditional?
# 3. What does Sutton's "Bitter Lesson" say, and can we see it in an experiment?
# 4. What is known about "emergent" abilities, and how much of them is the measuring stick?
#
# Each answer is checked by running something: FLOP counts of published model shapes, a
# mixture-of-experts layer trained against two dense baselines, a hand-smoothed n-gram model
# racing a learned one, and a family of tiny models learning to add.
#
# **Prerequisites.** Python and PyTorch tensors; what a transformer layer contains (attention
# followed by an MLP, with residual connections): chapters 1 and 4 explain both in depth, and
# you can read this chapter first and come back. What a loss and a training step are.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer by
# measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source notes
# of this course were wrong (✏️); every number in them is computed by a cell above. Each section
# ends with follow-up questions and a short quiz. At the end you write the router of a mixture
# of experts yourself and a checker grades it.
#
# **About the experiments.** The trainings are tiny so that the notebook runs on a laptop CPU in
# about a minute; on a GPU they grow automatically. Tiny trainings are noisy: read their curves
# for their shape, not their third digit.

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
import torch
import torch.nn.functional as F
from torch import nn

from utils.accounting import count_parameters, forward_flops
from utils.data import CharTokenizer, default_corpus, get_batch, train_val_split
from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.model import MLP, GPTConfig, TinyGPT
from utils.moe import MoEFFN, load_balancing_loss, moe_aux_loss, top_k_gates, use_moe
from utils.plots import use_style
from utils.pretrained import load_pretrained
from utils.quiz import quiz

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
ON_GPU = device.type == "cuda"  # the experiments grow on a GPU
print("device:", device)

# %% [markdown]
# ## L01-Q1 · Why does the FFN's share of compute grow with scale?
#
# > Per token, a transformer layer spends compute on attention and on the feed-forward network
# > (FFN). Which of the two dominates, and how does the answer change as models grow?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - List every matrix multiplication of one layer for one token. Which ones involve the other
#   tokens of the context, and which ones only this token?
# - Which of them grow with the width $d$, which with the context length $n$, which with both?
# - Is "attention" only $QK^\top$ and $AV$, or are the projections $W_Q, W_K, W_V, W_O$ part of it?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L01-Q1**
#
# <div class="course-answer" data-question="L01-Q1">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Count the forward matmul FLOPs of one layer **per token** (a multiply-add is 2 FLOPs), for
# width $d$, context $n$, FFN width $d_{ff}$ and key/value width $d_{kv}$ ($= d$ without
# grouped-query attention):
#
# | part | FLOPs per token | grows with |
# |---|---|---|
# | attention projections $W_Q, W_K, W_V, W_O$ | $2d\,(2d + 2d_{kv})$ | $d^2$ |
# | attention scores $QK^\top$ and values $AV$ | $4\,n\,d$ | $n \cdot d$ |
# | FFN (2 matrices, or 3 for SwiGLU) | $2 \cdot 2\,d\,d_{ff}$ or $3 \cdot 2\,d\,d_{ff}$ | $d^2$ (as $d_{ff} \propto d$) |
#
# So the precise statement is: **per token, attention's score/value part grows with $n \cdot d$;
# the projections and the FFN grow with $d^2$.** For a GPT-2-style layer ($d_{ff} = 4d$, no
# GQA) attention costs $8d^2 + 4nd$ and the MLP $16d^2$: they are equal at $n = 2d$.
#
# The learner's sharpening of the question, "*as models grow*", is what makes it true. When a
# family of models grows in width at a fixed context, $d^2$ outruns $n \cdot d$, and the FFN's
# share climbs towards $16 / 24 = 2/3$ of the layer (the rest is the projections). Real model
# families also lengthen their context, and they shrink $d_{kv}$ (grouped-query attention), so
# the share is a race between $d$ and $n$: at a 128k-token context even a 70B model spends most
# of a long prompt's compute in the score/value part again.
#
# Attention is *not* "linear" in any useful sense: over a whole sequence it is
# $O(n^2 d + n d^2)$ (chapter 1, L03-Q4). Only its per-token cost at fixed $n$ is linear in $d$
# for the score part. Chapter 6 (L03-C1) counts a block's FLOPs in detail.
#
# </details>

# %% [markdown]
# ### Show it: published shapes through the course's FLOP formulas
#
# `utils.accounting.forward_flops` counts the matmul FLOPs of a `GPTConfig` (chapter 6 builds
# and tests it against PyTorch's FLOP counter). We give it the published shapes of four models,
# from GPT-2 small to a 70B-class model, and split each layer's per-token cost three ways.

# %%
SHAPES = {  # published shapes (Radford et al. 2019; Touvron et al. 2023)
    "GPT-2 small": dict(vocab_size=50257, d_model=768, n_layers=12, n_heads=12, ffn="gelu"),
    "GPT-2 XL": dict(vocab_size=50257, d_model=1600, n_layers=48, n_heads=25, ffn="gelu"),
    "Llama-2 7B": dict(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, d_ff=11008),
    "Llama-2 70B": dict(vocab_size=32000, d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                        d_ff=28672),
}
TRAIN_CONTEXT = {"GPT-2 small": 1024, "GPT-2 XL": 1024, "Llama-2 7B": 4096, "Llama-2 70B": 4096}
configs = {name: GPTConfig(context_length=4096, position="learned" if "GPT" in name else "rope",
                           **kw) for name, kw in SHAPES.items()}


def per_token_layer_flops(config: GPTConfig, n: int) -> dict[str, float]:
    """Forward FLOPs of one layer for one token at context n: projections, scores, FFN."""
    f = forward_flops(config, n)
    scale = n * config.n_layers
    return {"proj": f["attention_proj"] / scale, "scores": f["attention_scores"] / scale,
            "ffn": f["ffn"] / scale}


def ffn_share(config: GPTConfig, n: int) -> float:
    """FFN FLOPs / (attention + FFN) FLOPs of a layer at context n."""
    s = per_token_layer_flops(config, n)
    return s["ffn"] / (s["proj"] + s["scores"] + s["ffn"])


def crossover_context(config: GPTConfig) -> float:
    """Context n at which attention (projections + scores) costs as much as the FFN."""
    s = per_token_layer_flops(config, 1)  # scores at n = 1 are 4 d: the slope in n
    return (s["ffn"] - s["proj"]) / s["scores"]


# %% tags=["nbval-check-output"]
print(f"{'model':<12} {'d':>5} {'proj/tok':>12} {'scores/tok':>12} {'FFN/tok':>13}"
      f" {'FFN share':>9} {'crossover n':>11}")
for name, cfg in configs.items():
    n = TRAIN_CONTEXT[name]
    s = per_token_layer_flops(cfg, n)
    print(f"{name:<12} {cfg.d_model:>5} {s['proj']:>12,.0f} {s['scores']:>12,.0f} {s['ffn']:>13,.0f}"
          f" {ffn_share(cfg, n):>9.3f} {crossover_context(cfg):>11,.0f}")
print("(per layer and token, at each model's training context: 1024 for GPT-2, 4096 for Llama-2)")

# %% [markdown]
# Read the last two columns. At its own training context every model spends more on the FFN
# than on attention, and the 70B model most of all (Llama-2 7B sits below GPT-2 XL because it
# runs at a four times longer context). The crossover context, where
# attention catches up, is $2d$ for GPT-2 and far beyond it for Llama-2 70B, whose FFN is
# $3.5\times$ wider than $d$ *and* gated (3 matrices), and whose grouped-query attention
# (8 key/value heads for 64 query heads) makes $W_K, W_V$ eight times smaller.
#
# The scaling claims of the answer, checked directly on the formula:

# %% tags=["nbval-check-output"]
cfg = configs["GPT-2 small"]
a, b = per_token_layer_flops(cfg, 1024), per_token_layer_flops(cfg, 2048)
print("doubling n doubles the scores:", b["scores"] == 2 * a["scores"],
      "| leaves projections and FFN unchanged:", a["proj"] == b["proj"] and a["ffn"] == b["ffn"])
wide = GPTConfig(**{**SHAPES["GPT-2 small"], "d_model": 1536, "n_heads": 24})
c = per_token_layer_flops(wide, 1024)
print("doubling d: projections x", c["proj"] / a["proj"], "| FFN x", c["ffn"] / a["ffn"],
      "| scores x", c["scores"] / a["scores"])
print("GPT-2 small, n = 2d = 1536: attention == FFN:",
      math.isclose(sum(v for k, v in per_token_layer_flops(cfg, 1536).items() if k != "ffn"),
                   per_token_layer_flops(cfg, 1536)["ffn"]))

# %%
contexts = np.logspace(np.log10(256), np.log10(131072), 40).round().astype(int)
fig, ax = plt.subplots(figsize=(7.5, 4))
for name, cfg in configs.items():
    line, = ax.plot(contexts, [ffn_share(cfg, int(n)) for n in contexts], label=name)
    n0 = TRAIN_CONTEXT[name]
    ax.plot([n0], [ffn_share(cfg, n0)], "o", color=line.get_color())
ax.axhline(0.5, color="grey", ls="--", lw=1)
ax.text(300, 0.45, "FFN = attention", color="grey")
ax.set_xscale("log", base=2)
ax.set_xlabel("context length n (tokens)")
ax.set_ylabel("FFN share of a layer's FLOPs")
ax.set_title("FFN share per token (dots: each model's training context)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Each curve falls as the context grows (the score part is the only one that depends on $n$),
# and each larger model's curve sits higher: at any fixed context a wider model spends a
# larger share in its FFN. The slider below shows the three parts side by side for one context.

# %%
def draw_parts(context):
    """Stacked shares of projections, scores and FFN per model at one context length."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    names = list(configs)
    parts = [per_token_layer_flops(configs[m], context) for m in names]
    left = np.zeros(len(names))
    for key, color, label in (("proj", "#6a8caf", "attention projections"),
                              ("scores", "#c2410c", "attention scores QKᵀ, AV"),
                              ("ffn", "#15803d", "FFN")):
        share = np.array([p[key] / sum(p.values()) for p in parts])
        ax.barh(names, share, left=left, color=color, label=label)
        left += share
    ax.axvline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of a layer's forward FLOPs per token")
    ax.set_title(f"context n = {context:,} tokens")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.55), ncol=3, fontsize=8)
    fig.tight_layout()
    return fig


interactive_figure(draw_parts, context=[512, 2048, 8192, 32768, 131072], initial={"context": 2048})

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "the FFN is quadratic, attention is linear"</strong></p>
#
# The question the learner was handed first read "why is the FFN's complexity quadratic while
# attention's is linear?". The learner objected that it only makes sense "as the model grows",
# and was right to. Stated without that condition the sentence is false twice over: attention
# over a sequence is quadratic in $n$, and its projections are quadratic in $d$ exactly like the
# FFN. The table above shows the projections costing half of the GPT-2 MLP's FLOPs per token at
# every context. "Complexity" needs a variable: in $n$, attention is the quadratic one; in
# $d$, both are.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: attention is not O(d) at fixed n</strong></p>
#
# The notes' refined answer says that at a fixed sequence length attention grows *linearly* in
# $d$ ($O(d)$) while the FFN grows as $O(d^2)$. Only the score/value part is linear in $d$. The
# $W_Q, W_K, W_V, W_O$ projections belong to attention and grow as $d^2$: the cell above prints
# that doubling $d$ multiplies the projections' FLOPs by 4, like the FFN's, and the scores' by 2.
# The FFN's share therefore does not grow without bound; at fixed $n$ it approaches a constant
# set by the architecture (2/3 for a GPT-2 layer), and the first table shows it is already
# above one half for every model at its training context.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what happens to the share during decoding with a KV cache?</strong></p>
#
# When a model generates token number $n$, does it still pay $4nd$ FLOPs for the scores?
#
# <details><summary>Answer</summary>
#
# Yes: the new query must be compared with all $n$ cached keys and mix $n$ cached values, so the
# per-token FLOPs are the same as in the table. What the cache saves is recomputing the *keys
# and values* of earlier tokens (chapter 5, L03-Q21). Decoding is usually limited by memory
# traffic, not FLOPs: the cache and the weights are read for every new token.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is "FLOPs per token ≈ 2 × parameters" consistent with this table?</strong></p>
#
# The rule of thumb (Kaplan et al., 2020) says a forward pass costs about $2N$ FLOPs per token.
# Where does the table's score column fit in?
#
# <details><summary>Answer</summary>
#
# $2N$ counts one multiply-add per weight: the projections, the FFN and the output head. The
# score/value part has no weights, so it is the correction term $4nd$ per layer (Kaplan et al.
# write $2 n_{layer} n_{ctx} d$ for the causal half). It is small while $n \ll$ the crossover
# context printed above and dominant beyond it.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L01-Q1")

# %% [markdown]
# ## L01-Q2 · Can a token skip the FFN (conditional computation)?
#
# > Does every token need the same, equally expensive FFN? Can a transformer send some tokens
# > down a shorter path, and if a standard transformer has no branch to do so, what would?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - In the standard layer, is there any `if` that depends on the token? What would a GPU have
#   to do differently if there were one?
# - Could there be *several* FFNs, and a small network that picks one per token?
# - Could a token leave the stack early if an intermediate layer is already sure of the answer?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L01-Q2**
#
# <div class="course-answer" data-question="L01-Q2">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# In a **standard (dense) transformer** no: every token of every sequence goes through the same
# attention and the same FFN of every layer. This is what makes it fast on a GPU: a layer is a
# few large matrix products over all tokens of the batch at once.
#
# Conditional computation changes the architecture. Two routes are used:
#
# 1. **Mixture of experts (MoE)** (Shazeer et al., 2017; Switch Transformer, Fedus et al., 2022;
#    Mixtral, Jiang et al., 2024). The FFN is replaced by $E$ expert FFNs and a linear
#    **router** $r(x) = x W_r$. Each token goes to its top-$k$ experts (usually $k$ = 1 or 2)
#    and their outputs are mixed with the softmax of the chosen router scores:
#    $$y = \sum_{i \in \text{top-}k(r(x))} g_i(x)\, \text{FFN}_i(x), \qquad g = \operatorname{softmax}(r(x)_{\text{top-}k}).$$
#    Total parameters grow with $E$, compute per token only with $k$. Left alone, a router
#    collapses onto a few experts, so training adds a **load-balancing loss**
#    $E \sum_i f_i P_i$ ($f_i$: share of tokens sent to expert $i$, $P_i$: its mean router
#    probability), which is smallest (1) for a uniform load. Implementations also cap each
#    expert's **capacity** per batch and drop the overflow, which then passes only through the
#    residual connection.
# 2. **Dynamic depth / early exit** (Graves, 2016; Elbayad et al., 2020; Schuster et al., 2022;
#    Mixture-of-Depths, Raposo et al., 2024): a token stops (or skips a layer) when a
#    confidence measure says the later layers would not change its prediction.
#
# The price of either is the **batch**. A dense layer is one matmul over all $B \cdot T$
# tokens. With routing, each expert must **gather** its tokens, run a smaller matmul on an
# uneven number of rows, and **scatter** the results back. That is extra memory traffic, small
# and unequal matrices, load imbalance (the busiest expert sets the pace) and, across devices,
# all-to-all communication. MoE pays this because, at equal FLOPs per token, more parameters
# give a lower loss.
#
# </details>

# %% [markdown]
# ### Show it, step 1: a router on eight tokens
#
# The router is one linear layer. `utils.moe.top_k_gates` keeps each token's $k$ largest scores
# and turns them into weights that sum to 1; everything else gets weight 0.

# %%
d_model, n_experts = 16, 4
router = nn.Linear(d_model, n_experts, bias=False)
tokens = torch.randn(8, d_model)
with torch.no_grad():
    logits = router(tokens)  # (8 tokens, 4 experts)
    weights, chosen = top_k_gates(logits, k=2)  # (8, 2) each
    probs = torch.softmax(logits, dim=-1)

# %% tags=["nbval-check-output"]
print("chosen experts per token:", chosen.tolist())
print("weights of the chosen experts sum to 1:", torch.allclose(weights.sum(-1), torch.ones(8)))
print("load per expert (slots of 8 tokens x 2 choices):",
      torch.bincount(chosen.flatten(), minlength=n_experts).tolist())
uniform = load_balancing_loss(torch.full((8, n_experts), 1 / n_experts),
                              torch.arange(16).remainder(n_experts).view(8, 2))
print("load-balancing loss: this router", round(load_balancing_loss(probs, chosen).item(), 3),
      "| a perfectly uniform one", round(uniform.item(), 3))

# %% [markdown]
# `utils.moe.MoEFFN` wraps this in a layer with `E` expert MLPs (the same `utils.model.MLP` the
# dense model uses), tested against a per-token brute-force loop. With one expert it *is* the
# dense FFN:

# %% tags=["nbval-check-output"]
one = MoEFFN(d_model, 64, n_experts=1, top_k=1)
dense = MLP(d_model, 64)
dense.load_state_dict(one.experts[0].state_dict())
x_demo = torch.randn(2, 5, d_model)
print("1-expert MoE == dense MLP:", torch.allclose(one(x_demo), dense(x_demo)))

# %% [markdown]
# ### Show it, step 2: MoE against two dense models, trained on the same text
#
# Three character-level TinyGPTs differ only in their FFN:
#
# - **dense-active**: an MLP of width 128, the compute of one expert;
# - **MoE**: 4 experts of width 128, top-1, so the same FFN FLOPs per token as dense-active and
#   four times its FFN parameters (load-balancing weight 0.01, as in the Switch Transformer);
# - **dense-total**: an MLP of width 512, the same total parameters as the MoE but four times
#   its FFN compute.

# %%
text = default_corpus()
tok = CharTokenizer.from_text(text)
ids = torch.tensor(tok.encode(text))
train_ids, val_ids = train_val_split(ids, val_fraction=0.1)  # the split of the shipped model

STEPS = 1500 if ON_GPU else 300
BATCH, BLOCK = (64, 64) if ON_GPU else (16, 32)


def small_config(d_ff: int) -> GPTConfig:
    return GPTConfig(vocab_size=tok.vocab_size, d_model=64, n_layers=2, n_heads=4,
                     context_length=64, ffn="gelu", d_ff=d_ff)


def train_lm(model: nn.Module, data: torch.Tensor, steps: int, lr: float = 1e-2,
             aux_weight: float = 0.0) -> nn.Module:
    """AdamW on random windows of `data`; adds the MoE balancing loss when aux_weight > 0."""
    g = torch.Generator().manual_seed(0)  # the same batches for every model
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        x, y = get_batch(data, BATCH, BLOCK, generator=g, device=device)
        _, loss = model(x, y)
        if aux_weight:
            loss = loss + aux_weight * moe_aux_loss(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def val_loss(model: nn.Module, n_batches: int = 10) -> float:
    """Mean next-character loss (nats) on fixed validation windows."""
    model.eval()
    g = torch.Generator().manual_seed(1)
    losses = [model(*get_batch(val_ids, 32, BLOCK, generator=g, device=device))[1].item()
              for _ in range(n_batches)]
    return sum(losses) / len(losses)


def ffn_params(model: nn.Module) -> tuple[int, int]:
    """(total, active per token) parameters of all FFNs, routers included."""
    total = active = 0
    for block in model.blocks:
        n = count_parameters(block.ffn)
        total += n
        if isinstance(block.ffn, MoEFFN):
            per_expert = count_parameters(block.ffn.experts[0])
            n -= (block.ffn.n_experts - block.ffn.top_k) * per_expert
        active += n
    return total, active


makers = {
    "dense-active": lambda: TinyGPT(small_config(128)),
    "MoE 4x128, top-1": lambda: use_moe(TinyGPT(small_config(128)), n_experts=4, top_k=1),
    "dense-total": lambda: TinyGPT(small_config(512)),
}
moe_results = {}
t0 = time.perf_counter()
for name, make in makers.items():
    torch.manual_seed(0)
    model = make().to(device)
    train_lm(model, train_ids, STEPS, lr=3e-3, aux_weight=0.01 if "MoE" in name else 0.0)
    moe_results[name] = (model, val_loss(model), *ffn_params(model))
print(f"trained 3 models x {STEPS} steps in {time.perf_counter() - t0:.0f} s")

# %% tags=["nbval-check-output"]
for name, (model, loss, total, active) in moe_results.items():
    print(f"{name:<17} FFN params total {total:>7,}  active per token {active:>7,}")

# %%
for name, (model, loss, total, active) in moe_results.items():
    print(f"{name:<17} validation loss {loss:.3f} nats/char")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for name, (model, loss, total, active) in moe_results.items():
    axes[0].plot(total, loss, "o", ms=9, label=name)
    axes[1].plot(active, loss, "o", ms=9, label=name)
for ax, label in zip(axes[:2], ("total FFN parameters", "active FFN parameters per token")):
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("validation loss (nats/char)")
axes[0].legend(fontsize=8)
moe_model = moe_results["MoE 4x128, top-1"][0]
with torch.no_grad():
    moe_model(get_batch(val_ids, 32, BLOCK, generator=torch.Generator().manual_seed(2),
                        device=device)[0])
loads = np.array([b.ffn.load.cpu().numpy() for b in moe_model.blocks])  # (layers, experts)
shares = loads / loads.sum(1, keepdims=True)
for layer, share in enumerate(shares):
    axes[2].bar(np.arange(4) + 0.4 * layer - 0.2, share, width=0.4, label=f"layer {layer}")
axes[2].axhline(0.25, color="grey", ls="--", lw=1)
axes[2].set_xticks(range(4))
axes[2].set_xlabel("expert")
axes[2].set_ylabel("share of tokens")
axes[2].set_title("router load (dashed: uniform)")
axes[2].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Compare the printed losses with the parameter counts. The claim of the MoE literature
# (Shazeer et al., 2017; Fedus et al., 2022) is about models trained long enough to use their
# parameters: at equal *active* parameters (equal FLOPs per token) the MoE reaches a lower
# loss than the dense model, and at equal *total* parameters it does not beat the dense model
# that spends all of them on every token. Our CPU run is far from that regime: 300 steps of a
# 2-layer character model, where each expert has seen only about a quarter of the tokens. In
# the stored run the small dense model is ahead of both larger ones (narrowly of the wide
# dense model, clearly of the MoE): at this budget extra parameters have not yet paid for
# themselves. On a
# GPU the cell trains five times longer on eight times larger batches; rerun it there and
# compare. What the CPU run does show reliably is the router: the right panel gives each
# expert's share of the validation tokens, and with the balancing loss every expert stays in
# use.
#
# The capacity limit turns an uneven load into dropped tokens. With `capacity_factor = 1.0`
# each expert may take at most a quarter of the tokens:

# %%
with torch.no_grad():
    xb = get_batch(val_ids, 32, BLOCK, generator=torch.Generator().manual_seed(2), device=device)[0]
    for factor in (1.0, 1.25, 2.0):
        for block in moe_model.blocks:
            block.ffn.capacity_factor = factor
        moe_model(xb)
        print(f"capacity factor {factor}: dropped share per layer",
              [round(b.ffn.dropped, 3) for b in moe_model.blocks])
    for block in moe_model.blocks:
        block.ffn.capacity_factor = None  # back to no limit

# %% [markdown]
# ### Show it, step 3: why a per-token branch is expensive, and how MoE gets around it
#
# Suppose each token of a batch could take its own branch: one of 8 expert FFNs. Written as
# an `if` per token, every token runs its own small matrix-vector product. A mixture of experts
# instead **groups** the tokens by expert (a gather), runs one matmul per expert and scatters
# the results back. Below, all three run on the same tokens with the same FLOPs per token
# (plus a tiny router for the MoE): one dense matmul, the per-token branch, and the grouped MoE.
# We report microseconds per token; the numbers depend on your machine.

# %%
from utils.timing import best_time  # best of repeats: thread CPU time, or synced wall clock

width, n_tok = 128, 4096
dense_ffn = MLP(width, 4 * width).to(device)
moe_ffn = MoEFFN(width, 4 * width, n_experts=8, top_k=1).to(device)
x_big = torch.randn(n_tok, width, device=device)


def per_token_branch(x: torch.Tensor) -> torch.Tensor:
    """The naive branch: each token alone through its chosen expert."""
    _, chosen = top_k_gates(moe_ffn.router(x), 1)
    return torch.stack([moe_ffn.experts[int(e)](t) for t, e in zip(x, chosen[:, 0])])


with torch.no_grad():
    per_tok = {
        "dense FFN, one matmul": best_time(lambda: dense_ffn(x_big), device,
                                           max_repeat=3) / n_tok,
        "per-token branch": best_time(lambda: per_token_branch(x_big[:256]), device,
                                      max_repeat=1) / 256,
        "MoE, grouped by expert": best_time(lambda: moe_ffn(x_big), device,
                                            max_repeat=3) / n_tok,
    }
for name, t in per_tok.items():
    print(f"{name:<24} {1e6 * t:8.2f} µs per token   ({t / per_tok['dense FFN, one matmul']:.1f}x dense)")

# %%
print("tokens per expert in that batch (top-1, untrained router):", moe_ffn.load.tolist())
print("the busiest expert has", round(moe_ffn.load.max().item() / (n_tok / 8), 2),
      "x the average load")

# %% [markdown]
# The per-token branch is by far the slowest: every token pays the full overhead of launching
# small operations, and the hardware never sees a large matrix. Grouping restores most of the
# batching, so the MoE's cost per token comes close to the dense layer's (on a CPU it can even
# match it; on a GPU the gathers, the scatter and eight smaller matmuls usually cost visibly
# more than one large one). What grouping cannot remove is imbalance: even this untrained
# router gives the experts unequal numbers of tokens (printed above; the trained router's
# loads are in the right panel of step 2), and with experts on different devices the busiest
# one sets the pace. That is what the balancing loss and the capacity limit are for.

# %% [markdown]
# ### Show it, step 4: the other route, exiting early
#
# Could a token stop after layer 2 of 4? Take the shipped 4-layer model, and after each layer
# apply its final norm and output head to the residual stream (the "logit lens",
# nostalgebraist, 2020). For each layer we measure how often its prediction already equals the
# final one, overall and among the tokens where that layer is confident (top probability
# above 0.9).

# %%
pre, _ = load_pretrained(device=device)
windows = val_ids[: 64 * 128].view(64, 128).to(device)  # 64 consecutive validation windows
states = []
hooks = [blk.register_forward_hook(lambda m, i, o: states.append(o)) for blk in pre.blocks]
with torch.no_grad():
    final_logits, _ = pre(windows)
    final = final_logits.argmax(-1)
    rows = []
    for layer, h in enumerate(states):
        p = torch.softmax(pre.lm_head(pre.norm_f(h)), dim=-1)
        conf, pred = p.max(-1)
        sure = conf > 0.9
        rows.append((layer + 1, (pred == final).float().mean().item(), sure.float().mean().item(),
                     (pred == final)[sure].float().mean().item() if sure.any() else float("nan")))
for hk in hooks:
    hk.remove()

# %% tags=["nbval-check-output"]
print("after layer | agrees with final | share confident (p > 0.9) | agreement when confident")
for layer, agree, sure, agree_sure in rows:
    print(f"{layer:>11} | {agree:>17.2f} | {sure:>25.2f} | {agree_sure:>24.2f}")

# %% [markdown]
# Early layers often disagree with the final prediction, but the tokens on which they are
# already confident are mostly the ones whose answer will not change (the last column): that is the signal
# early-exit methods use (Schuster et al. (2022) calibrate such a threshold so the quality loss
# stays bounded). Exiting has the same batching problem as routing: the tokens of a batch leave
# at different depths, and a later token's attention still needs the keys and values of the
# layers that an earlier token skipped.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "there is no branch, so a token cannot skip anything"</strong></p>
#
# The learner asked whether the architecture has a branch that lets a token bypass a module,
# and answered "I understand that this cannot be done". For the standard dense transformer that
# is exactly right, and the reason is the batch: the layer is one matmul for all tokens. The
# conclusion "cannot be done" is too strong, though: a mixture of experts *is* such a branch,
# built so that the batch survives it (gather per expert, scatter back), and it runs in
# production models such as Mixtral and the Switch Transformer. The step 3 cell shows the price
# of the branch on your machine; step 2 what it buys.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: "no built-in branch or skip connection"</strong></p>
#
# The notes list among the standard transformer's properties that it has "no built-in branch or
# skip-connection mechanism". It has no *branch*, but every sublayer sits on a **skip
# (residual) connection**: $x + \text{FFN}(\text{norm}(x))$ (chapter 4, L03-Q17). That residual
# is what makes conditional computation cheap to add: a token that an expert's capacity limit
# drops (the capacity cell above) or that a layer skips is not lost; it continues unchanged
# along the residual stream.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why is the balancing loss 1 for a uniform router and never lower for a confident one?</strong></p>
#
# If the router's probabilities equal its loads ($P_i = f_i$), what is $E \sum_i f_i P_i$, and
# where is it smallest?
#
# <details><summary>Answer</summary>
#
# It is $E \sum_i f_i^2$. Under $\sum_i f_i = 1$ the sum of squares is smallest when all
# $f_i = 1/E$ (Cauchy–Schwarz), giving $E \cdot E \cdot (1/E)^2 = 1$, and largest ($E$) when one
# expert takes everything. `tests/test_moe.py` checks this by brute force over every load of 60
# tokens on 3 experts. (With $P \ne f$ the value can dip slightly below 1; the gradient flows
# through $P$ and pushes probability away from overloaded experts.)
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does an MoE save memory?</strong></p>
#
# An MoE with 8 experts has the FLOPs per token of a dense model with one. Does it need the
# memory of one?
#
# <details><summary>Answer</summary>
#
# No. Every expert's weights must be in memory (or be fetched), because the next batch may
# route a token to any of them: memory scales with *total* parameters, compute with *active*
# ones. This is why MoE models are served across many GPUs (expert parallelism) and why, at
# small batch sizes, decoding an MoE is limited by reading weights rather than by FLOPs.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L01-Q2")

# %% [markdown]
# ## L01-Q3 · What does the Bitter Lesson say, in engineering terms?
#
# > Rich Sutton's essay "The Bitter Lesson" (2019) draws a lesson from 70 years of AI research.
# > What is it, can we reproduce it in a small experiment, and do engineering examples such as
# > Kafka → Pulsar or distributed databases illustrate it?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Sutton's examples are chess, Go, speech recognition and computer vision. What did the
#   losing approaches have in common, and what did the winners scale with?
# - Which two families of methods does he say scale with computation?
# - In your engineering example, what grows: compute spent on search and learning, or the
#   automation of operations that a person used to do?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L01-Q3**
#
# <div class="course-answer" data-question="L01-Q3">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Sutton's claim: **general methods that leverage computation, search and learning, are in the
# long run the most effective, by a large margin**, and methods that build in human knowledge of
# the domain help in the short run, then plateau and even get in the way. The lesson is
# "bitter" because researchers keep relearning it: building in what we know is satisfying and
# pays off at first, so each field invests in it until compute, which keeps getting cheaper
# (Moore's law), lets a general method overtake it. His examples: brute-force search in chess
# (Deep Blue), search plus self-play learning in Go, statistical models (HMMs, then deep
# networks) in speech recognition, and learned features replacing hand-made ones in vision.
#
# In engineering terms: **prefer the method whose quality keeps improving when you give it more
# data and compute, even if it is worse today**, and spend effort on making it scale rather
# than on encoding your understanding of the problem. Language models are the current example:
# n-gram models with carefully designed smoothing were the state of the art for decades; the
# same next-token objective with a general learner and enough compute made them obsolete.
#
# Sutton's lesson is a regularity of the past, not a law: it says nothing about *how much*
# compute the general method needs to overtake, and in regimes of little data or little
# compute the built-in knowledge wins, which the experiment below shows.
#
# </details>

# %% [markdown]
# ### Show it: an n-gram with hand-made smoothing against a learned model
#
# The "human knowledge" contender is a character 5-gram model whose smoothing we design by hand:
# it mixes the estimates of orders 4, 3, 2, 1 recursively, trusting a longer context in
# proportion to how often it has been seen ($\lambda = c/(c + K)$ with $K = 3$, in the spirit of
# Jelinek and Mercer (1980) and Witten–Bell smoothing), down to an add-one unigram. It trains
# by counting alone. The "general" contender is the small TinyGPT of Q2,
# trained with a compute budget that grows with the data. Both see the same growing slices of
# the training text and are scored on the same validation text.

# %%
class InterpolatedNGram:
    """Character n-gram model, recursive interpolation lambda = c / (c + K) per context."""

    def __init__(self, order: int, vocab_size: int, k: float = 3.0):
        self.order, self.V, self.k = order, vocab_size, k

    def _keys(self, ids: torch.Tensor, n: int, start: int) -> torch.Tensor:
        """Integer code of the n characters before each position >= start."""
        key = torch.zeros(len(ids) - start, dtype=torch.long)
        for i in range(n):
            key = key * self.V + ids[start - n + i: len(ids) - n + i]
        return key

    def fit(self, ids: torch.Tensor) -> "InterpolatedNGram":
        ids = ids.long()
        self.unigram = (torch.bincount(ids, minlength=self.V) + 1.0) / (len(ids) + self.V)
        self.tables = []  # per context length n: (sorted keys, counts) of contexts and of pairs
        for n in range(1, self.order):
            ctx = self._keys(ids, n, n)
            pair = ctx * self.V + ids[n:]
            self.tables.append((torch.unique(ctx, return_counts=True),
                                torch.unique(pair, return_counts=True)))
        return self

    @staticmethod
    def _lookup(table, keys):
        uniq, counts = table
        pos = torch.searchsorted(uniq, keys).clamp(max=len(uniq) - 1)
        return torch.where(uniq[pos] == keys, counts[pos], 0).double()

    def loss(self, ids: torch.Tensor) -> float:
        """Mean negative log-likelihood (nats/char) of ids[order-1:]."""
        ids = ids.long()
        start = self.order - 1
        target = ids[start:]
        p = self.unigram[target].double()
        for n, (ctx_table, pair_table) in enumerate(self.tables, start=1):
            ctx = self._keys(ids, n, start)
            c_ctx = self._lookup(ctx_table, ctx)
            c_pair = self._lookup(pair_table, ctx * self.V + target)
            lam = c_ctx / (c_ctx + self.k)
            p = lam * c_pair / c_ctx.clamp(min=1) + (1 - lam) * p
        return float(-p.log().mean())


SLICES = [4_096, 16_384, 65_536, len(train_ids)]
LM_STEPS = [40, 80, 160, 320] if ON_GPU else [20, 40, 80, 160]  # compute grows with the data
race = []
t0 = time.perf_counter()
for n_chars, steps in zip(SLICES, LM_STEPS):
    data = train_ids[:n_chars]
    ngram_loss = InterpolatedNGram(5, tok.vocab_size).fit(data).loss(val_ids)
    torch.manual_seed(0)
    lm = train_lm(TinyGPT(small_config(128)).to(device), data, steps)
    race.append((n_chars, steps, ngram_loss, val_loss(lm)))
print(f"race trained in {time.perf_counter() - t0:.0f} s")

# %% tags=["nbval-check-output"]
print("n-gram validation loss (nats/char) per slice:",
      [round(r[2], 3) for r in race])

# %%
for n_chars, steps, ng, nn_loss in race:
    print(f"{n_chars:>8,} chars: 5-gram {ng:.3f}   small TinyGPT ({steps} steps) {nn_loss:.3f}")

# %% [markdown]
# The shipped model of the course is the same kind of learner with much more compute: a 4-layer
# TinyGPT (`utils.pretrained`) trained on the same training split for 1500 steps of
# 16 × 128 characters. Its validation loss, measured here on every validation character once,
# is the learner's point at full data and a larger budget:

# %%
with torch.no_grad():
    n_win = (len(val_ids) - 1) // 128  # every validation character once
    xv = val_ids[: n_win * 128].view(n_win, 128).to(device)
    yv = val_ids[1: n_win * 128 + 1].view(n_win, 128).to(device)
    big_loss = pre(xv, yv)[1].item()
info = load_pretrained().info
tokens_seen = info["tokens_seen"]
print(f"shipped TinyGPT ({count_parameters(pre):,} parameters, {tokens_seen:,} training"
      f" characters seen): validation loss {big_loss:.3f} nats/char")

# %% [markdown]
# Data is one axis; compute is the other. A training run costs about $6 N D$ FLOPs ($N$
# parameters, $D$ training tokens; Kaplan et al., 2020). The shipped model's file also records
# its validation loss every 250 steps of its training (`info["history"]`), so we can place
# it, and our small learners, on a compute axis against the best n-gram.

# %%
def train_flops(model: nn.Module, steps: int, tokens_per_step: int) -> float:
    return 6 * count_parameters(model) * steps * tokens_per_step


small_n = count_parameters(TinyGPT(small_config(128)))
hist = info["history"]
tc = info["train_config"]
big_tokens_per_step = tc["batch_size"] * tc["block_size"]
big_curve = [(6 * count_parameters(pre) * s * big_tokens_per_step, v)
             for s, v in zip(hist["val_step"], hist["val_loss"]) if s > 0]
best_ngram = race[-1][2]
crossing = next((c for c, v in big_curve if v < best_ngram), None)
print("shipped model's recorded validation losses:", [round(v, 3) for _, v in big_curve])
print(f"first recorded point below the full-data 5-gram ({best_ngram:.3f}):"
      f" {crossing:.2e} training FLOPs" if crossing else "never below the 5-gram")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
xs = [r[0] for r in race]
axes[0].plot(xs, [r[2] for r in race], "s-", label="5-gram, hand-made smoothing")
axes[0].plot(xs, [r[3] for r in race], "o-", label="small TinyGPT, steps grow with data")
for n_chars, steps, _, nn_loss in race:
    axes[0].annotate(f"{steps} steps", (n_chars, nn_loss), textcoords="offset points",
                     xytext=(4, 6), fontsize=8)
axes[0].plot([len(train_ids)], [big_loss], "*", ms=16, color="#c2410c",
             label="shipped TinyGPT (1500 steps)")
axes[0].set_xscale("log")
axes[0].set_xlabel("training characters available")
axes[0].set_title("as data grows")
axes[1].axhline(best_ngram, color="C0", ls="--", label="5-gram on all the data")
axes[1].plot([train_flops(TinyGPT(small_config(128)), st, BATCH * BLOCK) for _, st, _, _ in race],
             [r[3] for r in race], "o-", color="C1", label="small TinyGPT (the race)")
axes[1].plot([c for c, _ in big_curve], [v for _, v in big_curve], "*-", ms=10, color="#c2410c",
             label="shipped TinyGPT during training")
axes[1].set_xscale("log")
axes[1].set_xlabel("training compute (FLOPs, 6 N D)")
axes[1].set_title("as compute grows")
for ax in axes:
    ax.set_ylabel("validation loss (nats/char)")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the left panel from left to right. At every slice the counting model with its
# hand-designed back-off beats the small learner trained with the few steps a CPU cell can
# afford: it needs no optimisation, and its smoothing encodes a true fact about text (short
# contexts are reliable when long ones are rare). The learner improves on every slice too,
# but it is compute-starved. The right panel holds the data fixed and lets the compute grow:
# the learner's loss keeps falling, crosses the best n-gram's line (the cell above prints the
# first recorded point past it) and ends below it (the star on the left, its loss printed
# above). The n-gram has no such knob: more compute does nothing for a table of counts. That
# is the Bitter Lesson in one figure: the knowledge-based method wins while compute is scarce,
# the general method wins when compute grows.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "Kafka → Pulsar is the Bitter Lesson"</strong></p>
#
# The learner's first answer was that engineering is full of such examples: when one Kafka
# cluster hits its write limit you deploy several and route by hand, and with Pulsar you no
# longer need to; likewise distributed databases and distributed indexes. What the examples
# share with Sutton is real: a hand-made, case-by-case solution (manual sharding, routing
# rules) is replaced by a general mechanism that scales with more machines.
#
# Where the analogy breaks is the heart of the essay. Sutton is not saying "automate what
# operators did by hand". He says that **search and learning**, methods whose *quality of
# result* keeps improving with more computation, beat **knowledge about the problem** built
# into the method. Pulsar does not give better answers with more compute, and Kafka's partitions
# are not domain knowledge that a learner could discover; it is a better-engineered system for
# the same job. A closer engineering analogue would be a hand-tuned query optimiser or cache
# policy overtaken by one learned from the workload, or hand-written feature rules in a spam
# filter replaced by a model trained on more mail.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: not "a universal law of computer engineering"</strong></p>
#
# The notes conclude that the Bitter Lesson "is not only a regularity of AI but a universal
# wisdom of all of computer engineering", with container orchestration and NewSQL databases as
# further proof. Neither the essay nor these examples support that. The essay is about AI
# methods and the trade-off between built-in knowledge and methods that scale with computation;
# the examples are about automating distributed operations. And even inside AI it is an
# empirical tendency with a condition, "in the long run": our race above shows the built-in
# method ahead of the compute-starved learner on every slice.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is the transformer itself "human knowledge"?</strong></p>
#
# Attention, residuals, positional encodings and tokenizers are all design choices. Does the
# Bitter Lesson argue against them?
#
# <details><summary>Answer</summary>
#
# It argues for choosing the designs that *scale*, not for having none. Sutton's criticism is
# aimed at encoding what we think we know about the *domain* (how a chess player reasons, which
# edges matter in an image). A transformer encodes almost nothing about language; its choices
# are about making learning efficient on parallel hardware (chapter 5, L03-Q23). Some built-in
# structure does get scaled away: hand-made features and, increasingly, hand-designed
# tokenisation rules (chapter 8, MM-Q1).
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why not just give the n-gram more context?</strong></p>
#
# A 5-gram cannot see six characters back. Would a 20-gram with the same smoothing keep up?
#
# <details><summary>Answer</summary>
#
# No: the number of possible contexts grows as $V^{n-1}$, so almost every 20-character context
# in the validation text never occurs in training and the model falls back to shorter orders.
# A neural model shares statistical strength between similar contexts through its learned
# representations, which is why its gains continue as data grows (Bengio et al., 2003). The
# cell below shows that a longer order does not help on our data.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
for order in (3, 5, 8):
    print(f"{order}-gram on all training text: validation loss",
          round(InterpolatedNGram(order, tok.vocab_size).fit(train_ids).loss(val_ids), 3))

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L01-Q3")

# %% [markdown]
# ## L01-Q4 · What is known about emergence?
#
# > Small models seem to recognise patterns and large ones seem to reason, as if new abilities
# > "emerged" with scale. Is there deeper research on emergence, and what are the main
# > hypotheses?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - An ability is called emergent when it is near chance in smaller models and well above it in
#   larger ones. What metric is usually plotted on the y-axis?
# - If a model gets each digit of a 4-digit answer right with probability $p$, how often does
#   it get the whole answer right? What does that function of $p$ look like?
# - Is the x-axis (parameters, on a log scale, with few points) part of the story too?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L01-Q4**
#
# <div class="course-answer" data-question="L01-Q4">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **The observation.** Wei et al. (2022) collected tasks (multi-digit arithmetic, word
# unscrambling, some BIG-bench tasks) on which models were near chance up to some scale and
# clearly better beyond it, and called such abilities *emergent*: not predictable by
# extrapolating smaller models. Ganguli et al. (2022) stressed the contrast: the loss falls
# smoothly and predictably with scale (Kaplan et al., 2020), specific capabilities can appear
# abruptly.
#
# **The measurement hypothesis** (Schaeffer, Miranda and Koyejo, 2023). Most of those plots use
# a *discontinuous* metric: exact match, or multiple-choice accuracy. If a model gets each of
# the $L$ tokens of an answer right with probability $p$, it gets the answer right with
# probability about $p^L$. When $p$ climbs smoothly from 0.3 to 0.9 with scale, $p^4$ sits
# near zero and then shoots up: an apparent jump from a smooth underlying change. Measured with
# a continuous metric (per-token accuracy, the log-likelihood of the correct answer), many
# "emergent" abilities become smooth. They also showed that few model sizes on a log axis make
# any rise look sudden. This explains many cases; it does not prove that nothing ever changes
# abruptly.
#
# **Other hypotheses, some still open.**
#
# - *Sharp internal transitions do exist* in training dynamics: induction heads form in a
#   sudden phase change during training (Olsson et al., 2022), and "grokking" shows a model
#   moving from memorisation to generalisation long after fitting its training set (Power et
#   al., 2022). Whether such transitions explain capability jumps *across model sizes* is
#   open.
# - *Skills as quanta*: Michaud et al. (2023) model the smooth loss curve as the sum of many
#   discrete skills learned in order of how often they are useful; each skill appears fairly
#   abruptly, the average looks smooth. Arora and Goyal (2023) give a related theory of how
#   combinations of skills appear as loss falls.
# - *Loss as the better x-axis*: Du et al. (2024) report that abilities line up with the
#   pre-training loss rather than with parameter counts, with a threshold in loss for some
#   tasks. Whether those thresholds are themselves metric artefacts is debated.
#
# The learner's picture, "small models recognise, large models reason", is a description, not
# an explanation; "emergence" names the observation, and the measurement question comes first.
#
# </details>

# %% [markdown]
# ### Show it: one family of models, two metrics
#
# The task is 3-digit addition with a 4-digit answer: `a + b` with $0 \le a, b < 1000$, the
# answer written as four digits, least significant first. Each model is a small MLP that reads
# both numbers (one-hot digits) and predicts the four answer digits at once; the family differs
# only in its hidden width. All train for the same number of steps on fresh random problems and
# are scored on the same 2000 held-out problems with two metrics: **per-digit accuracy** and
# **exact match** (all four digits right).

# %%
N_DIGITS = 3


def addition_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot inputs (n, 2*N_DIGITS*10) and answer digits (n, N_DIGITS+1), lowest first."""
    a = torch.randint(0, 10**N_DIGITS, (n,), generator=g)
    b = torch.randint(0, 10**N_DIGITS, (n,), generator=g)

    def digits(v, k):
        return torch.stack([(v // 10**i) % 10 for i in range(k)], dim=1)

    x = torch.cat([F.one_hot(digits(a, N_DIGITS), 10), F.one_hot(digits(b, N_DIGITS), 10)], 1)
    return x.flatten(1).float(), digits(a + b, N_DIGITS + 1)


WIDTHS = [16, 32, 64, 128, 256, 512]
ADD_STEPS = 2000 if ON_GPU else 300
x_test, y_test = addition_batch(2000, torch.Generator().manual_seed(123))
x_test, y_test = x_test.to(device), y_test.to(device)
family = []
t0 = time.perf_counter()
for width in WIDTHS:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2 * N_DIGITS * 10, width), nn.ReLU(),
                        nn.Linear(width, (N_DIGITS + 1) * 10)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(ADD_STEPS):
        xb, yb = addition_batch(256, g)
        logits = net(xb.to(device)).view(-1, N_DIGITS + 1, 10)
        loss = F.cross_entropy(logits.transpose(1, 2), yb.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = net(x_test).view(-1, N_DIGITS + 1, 10)
        right = logits.argmax(-1) == y_test  # (2000, 4)
        logp = torch.log_softmax(logits, -1).gather(-1, y_test[..., None]).squeeze(-1)
    family.append(dict(width=width, params=count_parameters(net),
                       per_digit=right.float().mean().item(),
                       exact=right.all(1).float().mean().item(),
                       logp=logp.sum(1).mean().item()))
print(f"trained {len(WIDTHS)} models x {ADD_STEPS} steps in {time.perf_counter() - t0:.0f} s")

# %%
print(f"{'width':>5} {'params':>7} {'per-digit':>9} {'exact':>6} {'per-digit^4':>11}"
      f" {'log p(answer)':>13}")
for m in family:
    print(f"{m['width']:>5} {m['params']:>7,} {m['per_digit']:>9.3f} {m['exact']:>6.3f}"
          f" {m['per_digit'] ** 4:>11.3f} {m['logp']:>13.2f}")

# %%
params = [m["params"] for m in family]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(params, [m["per_digit"] for m in family], "o-", label="per-digit accuracy")
axes[0].plot(params, [m["exact"] for m in family], "s-", label="exact match (4 digits)")
axes[0].plot(params, [m["per_digit"] ** 4 for m in family], "k:", label="(per-digit)⁴")
axes[0].axhline(0.1, color="grey", lw=0.8, ls="--")
axes[0].text(params[0], 0.12, "chance per digit", color="grey", fontsize=8)
axes[0].set_ylabel("accuracy on 2000 held-out sums")
axes[0].set_title("same models, two metrics")
axes[1].plot(params, [m["logp"] for m in family], "o-", color="#15803d")
axes[1].set_ylabel("mean log-probability of the answer")
axes[1].set_title("a continuous metric")
for ax in axes:
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # no crowded minor tick labels
    ax.set_xlabel("parameters")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The same six models, read two ways. Per-digit accuracy climbs steadily with size; exact match
# stays near zero for the small models and then rises steeply, close to the dotted
# $(\text{per-digit})^4$ curve. The log-probability of the correct answer, a continuous metric,
# improves smoothly across the whole family. Nothing sudden happened inside the models; the
# "jump" is the shape of the exact-match metric. (The digits are not independent: the carry
# links them, which is why exact match is not exactly the fourth power.)
#
# The slider makes the answer longer: with the per-digit accuracies measured above, how would
# exact match look for answers of $L$ tokens?

# %%
def draw_exact(answer_tokens):
    """Exact match predicted as p**L from the measured per-digit accuracy p."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    p = np.array([m["per_digit"] for m in family])
    ax.plot(params, p, "o-", label="per-token accuracy p (measured)")
    ax.plot(params, p**answer_tokens, "s-", label=f"exact match ≈ p^{answer_tokens}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("parameters")
    ax.set_ylabel("accuracy")
    ax.set_title(f"an answer of {answer_tokens} tokens")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


interactive_figure(draw_exact, answer_tokens=[1, 2, 4, 8, 16], initial={"answer_tokens": 4})

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "small models recognise, large models reason, because of emergence"</strong></p>
#
# The learner's first answer explained the difference between small and large models by
# emergence: "small models recognise, large models reason, because once the model gets larger
# emergence appears". This uses the word as an explanation, when it only names an observation
# (a curve that rises late). Before asking *why* an ability emerges, ask *how it was measured*:
# in the family above, the same models show a sudden jump under exact match and steady
# progress under per-digit accuracy and log-likelihood. Whether "reasoning" is a new mechanism
# in large models or the product of many skills that each improve gradually is an open
# research question, not something the word "emergence" settles.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: "six core hypotheses" without sources</strong></p>
#
# The notes announce "six core hypotheses, the hot research directions of 2024–2025 and the
# main controversies" but give none of them with a source, so none can be checked. The answer
# above replaces them with the hypotheses that have a paper behind them (Wei et al., 2022;
# Schaeffer et al., 2023; Olsson et al., 2022; Power et al., 2022; Michaud et al., 2023; Arora
# and Goyal, 2023; Du et al., 2024), marks which are open, and the cells above test the one
# that can be tested on a laptop.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does the metric argument mean emergence is "not real"?</strong></p>
#
# If a product really needs the whole answer right, is exact match the wrong metric?
#
# <details><summary>Answer</summary>
#
# No: for a user who needs the whole sum right, exact match is *the* metric, and the jump in
# usefulness is real. The metric argument is about *prediction and explanation*: the underlying
# improvement is smooth and could have been forecast from smaller models with a continuous
# metric, so there is no need to posit a sudden new mechanism. Both statements hold at once.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how would you test a claim of emergence?</strong></p>
#
# A paper shows exact-match accuracy jumping between two model sizes. What would you ask for?
#
# <details><summary>Answer</summary>
#
# More points between the two sizes (a log axis with three points hides any curve), a
# continuous metric on the same models (per-token accuracy, log-likelihood of the correct
# answer, or a partial-credit score), and the plot against pre-training loss as well as
# parameters. If the continuous metric improves smoothly and predicts the jump, the jump is a
# thresholding of the metric; if it stays flat and then moves abruptly, the claim is stronger.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L01-Q4")

# %% [markdown]
# ## Build it yourself
#
# Write the router's gating function of a mixture of experts, `my_top_k_gates(logits, k)`. It
# must
#
# - accept router scores `logits` of shape `(n_tokens, n_experts)` and an int `k`;
# - return the gate weights, a tensor of the same shape and dtype: for each token, the softmax
#   over its `k` largest scores at those experts, and 0 at every other expert (each row sums
#   to 1);
# - leave `logits` unchanged.
#
# Then run the checker: it tries top-1, top-2, `k` equal to the number of experts, very large
# scores and float64 input, and tells you what, if anything, is wrong. As committed, the stub
# raises `NotImplementedError`, and the checker says so.

# %%
def my_top_k_gates(logits, k):
    """Your top-k gates: (n_tokens, n_experts) -> (n_tokens, n_experts), rows sum to 1."""
    # 1. the k largest scores of each row, and where they are
    # 2. a softmax over those k scores
    # 3. a tensor of zeros with the weights placed at the chosen experts
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_top_k_gates

check_top_k_gates(my_top_k_gates)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_top_k_gates(logits, k):
#     top, idx = logits.topk(k, dim=-1)
#     return torch.zeros_like(logits).scatter(-1, idx, torch.softmax(top, dim=-1))
# ```
#
# `scatter` (not `scatter_`) returns a new tensor; `torch.softmax` subtracts each row's maximum,
# so large scores do not overflow. A softmax over all experts, masked and then renormalised,
# gives the same weights.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# `utils.moe` holds the pieces of Q2, tested in `tests/test_moe.py`: `top_k_gates` and
# `dense_gates` (the routing of the exercise), `load_balancing_loss`, `expert_capacity`, the
# layer `MoEFFN` (router, expert MLPs, capacity limit; it records `aux_loss`, `load` and
# `dropped` after each call), `use_moe` (swap every FFN of a TinyGPT for an MoE) and
# `moe_aux_loss`. The FLOP formulas of Q1 are `utils.accounting`'s (chapter 6).
#
# ## Summary
#
# - **Q1** Per token, attention's score/value part grows with $n \cdot d$, its projections and
#   the FFN with $d^2$. As models widen at a given context the FFN's share grows (above one
#   half at the training context of every model in the table); long contexts pull it back.
# - **Q2** A dense transformer has no branch, because of the batch. Mixture-of-experts layers
#   add one (a router, top-$k$ experts, a balancing loss, a capacity limit) and buy parameters
#   without FLOPs, paying in gathers, scatters and memory; early exit is the other route, and
#   the logit lens shows where it could apply.
# - **Q3** The Bitter Lesson: methods that scale with compute (search, learning) beat built-in
#   domain knowledge in the long run. Our race: the hand-smoothed n-gram wins with little data
#   and compute, the learner wins when given more. Automating operations (Kafka → Pulsar) is a
#   different story.
# - **Q4** "Emergence" names a late-rising curve. On the same models, exact match jumps while
#   per-digit accuracy and log-likelihood rise smoothly (Schaeffer et al., 2023); real internal
#   phase changes exist, and how they relate to scale is open.
#
# ## References
#
# - Jelinek, F., Mercer, R. L. (1980). *Interpolated estimation of Markov source parameters
#   from sparse data*. Proceedings of the Workshop on Pattern Recognition in Practice.
# - Bengio, Y., Ducharme, R., Vincent, P., Jauvin, C. (2003). *A Neural Probabilistic Language
#   Model*. JMLR 3.
# - Graves, A. (2016). *Adaptive Computation Time for Recurrent Neural Networks*.
#   arXiv:1603.08983.
# - Shazeer, N. et al. (2017). *Outrageously Large Neural Networks: The Sparsely-Gated
#   Mixture-of-Experts Layer*. ICLR. arXiv:1701.06538.
# - Radford, A. et al. (2019). *Language Models are Unsupervised Multitask Learners*. OpenAI
#   technical report (GPT-2 shapes).
# - Sutton, R. (2019). *The Bitter Lesson*. Essay, incompleteideas.net, 13 March 2019.
# - Elbayad, M., Gu, J., Grave, E., Auli, M. (2020). *Depth-Adaptive Transformer*. ICLR.
#   arXiv:1910.10073.
# - Kaplan, J. et al. (2020). *Scaling Laws for Neural Language Models*. arXiv:2001.08361.
# - nostalgebraist (2020). *interpreting GPT: the logit lens*. LessWrong blog post.
# - Fedus, W., Zoph, B., Shazeer, N. (2022). *Switch Transformers: Scaling to Trillion
#   Parameter Models with Simple and Efficient Sparsity*. JMLR 23. arXiv:2101.03961.
# - Schuster, T. et al. (2022). *Confident Adaptive Language Modeling*. NeurIPS.
#   arXiv:2207.07061.
# - Wei, J. et al. (2022). *Emergent Abilities of Large Language Models*. TMLR.
#   arXiv:2206.07682.
# - Ganguli, D. et al. (2022). *Predictability and Surprise in Large Generative Models*. FAccT.
#   arXiv:2202.07785.
# - Olsson, C. et al. (2022). *In-context Learning and Induction Heads*. Transformer Circuits
#   Thread. arXiv:2209.11895.
# - Power, A. et al. (2022). *Grokking: Generalization Beyond Overfitting on Small Algorithmic
#   Datasets*. arXiv:2201.02177.
# - Touvron, H. et al. (2023). *Llama 2: Open Foundation and Fine-Tuned Chat Models*.
#   arXiv:2307.09288 (Llama-2 shapes).
# - Schaeffer, R., Miranda, B., Koyejo, S. (2023). *Are Emergent Abilities of Large Language
#   Models a Mirage?* NeurIPS. arXiv:2304.15004.
# - Michaud, E. J. et al. (2023). *The Quantization Model of Neural Scaling*. NeurIPS.
#   arXiv:2303.13506.
# - Arora, S., Goyal, A. (2023). *A Theory for Emergence of Complex Skills and Compositional
#   Generalization in Language Models*. arXiv:2307.15936.
# - Jiang, A. Q. et al. (2024). *Mixtral of Experts*. arXiv:2401.04088.
# - Du, Z., Zeng, A., Dong, Y., Tang, J. (2024). *Understanding Emergent Abilities of Language
#   Models from the Loss Perspective*. arXiv:2403.15796.
# - Raposo, D. et al. (2024). *Mixture-of-Depths: Dynamically Allocating Compute in
#   Transformer-based Language Models*. arXiv:2404.02258.
