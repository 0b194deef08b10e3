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
# # 3 · Position, one question at a time
#
# Self-attention compares every token with every other token, but nothing in the formula says
# *where* a token is. This chapter shows that with numbers and then takes apart the ways a
# transformer is told about order, through five questions (L03-Q13 to Q16 and MM-Q7):
#
# 1. Why must position be encoded at all?
# 2. Sinusoidal or learned positions?
# 3. Why are positions added to the embeddings instead of concatenated?
# 4. How do RoPE and ALiBi encode *relative* position?
# 5. Why does MiniMind (like Llama) use RoPE, and does it really work at any length?
#
# Along the way we train five small language models that differ only in their position
# scheme, at a context of 64 characters, and measure their loss at every position out to 256:
# four times longer than anything they saw.
#
# **Prerequisites.** Chapter 1 (self-attention: queries, keys, values, the causal mask),
# complex numbers ($e^{i\varphi} = \cos\varphi + i \sin\varphi$, multiplying by it rotates),
# and the trigonometric identities for $\sin(a + b)$ and $\cos(a + b)$.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer
# by measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source
# notes of this course were wrong (✏️); every number in them is computed by a cell above. Each
# section ends with follow-up questions and a short quiz. At the end you write ALiBi yourself
# and a checker tells you whether it is right. Lab 2 (`lab2_positions`) is the hands-on
# companion: there you build the sinusoidal table and RoPE yourself.
#
# The whole notebook runs on a laptop CPU in about a minute (most of it training the small
# models); on a GPU the models grow. It downloads nothing.

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
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import MultiHeadAttention
from utils.data import CharTokenizer, default_corpus, get_batch, train_val_split
from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.model import GPTConfig, TinyGPT
from utils.plots import use_style
from utils.positional import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    rope_frequencies,
    sinusoidal_table,
)
from utils.pretrained import load_pretrained
from utils.quiz import quiz
from utils.training import TrainConfig, train

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
print("device:", device)

# %% [markdown]
# ## L03-Q13 · Why must position be encoded at all?
#
# > Self-attention already sees every token of the sentence. Why does a transformer need to
# > be told, separately, where each token is? How do RNNs and convolutions get by without it?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Write out what attention computes for one query. Which quantities in it depend on *where*
#   a token sits, and which only on *what* it is?
# - Swap two tokens of the input. What happens to the scores, the weights, the outputs?
# - An RNN reads $x_1$, then $x_2$, ... A convolution multiplies its kernel weights with
#   neighbours at fixed offsets. Where is the order hidden in each?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q13**
#
# <div class="course-answer" data-question="L03-Q13">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# For one query $i$, attention computes $\text{out}_i = \sum_j \operatorname{softmax}_j(q_i
# \cdot k_j / \sqrt{d_k})\, v_j$ with $q_i = x_i W_Q$, $k_j = x_j W_K$, $v_j = x_j W_V$. Every
# quantity depends on the *content* $x$ of the tokens, none on their index: the sum over $j$
# is a sum over a **set**. So if the input rows are permuted by $P$, the output rows are
# permuted in the same way:
#
# $$\operatorname{Attn}(PX) = P \operatorname{Attn}(X).$$
#
# This is **permutation equivariance**. The feed-forward layer and the norms act on each
# position separately, so a whole transformer without positional information and without a
# mask is equivariant too. "我爱你" ("I love you") and "你爱我" ("you love me") contain the same
# three characters, so such a model gives the character 你 *the same vector* whether it is the
# object or the subject: it cannot tell who loves whom.
#
# Older sequence models carry order **implicitly**, in their structure:
#
# - an **RNN** reads tokens one after another, $h_t = f(h_{t-1}, x_t)$, so its state is a
#   function of the order (and of nothing else about position);
# - a **convolution** applies different kernel weights to the neighbour on the left and the
#   neighbour on the right, so it sees *relative* order inside its window; stacking layers
#   widens the window.
#
# A transformer gave up both (to process all positions in parallel and connect any two
# positions in one step), so order has to be put back explicitly: added to the input
# (sinusoidal, learned: Q14, Q15) or built into the scores (RoPE, ALiBi: Q16).
#
# One exception: a **causal mask** is not permutation-equivariant, because it depends on
# positions. It tells each token how many tokens came before it, and causal language models
# trained without any positional encoding do learn some positional information from it
# (Haviv et al., 2022). It does not tell a token the *order* of those earlier tokens: in the
# first layer, the last token's output is the same for every order of its prefix.
#
# </details>

# %% [markdown]
# ### Show it: "我爱你" and "你爱我" through one attention layer
#
# Three characters, random 16-dimensional embeddings, and one multi-head attention layer of
# `utils` with random weights and no mask. Without positions the two sentences give the same
# *multiset* of output vectors (the same vectors in another order). Then we give the same
# layer positions in each of the four ways of this chapter: learned vectors (random here, as
# at initialisation), the sinusoidal table, RoPE and ALiBi.

# %%
vocab = {c: i for i, c in enumerate("我爱你")}
d_demo = 16
char_emb = torch.randn(len(vocab), d_demo)
layer = MultiHeadAttention(d_demo, n_heads=2, use_fused=False).eval()
rope_layer = MultiHeadAttention(d_demo, n_heads=2, use_fused=False, rope_theta=10_000.0).eval()
rope_layer.load_state_dict(layer.state_dict())  # the same weights; RoPE has no parameters


def embed(sentence):
    """(1, T, d_demo) embeddings of a string of characters from `vocab`."""
    return char_emb[[vocab[c] for c in sentence]].unsqueeze(0)


def same_multiset(a, b, tol=1e-5):
    """True if the rows of b are the rows of a in some order (a, b: (1, T, d))."""
    dist = torch.cdist(a[0], b[0])  # (T, T) distances between rows
    return bool((dist.min(0).values < tol).all() and (dist.min(1).values < tol).all())


T3 = 3
learned_table = 0.5 * torch.randn(T3, d_demo)  # stands in for a learned table
sin_table = sinusoidal_table(T3, d_demo)
distance = (torch.arange(T3)[:, None] - torch.arange(T3)[None, :]).abs()
alibi_sym = -alibi_slopes(2)[:, None, None] * distance  # (heads, T, T); no mask, so |i - j|

schemes = {
    "no positions": lambda x: layer(x),
    "learned (added)": lambda x: layer(x + learned_table),
    "sinusoidal (added)": lambda x: layer(x + sin_table),
    "RoPE (rotates q, k)": lambda x: rope_layer(x),
    "ALiBi (bias on scores)": lambda x: layer(x, alibi=alibi_sym),
}
# %% tags=["nbval-check-output"]
with torch.no_grad():
    for name, run in schemes.items():
        out_a, out_b, out_c = run(embed("我爱你")), run(embed("你爱我")), run(embed("爱你我"))
        print(f"{name:23s} same multiset as 你爱我: {same_multiset(out_a, out_b)!s:5s}  "
              f"as 爱你我: {same_multiset(out_a, out_c)!s:5s}  "
              f"你 as object == 你 as subject: {torch.allclose(out_a[0, 2], out_b[0, 0])}")

# %% [markdown]
# Without positions the two sentences are indistinguishable: the outputs are the same three
# vectors, and 你 gets the same vector in both roles. Learned, sinusoidal and RoPE positions
# break the tie for every shuffle. ALiBi is the surprise: with no mask its penalty
# $-s\,|i - j|$ sees *distances* but not *directions*, and "你爱我" is "我爱你" read backwards,
# which keeps every distance. A shuffle that changes distances ("爱你我") is told apart. ALiBi
# was designed for causal models, where the mask supplies the direction; bidirectional
# variants use different slopes for the two directions.
#
# ### Show it: RNNs and convolutions carry order in their structure

# %%
with torch.no_grad():
    rnn = nn.RNN(d_demo, 8, batch_first=True)
    states_a, last_a = rnn(embed("我爱你"))
    states_b, last_b = rnn(embed("你爱我"))
    conv = nn.Conv1d(d_demo, 8, kernel_size=2)  # weights for "left neighbour" and "self"
    conv_a = conv(embed("我爱你").transpose(1, 2)).transpose(1, 2)
    conv_b = conv(embed("你爱我").transpose(1, 2)).transpose(1, 2)

# %% tags=["nbval-check-output"]
print("RNN: final states differ:", not torch.allclose(last_a, last_b))
print("RNN: same multiset of per-step states:", same_multiset(states_a, states_b))
print("conv (kernel 2): same multiset of outputs:", same_multiset(conv_a, conv_b))

# %% [markdown]
# Both older architectures tell the sentences apart with no positional input at all: the RNN
# because its state after 你 depends on what it read before, the convolution because its two
# kernel columns weigh "the character on my left" and "me" differently.
#
# A convolution only sees order *inside its window*, though. How many layers does it need
# before the last token can see the first one? With kernel size $k$ each layer adds $k - 1$
# tokens to the window; with dilations $1, 2, 4, \dots$ (WaveNet) the window doubles per layer.

# %% tags=["nbval-check-output"]
def layers_to_cover(n, k=3, dilated=False):
    """Smallest number of stacked convolutions whose receptive field spans n tokens."""
    layers, field = 0, 1
    while field < n:
        field += (k - 1) * (2**layers if dilated else 1)
        layers += 1
    return layers


for n in (64, 1024, 8192):
    print(f"n = {n:5d}: kernel 3 needs {layers_to_cover(n):5d} layers plain, "
          f"{layers_to_cover(n, dilated=True):2d} with doubling dilations")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "shuffle the input and the next-token distribution does not change"</strong></p>
#
# The learner of the notes gave an excellent first answer (the 我爱你 / 你爱我 example, RNNs
# keeping order in the hidden state, convolutions in shifted kernels) and added that without
# positions "if you shuffle the order, the distribution of the next token may not change".
# That is true of a single layer *without a mask*: the output of every token, the last one
# included, is unchanged up to the shuffle. A language model, however, is causal, and the
# causal mask depends on positions: the first token sees one token, the tenth sees ten. The
# cell below shuffles the *prefix* and then the *whole* sentence of a causal layer without
# positions: only the first leaves the last token's output unchanged.
#
# </div>

# %% tags=["nbval-check-output"]
with torch.no_grad():
    last = lambda s: layer(embed(s), causal=True)[0, -1]  # noqa: E731 - the last token's output
    print("causal, prefix shuffled (我爱你 vs 爱我你): last output unchanged:",
          torch.allclose(last("我爱你"), last("爱我你"), atol=1e-6))
    print("causal, whole sentence shuffled (我爱你 vs 你爱我): same multiset:",
          same_multiset(layer(embed("我爱你"), causal=True), layer(embed("你爱我"), causal=True)))

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: equivariant, not invariant, and convolutions are not O(log n) deep</strong></p>
#
# - The notes call a transformer "completely permutation *invariant*" and, in the same breath,
#   write the correct formula $\operatorname{Attn}(PX) = P\operatorname{Attn}(X)$, which is
#   *equivariance*: the outputs move with the inputs. Invariance ($f(PX) = f(X)$) would mean
#   that every token gets the same output whatever the order, which only holds for
#   order-free summaries such as the mean of the outputs. And with a causal mask, the model is
#   neither (the cells above).
# - The notes say a CNN "needs $O(\log n)$ layers to see the whole sequence". That holds only
#   with dilations that double (or with pooling). A plain stack with kernel 3 grows its window
#   by 2 per layer, so it needs $\lceil (n - 1)/2 \rceil$ layers: the cell above counts 512
#   for $n = 1024$, against 10 with doubling dilations.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is a bag of words really that bad?</strong></p>
#
# Many tasks can be solved reasonably without order (topic classification, for example). Why
# is order indispensable for a *language model*?
#
# <details><summary>Answer</summary>
#
# Because the next token depends on order at every scale: "dog bites man" and "man bites dog"
# continue differently, a closing bracket depends on which bracket was opened last, and code
# and numbers are meaningless without order. The causal mask gives a causal model a weak
# signal (how many tokens precede me), and the model can turn it into a rough absolute
# position (Haviv et al., 2022), but the order of earlier tokens has to be reconstructed in
# later layers from such counts. Section MM-Q7 trains a model with no position scheme at all
# next to the others: its loss is worse in range but, having nothing to extrapolate, it does
# not degrade with length.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: which parts of a transformer would need changing to make it order-aware without any positional encoding?</strong></p>
#
# <details><summary>Answer</summary>
#
# Any part that treats neighbours differently from other tokens: a causal mask (order
# through counting), a short convolution before attention (mixing each token with its left
# neighbours), or a recurrence such as a state-space layer. Positional encodings are the cheapest fix because they leave the
# parallel, all-pairs structure of attention untouched.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q13")

# %% [markdown]
# ## L03-Q14 · Sinusoidal or learned positions?
#
# > The original transformer adds a fixed table of sines and cosines to the embeddings; GPT-2
# > and BERT learn one vector per position instead. What does the sinusoidal table encode, what
# > does each choice buy, and what happens past the end of a learned table?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Column pair $i$ of the table holds $\sin(p\,\omega_i)$ and $\cos(p\,\omega_i)$ with
#   $\omega_i = 10000^{-2i/d}$. What are the shortest and the longest wavelengths?
# - $\sin(a + b) = \sin a \cos b + \cos a \sin b$. What does that say about the rows $p$ and
#   $p + k$?
# - A learned table is an `nn.Parameter` of shape `(max_len, d)`. Which of its rows get a
#   gradient if every training sequence is 64 tokens long?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q14**
#
# <div class="course-answer" data-question="L03-Q14">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **The sinusoidal table** (Vaswani et al., 2017) gives position $p$ the vector
#
# $$PE[p, 2i] = \sin(p\,\omega_i), \quad PE[p, 2i + 1] = \cos(p\,\omega_i), \quad
# \omega_i = 10000^{-2i/d}, \quad i = 0, \dots, d/2 - 1 .$$
#
# Each column pair is a point going round a circle at its own speed, like the hands of a
# clock: the first pair turns by 1 radian per position (wavelength $2\pi$), the last one so
# slowly that its wavelength is almost $2\pi \cdot 10000$. Fast pairs tell neighbours apart,
# slow pairs tell distant positions apart, and together they give every position of any
# realistic length a distinct vector.
#
# Its key property: going from $p$ to $p + k$ **rotates every pair by the angle
# $k\,\omega_i$**, so $PE[p + k] = M_k\, PE[p]$ with a block-diagonal rotation $M_k$ that
# depends on $k$ but not on $p$. Consequently $PE[p] \cdot PE[p + k] = \sum_i \cos(k\,\omega_i)$
# depends only on the distance $k$. Vaswani et al. chose the table because they expected it
# to let the model learn to attend by relative positions easily, and perhaps to extrapolate to
# longer sequences. It has no parameters.
#
# **A learned table** (Gehring et al., 2017; GPT-2; BERT) is one free vector per position. It
# can learn whatever the data reward, and in the original paper both choices gave nearly
# identical results. Its limits: it costs `max_len × d` parameters, it has **no row at all**
# beyond `max_len` (GPT-2 cannot read token 1025), and rows that training never reaches (the
# rows past the training length, if the table is longer) receive no gradient: they stay at
# their random initialisation, only shrunk by weight decay.
#
# Neither is a free lunch past the training length: the sinusoidal rows beyond it are well
# defined, but the model has never seen them, and MM-Q7 measures what that costs.
#
# </details>

# %% [markdown]
# ### Show it: the table and its wavelengths

# %%
d_table, n_positions = 128, 256
pe = sinusoidal_table(n_positions, d_table)  # (256, 128): sin in even, cos in odd columns
omega = rope_frequencies(d_table, 10_000.0).double()  # the same omega_i = 10000^(-2i/d)
wavelengths = 2 * math.pi / omega

fig, (ax_t, ax_w) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
image = ax_t.imshow(pe.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
ax_t.set(xlabel="position p", ylabel="column (pairs: fast → slow)",
         title=f"sinusoidal table, d = {d_table}")
ax_t.grid(False)
fig.colorbar(image, ax=ax_t, fraction=0.04)
ax_w.semilogy(wavelengths.numpy(), marker=".", lw=0)
ax_w.axhline(2 * math.pi * 10_000, color="gray", ls="--", label="2π · 10000")
ax_w.axhline(n_positions, color="#f75c03", ls=":", label=f"{n_positions} positions")
ax_w.set(xlabel="pair i", ylabel="wavelength (positions)", title="wavelength of each pair")
ax_w.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% tags=["nbval-check-output"]
print(f"shortest wavelength: {wavelengths[0]:.4f} (2π = {2 * math.pi:.4f})")
print(f"longest wavelength (d = {d_table}): {wavelengths[-1]:,.0f}   2π·10000 = {2 * math.pi * 1e4:,.0f}")
longest_512 = 2 * math.pi * 10_000 ** ((512 - 2) / 512)
print(f"longest wavelength for d = 512: {longest_512:,.0f}")
print(f"pairs that complete less than one turn in {n_positions} positions: "
      f"{int((wavelengths > n_positions).sum())} of {d_table // 2}")

# %% [markdown]
# The left half of the table (fast pairs) flickers, the right half barely moves within 256
# positions: most of the slow pairs look almost constant there, which is one reason the
# table has far fewer useful dimensions at short range than its width suggests.
#
# ### Show it: a shift by k is one fixed rotation
#
# For one pair $(s, c) = (\sin p\omega, \cos p\omega)$, the identities for $\sin(a + b)$ and
# $\cos(a + b)$ give $\sin((p+k)\omega) = s \cos k\omega + c \sin k\omega$ and
# $\cos((p+k)\omega) = c \cos k\omega - s \sin k\omega$: a $2 \times 2$ rotation. Stack one
# block per pair and check it on *every* position at once.

# %%
def shift_rotation(k, d, base=10_000.0):
    """Block-diagonal (d, d) matrix M_k with PE[p + k] = M_k @ PE[p] for every p."""
    w = k * base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    blocks = [torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                           dtype=torch.float64) for a in w.tolist()]
    return torch.block_diag(*blocks)


# %% tags=["nbval-check-output"]
k = 5
M = shift_rotation(k, d_table)
pe64 = sinusoidal_table(n_positions, d_table).double()
print(f"PE[p + {k}] == M_{k} PE[p] for all {n_positions - k} positions:",
      torch.allclose(pe64[:-k] @ M.T, pe64[k:], atol=1e-5))
print("M is a rotation (M Mᵀ = I):", torch.allclose(M @ M.T, torch.eye(d_table, dtype=torch.float64)))
print(f"M_{k} for d = 4 (two pairs):")
print(np.round(shift_rotation(k, 4).numpy(), 3))

# %% [markdown]
# ### Show it: distances, uniqueness, and how far from orthogonal the rows are

# %% tags=["nbval-check-output"]
gram = pe64 @ pe64.T  # (P, P): PE[p] · PE[q]
print("PE[p]·PE[p+k] depends only on k (constant diagonals):",
      torch.allclose(gram[1:, 1:], gram[:-1, :-1], atol=1e-6))
cos = gram / d_table * 2  # every row has norm sqrt(d/2), so this is the cosine
off_diag = cos[~torch.eye(n_positions, dtype=torch.bool)]
print(f"cosine between neighbours p, p+1: {cos[0, 1]:.3f}; p, p+10: {cos[0, 10]:.3f}; "
      f"p, p+100: {cos[0, 100]:.3f}")
print(f"mean |cosine| between distinct positions: {off_diag.abs().mean():.3f} "
      f"(random directions in {d_table} dims: {math.sqrt(2 / (math.pi * d_table)):.3f})")
far = sinusoidal_table(2048, d_table).double()
nearest = torch.cdist(far, far).fill_diagonal_(float("inf")).min()
print(f"smallest distance between two of the first 2048 rows: {nearest:.3f} (rows have norm "
      f"{math.sqrt(d_table / 2):.1f})")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "like latitude and longitude: an orthogonal basis that gives a notion of distance"</strong></p>
#
# The learner of the notes answered that a learned table could work "but it is hard to say
# what a suitable value is", and that sines and cosines "are like latitude and longitude: a set
# of orthogonal bases that gives a conceptual distance". The notes praised the analogy. What
# is right in it: every column pair *is* an angle on a circle, as longitude is, and a few
# periodic coordinates together pin down a point uniquely (the cell above finds no two equal
# rows among 2048 positions). Where it breaks:
#
# - latitude and longitude are two coordinates of a 2-D surface; the table encodes a **1-D**
#   position with many angles that all turn *with the same p* at different speeds. A clock
#   (second, minute and hour hands) or the digits of a number is the better picture;
# - the rows are **not orthogonal**: neighbouring positions have cosine close to 1, and the
#   mean |cosine| between distinct positions is several times that of random directions (cell
#   above). That is the point: similarity falls off with distance, which is what lets the
#   table express "near" and "far";
# - the "distance" is not a metric the model reads off directly: $PE[p] \cdot PE[q]$ depends
#   on $p - q$ only, but after the token embedding is added and $W_Q$, $W_K$ are applied, the
#   score mixes content and absolute positions (Q15 and lab 2).
#
# </div>

# %% [markdown]
# ### The experiment of this chapter: five position schemes, trained at 64
#
# From here on we use five character-level TinyGPTs (`utils.model`) that are identical except
# for `position`: `none`, `learned`, `sinusoidal`, `rope` and `alibi` (the ALiBi switch of
# `TinyGPT`). All train on the course's default corpus with windows of **64** characters. Their
# `context_length` is 256, so the learned and sinusoidal tables have 256 rows, of which
# training only ever touches the first 64. MM-Q7 tests them on 256 characters; here we look at
# what training did to the learned table. (On a GPU the models and the training run grow.)

# %%
text = default_corpus()
tokenizer = CharTokenizer.from_text(text)
train_ids, val_ids = train_val_split(torch.tensor(tokenizer.encode(text)), 0.1)
TRAIN_LEN, TEST_LEN = 64, 256
big = device.type == "cuda"
size = dict(d_model=128, n_layers=4) if big else dict(d_model=64, n_layers=2)
train_config = TrainConfig(
    max_steps=1000 if big else 300, batch_size=32 if big else 12, block_size=TRAIN_LEN,
    max_lr=5e-3, min_lr=5e-4, warmup_steps=20, eval_interval=10_000, eval_steps=8,
    progress=False, device=str(device), seed=0)


def make_model(position):
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=TEST_LEN, n_heads=4,
                       position=position, rope_theta=10_000.0, **size)
    return TinyGPT(config)


models, val_loss = {}, {}
learned_init = None
for position in ("none", "learned", "sinusoidal", "rope", "alibi"):
    model = make_model(position)
    if position == "learned":
        learned_init = model.pos_emb.weight.detach().clone()
    start = time.perf_counter()
    history = train(model, train_ids, val_ids, train_config)
    models[position], val_loss[position] = model.eval(), history["val_loss"][-1]
    print(f"{position:10s} {model.num_parameters():,} parameters, validation loss at 64: "
          f"{val_loss[position]:.3f}  ({time.perf_counter() - start:.1f} s)")

# %% [markdown]
# ### Show it: the learned rows that training never reached
#
# Rows 64 to 255 of the learned table never take part in a forward pass, so they get no
# gradient. AdamW's weight decay still multiplies every matrix by $1 - \text{lr}\cdot\lambda$
# each step, so these rows should be their initial values times one common factor.

# %%
table = models["learned"].pos_emb.weight.detach().cpu()
init = learned_init.cpu()
used_change = (table[:TRAIN_LEN] - init[:TRAIN_LEN]).norm() / init[:TRAIN_LEN].norm()
ratio = table[TRAIN_LEN:].norm(dim=1) / init[TRAIN_LEN:].norm(dim=1)
same_direction = F.cosine_similarity(table[TRAIN_LEN:], init[TRAIN_LEN:], dim=1)
print(f"rows 0-63: relative change {used_change:.2f}")
print(f"rows 64-255: cosine with their initial value: min {same_direction.min():.6f}; "
      f"norm ratio {ratio.min():.4f} to {ratio.max():.4f} (weight decay only)")

# %% [markdown]
# The trained rows moved far from their start, the others did not move at all except for the
# uniform shrinkage of weight decay: at position 64 and beyond, the learned model receives small
# random vectors it has never seen. In TinyGPT, as in GPT-2, asking for a position past the
# table itself is an error rather than a silent extrapolation:

# %% tags=["nbval-check-output"]
short_table = TinyGPT(GPTConfig(vocab_size=10, context_length=8, d_model=16, n_layers=1,
                                n_heads=2, position="learned"))
try:
    short_table(torch.zeros(1, 9, dtype=torch.long))
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: adding a table of size 1 to embeddings of size 0.02</strong></p>
#
# Not a mistake of the learner: a trap of implementations. Look at the validation losses
# above: the sinusoidal model trails the others. Each row of the sinusoidal table has norm
# $\sqrt{d/2}$, while TinyGPT (like GPT-2) initialises token embeddings with standard
# deviation 0.02. At the start the position signal is larger than the content signal by the
# factor printed below, so the model first has to learn to hear the tokens over the positions.
# Vaswani et al. multiply the embeddings by $\sqrt{d_{model}}$ before adding the table, which
# brings the two to the same scale; TinyGPT does not, and lab 2 saw the same slow start.
#
# </div>

# %% tags=["nbval-check-output"]
token_norm = 0.02 * math.sqrt(size["d_model"])  # expected norm of a fresh token embedding
pos_norm = math.sqrt(size["d_model"] / 2)  # every row of the sinusoidal table
print(f"d = {size['d_model']}: token embedding norm ≈ {token_norm:.2f}, "
      f"sinusoidal row norm = {pos_norm:.2f}, ratio ≈ {pos_norm / token_norm:.0f}")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the longest wavelength, and "generalises to any length"</strong></p>
#
# - The notes put the longest wavelength at "$i = d/2$: about 62832". The last pair is
#   $i = d/2 - 1$, whose wavelength is $2\pi \cdot 10000^{(d-2)/d}$: the first cell of this
#   section prints about 60,600 for $d = 512$ (and less for smaller $d$). $2\pi \cdot 10000
#   \approx 62{,}832$ is the limit, never reached.
# - Their count for a learned table, "len = 2048, d = 512: 1M parameters", is right
#   ($2048 \times 512 = 1{,}048{,}576$).
# - They also claim the sinusoidal table "automatically generalises to any length" because
#   "the function is continuous and needs no learning". The table is defined at every
#   length, but the model on top of it was trained only on the rows it saw. MM-Q7 measures the
#   loss of our sinusoidal model beyond position 63.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why 10000, and why geometric frequencies?</strong></p>
#
# <details><summary>Answer</summary>
#
# Geometric spacing gives every scale the same number of pairs: as many pairs distinguish
# positions 1 apart as 10 apart, 100 apart, and so on, like the digits of a number. The base
# sets the longest wavelength, $2\pi \cdot \text{base}$: it must exceed the longest sequence,
# otherwise distant positions alias with near ones. 10000 was comfortably larger than the
# sentence lengths of 2017. RoPE inherited the same formula and, for long contexts, larger
# bases (MiniMind and Llama 3 use $10^6$ and $5 \times 10^5$): see Q16.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: if the shift is a linear map, is the sinusoidal model a relative-position model?</strong></p>
#
# <details><summary>Answer</summary>
#
# Only potentially. The score of a query at $m$ and a key at $n$ is
# $(x_m + PE_m) W_Q W_K^\top (x_n + PE_n)^\top$: four terms. Only the position–position term
# can depend on $m - n$ alone, and only if the learned $W_Q W_K^\top$ respects the block
# structure of $M_k$. The two mixed terms tie content to *absolute* positions. Ke, He and Liu
# (2021) argued these mixed terms are mostly noise and removed them (TUPE); RoPE (Q16) builds
# the relative property into the score itself.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q14")

# %% [markdown]
# ## L03-Q15 · Why add positions to the embeddings instead of concatenating them?
#
# > Adding a position vector to a token vector seems to blur two different kinds of
# > information into one. Why not concatenate them, `[token ; position]`, and keep them apart?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Write the concatenation $[e ; p]$ as a sum of two vectors of the same width.
# - In 64 or 4096 dimensions, what is the typical cosine between two random vectors?
# - Compare at the same model width: what does concatenation take away from the tokens?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q15**
#
# <div class="course-answer" data-question="L03-Q15">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Concatenation is a special case of addition.** $[e ; p] = [e ; 0] + [0 ; p]$: a
# concatenating model is an adding model whose token vectors are forced to live in the first
# $d_e$ coordinates and whose position vectors in the last $d_p$. An adding model can learn
# such a split if it helps, but it is not forced to. So at the same width $d$, adding is at
# least as expressive, and it lets the model decide how many dimensions each signal gets.
#
# **Why the sum need not blur the two signals.** In high dimension, vectors that are not
# trained to be related are nearly orthogonal: the cosine of two random directions in $d$
# dimensions is about $\sqrt{2/(\pi d)}$ in absolute value. If token vectors and position
# vectors occupy (nearly) orthogonal subspaces, a linear map such as $W_Q$ can read each one
# out of the sum almost without interference. The first layer's projections see
# $x W = e W + p W$, and their weights can attend to content, to position, or to both. This
# is an argument about *room*: with thousands of dimensions there is plenty; in a tiny model
# the two signals compete for directions, and the measurements below show it.
#
# **What concatenation costs.** At a fixed budget the model width is fixed, so concatenation
# must take $d_p$ dimensions away from the tokens in *every* layer (the residual stream has
# width $d$ throughout). If instead the width grows to $d + d_p$, every matrix that reads or
# writes the residual stream grows with it.
#
# </details>

# %% [markdown]
# ### Show it: concatenation is addition with a fixed split

# %% tags=["nbval-check-output"]
e, p = torch.randn(48), torch.randn(16)
print("[e ; p] == [e ; 0] + [0 ; p]:",
      torch.equal(torch.cat([e, p]), torch.cat([e, torch.zeros(16)]) + torch.cat([torch.zeros(48), p])))

# %% [markdown]
# ### Show it: random directions are nearly orthogonal in high dimension

# %% tags=["nbval-check-output"]
g = torch.Generator().manual_seed(0)
for d in (16, 64, 512, 4096):
    a, b = torch.randn(2000, d, generator=g), torch.randn(2000, d, generator=g)
    measured = F.cosine_similarity(a, b, dim=1).abs().mean()
    print(f"d = {d:4d}: mean |cos| of random pairs {measured:.3f}   sqrt(2/(πd)) = "
          f"{math.sqrt(2 / (math.pi * d)):.3f}")

# %% [markdown]
# ### Measure it: how much do token and position vectors overlap in the trained model?
#
# Take the learned model trained above. Its token embeddings span some directions of the
# $d$-dimensional space; find the top $k$ of them (an SVD) and ask what fraction of the
# position vectors' energy (rows 0–63, the trained ones) lies in that $k$-dimensional
# subspace. If positions were placed at random with respect to tokens, the fraction would be
# $k / d$.

# %%
trained = models["learned"]
E = trained.tok_emb.weight.detach().cpu()  # (V, d)
P = trained.pos_emb.weight.detach().cpu()[:TRAIN_LEN]  # (64, d), the trained rows
_, _, Vh = torch.linalg.svd(E - E.mean(0), full_matrices=False)  # token directions, by variance
Pc = P - P.mean(0)  # what varies from position to position
d_model = E.shape[1]
rows = []
for k_dims in (4, 8, 16, 32):
    basis = Vh[:k_dims].T  # (d, k)
    fraction = float((Pc @ basis).pow(2).sum() / Pc.pow(2).sum())
    rows.append({"k": k_dims, "position energy in top-k token subspace": round(fraction, 3),
                 "if unrelated (k/d)": round(k_dims / d_model, 3)})
cos_tp = F.cosine_similarity(E[:, None, :], P[None, :, :], dim=-1).abs().mean()
print(f"mean |cos| between a token and a position vector: {cos_tp:.3f} "
      f"(random: {math.sqrt(2 / (math.pi * d_model)):.3f})")
pd.DataFrame(rows).set_index("k")

# %% [markdown]
# Read the table row by row: below $k/d$, training would have pushed positions *away* from
# the directions the tokens use most; near $k/d$, the two are unrelated; above it, they share
# directions. In this small model ($d = 64$) they share: the position vectors put more of
# their energy into the main token directions than random vectors would, and a token and a
# position vector are less orthogonal than two random directions. In 64 dimensions the two
# signals compete for room.
#
# ### Measure it: add against concatenate at the same width
#
# Same blocks, same width $d$, same training. The concatenating model gives the tokens
# $d - 16$ dimensions and a learned position vector the remaining 16; the adding model is the
# learned model above. The concatenating model cannot tie its output layer to its (narrower)
# token embedding, so it has its own output matrix; the cell prints both parameter counts.

# %%
class ConcatPositions(nn.Module):
    """TinyGPT's blocks fed [token embedding ; learned position vector] instead of their sum."""

    def __init__(self, config, d_pos):
        super().__init__()
        self.inner = TinyGPT(replace(config, position="none", tie_embeddings=False))
        self.inner.tok_emb = nn.Embedding(config.vocab_size, config.d_model - d_pos)
        nn.init.normal_(self.inner.tok_emb.weight, std=0.02)
        self.pos = nn.Parameter(0.02 * torch.randn(config.context_length, d_pos))

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = torch.cat([self.inner.tok_emb(idx), self.pos[:T].expand(B, T, -1)], dim=-1)  # (B, T, d)
        for block in self.inner.blocks:
            x = block(x)
        logits = self.inner.lm_head(self.inner.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, loss


concat_model = ConcatPositions(models["learned"].config, d_pos=16)
start = time.perf_counter()
history = train(concat_model, train_ids, val_ids, train_config)
concat_model.eval()
val_loss["concat"] = history["val_loss"][-1]
print(f"add (learned):  {models['learned'].num_parameters():,} parameters, validation loss "
      f"{val_loss['learned']:.3f}")
print(f"concat (d-16 ; 16): {sum(p.numel() for p in concat_model.parameters()):,} parameters, "
      f"validation loss {val_loss['concat']:.3f}  ({time.perf_counter() - start:.1f} s)")

# %% [markdown]
# Both models train, with TinyGPT's ordinary residual blocks (the stream simply has width
# $d$ from the start). At this tiny width the concatenating model is *not* worse: in the
# stored run its loss is clearly lower, with fewer parameters. That fits the overlap
# measurement: when 64 dimensions must hold both signals, a fixed 16-dimensional slot for
# position is a useful constraint, which the adding model would have to discover by itself.
# Adding is never less *expressive*, but it is not automatically easier to train. Large models
# add because their width makes the interference small and a fixed split would waste
# dimensions in every layer; in the end, most of them stopped adding anything (Q16).
#
# What does concatenating at *full* token width cost in a large model? Take the shape of
# Llama-2-7B (width 4096, 32 layers, SwiGLU width 11008) and append a 4096-wide position
# vector, so that every matrix reading the residual stream gets twice as many inputs:

# %% tags=["nbval-check-output"]
d7, layers7, ff7 = 4096, 32, 11008
qkv_extra = layers7 * 3 * d7 * d7  # W_Q, W_K, W_V read 2d instead of d
ffn_extra = layers7 * 2 * d7 * ff7  # gate and up projections read 2d too
print(f"extra parameters if only Q, K, V read the wider stream: {qkv_extra / 1e9:.2f} B")
print(f"extra if the feed-forward inputs do too: {(qkv_extra + ffn_extra) / 1e9:.2f} B")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "adding fuses the two; concatenating keeps them apart and costs the model the work of relating them"</strong></p>
#
# The learner answered that addition "fuses position and token information more effectively",
# while concatenation "doubles the matrix, and the model must additionally learn how the two
# parts relate". The cost argument is right (the cell above counts it). The picture of the two
# options is backwards, though. A concatenation is a sum with the directions fixed in advance,
# and a sum does not irreversibly fuse anything when there is room for the two signals to sit
# in nearly orthogonal directions. Relating content and position is the same work in both
# cases, done by $W_Q$, $W_K$, $W_V$ of the first layer, which see the whole vector either
# way. Nor is adding "more effective" as such: at width 64, the concatenating model above did
# at least as well. The real argument for adding is the width budget of large models.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: residual connections, and "orthogonal in frequency"</strong></p>
#
# - The notes say that with concatenation "the residual connection cannot be done directly".
#   Concatenation happens once, before the first block; from then on the residual stream has
#   the concatenated width and every residual addition works as usual. The concatenating
#   model above trains with TinyGPT's ordinary residual blocks.
# - The notes explain that addition works because "position is a high-frequency periodic
#   pattern and content a low-frequency semantic one, so they are orthogonal in the frequency
#   domain". Half of the sinusoidal table is *low*-frequency (Q14's heatmap), learned tables
#   have no frequency structure at all, and the two are "orthogonal" in the ordinary
#   geometric sense measured above: nearly orthogonal *directions* in a wide space.
# - Their estimate of the cost of concatenation in a 7B model, "several billion
#   parameters", agrees with the count above (1.6 B for Q, K and V alone).
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does the position signal survive many layers?</strong></p>
#
# <details><summary>Answer</summary>
#
# It is added once, at the bottom; every block then adds its own outputs to the same stream.
# Nothing erases it, but it can be outweighed, and each layer has to keep reading it out of a
# growing sum. This is one argument for schemes that inject position *in every layer*, inside
# attention: RoPE rotates the queries and keys of every layer, ALiBi biases every layer's
# scores (Q16).
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: when is concatenation used anyway?</strong></p>
#
# <details><summary>Answer</summary>
#
# When the two parts must stay separable by construction. DeBERTa (He et al., 2021) keeps
# content and relative-position vectors *separate* all the way into attention, computing
# content-to-position and position-to-content scores with their own projections. In
# decoder-only language models, the question disappeared with RoPE: nothing is added or
# concatenated to the embeddings at all.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q15")

# %% [markdown]
# ## L03-Q16 · How do RoPE and ALiBi encode relative position?
#
# > Modern models no longer add anything to the embeddings. Llama and MiniMind rotate the
# > queries and keys (RoPE); BLOOM and MPT subtract a distance penalty from the scores
# > (ALiBi). How does each work, why is each *relative*, and how do they differ?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Read a pair of features $(x_{2i}, x_{2i+1})$ as one complex number $z$. What does
#   multiplying it by $e^{i m \theta}$ do? What is $\operatorname{Re}(z_q e^{im\theta}
#   \overline{z_k e^{in\theta}})$?
# - What should a "relative" scheme guarantee about the score of a query at $m$ and a key at
#   $n$?
# - ALiBi adds $-s_h \cdot (i - j)$ to the score of query $i$ and key $j$ in head $h$. What
#   does a large slope $s_h$ do to the attention of that head?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q16**
#
# <div class="course-answer" data-question="L03-Q16">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Both inject position **inside attention, in every layer**, and make the score of a query at
# position $m$ and a key at position $n$ depend on positions only through $m - n$.
#
# **RoPE** (Su et al., 2021) splits each query and key of head size $D$ into $D/2$ pairs and
# rotates pair $j$ by the angle $m\,\theta_j$, with $\theta_j = \text{base}^{-2j/D}$ (the
# sinusoidal frequencies of Q14). Writing pair $j$ as a complex number $z_j$, a rotation is a
# multiplication by $e^{i m \theta_j}$, and the dot product of the rotated vectors is
#
# $$\langle R_m q, R_n k\rangle = \operatorname{Re}\sum_{j=0}^{D/2-1} z^q_j\,
# \overline{z^k_j}\; e^{i (m - n)\theta_j} = \langle q, R_{n-m}\, k\rangle .$$
#
# Each pair's *complex product* is rotated by $(m - n)\theta_j$ before the real parts are
# summed; the absolute positions cancel. Rotations keep lengths, RoPE has no parameters,
# and because it changes $q$ and $k$ rather than the scores, fused attention kernels work
# unchanged. Keys are rotated once, so a KV cache stores them already rotated.
#
# **ALiBi** (Press, Smith and Lewis, 2022) adds nothing to $q$ or $k$. It adds a penalty to
# the scores: $\text{score}_{ij} = q_i \cdot k_j/\sqrt{d_k} - s_h\,(i - j)$ for keys
# $j \le i$, with one fixed slope per head, $s_h = 2^{-8(h+1)/H}$ for $H$ heads. Steep heads
# look only at the last few tokens, shallow heads far back. The bias depends only on $i - j$,
# is linear, and never runs out: position 10,000 gets a penalty like any other.
#
# They are **separate, parallel proposals** (RoPE: arXiv, April 2021; ALiBi: arXiv, August 2021,
# ICLR 2022), not one the fix of the other. They differ in what they assume: RoPE leaves the
# model free to learn what to do with each distance (the score is an arbitrary function of
# $m - n$, set by the content), ALiBi hard-codes that attention decays with distance.
#
# </details>

# %% [markdown]
# ### Show it: the score depends only on $m - n$
#
# `utils.positional.apply_rope` against the complex-number formula above, for a random query
# and key of head size 64: the full matrix of scores for query positions $m$ and key positions
# $n$ up to 40.

# %%
D_head = 64
q_vec, k_vec = torch.randn(D_head, dtype=torch.float64), torch.randn(D_head, dtype=torch.float64)
positions = torch.arange(40)
Q_rot = apply_rope(q_vec.expand(40, -1), positions)  # (40, D): q placed at 0..39
K_rot = apply_rope(k_vec.expand(40, -1), positions)
scores = Q_rot @ K_rot.T  # (m, n)

theta = 10_000.0 ** (-torch.arange(0, D_head, 2, dtype=torch.float64) / D_head)
zq = torch.complex(q_vec[: D_head // 2], q_vec[D_head // 2:])  # rotate-half pairs (i, i + D/2)
zk = torch.complex(k_vec[: D_head // 2], k_vec[D_head // 2:])
offset = (positions[:, None] - positions[None, :]).double()  # m - n
formula = (zq * zk.conj() * torch.exp(1j * offset[..., None] * theta)).real.sum(-1)

# %% tags=["nbval-check-output"]
print("scores == Re Σ z_q conj(z_k) exp(i(m-n)θ):", torch.allclose(scores, formula, atol=1e-9))
print("constant along diagonals (depends on m - n only):",
      torch.allclose(scores[1:, 1:], scores[:-1, :-1], atol=1e-9))
n_minus_m = 7
print(f"<R_3 q, R_10 k> == <q, R_7 k>:", torch.allclose(
    scores[3, 10], q_vec @ apply_rope(k_vec[None], torch.tensor([n_minus_m]))[0], atol=1e-9))
print(f"q·k = {float(q_vec @ k_vec):.3f}; <R_5 q, R_5 k> = {float(scores[5, 5]):.3f}; "
      f"<R_5 q, R_12 k> = {float(scores[5, 12]):.3f}")

# %% [markdown]
# ### Explore it: one pair of features, rotating
#
# The left panel shows one feature pair of the query at position $m$ (purple) and of the key at
# $m + 3$ (orange), with the unrotated query dashed. Move $m$: both arrows turn by the same
# angle, so the angle between them, and their contribution to the score, stays the same. The
# right panel shows the whole score (all 32 pairs): for the key 3 positions later it is flat in
# $m$; for a key fixed at position 3 it changes with $m$. Move the pair: fast pairs turn a lot
# per position, slow pairs hardly move.

# %%
rope_positions = [0, 1, 2, 4, 8, 16, 32]
rope_pairs = [0, 8, 31]
m_axis = torch.arange(40)
q_all = apply_rope(q_vec.expand(40, -1), m_axis)
k_next = apply_rope(k_vec.expand(40, -1), m_axis + 3)
k_fixed = apply_rope(k_vec[None], torch.tensor([3]))[0]
relative_curve = (q_all * k_next).sum(-1)  # <R_m q, R_{m+3} k>
absolute_curve = q_all @ k_fixed  # <R_m q, R_3 k>


def draw_rope(m, pair):
    """One rotating feature pair (left) and the full score against the query position (right)."""
    half = D_head // 2
    q_m = apply_rope(q_vec[None], torch.tensor([m]))[0]
    k_m3 = apply_rope(k_vec[None], torch.tensor([m + 3]))[0]
    fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    radius = 1.15 * max(float(torch.hypot(v[pair], v[pair + half])) for v in (q_vec, k_vec))
    for vec, colour, style, label in ((q_vec, "#999999", "--", "q at 0"),
                                      (q_m, "#392061", "-", f"q at m = {m}"),
                                      (k_m3, "#f75c03", "-", f"k at m + 3 = {m + 3}")):
        ax_p.annotate("", xy=(float(vec[pair]), float(vec[pair + half])), xytext=(0, 0),
                      arrowprops=dict(arrowstyle="-|>", color=colour, lw=2, ls=style))
        ax_p.plot([], [], color=colour, ls=style, label=label)
    ax_p.add_patch(plt.Circle((0, 0), radius / 1.15, fill=False, color="#dddddd"))
    ax_p.set(xlim=(-radius, radius), ylim=(-radius, radius), aspect="equal",
             title=f"pair {pair}: θ = {float(theta[pair]):.2g} rad per position")
    ax_p.legend(loc="lower left", fontsize=8)
    ax_s.plot(m_axis, relative_curve, color="#f75c03", label="key at m + 3")
    ax_s.plot(m_axis, absolute_curve, color="#392061", ls="--", label="key fixed at 3")
    ax_s.axvline(m, color="gray", lw=1)
    ax_s.set(xlabel="query position m", ylabel="score", title="score of all 32 pairs")
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    return fig


interactive_figure(draw_rope, m=rope_positions, pair=rope_pairs, initial={"m": 4, "pair": 0}, dpi=64)

# %% [markdown]
# ### Show it: the frequencies for real head sizes, and what the base changes

# %% tags=["nbval-check-output"]
print("head_dim 8,  base 1e4:", [round(f, 6) for f in rope_frequencies(8, 1e4).tolist()])
print("head_dim 16, base 1e4:", [round(f, 6) for f in rope_frequencies(16, 1e4).tolist()])
for base in (1e4, 1e6):
    freqs = rope_frequencies(64, base).double()
    waves = 2 * math.pi / freqs
    print(f"head_dim 64, base {base:.0e}: θ from {freqs[0]:.0f} to {freqs[-1]:.3g}; longest "
          f"wavelength {waves[-1]:,.0f}; pairs with wavelength > 512: "
          f"{int((waves > 512).sum())} of 32, > 32768: {int((waves > 32768).sum())}")

# %% [markdown]
# The base only stretches the *slow* end: the first pair always turns by 1 radian per
# position, and the last pair's wavelength grows with the base. With head size 64 and base
# $10^4$, about half of the pairs already turn less than once over 512 positions; raising the
# base to $10^6$ (MiniMind's choice) makes more pairs slow, which leaves room for longer
# contexts without a pair wrapping around into angles it never saw in training. Explore the
# two knobs:

# %%
def draw_wavelengths(base, head_dim):
    """Wavelength of every RoPE pair for one base and head size, against two context lengths."""
    waves = (2 * math.pi / rope_frequencies(head_dim, base).double()).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.semilogy(waves, marker=".", lw=0, color="#392061")
    for length, colour in ((512, "#f75c03"), (32_768, "#15803d")):
        n_slow = int((waves > length).sum())
        ax.axhline(length, color=colour, ls=":", label=f"{length:,} tokens: {n_slow} pairs slower")
    ax.set(xlabel="pair j", ylabel="wavelength (tokens)", ylim=(1, 1e9),
           title=f"RoPE wavelengths, base {base:.0e}, head_dim {head_dim}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


interactive_figure(draw_wavelengths, base=[1e4, 1e5, 1e6], head_dim=[16, 64, 128],
                   initial={"base": 1e4, "head_dim": 64})

# %% [markdown]
# ### Show it: two layouts of the same rotation
#
# Which features form a pair is a convention. The RoFormer paper, GPT-J and the original
# Llama checkpoints pair neighbours $(x_{2j}, x_{2j+1})$ ("interleaved"); MiniMind and the
# Hugging Face Llama code pair $(x_j, x_{j + D/2})$ ("rotate half"). `apply_rope` and
# `TinyGPT` (`rope_interleaved=True`) do both. They are the same rotation up to a fixed
# reordering of the features, which is why converting a checkpoint from one layout to the
# other permutes the rows of $W_Q$ and $W_K$ (and why loading it without doing so silently
# breaks the model).

# %% tags=["nbval-check-output"]
x8 = torch.randn(5, 8)
evens_then_odds = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])
interleaved = apply_rope(x8, torch.arange(5), interleaved=True)
half_split = apply_rope(x8[:, evens_then_odds], torch.arange(5))
print("interleaved == half-split after moving pairs (2j, 2j+1) to (j, j+4):",
      torch.allclose(interleaved[:, evens_then_odds], half_split, atol=1e-6))
print("the two layouts on the same unpermuted input agree:",
      torch.allclose(interleaved, apply_rope(x8, torch.arange(5)), atol=1e-6))

# %% [markdown]
# ### Show it: ALiBi's slopes and bias

# %% tags=["nbval-check-output"]
for heads in (4, 8):
    print(f"{heads} heads: slopes", [f"1/{round(1 / s)}" for s in alibi_slopes(heads).tolist()])
print("12 heads (not a power of two):", [round(s, 4) for s in alibi_slopes(12).tolist()])
bias4 = alibi_bias(4, 10)  # (heads, queries, keys)
print("bias depends only on i - j:", torch.allclose(bias4[:, 1:, 1:], bias4[:, :-1, :-1]))

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
causal10 = torch.ones(10, 10, dtype=torch.bool).tril()
for h, ax in enumerate(axes):
    shown = bias4[h].masked_fill(~causal10, float("nan"))  # future keys: masked anyway
    image = ax.imshow(shown, cmap="magma", vmin=float(bias4.min()), vmax=0)
    ax.set(title=f"head {h}: slope 1/{round(1 / float(alibi_slopes(4)[h]))}", xlabel="key j",
           xticks=range(0, 10, 3), yticks=range(0, 10, 3))
    ax.grid(False)
axes[0].set_ylabel("query i")
fig.colorbar(image, ax=axes, fraction=0.02)
plt.show()

# %% [markdown]
# Head 0 penalises each step back by 1/4, so 20 tokens back its score is already lower by 5:
# a local head. Head 3's penalty is 1/256 per step, so it can still attend hundreds of
# tokens back. ALiBi needs no learned parameters and no change to $q$ or $k$; its cost is one
# $(H, T, T)$ addition per layer, and it needs attention kernels that accept a bias (which is
# why `utils.attention` runs ALiBi on the explicit path).
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "ALiBi fixes the limitations of RoPE"</strong></p>
#
# The learner answered that "RoPE should have solved the long-sequence problem, so that the
# context window can be long enough" and that ALiBi, which they did not know, "probably also
# solves some limitations of RoPE". The notes rightly corrected the second half: ALiBi is an
# independent proposal from the same year, not an improvement of RoPE, and it works
# differently (a fixed bias on the scores, not a rotation of $q$ and $k$). The first half
# needs a correction too: RoPE is *relative*, which is not the same as *working beyond the
# training length*. MM-Q7 measures it.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: a dot product cannot be rotated, and "[1.0, 0.1, 0.01, 0.001]"</strong></p>
#
# - The notes write $q'_i \cdot k'_j = \operatorname{rotate}(q_i \cdot k_j, \theta_i -
#   \theta_j)$, and elsewhere $Q_m K_n = e^{i(m-n)\theta}(q \cdot k)$. A dot product is one
#   real number; there is nothing to rotate, and if the score were $q \cdot k$ times a
#   phase, its real part would be $q \cdot k \cos((m - n)\theta)$, which it is not. What is
#   rotated is the complex product $z^q_j \overline{z^k_j}$ *of each pair*, by its own angle
#   $(m - n)\theta_j$, before the real parts are summed. The first cell of this section checks
#   the correct formula; at equal positions ($m = n = 5$) the score is exactly $q \cdot k$, at
#   $m = 5, n = 12$ it is a different number, not $q \cdot k$ times a cosine.
# - The notes (MiniMind, Q7) list the RoPE frequencies as "[1.0, 0.1, 0.01, 0.001, ...]". That
#   is the list for head size 8 only, which has just four pairs (first line of the frequency
#   cell). For head size 16 the ratio between pairs is $10^{-1/2}$, and MiniMind's heads (size
#   64, base $10^6$) have 32 frequencies from 1 down to about $1.5 \times 10^{-6}$.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: ALiBi's reference code adds s·j, not −s·(i − j). Is that a bug?</strong></p>
#
# <details><summary>Answer</summary>
#
# No. $-s(i - j) = s\,j - s\,i$, and $-s\,i$ is the same for every key of query $i$. A softmax
# does not change when a constant is added to a whole row, so adding $s\,j$ (a bias that
# depends only on the key) gives exactly the same attention weights, and one bias vector
# serves every query. The cell below checks it.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
scores10 = torch.randn(4, 10, 10)
key_only = alibi_slopes(4)[:, None, None] * torch.arange(10.0)  # s_h * j, the same for every i
w_full = torch.softmax((scores10 + bias4).masked_fill(~causal10, float("-inf")), dim=-1)
w_key = torch.softmax((scores10 + key_only).masked_fill(~causal10, float("-inf")), dim=-1)
print("softmax(scores - s(i - j)) == softmax(scores + s j):", torch.allclose(w_full, w_key, atol=1e-6))

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why rotate only q and k, and not v?</strong></p>
#
# <details><summary>Answer</summary>
#
# Position should change *who attends to whom*, which is decided by $q \cdot k$. Rotating the
# values would make the output depend on the absolute positions of the keys (the weighted sum
# would mix vectors rotated by different angles), breaking the relative property, and the
# content a head copies would change with where it was found. The same holds for ALiBi: the
# bias acts on the scores only.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q16")

# %% [markdown]
# ## MM-Q7 · Why does MiniMind use RoPE instead of absolute positions?
#
# > MiniMind, like Llama, has no position table: it rotates queries and keys with RoPE
# > (base $10^6$). Why RoPE rather than the absolute positions of the original transformer or
# > GPT-2? And is it true, as is often said, that RoPE "extrapolates naturally to any length"?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - List what a learned table costs and forbids: parameters, a maximum length, rows that may
#   never be trained.
# - What does a KV cache store, and what would it have to recompute if positions were added
#   at the input and the window slid?
# - "Relative" means the score of a pair depends on its distance. Does a model trained on 64
#   tokens know what to do with a distance of 200?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q7**
#
# <div class="course-answer" data-question="MM-Q7">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Reasons that hold up:
#
# - **Relative by construction.** The score of a pair depends only on content and distance
#   (Q16), which is what language mostly needs ("the previous token", "the opening bracket
#   20 tokens back"), in every layer rather than only at the input.
# - **No table, no parameters, no hard length limit.** Any position has a rotation; a learned
#   table ends at its last row.
# - **Cheap and kernel-friendly.** Two elementwise multiplications on $q$ and $k$; fused and
#   FlashAttention kernels need no change; cached keys are stored already rotated.
# - **Extensible.** Because position enters only through angles, the context of a trained
#   model can be stretched by changing the angles: position interpolation (Chen et al.,
#   2023), "NTK-aware" scaling of the base (bloc97, 2023), YaRN (Peng et al., 2023), usually
#   with a short fine-tuning at the new length. Llama 2 → Code Llama and many long-context
#   models were made this way.
#
# What does **not** hold: that RoPE "extrapolates naturally to any length". The score of a
# pair depends only on its distance, but a model trained on windows of 64 has only ever seen
# distances below 64, and the slow pairs have only seen a small arc of their circle. Past the
# training length the queries and keys take angle combinations the model never learned to
# read, and each softmax row also gets more keys to spread its weight over. The measurements
# below show the loss rising past the training length for RoPE, both in our tiny models and
# in the course's pretrained model. Among the position schemes of this chapter only ALiBi,
# with its hard-coded preference for nearby tokens, keeps its loss flat (Press et al., 2022
# report the same at scale); the price is that distant tokens are down-weighted in every head.
# (The model without positions is flat too, having nothing to extrapolate, but it is worse in
# range.)
#
# </details>

# %% [markdown]
# ### Measure it: loss at every position, out to 4× the training length
#
# Each of the five models of Q14 reads 32 windows of 256 validation characters; we record the
# cross-entropy at every position. Positions 0–63 are what they were trained on; 64–255 are
# new. For RoPE we add the two remedies, applied to the *same* trained weights without any
# fine-tuning: **position interpolation** (positions divided by 4, so 256 positions fit into
# the trained range of angles) and **NTK-aware scaling** (base multiplied by
# $4^{D/(D-2)}$: fast pairs unchanged, the slowest pair slowed by exactly 4). Both are options
# of `TinyGPT` (`rope_scaling="linear"` or `"ntk"`, `rope_scaling_factor=4`); RoPE's tables are
# not part of the saved weights, so the trained state dict loads into the rescaled model.

# %%
@torch.no_grad()
def loss_by_position(model, x, y):
    """Mean next-token cross-entropy at each position, shape (T,), over the batch."""
    model.eval()
    logits, _ = model(x)
    return F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(0).cpu()


x_long, y_long = get_batch(val_ids, 32, TEST_LEN, generator=torch.Generator().manual_seed(1),
                           device=device)
curves = {name: loss_by_position(model, x_long, y_long) for name, model in models.items()}
for rule, label in (("linear", "rope + interpolation ×4"), ("ntk", "rope + NTK scaling ×4")):
    rescaled = TinyGPT(replace(models["rope"].config, rope_scaling=rule, rope_scaling_factor=4.0))
    rescaled.load_state_dict(models["rope"].state_dict())
    curves[label] = loss_by_position(rescaled.to(device), x_long, y_long)

bins = [(0, 64), (64, 128), (128, 192), (192, 256)]
table_small = pd.DataFrame({name: [float(c[a:b].mean()) for a, b in bins] for name, c in curves.items()},
                           index=[f"positions {a}-{b - 1}" for a, b in bins]).T
table_small.map(lambda v: f"{v:.3f}")

# %%
def smooth(curve, width=9):
    """Centred moving average (odd width), to make 32-sequence averages readable."""
    return np.convolve(curve.numpy(), np.ones(width) / width, mode="valid")


styles = {"none": ("#777777", "-"), "learned": ("#1f77b4", "-"), "sinusoidal": ("#9467bd", "-"),
          "rope": ("#f75c03", "-"), "alibi": ("#15803d", "-"),
          "rope + interpolation ×4": ("#f75c03", ":"), "rope + NTK scaling ×4": ("#f75c03", "--")}
fig, ax = plt.subplots(figsize=(9, 4))
x_axis = np.arange(TEST_LEN)[4:-4]  # centres of the 9-wide windows
for name, curve in curves.items():
    colour, ls = styles[name]
    ax.plot(x_axis, smooth(curve), color=colour, ls=ls, label=name)
ax.axvline(TRAIN_LEN, color="black", lw=1)
ax.text(TRAIN_LEN + 2, ax.get_ylim()[0], " trained up to here", va="bottom", fontsize=9)
ax.set(xlabel="position in the sequence", ylabel="loss (nats, moving average of 9)",
       title="Trained on 64 characters, tested on 256")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the plot from left to right. At the very beginning every model is bad (little
# context). Within the trained range RoPE and ALiBi are best; after this short training the
# learned and sinusoidal models are not even better than no positions at all (their added
# tables first have to be told apart from the tokens: Q14's trap, Q15's overlap). Past
# position 63, compare each curve with **none**: it has nothing to
# extrapolate, so its ups and downs come from the text itself (all models read the same 32
# windows, and some stretches are harder than others).
#
# - **rope** climbs away from the others past the training length, most in the last bin:
#   the scores at distances it never saw are not what the rest of the network learned to read;
# - **alibi** stays flat: its penalty at distance 200 is just a larger number of the same
#   kind, and distant keys are simply weighted less;
# - **learned** follows **none** closely past 63: its rows there are untrained small random
#   vectors (Q14), so it behaves like a model with no position information;
# - **sinusoidal** trained slowest (Q14's trap), and its loss also grows past 63, where every
#   row is new to it;
# - **NTK scaling** removes most of RoPE's rise at a small cost in range; **interpolation**
#   without fine-tuning hurts everywhere, because the model now sees angles between the ones
#   it learned, also at short range. Chen et al. (2023) fine-tune for about 1000 steps after
#   interpolating, which we do not.
#
# These models are tiny and briefly trained. The course's pretrained model (RoPE, base
# $10^6$, trained on windows of 128 characters for 1500 steps) is a stronger test: we give it a
# context of 512, four times its training length.

# %%
pretrained = load_pretrained()
_, pretrained_val = train_val_split(torch.tensor(pretrained.tokenizer.encode(text)), 0.1)
x_512, y_512 = get_batch(pretrained_val, 16, 512, generator=torch.Generator().manual_seed(2),
                         device=device)
curves_big = {}
for rule, label in ((None, "RoPE as trained"), ("linear", "+ interpolation ×4"),
                    ("ntk", "+ NTK scaling ×4")):
    config = replace(pretrained.config, context_length=512, rope_scaling=rule,
                     rope_scaling_factor=4.0)
    stretched = TinyGPT(config)
    stretched.load_state_dict(pretrained.model.state_dict())
    curves_big[label] = loss_by_position(stretched.to(device), x_512, y_512)

bins_big = [(0, 128), (128, 256), (256, 384), (384, 512)]
table_big = pd.DataFrame({name: [float(c[a:b].mean()) for a, b in bins_big] for name, c in curves_big.items()},
                         index=[f"positions {a}-{b - 1}" for a, b in bins_big]).T
fig, ax = plt.subplots(figsize=(9, 3.4))
for (name, curve), ls in zip(curves_big.items(), ["-", ":", "--"]):
    ax.plot(np.arange(512)[4:-4], smooth(curve), color="#f75c03", ls=ls, label=name)
ax.axvline(128, color="black", lw=1)
ax.set(xlabel="position", ylabel="loss (moving average of 9)",
       title="The pretrained RoPE model (trained on 128), read at 512")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
table_big.map(lambda v: f"{v:.3f}")

# %% [markdown]
# The pretrained model is good up to position 127 (about 1.11 nats per character) and then
# its loss climbs with every further block of 128 positions, to about 2.13, 2.76 and 3.25
# (table above), in spite of its large base: RoPE does not extrapolate on its own. NTK-aware
# scaling softens the first stretch past the training length (about 1.68 instead of 2.13)
# without any training; linear interpolation without fine-tuning wrecks the model everywhere. Lab 2 found
# the same on a synthetic task with a purely relative rule (copy the token 3 positions back):
# RoPE's accuracy falls past the training length, well above the learned table's but far from
# perfect.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "RoPE is simply better"</strong></p>
#
# The notes' first, "surface" answer to this question is "RoPE performs better". Better at
# what? In our tiny runs RoPE does reach the lowest loss inside the training length (first
# column of the table above), but these runs last a few hundred steps, ALiBi is close behind,
# and the added tables are handicapped by their scale (Q14); at full scale the original
# transformer paper found sinusoidal and learned tables "nearly identical". What RoPE
# reliably buys is structural: relative scores in every layer, no table and no parameters,
# compatibility with fused kernels and the KV cache, and a knob (the angles) for stretching
# the context later. It does not buy length generalisation for free.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: "RoPE extrapolates naturally", and an invented table</strong></p>
#
# - The MiniMind notes conclude that RoPE "naturally extrapolates to any length" and that
#   "the relation of positions 1000 and 1001 is the same as that of 100 and 101". The second
#   statement is true of the score function; the first does not follow from it. Measured
#   above: the pretrained RoPE model's loss rises from about 1.11 within its training length to
#   about 3.25 at positions 384–511, and our tiny RoPE model also rises past 64.
# - The lecture notes give a table of perplexity increases at 2× and 4× the training length
#   ("learned: explodes; sinusoidal +20%; RoPE +5%; ALiBi +3%", "RoPE + interpolation +10%,
#   ALiBi +8%") with no source. No such numbers can be quoted without a measurement. Ours are
#   in the two tables above (losses in nats per character, tiny models); they agree with the
#   published picture only qualitatively: ALiBi degrades least (Press et al., 2022), and
#   interpolation needs fine-tuning (Chen et al., 2023).
# - The notes list "LLaMA, GPT-Neo, PaLM" as RoPE models. LLaMA and PaLM use RoPE; GPT-Neo
#   used learned absolute positions; EleutherAI's RoPE models are GPT-J and GPT-NeoX.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why did MiniMind choose base 10⁶ rather than 10⁴?</strong></p>
#
# <details><summary>Answer</summary>
#
# With a larger base more pairs rotate slowly (Q16's wavelength cell: with head size 64,
# base $10^6$ leaves more pairs below one turn within long contexts), so fewer pairs see
# angles at long range that they never saw in training, and context extension by fine-tuning
# is easier. Llama 3 (base $5 \times 10^5$) follows the same reasoning. The pretrained
# model above shows it is not sufficient by itself: even base $10^6$ does not make a model
# trained on 128 tokens good at 512.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: if ALiBi extrapolates best, why did RoPE win?</strong></p>
#
# <details><summary>Answer</summary>
#
# ALiBi's flat loss at long range partly reflects that it *ignores* distant tokens: its
# steep heads cannot retrieve a fact from far back, which is what long contexts are for. RoPE
# models, extended with interpolation or YaRN and a little fine-tuning, can use the whole
# context. RoPE also runs on standard fused kernels, while a bias needs kernel support. LLaMA's
# success made RoPE the default; BLOOM and MPT used ALiBi.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q7")

# %% [markdown]
# ## Build it yourself
#
# Write ALiBi in the cell below: a function that takes attention scores and returns them with
# the ALiBi bias added. It must
#
# - accept `scores` of shape `(..., H, Tq, Tk)`, with `H` a power of two (1, 2, 4, 8, ...);
# - give head `h` (counting from 0) the slope $2^{-8(h+1)/H}$;
# - treat the queries as the **last** `Tq` of the `Tk` positions (so query `i` sits at position
#   `Tk - Tq + i`; without a KV cache `Tq == Tk`);
# - add $-\text{slope}_h \cdot (\text{pos}_i - j)$ for keys $j \le \text{pos}_i$ and 0 for later
#   keys (the causal mask removes those);
# - return a tensor of the shape and dtype of `scores`, without modifying `scores`.
#
# Then run the checker: it tries your function on several cases and names what, if anything,
# is wrong. As committed, the stub raises `NotImplementedError`, and the checker says so.

# %%
def my_alibi(scores):
    """scores (..., H, Tq, Tk) plus the ALiBi bias; same shape and dtype."""
    # 1. H, Tq, Tk from the shape; one slope per head
    # 2. the position of each query and each key, and their distance (0 for later keys)
    # 3. scores minus slope * distance, broadcast over the leading dimensions
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_alibi

check_alibi(my_alibi)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_alibi(scores):
#     H, Tq, Tk = scores.shape[-3:]
#     slopes = 2.0 ** (-8.0 * torch.arange(1, H + 1) / H)  # (H,)
#     q_pos = torch.arange(Tk - Tq, Tk)[:, None]  # (Tq, 1)
#     k_pos = torch.arange(Tk)[None, :]  # (1, Tk)
#     distance = (q_pos - k_pos).clamp(min=0)  # (Tq, Tk), 0 for keys after the query
#     return scores - (slopes[:, None, None] * distance).to(scores.dtype)
# ```
#
# `utils.positional.alibi_bias(H, Tq, Tk)` computes the same bias (and also handles head
# counts that are not powers of two, following the recipe of the ALiBi reference code);
# `TinyGPT(GPTConfig(..., position="alibi"))` adds it in every layer.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# Everything this chapter used lives in `utils.positional` and is tested against independent
# references (plain-Python complex rotations, a brute-force loop for ALiBi):
#
# - `sinusoidal_table`, `LearnedPositionalEmbedding` (Q14);
# - `rope_frequencies`, `apply_rope` with both layouts (`interleaved=`) and the two
#   context-extension rules (`scaling="linear"` or `"ntk"`, `factor=`), `rope_scaled` (Q16,
#   MM-Q7);
# - `alibi_slopes`, `alibi_bias` (Q16).
#
# `MultiHeadAttention` and `TinyGPT` expose them as switches: `GPTConfig(position=...)` is one
# of `"rope"`, `"learned"`, `"sinusoidal"`, `"alibi"`, `"none"`, with `rope_theta`,
# `rope_interleaved`, `rope_scaling` and `rope_scaling_factor`.
#
# ## Summary
#
# - **Q13** Attention is permutation-*equivariant*: without positions "我爱你" and "你爱我" give
#   the same vectors in another order. RNNs carry order in their sequential state,
#   convolutions in their kernel offsets; a causal mask gives only counts.
# - **Q14** The sinusoidal table is a set of clock hands with wavelengths from $2\pi$ to almost
#   $2\pi \cdot 10^4$; a shift is one fixed rotation per pair; rows are far from orthogonal,
#   and that is what encodes distance. A learned table is flexible but ends at its last row,
#   and rows past the training length stay random.
# - **Q15** Concatenation is addition with a fixed split of the dimensions; in high dimension
#   sums stay separable because unrelated vectors are nearly orthogonal; at a fixed width,
#   adding lets the model choose the split.
# - **Q16** RoPE rotates each pair of $q$ and $k$ by $m\theta_j$, so scores depend on $m - n$;
#   the base sets how slow the slowest pairs are; two layouts exist. ALiBi subtracts
#   $s_h (i - j)$ with geometric slopes: a separate, parallel idea.
# - **MM-Q7** RoPE is relative, table-free, parameter-free, cache- and kernel-friendly and
#   stretchable, but it does not extrapolate by itself: measured past the training length its
#   loss rises; NTK scaling helps without training, interpolation needs fine-tuning; ALiBi
#   degrades least.
#
# Next: the rest of the transformer block (residuals, normalisation, the feed-forward network,
# the causal mask: L03-Q17 to Q20).
#
# ## References
#
# - Vaswani, A. et al. (2017). *Attention Is All You Need*. NeurIPS. arXiv:1706.03762.
# - Gehring, J., Auli, M., Grangier, D., Yarats, D., Dauphin, Y. (2017). *Convolutional
#   Sequence to Sequence Learning*. ICML. arXiv:1705.03122. (Learned position embeddings.)
# - van den Oord, A. et al. (2016). *WaveNet: A Generative Model for Raw Audio*.
#   arXiv:1609.03499. (Dilated convolutions.)
# - Radford, A. et al. (2019). *Language Models are Unsupervised Multitask Learners* (GPT-2).
#   OpenAI technical report.
# - Devlin, J. et al. (2019). *BERT: Pre-training of Deep Bidirectional Transformers for
#   Language Understanding*. NAACL. arXiv:1810.04805.
# - Ke, G., He, D., Liu, T.-Y. (2021). *Rethinking Positional Encoding in Language
#   Pre-training* (TUPE). ICLR. arXiv:2006.15595.
# - He, P., Liu, X., Gao, J., Chen, W. (2021). *DeBERTa: Decoding-enhanced BERT with
#   Disentangled Attention*. ICLR. arXiv:2006.03654.
# - Su, J. et al. (2021). *RoFormer: Enhanced Transformer with Rotary Position Embedding*.
#   arXiv:2104.09864 (Neurocomputing, 2024).
# - Wang, B., Komatsuzaki, A. (2021). *GPT-J-6B: A 6 Billion Parameter Autoregressive Language
#   Model*. github.com/kingoflolz/mesh-transformer-jax.
# - Press, O., Smith, N. A., Lewis, M. (2022). *Train Short, Test Long: Attention with Linear
#   Biases Enables Input Length Extrapolation* (ALiBi). ICLR. arXiv:2108.12409.
# - Haviv, A., Ram, O., Press, O., Izsak, P., Levy, O. (2022). *Transformer Language Models
#   without Positional Encodings Still Learn Positional Information*. Findings of EMNLP.
#   arXiv:2203.16634.
# - Black, S. et al. (2022). *GPT-NeoX-20B: An Open-Source Autoregressive Language Model*.
#   arXiv:2204.06745.
# - Chowdhery, A. et al. (2022). *PaLM: Scaling Language Modeling with Pathways*.
#   arXiv:2204.02311.
# - BigScience (Le Scao, T. et al.) (2022). *BLOOM: A 176B-Parameter Open-Access Multilingual
#   Language Model*. arXiv:2211.05100.
# - Touvron, H. et al. (2023). *LLaMA: Open and Efficient Foundation Language Models*.
#   arXiv:2302.13971.
# - Chen, S., Wong, S., Chen, L., Tian, Y. (2023). *Extending Context Window of Large Language
#   Models via Positional Interpolation*. arXiv:2306.15595.
# - bloc97 (2023). *NTK-Aware Scaled RoPE allows LLaMA models to have extended (8k+) context
#   size without any fine-tuning and minimal perplexity degradation*. Reddit, r/LocalLLaMA.
# - Peng, B., Quesnelle, J., Fan, H., Shippole, E. (2023). *YaRN: Efficient Context Window
#   Extension of Large Language Models*. arXiv:2309.00071 (ICLR 2024).
# - MosaicML NLP Team (2023). *Introducing MPT-7B: A New Standard for Open-Source, Commercially
#   Usable LLMs*. MosaicML blog. (ALiBi in a released model family.)
# - Rozière, B. et al. (2023). *Code Llama: Open Foundation Models for Code*. arXiv:2308.12950.
# - Grattafiori, A. et al. (2024). *The Llama 3 Herd of Models*. arXiv:2407.21783.
# - Gong, J. (2024). *MiniMind*. github.com/jingyaogong/minimind.
