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
# # 11 · Why transformers, and why bigger (MiniMind, part 4)
#
# MiniMind is a transformer with 26M parameters. Two questions sit behind both choices, the
# architecture and the size (MM-Q13 and MM-Q14 of the course):
#
# 1. Why did transformers replace RNNs?
# 2. Why are bigger models better, and where does that stop?
#
# Both have famous answers ("parallelism", "scaling laws") that are true but thin. This chapter
# tests them with experiments small enough to run here: three sequence models of the same size
# on a task whose difficulty we control (recall the token seen $k$ positions back), the
# gradient that flows back through time, and a miniature scaling-law study of five tiny GPTs on
# the course corpus, with a power-law fit and an IsoFLOP sweep.
#
# **Prerequisites.** Chapter 1 (self-attention), chapter 5, L03-Q23 (why transformers train in
# parallel; the timing of a GRU against a transformer layer and exposure bias are there and
# are not repeated here), chapter 6 (FLOPs of a training step: $\approx 6N$ per token), the
# chain rule, least squares.
#
# **How to use this chapter.** Read each question, write your own answer, then open the
# answer and run the cells that check it. ⚠️ boxes mark tempting wrong answers, ✏️ boxes the
# places where the source notes were wrong (their numbers are recomputed in a cell above the
# box). On a CPU every experiment is tiny (the notebook runs in about a minute); on a GPU the
# same cells train longer and larger.

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

from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.model import GPTConfig, TinyGPT
from utils.plots import use_style
from utils.quiz import quiz

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
big = device.type == "cuda"  # on a GPU the experiments grow
print("device:", device)

# %% [markdown]
# ## MM-Q13 · Why did transformers replace RNNs?
#
# > Recurrent networks (RNNs, LSTMs, GRUs) ruled sequence modelling until 2017; within a few
# > years transformers had replaced them almost everywhere. Why? Is "transformers are parallel"
# > the whole story?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - For a token to influence a prediction 100 positions later, how many steps must its
#   information pass through in an RNN? In one attention layer?
# - Backpropagation through time multiplies one Jacobian per step. What happens to a product
#   of 100 matrices whose norms are a little below 1? A little above?
# - Chapter 5 (L03-Q23) timed a GRU against a transformer layer. Was the transformer always
#   faster per step, and what does that leave unexplained?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q13**
#
# <div class="course-answer" data-question="MM-Q13">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Three reasons, of which parallelism is only the first.
#
# 1. **Parallel training.** With teacher forcing all inputs are known, and a transformer
#    layer has no dependency between positions except through attention, which is one batch
#    of matrix products: the whole sequence is processed at once. An RNN's state
#    $h_t = f(h_{t-1}, x_t)$ is a chain of $T$ dependent steps. Chapter 5 (L03-Q23) measured
#    this, and also its price (exposure bias).
# 2. **Short paths between any two positions.** In an RNN, token $x_s$ can only reach the
#    prediction at $t$ through the $t - s$ state updates in between, each squeezing everything
#    seen so far into one fixed-size vector. In self-attention the path from $x_s$ to position
#    $t$ is **one step** whatever $t - s$ is: a query at $t$ can put its weight on $s$ directly
#    (Vaswani et al., 2017, Table 1, call this the *maximum path length*: $O(n)$ for recurrent
#    layers, $O(1)$ for self-attention).
# 3. **Gradients that survive the distance.** Backpropagation through time gives
#    $$\frac{\partial \ell_t}{\partial h_s} = \frac{\partial \ell_t}{\partial h_t}
#    \prod_{i=s+1}^{t} \frac{\partial h_i}{\partial h_{i-1}},\qquad
#    \frac{\partial h_i}{\partial h_{i-1}} = \operatorname{diag}\big(1 - h_i^2\big)\, W_{hh}
#    \ \text{(tanh RNN)},$$
#    a product of $t - s$ Jacobians. If their norms stay below 1 the gradient shrinks
#    exponentially with the distance (vanishing), above 1 it grows exponentially (exploding)
#    (Bengio, Simard and Frasconi, 1994; Pascanu, Mikolov and Bengio, 2013). The LSTM's
#    additive cell state (Hochreiter and Schmidhuber, 1997) and the GRU's gates slow the decay,
#    they do not remove the chain. In attention, the gradient from $\ell_t$ reaches $x_s$
#    through the one attention weight $\alpha_{ts}$ and the residual stream, whatever the
#    distance.
#
# Together these made transformers the architecture that **turns extra compute into lower
# loss** most reliably: they use accelerators fully (reason 1) and keep learning long-range
# structure as the context grows (reasons 2 and 3). That is what the scaling laws of MM-Q14
# exploit. The costs are real: $O(T^2)$ attention and a KV cache that grows with the context
# (chapters 1 and 5), and a hard context limit: a token outside the window is invisible,
# while an RNN's state can in principle carry information forever.
#
# </details>

# %% [markdown]
# ### Show it: recall the token seen $k$ positions back
#
# Each sequence is random symbols from an alphabet of 8; at every position $t \ge k$ the target
# is the symbol at $t - k$. Nothing in the input marks which symbol will be asked for, so a
# model must keep the last $k$ symbols available. Chance is $1/8 = 0.125$. The targets before
# position $k$ are masked with $-100$ (chapter 8, MM-Q3), and every sequence has 8 scored
# positions, so a larger $k$ means a longer sequence but not more targets.

# %%
VOCAB = 8


def recall_batch(batch_size, k, generator, n_targets=8):
    """Random symbols x (B, k + n_targets); targets y[:, t] = x[:, t - k], -100 before k."""
    x = torch.randint(0, VOCAB, (batch_size, k + n_targets), generator=generator)
    y = torch.full_like(x, -100)
    y[:, k:] = x[:, :-k]
    return x.to(device), y.to(device)


x_demo, y_demo = recall_batch(1, 3, torch.Generator().manual_seed(0), n_targets=5)
print("input :", x_demo[0].tolist())
print("target:", y_demo[0].tolist())

# %% [markdown]
# Three models of about the same size: a tanh RNN, a GRU (Cho et al., 2014) and a two-layer
# TinyGPT (RoPE positions). The recurrent ones are an embedding, the recurrent layer and a
# linear read-out.

# %%
class RecurrentLM(nn.Module):
    """Embedding -> nn.RNN / nn.GRU / nn.LSTM -> linear; forward(x, y) like TinyGPT."""

    def __init__(self, cell, vocab_size, d_embed, d_hidden):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d_embed)
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](
            d_embed, d_hidden, batch_first=True)
        self.head = nn.Linear(d_hidden, vocab_size)

    def forward(self, x, y=None, embedded=None):
        e = self.emb(x) if embedded is None else embedded  # (B, T, d_embed)
        h, _ = self.rnn(e)  # (B, T, d_hidden): one state per position, computed in a chain
        logits = self.head(h)
        loss = None if y is None else F.cross_entropy(logits.flatten(0, 1), y.flatten())
        return logits, loss


def make_model(kind, context):
    if kind == "transformer":
        config = GPTConfig(vocab_size=VOCAB, context_length=context, d_model=16, n_layers=2,
                           n_heads=2, ffn="gelu", rope_theta=1e4)
        return TinyGPT(config).to(device)
    hidden = {"RNN": 64, "GRU": 40}[kind]
    return RecurrentLM(kind.lower(), VOCAB, 16, hidden).to(device)


KINDS = ["RNN", "GRU", "transformer"]

# %% tags=["nbval-check-output"]
for kind in KINDS:
    print(f"{kind:12s} parameters: {sum(p.numel() for p in make_model(kind, 64).parameters()):,}")


# %% [markdown]
# Each model trains with Adam for the same number of steps at each $k$ (more on a GPU), then
# is scored on 256 fresh sequences.

# %%
def train_recall(kind, k, steps, batch_size=32, lr=3e-3):
    """Train one model on the k-back recall task; return (model, accuracy on fresh data)."""
    torch.manual_seed(0)  # same initial weights for every k
    model = make_model(kind, 64)  # RoPE has no parameters: the context costs nothing
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = recall_batch(batch_size, k, g)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # tames exploding gradients
        optimizer.step()
    x, y = recall_batch(256, k, torch.Generator().manual_seed(99))
    with torch.no_grad():
        logits, _ = model(x)
    scored = y != -100
    return model, float((logits.argmax(-1)[scored] == y[scored]).float().mean())


distances = [4, 8, 16, 32, 48] if big else [4, 12, 24]
recall_steps = 600 if big else 200
start = time.perf_counter()
recall_models, recall_rows = {}, []
for kind in KINDS:
    for k in distances:
        recall_models[kind, k], acc = train_recall(kind, k, recall_steps)
        recall_rows.append({"model": kind, "k": k, "accuracy": acc})
recall = pd.DataFrame(recall_rows).pivot(index="k", columns="model", values="accuracy")[KINDS]
print(f"{len(recall_rows)} trainings of {recall_steps} steps in {time.perf_counter() - start:.1f} s")
recall.round(3)

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for kind in KINDS:
    ax.plot(recall.index, recall[kind], "o-", label=kind)
ax.axhline(1 / VOCAB, color="grey", ls=":", label="chance (1/8)")
ax.set(xlabel="distance k (recall the token k positions back)", ylabel="accuracy",
       title=f"Same size, same data, {recall_steps} training steps", ylim=(0, 1.05))
ax.legend()
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
for k in distances[1:]:
    print(f"at k = {k}: transformer beats both recurrent models:",
          bool(recall.loc[k, "transformer"] > recall.loc[k, ["RNN", "GRU"]].max()))
print(f"at k = {distances[0]}: the RNN is near perfect (> 0.9):",
      bool(recall.loc[distances[0], "RNN"] > 0.9))

# %% [markdown]
# Read the curves from left to right. At a short distance the plain RNN solves the task: a few
# symbols fit in its state and the gradient path is short. As $k$ grows both recurrent models
# fall towards chance within this training budget, while the transformer stays high much
# longer: for it, "the symbol $k$ back" is one attention step with a relative offset that RoPE
# makes easy to express, however large $k$ is. The transformer is not perfect at every $k$
# within 200 steps either, and its accuracy need not even be monotone in $k$: how quickly
# attention locks onto one offset depends on how RoPE's frequencies represent it (on a GPU the
# cell trains 600 steps on more distances). The GRU learns more slowly than the RNN at
# small $k$ here; its gates pay off over longer training.
#
# ### Show it: the gradient that reaches back through time
#
# Why do the recurrent models fail at large $k$? Ask what learning signal each model gets at
# the **start** of training: how large is the gradient of the **last** position's loss with
# respect to the input embedding at each earlier position, for freshly initialised models on
# sequences of 48 symbols? In the RNN it must cross every step in between; in the transformer
# it can jump. The right panel repeats the measurement for the models trained at the largest
# $k$.

# %%
def gradient_through_time(model, x, y):
    """Norm of d(loss at the last position)/d(input embedding at t), for every t: (T,)."""
    emb = model.emb if isinstance(model, RecurrentLM) else model.tok_emb
    captured = {}

    def keep(module, inputs, output):  # keep the embedding output to read its gradient
        output.retain_grad()
        captured["e"] = output

    handle = emb.register_forward_hook(keep)
    logits, _ = model(x)
    handle.remove()
    loss = F.cross_entropy(logits[:, -1], y[:, -1])  # the last position only
    loss.backward()
    return captured["e"].grad.norm(dim=-1).mean(0).detach().cpu()  # (T,), mean over the batch


def relative_gradients(models, k):
    """Gradient norm by distance back from the last position, relative to distance 1."""
    x, y = recall_batch(64, k, torch.Generator().manual_seed(5), n_targets=max(48 - k, 8))
    table = pd.DataFrame({kind: gradient_through_time(model, x, y).flip(0)
                          for kind, model in models.items()})  # row s = distance s back
    return table / table.iloc[1]


fresh = {}
for kind in KINDS:
    torch.manual_seed(0)
    fresh[kind] = make_model(kind, 64)
k_far = distances[-1]
at_init = relative_gradients(fresh, k_far)
trained = relative_gradients({kind: recall_models[kind, k_far] for kind in KINDS}, k_far)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, table, title in ((axes[0], at_init, "at initialisation"),
                         (axes[1], trained, f"after training at k = {k_far}")):
    for kind in KINDS:
        ax.semilogy(table.index, table[kind], "o-", ms=2.5, label=kind)
    ax.axvline(k_far, color="grey", ls=":")
    ax.set(xlabel="distance back from the last position", title=title)
axes[0].set_ylabel("gradient norm / at distance 1")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
print(f"at initialisation, gradient at distance {k_far} relative to distance 1:")
for kind in KINDS:
    r = at_init.loc[k_far, kind]
    print(f"  {kind:12s} below 1e-3: {bool(r < 1e-3)}   above 0.1: {bool(r > 0.1)}")
others = trained["transformer"].drop(index=[0, k_far]).max()
print(f"trained transformer: gradient at distance {k_far} above every other distance > 0:",
      bool(trained.loc[k_far, "transformer"] > others))

# %% [markdown]
# Distance 0 is the token at the last position itself, which reaches the output directly (in
# the transformer through the residual stream), so the curves are drawn relative to distance 1.
# At initialisation the recurrent models' gradient shrinks by a roughly constant factor per
# step (a straight line on the log scale): at distance $k$ it is orders of magnitude smaller
# than at distance 1, so the signal that should teach them "the symbol $k$ back matters"
# barely reaches $x_{t-k}$. In the fresh transformer, attention is nearly uniform and the
# gradient is spread over all positions with **no decay with distance**. After training the
# transformer's gradient peaks sharply at distance $k$: the position it learned to read, one
# step away.
#
# The decay is the product of Jacobians of the answer. The figure below computes it for a
# fresh tanh RNN with 64 hidden units whose recurrent matrix $W_{hh}$ is scaled to a given
# spectral radius $\rho$ (the largest $|\lambda|$), in the linear case and with the tanh. Move
# $\rho$ across 1.

# %%
def jacobian_product_norms(rho, nonlinearity, steps=60, hidden=64):
    """||prod of dh_i/dh_{i-1}|| for 1..steps steps of a random RNN with spectral radius rho."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(hidden, hidden, generator=g, dtype=torch.float64)
    w = w * rho / torch.linalg.eigvals(w).abs().max()
    u = torch.randn(hidden, hidden, generator=g, dtype=torch.float64) / math.sqrt(hidden)
    h = torch.zeros(hidden, dtype=torch.float64)
    product, norms = torch.eye(hidden, dtype=torch.float64), []
    for _ in range(steps):
        pre = w @ h + u @ torch.randn(hidden, generator=g, dtype=torch.float64)
        h = torch.tanh(pre) if nonlinearity == "tanh" else pre
        step = w if nonlinearity == "linear" else (1 - h**2)[:, None] * w  # dh_i/dh_{i-1}
        product = step @ product
        norms.append(float(torch.linalg.matrix_norm(product, ord=2)))
    return np.array(norms)


def draw_bptt(rho, nonlinearity):
    norms = jacobian_product_norms(rho, nonlinearity)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.semilogy(np.arange(1, len(norms) + 1), norms, "-", color="C0")
    ax.axhline(1.0, color="grey", ls=":")
    ax.set(xlabel="steps back through time", ylabel=r"$\|\partial h_t / \partial h_{t-s}\|$",
           title=f"{nonlinearity} RNN, spectral radius ρ = {rho}", ylim=(1e-12, 1e12))
    fig.tight_layout()
    return fig


interactive_figure(draw_bptt, rho=[0.5, 0.8, 0.95, 1.0, 1.05, 1.2, 1.5],
                   nonlinearity=["linear", "tanh"], initial={"rho": 0.95, "nonlinearity": "tanh"})

# %% tags=["nbval-check-output"]
for rho in (0.8, 1.2):
    lin, th = jacobian_product_norms(rho, "linear"), jacobian_product_norms(rho, "tanh")
    print(f"rho = {rho}: after 50 steps, linear {lin[49]:.0e}, tanh {th[49]:.0e}")

# %% [markdown]
# In the linear RNN the norm behaves like $\rho^s$: vanishing below 1, exploding above.
# The tanh can only shrink the Jacobian (its derivative $1 - h^2 \le 1$), so with $\rho < 1$
# the gradient vanishes even faster, and with $\rho > 1$ the saturating units shrink it
# again: here, driven by random inputs, the tanh RNN's gradient vanishes even at $\rho = 1.2$
# (the cell above), because units pushed towards $\pm 1$ have $1 - h^2$ close to 0. Gradient clipping (Pascanu et al., 2013) handles explosion; nothing simple handles
# vanishing, which is why gated cells were invented and why a direct path is the better fix.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "transformers won because they compute in parallel, RNNs serially"</strong></p>
#
# That is the first answer given in the source notes, and it is half the story. Parallel
# training is necessary for the speed, but chapter 5 (L03-Q23) showed that on one CPU thread
# with a batch of 16 a GRU step can even be cheaper than a transformer step: parallelism
# over positions matters on hardware with thousands of lanes, not by itself. What the
# experiments above add is that even at **equal size, data and steps**, the recurrent models
# fail to learn a dependency the transformer learns, because their gradient has to cross
# every step in between and shrinks on the way. Short paths and well-conditioned gradients
# are as much a reason as parallelism.
#
# </div>

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "attention sees everything, so any distance is free"</strong></p>
#
# Only inside the context window, and only after training. A transformer with context 128
# cannot see position 129 back at all, while an RNN's state is not cut off. And at some $k$
# above the transformer was not perfect either: picking out one position among
# many is something it must learn, and more candidates make that harder within a fixed
# budget. The $O(1)$ path is a property of the architecture, not a guarantee of the result.
#
# </div>

# %% [markdown]
# The source notes compare the cost of an RNN layer, $T d^2$, with that of attention, $T^2 d$,
# for $d = 512$. The cell recomputes their two cases.

# %% tags=["nbval-check-output"]
d_notes = 512
for T in (1024, 4096):
    rnn_ops, attn_ops = T * d_notes**2, T**2 * d_notes
    print(f"T = {T}: T d^2 = {rnn_ops / 1e9:.3f} G, T^2 d = {attn_ops / 1e9:.3f} G, "
          f"ratio = {attn_ops / rnn_ops:.1f} (= T / d)")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction: the notes' accuracy table and cost ratio</strong></p>
#
# - The notes give a subject-verb agreement experiment with accuracies "RNN 62%, LSTM 78%,
#   Transformer 96%". No source is given and the numbers are invented. The real study of
#   agreement in LSTMs (Linzen, Dupoux and Goldberg, 2016) found LSTMs very accurate on
#   average and failing mostly when "attractor" nouns intervene. Our own, measured comparison
#   is the recall table above: it depends on the distance $k$ and on the training budget,
#   which is why a single number per architecture says little.
# - For $T = 4096$ the notes say attention is "8.6 times slower" than the RNN. The ratio of
#   their own counts is $T/d = 8.0$ (cell above): they divided 8.6 G by 1 G, but
#   $4096 \cdot 512^2$ is 1.07 G. And both counts leave out most of a transformer layer: its
#   projections and MLP cost about $24\,T d^2$ FLOPs (chapter 6), so attention's quadratic
#   term only dominates once $T$ exceeds a few times $d$.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how does the LSTM slow the vanishing?</strong></p>
#
# Its cell state is updated additively, $c_t = f_t \odot c_{t-1} + i_t \odot \tilde c_t$. What
# is $\partial c_t / \partial c_{t-1}$ along that path, and when is it close to 1?
#
# <details><summary>Answer</summary>
#
# Along the cell path $\partial c_t/\partial c_{t-1} = \operatorname{diag}(f_t)$ (plus terms
# through the gates). With forget gates near 1 the product over many steps stays near 1: the
# "constant error carousel" of Hochreiter and Schmidhuber (1997); initialising the forget-gate
# bias to a positive value helps (Jozefowicz et al., 2015). But $f_t < 1$ still compounds, and
# the state is still one fixed-size vector that every token must pass through: the LSTM
# lengthens the memory, it does not shorten the path.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: are RNNs gone?</strong></p>
#
# Linear attention, state-space models (S4, Mamba) and RWKV all have a recurrent form. What do
# they keep from RNNs, and what do they change so that they train in parallel?
#
# <details><summary>Answer</summary>
#
# They keep the constant-size state, so generation costs $O(1)$ per token with no growing KV
# cache. They change the recurrence to be **linear in the state** (with input-dependent gates
# in Mamba), so the whole sequence can be computed with a parallel scan or a convolution in
# training (chapter 5, L03-Q22 and Q24). They still have a bounded state, and on recall tasks
# like the one above they trail attention at equal size (Arora et al., 2024): that is why
# hybrids keep a few attention layers.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q13")

# %% [markdown]
# ## MM-Q14 · Why are bigger models better, and where does that stop?
#
# > MiniMind has 26M parameters; frontier models have hundreds of billions. Why does a bigger
# > model reach a lower loss, by how much, and is bigger always better for a given budget?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - A training run has a compute budget $C \approx 6ND$ FLOPs for $N$ parameters and $D$
#   tokens (chapter 6). If you double $N$ at fixed $C$, what happens to $D$?
# - If the loss fell as a power of $N$ forever, what would a 10× larger model buy each time?
# - What does each token of a bigger model cost at inference, and where do the tokens for
#   training come from?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q14**
#
# <div class="course-answer" data-question="MM-Q14">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Bigger is better, predictably.** Over many orders of magnitude the test loss of a language
# model falls as a power law in its size, its data and its compute (Kaplan et al., 2020).
# Hoffmann et al. (2022) fit
# $$L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}},$$
# with $E \approx 1.69$, $A \approx 406$, $B \approx 411$, $\alpha \approx 0.34$,
# $\beta \approx 0.28$ for their data and tokenizer. $E$ is the irreducible loss (the entropy
# of text itself); the two other terms are what a finite model and finite data leave on the
# table. A larger model has more capacity to store patterns and also learns more per token
# (it is more sample-efficient), so at equal data it reaches a lower loss.
#
# **But not at equal compute.** For a fixed budget $C \approx 6ND$, a larger $N$ means fewer
# tokens $D$. Too small a model saturates; too large a model is undertrained. The best size
# grows with the budget: Hoffmann et al. find $N_{opt} \propto C^{a}$ and
# $D_{opt} \propto C^{b}$ with $a \approx b \approx 0.5$, about **20 tokens per parameter**
# (Chinchilla: 70B parameters, 1.4T tokens, better than the 280B Gopher on the same compute).
# Kaplan et al. had concluded that size should grow much faster than data; the difference comes
# largely from their learning-rate schedule and from counting parameters without embeddings at
# small scale (Porian et al., 2024; Pearce and Song, 2024).
#
# **Where it stops.**
#
# - *Diminishing returns*: a power law gives the same **ratio** per 10×, so each 10× of
#   compute buys a smaller absolute gain, and nothing gets below $E$.
# - *Data*: compute-optimal training needs $D$ to grow as fast as $N$. The stock of public
#   human text is finite; at current trends it is used up around 2026-2032
#   (Villalobos et al., 2024). Repeating data helps for a few epochs and then fades
#   (Muennighoff et al., 2023).
# - *Inference cost*: every generated token costs about $2N$ FLOPs and the weights must fit in
#   memory. A model that will serve many tokens is cheaper overall if it is smaller and
#   trained on **more** than 20 tokens per parameter (Sardana and Frankle, 2023); the Llama
#   models are trained far beyond the Chinchilla ratio for this reason (Touvron et al., 2023).
#
# MiniMind, at 26M parameters, is a model sized for a single-GPU budget and fast inference,
# not for the lowest loss: it is the small end of this trade-off.
#
# </details>

# %% [markdown]
# ### Show it: a scaling sweep in miniature
#
# Five TinyGPTs of widths 8 to 32 and one or two layers, all character-level on the course
# corpus, span about 30× in non-embedding parameters $N$ (Kaplan et al.'s convention: the
# embedding table is a lookup, not compute). `utils.scaling.run_sweep` trains each with a
# **constant** learning rate after a short warmup, records the validation loss at regular
# points, and counts the training FLOPs with `utils.accounting.flops_per_token` (about $6N$
# per token, plus the output layer and attention). With a constant rate, a run's intermediate
# losses are meaningful on their own, so one run per model gives both the fixed-token sweep and
# the IsoFLOP sweep below (Hoffmann et al.'s "approach 1" reads training curves the same way).
# Each model runs until it has spent the largest budget, within a range of steps.

# %%
from utils.data import CharTokenizer, default_corpus, train_val_split
from utils.scaling import (
    fit_log_linear,
    fit_power_law,
    loss_at_flops,
    parabola_minimum,
    run_sweep,
    steps_for_flops,
)
from utils.training import TrainConfig

text = default_corpus()
tokenizer = CharTokenizer.from_text(text)
train_ids, val_ids = train_val_split(torch.tensor(tokenizer.encode(text)))

shapes = [(8, 1), (12, 1), (16, 1), (24, 1), (32, 2)]  # (d_model, n_layers)
if big:
    shapes = [(32, 2), (48, 2), (64, 3), (96, 3), (128, 4), (192, 4)]
configs = [GPTConfig.nano(tokenizer.vocab_size, d_model=d, n_layers=n, n_heads=2,
                          context_length=32, ffn="gelu") for d, n in shapes]
sweep_config = TrainConfig(batch_size=32 if big else 8, block_size=32, max_lr=6e-3, min_lr=6e-3,
                           warmup_steps=10, weight_decay=0.0, eval_steps=10,
                           device=str(device))
largest_budget = 4e9 if not big else 5e11
min_steps, max_steps = (200, 800) if not big else (600, 3000)
steps = [min(max_steps, max(min_steps, steps_for_flops(largest_budget, c, sweep_config)))
         for c in configs]

start = time.perf_counter()
runs = run_sweep(configs, steps, train_ids, val_ids, sweep_config, n_evals=12)
print(f"{len(runs)} models trained in {time.perf_counter() - start:.1f} s")
sweep = pd.DataFrame(runs).drop(columns=["curve_flops", "curve_loss"])
sweep.round({"val_loss": 3, "seconds": 1})

# %% tags=["nbval-check-output"]
n_sizes = sweep["non_embedding"].to_numpy()
print("non-embedding parameters:", n_sizes.tolist())
print(f"span: {n_sizes.max() / n_sizes.min():.0f}x")

# %% [markdown]
# **Loss against size at a fixed token budget.** Every model has seen at least
# `min_steps` batches; we read each curve at exactly that many tokens and fit two laws: the
# pure power law $L = A N^{-\alpha}$ of Kaplan et al. (a straight line in log-log, so its
# slope has an ordinary standard error), and the three-parameter $L = E + A N^{-\alpha}$.

# %%
fixed_tokens = min_steps * sweep_config.batch_size * sweep_config.block_size
fixed_loss = np.array([loss_at_flops(r, r["flops"] * fixed_tokens / r["tokens"]) for r in runs])
kaplan = fit_log_linear(n_sizes, fixed_loss)
three = fit_power_law(n_sizes, fixed_loss)
print(f"fixed budget: {fixed_tokens:,} tokens per model")
print(f"L = A N^-alpha:     alpha = {kaplan.alpha:.3f} ± {kaplan.alpha_se:.3f} (1 s.e.)")
print("losses:", fixed_loss.round(3).tolist())
if three.at_bound:
    print("L = E + A N^-alpha: not identified (the exponent ran to the end of its search range)")
else:
    print(f"L = E + A N^-alpha: alpha = {three.alpha:.3f} ± {three.alpha_se:.3f}, "
          f"E = {three.E:.2f} ± {three.E_se:.2f}")

fig, ax = plt.subplots(figsize=(6, 3.6))
grid = np.geomspace(n_sizes.min() / 2, n_sizes.max() * 4, 100)
ax.semilogx(n_sizes, fixed_loss, "o", label=f"measured ({fixed_tokens:,} tokens each)")
ax.semilogx(grid, kaplan.predict(grid), "-", label=f"A N^-α, α = {kaplan.alpha:.3f}")
if not three.at_bound:
    ax.semilogx(grid, three.predict(grid), "--", label=f"E + A N^-α, α = {three.alpha:.2f}")
ax.set(xlabel="non-embedding parameters N", ylabel="validation loss (nats/char)",
       title="Bigger is better at a fixed token budget")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
print("the largest model's loss is below the smallest's:", bool(fixed_loss[-1] < fixed_loss[0]))
print("pure power-law exponent is positive and below 0.5:", bool(0 < kaplan.alpha < 0.5))

# %% [markdown]
# The points fall roughly on a straight line (over this small range of losses a power law is
# nearly straight on these axes too), with scatter of a few hundredths
# (the validation loss is measured on only a few thousand characters, and each model trained
# once): the exponent of the pure power law is small and comes with the standard error printed
# above. The three-parameter fit is not identified: to pin down $E$ the
# curve must visibly bend towards a floor, and 30× of tiny models trained for a few seconds do
# not reach it. (When the exponent runs to the end of its search range, the fit is saying
# "I cannot tell $E$ and $\alpha$ apart", and the plot omits it.) This is the first honest
# caveat of miniature scaling laws: Hoffmann et al. fitted over 400 models from 70M to 16B
# parameters; five points and two orders of magnitude measure a **local slope**, not a law.
#
# ### Show it: Chinchilla in miniature (IsoFLOP)
#
# Now fix the **compute** instead of the tokens. At a budget $C$, model $i$ has trained on
# $C / \text{FLOPs per token}_i$ tokens: the smallest models many, the largest few. We read
# every curve at two budgets, 4× apart, and fit a parabola in $\log N$ through each IsoFLOP
# curve (Hoffmann et al.'s "approach 2").

# %%
budgets = [largest_budget / 4, largest_budget]
iso = pd.DataFrame({f"C = {c:.0e}": [loss_at_flops(r, c) for r in runs] for c in budgets},
                   index=pd.Index(n_sizes, name="N"))
best_sizes = {}
for column in iso:
    known = iso[column].dropna()
    best_sizes[column] = int(known.idxmin())
print("best measured size per budget:", best_sizes)
short = [r for r in runs if r["curve_flops"][-1] < budgets[-1] * 0.95]
for r in short:  # runs capped at max_steps before the largest budget
    print(f"N = {r['non_embedding']} stopped at {r['flops']:.1e} FLOPs with loss {r['val_loss']:.3f}")
iso.round(3)

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for (column, losses), color in zip(iso.items(), ["C0", "C3"], strict=True):
    known = losses.dropna()
    ax.semilogx(known.index, known, "o-", color=color, label=column)
    if len(known) >= 3:
        try:
            vertex = parabola_minimum(known.index, known)
            if known.index.min() <= vertex <= known.index.max():
                ax.axvline(vertex, color=color, ls=":", lw=1)
        except ValueError:
            pass
ax.set(xlabel="non-embedding parameters N", ylabel="validation loss (nats/char)",
       title="IsoFLOP curves: at fixed compute, too big is worse")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
small, large = best_sizes.values()
print("the best size at 4x the compute is at least as large:", large >= small)

# %% [markdown]
# At the smaller budget the smallest model wins: the larger ones have seen too few tokens. At
# 4× the compute the best of the measured models is a larger one, and the largest model is
# still far behind. (The smallest model hit its cap of steps before the larger budget; the
# cell prints where it stopped, and its loss there is already above that of the best model
# at the larger budget.) The optimum moves to larger models as compute grows, the effect Hoffmann et al. measured
# from 6·10¹⁸ to 3·10²¹ FLOPs. Its tokens per parameter here need not be 20: our models
# are tiny, character-level, trained for seconds with untuned learning rates, and their
# output layer is a large share of their FLOPs. The **direction** (the best size grows with
# compute, and both too small and too large lose at fixed compute) is what a CPU-sized
# experiment can show; the **exponents** and the ratio are not.
#
# To see the law at the scale where it was measured, the figure below evaluates Hoffmann et
# al.'s fitted $L(N, D)$ along $D = C / (6N)$ for budgets from $10^{18}$ to $10^{24}$ FLOPs
# (their constants; nothing trained here).

# %%
E_H, A_H, B_H, ALPHA_H, BETA_H = 1.69, 406.4, 410.7, 0.34, 0.28  # Hoffmann et al. (2022), approach 3


def chinchilla_loss(n, compute):
    tokens = compute / (6 * n)
    return E_H + A_H / n**ALPHA_H + B_H / tokens**BETA_H


def draw_isoflop(log10_compute):
    n = np.geomspace(1e7, 1e12, 300)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for c in range(18, 25):
        ax.semilogx(n, chinchilla_loss(n, 10.0**c), color="0.8", lw=1)
    loss = chinchilla_loss(n, 10.0**log10_compute)
    i = int(np.argmin(loss))
    ax.semilogx(n, loss, color="C3", lw=2)
    ax.plot(n[i], loss[i], "o", color="C3")
    tokens = 10.0**log10_compute / (6 * n[i])
    ax.set(xlabel="parameters N", ylabel="predicted loss", ylim=(1.8, 4.0),
           title=f"C = 1e{log10_compute}: best N = {n[i]:.1e}, {tokens / n[i]:.0f} tokens/param")
    fig.tight_layout()
    return fig


interactive_figure(draw_isoflop, log10_compute=[18, 19, 20, 21, 22, 23, 24],
                   initial={"log10_compute": 21})

# %% tags=["nbval-check-output"]
n_grid = np.geomspace(1e7, 1e13, 20001)
for c in (1e20, 1e22, 1e24):
    n_best = n_grid[np.argmin(chinchilla_loss(n_grid, c))]
    print(f"C = {c:.0e}: N_opt = {n_best:.2e}, tokens per parameter = {c / (6 * n_best**2):.0f}")

# %% [markdown]
# The optimum moves right as the budget grows, as in the miniature. With the approach-3
# constants the ratio is not a constant 20: it comes out at 40 to 98 tokens per parameter over
# this range and grows with compute, because $\alpha > \beta$ in that fit. The "≈ 20 tokens per parameter" rule
# comes from their approaches 1 and 2, which give $a \approx b \approx 0.5$; the three
# approaches disagree by this much, and later replications argue about the third
# (Besiroglu et al., 2024).

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "more parameters, more learning ability, so bigger is better"</strong></p>
#
# That is the first answer in the notes, and the IsoFLOP curves above show its limit. At a
# **fixed compute budget** the largest model lost to smaller ones: every extra parameter
# costs tokens it can no longer be trained on. "Bigger is better" holds when the data grow
# with the model; the question a lab actually faces is how to split a budget between $N$ and
# $D$, and the answer is "both, about equally in log" (Hoffmann et al., 2022), or "smaller and
# longer" once inference is counted.
#
# </div>

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: extrapolating a fit of tiny models</strong></p>
#
# Our pure power law fits five points roughly. Extrapolated to 26M parameters it predicts a loss,
# but nothing in the data supports it: the fit has no floor ($E = 0$), our learning rate was
# not tuned per size, and the largest run lasted seconds. Published laws are fitted over
# hundreds of runs with tuned schedules, and even they are checked by training the target
# model. Use a miniature sweep to see the *shape* of the trade-off, not to predict a number.
#
# </div>

# %% [markdown]
# The notes quote GPT-3 and Chinchilla and the memory of a 175B model; the cell recomputes
# what can be recomputed.

# %% tags=["nbval-check-output"]
print(f"GPT-3: 300e9 tokens / 175e9 parameters = {300e9 / 175e9:.2f} tokens per parameter")
print(f"Chinchilla: 1.4e12 / 70e9 = {1.4e12 / 70e9:.0f} tokens per parameter")
print(f"175e9 parameters in 16-bit: {175e9 * 2 / 1e9:.0f} GB = "
      f"{175e9 * 2 / 80e9:.2f} A100s of 80 GB, before any KV cache")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction: the notes' scaling table, "no saturation" and emergence at 6B</strong></p>
#
# - The notes list losses for 1M to 100B parameters (3.5, 2.8, 2.3, 1.9, 1.6, 1.4) as "actual
#   data". They cite nothing, and losses depend on the tokenizer and data, so such a table
#   cannot be shared between models. What we measured is the sweep above: at a fixed token
#   budget, the loss falls as a power of $N$ with the exponent printed there, over 30× in
#   size only.
# - They conclude "no sign of saturation", yet their own formula has a constant $c$: that is
#   the floor $E$, and the reducible part shrinks by a constant *ratio* per 10×, so the gains
#   shrink in absolute terms (diminishing returns, answer above).
# - They place the emergence of chain-of-thought reasoning at "about 6B parameters". Wei et
#   al. (2022) found chain-of-thought prompting to help only at around 100B parameters, and
#   Schaeffer et al. (2023) showed that many "emergent" jumps become smooth under continuous
#   metrics.
# - Their numbers that do check out: GPT-3's 1.7 and Chinchilla's 20 tokens per parameter,
#   and 350 GB for 175B parameters in 16 bits, which needs 5 GPUs of 80 GB (4.4 by the cell
#   above, rounded up) for the weights alone.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how much compute for half the reducible loss?</strong></p>
#
# If the reducible loss falls as $N^{-\alpha}$ with $\alpha = 0.34$, by how much must $N$ grow to
# halve it?
#
# <details><summary>Answer</summary>
#
# $2^{1/\alpha} = 2^{1/0.34} \approx 7.7$ times the parameters, and at compute-optimal training
# about the same factor in data, so roughly 60 times the compute. Each halving costs the same
# factor again: that is what "diminishing returns of a power law" means in practice.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: was MiniMind trained compute-optimally?</strong></p>
#
# At 20 tokens per parameter, how many tokens would a 26M-parameter model need, and why
# might its authors train on more?
#
# <details><summary>Answer</summary>
#
# About $20 \times 26\text{M} \approx 0.5$B tokens. Training on more costs more compute than
# "optimal", but the model stays small: cheap to serve and to run on a laptop, which is the
# point of MiniMind. Past the Chinchilla point the loss keeps falling, only more slowly per
# FLOP than a larger model would (Sardana and Frankle, 2023).
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
print(f"2^(1/0.34) = {2 ** (1 / 0.34):.1f}; squared (N and D both grow) = {2 ** (2 / 0.34):.0f}")
print(f"20 tokens x 26e6 parameters = {20 * 26e6 / 1e9:.2f}e9 tokens")

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q14")

# %% [markdown]
# ## Build it yourself
#
# Fit a power law with a known floor. Write `my_power_law_fit(n, loss, E)` that
#
# - takes 1-D float tensors `n` (model sizes) and `loss` (their losses) and a float `E` below
#   every loss;
# - fits `loss = E + A * n**(-alpha)` by **least squares on the straight line**
#   $\log(\text{loss} - E) = \log A - \alpha \log n$ (natural logs);
# - returns `torch.stack([A, alpha])`, shape `(2,)`, in the dtype of `loss`, without modifying
#   its inputs.
#
# With `E = 0` this is how the pure power law above was fitted. The checker tries exact and
# noisy power laws, with and without a floor, in float64 and float32. As committed, the stub
# raises `NotImplementedError`, and the checker says so.

# %%
def my_power_law_fit(n, loss, E):
    """Your fit: returns tensor([A, alpha]) for loss = E + A * n**(-alpha)."""
    # 1. x = log n, y = log(loss - E)
    # 2. least-squares slope s and intercept b of y = b + s x
    # 3. return A = exp(b) and alpha = -s
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_power_law_fit

check_power_law_fit(my_power_law_fit)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_power_law_fit(n, loss, E):
#     x, y = n.log(), (loss - E).log()
#     xc = x - x.mean()
#     slope = (xc * (y - y.mean())).sum() / (xc**2).sum()  # cov(x, y) / var(x)
#     intercept = y.mean() - slope * x.mean()
#     return torch.stack([intercept.exp(), -slope])
# ```
#
# `utils.scaling.fit_log_linear` is the same fit in NumPy, with the standard error of the
# slope; `utils.scaling.fit_power_law` also fits $E$.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# This chapter added `utils.scaling`, tested in `tests/test_scaling.py` against exact power
# laws, noisy ones with a known exponent, a brute-force least-squares grid and NumPy's
# `polyfit`:
#
# - `run_sweep` (train several configurations, collect losses, tokens, FLOPs and curves),
#   `steps_for_flops`, `loss_at_flops`, `non_embedding_parameters`;
# - `fit_power_law` ($E + AN^{-\alpha}$ with standard errors), `fit_log_linear` (known $E$),
#   `parabola_minimum` (the vertex of an IsoFLOP curve), `power_law`;
#
# and the checker `utils.checks.check_power_law_fit`.
#
# ## Summary
#
# - **MM-Q13** Transformers train in parallel (chapter 5), but they also give every pair of
#   positions a one-step path. On recall of the token $k$ back, with an RNN, a GRU and a
#   transformer of similar size and training, the RNN and the transformer solved small $k$;
#   as $k$ grew the recurrent models fell to chance while the transformer held on. The gradient of the last loss reached the relevant
#   input at full strength in the transformer and decayed with distance in the recurrent
#   models, like a product of Jacobians with spectral radius below 1.
# - **MM-Q14** At a fixed token budget, the loss of five tiny GPTs fell as a power of $N$ over
#   30× in size; five tiny models fix a local slope but cannot pin the floor $E$. At fixed
#   compute, the best size grew with the budget, and too large a model lost: Chinchilla in
#   miniature. Hoffmann et al. (2022) measured this at scale (≈ 20 tokens per parameter).
#   Scaling is limited by diminishing returns of a power law, by the stock of data, and by
#   the cost of inference, which favours smaller models trained longer.
#
# ## References
#
# - Bengio, Y., Simard, P., Frasconi, P. (1994). *Learning Long-Term Dependencies with
#   Gradient Descent is Difficult*. IEEE Transactions on Neural Networks, 5(2).
# - Hochreiter, S., Schmidhuber, J. (1997). *Long Short-Term Memory*. Neural Computation, 9(8).
# - Cho, K. et al. (2014). *Learning Phrase Representations using RNN Encoder-Decoder for
#   Statistical Machine Translation*. EMNLP. arXiv:1406.1078.
# - Jozefowicz, R., Zaremba, W., Sutskever, I. (2015). *An Empirical Exploration of Recurrent
#   Network Architectures*. ICML.
# - Pascanu, R., Mikolov, T., Bengio, Y. (2013). *On the Difficulty of Training Recurrent
#   Neural Networks*. ICML. arXiv:1211.5063.
# - Linzen, T., Dupoux, E., Goldberg, Y. (2016). *Assessing the Ability of LSTMs to Learn
#   Syntax-Sensitive Dependencies*. TACL. arXiv:1611.01368.
# - Vaswani, A. et al. (2017). *Attention Is All You Need*. NeurIPS. arXiv:1706.03762.
# - Brown, T. et al. (2020). *Language Models are Few-Shot Learners* (GPT-3). NeurIPS.
#   arXiv:2005.14165.
# - Kaplan, J. et al. (2020). *Scaling Laws for Neural Language Models*. arXiv:2001.08361.
# - Hoffmann, J. et al. (2022). *Training Compute-Optimal Large Language Models* (Chinchilla).
#   NeurIPS. arXiv:2203.15556.
# - Wei, J. et al. (2022). *Chain-of-Thought Prompting Elicits Reasoning in Large Language
#   Models*. NeurIPS. arXiv:2201.11903.
# - Muennighoff, N. et al. (2023). *Scaling Data-Constrained Language Models*. NeurIPS.
#   arXiv:2305.16264.
# - Sardana, N., Frankle, J. (2023). *Beyond Chinchilla-Optimal: Accounting for Inference in
#   Language Model Scaling Laws*. arXiv:2401.00448.
# - Schaeffer, R., Miranda, B., Koyejo, S. (2023). *Are Emergent Abilities of Large Language
#   Models a Mirage?* NeurIPS. arXiv:2304.15004.
# - Touvron, H. et al. (2023). *LLaMA: Open and Efficient Foundation Language Models*.
#   arXiv:2302.13971.
# - Arora, S. et al. (2024). *Zoology: Measuring and Improving Recall in Efficient Language
#   Models*. ICLR. arXiv:2312.04927.
# - Besiroglu, T., Erdil, E., Barnett, M., You, J. (2024). *Chinchilla Scaling: A Replication
#   Attempt*. arXiv:2404.10102.
# - Pearce, T., Song, J. (2024). *Reconciling Kaplan and Chinchilla Scaling Laws*. TMLR.
#   arXiv:2406.12907.
# - Porian, T. et al. (2024). *Resolving Discrepancies in Compute-Optimal Scaling of Language
#   Models*. NeurIPS. arXiv:2406.19146.
# - Villalobos, P. et al. (2024). *Will We Run Out of Data? Limits of LLM Scaling Based on
#   Human-Generated Data*. ICML. arXiv:2211.04325.
