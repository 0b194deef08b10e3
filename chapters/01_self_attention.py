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
# # 1 · Self-attention, one question at a time
#
# Self-attention is the one operation that sets a transformer apart from the networks before it.
# This chapter takes it apart through six questions (L03-Q1 to Q6 of the course):
#
# 1. What does the "self" in self-attention attend to?
# 2. Where do the names query, key and value come from?
# 3. Why are the scores divided by $\sqrt{d_k}$?
# 4. What does attention cost, and when is that cost the bottleneck?
# 5. What exactly is the output of attention?
# 6. Why is attention called a differentiable dictionary lookup?
#
# **Prerequisites.** Python and PyTorch tensors (shapes, `@`, broadcasting), the softmax
# function, what a gradient is, and the variance of a sum of independent random variables.
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer
# by measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source
# notes of this course were wrong (✏️); every number in them is computed by a cell above. Each
# section ends with follow-up questions and a short quiz (run its cell if it does not show).
# At the end you write attention yourself and a checker tells you whether it is right.
#
# The whole notebook runs on a laptop CPU in under a minute; it downloads nothing.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from utils.device import get_device, set_seed
from utils.plots import attention_heatmap, use_style
from utils.quiz import quiz

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
print("device:", device)

# %% [markdown]
# ## L03-Q1 · What does the "self" in self-attention attend to?
#
# > Why is it called *self*-attention, and what does a token "attend" to? How does it differ
# > from the attention that came before it?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Attention became famous in sequence-to-sequence translation (Bahdanau, Cho and Bengio,
#   2014). There, which sequence asked the questions, and which one was searched?
# - In self-attention, where do the queries, the keys and the values come from?
# - GPT and BERT both use self-attention but train on different tasks. Is "predicting the next
#   token" part of the mechanism, or of how it is used?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q1**
#
# <div class="course-answer" data-question="L03-Q1">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# In the original attention of neural machine translation, the decoder (writing the French
# sentence) *queried* the states of the encoder (which had read the English sentence): two
# different sequences. Today this is called **cross-attention**.
#
# In **self-attention**, one sequence $X \in \mathbb{R}^{T \times d}$ plays every role. Each
# position $i$ computes a query $q_i = x_i W_Q$, a key $k_i = x_i W_K$ and a value
# $v_i = x_i W_V$, and its new representation is a weighted average of the values of the
# positions $j$ of *the same sequence*, weighted by how well $q_i$ matches $k_j$:
#
# $$\text{out}_i = \sum_j \alpha_{ij} v_j, \qquad \alpha_{ij} = \operatorname{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{d_k}}\right).$$
#
# So a token attends to the **other positions of its own sequence, itself included**. Which
# positions it may see is set by a **mask**, not by the mechanism:
#
# - *bidirectional* (BERT's encoder): every position sees every position;
# - *causal* (GPT): position $i$ sees only $j \le i$, so no token can peek at the future.
#
# Self-attention is a **mechanism** for mixing information between positions; it has no task.
# Next-token prediction (GPT) or masked-token prediction (BERT) are **training objectives**
# that use it. The causal mask is what makes the mechanism fit the next-token objective.
#
# Two more precise points. First, a token attends to *representations at positions*, not to
# words: from the second layer on, each position already holds a mixture of its context.
# Second, what a position is drawn to is learned, through $W_Q$ and $W_K$ (L03-Q2); and attention by
# itself ignores order, so the model must be told positions separately (L03-Q13).
#
# </details>

# %% [markdown]
# ### Show it: a tiny sentence, two masks
#
# We give each word of a six-word sentence a random vector and let the sequence attend to
# itself. To keep the first example bare we skip the learned projections and use $Q = K = V = X$;
# Q2 adds them back. The function below is the whole formula (Q3 explains the $\sqrt{d_k}$).

# %%
def attention(q, k, v, mask=None):
    """Scaled dot-product attention, written out.

    q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v); mask bool, True = may attend.
    Returns out (..., Tq, d_v) and the weights (..., Tq, Tk).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk): query i vs key j
    if mask is not None:
        # -inf (not a large negative number) gives masked keys a weight of exactly 0
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row is a distribution over the keys
    return weights @ v, weights  # (..., Tq, d_v), (..., Tq, Tk)


sentence = "the cat sat on the mat".split()
vocab = sorted(set(sentence))
ids = torch.tensor([vocab.index(w) for w in sentence])
T, d_model = len(sentence), 16
embedding = torch.randn(len(vocab), d_model, device=device)
x = embedding[ids]  # (T, d_model); both "the" get the same vector

out_bi, w_bi = attention(x, x, x)  # bidirectional: no mask
causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # row i: True for j <= i
out_causal, w_causal = attention(x, x, x, mask=causal)

# %% tags=["nbval-check-output"]
print("weights shape (queries, keys):", tuple(w_bi.shape))
print("every row sums to 1:", torch.allclose(w_bi.sum(-1), torch.ones(T, device=device)),
      torch.allclose(w_causal.sum(-1), torch.ones(T, device=device)))
print("causal weights above the diagonal are exactly 0:", bool((w_causal.triu(1) == 0).all()))
print("row 0 under the causal mask:", w_causal[0].cpu().tolist())

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
attention_heatmap(w_bi, sentence, sentence, ax=axes[0], title="bidirectional (BERT-style)")
attention_heatmap(w_causal, sentence, sentence, ax=axes[1], title="causal (GPT-style)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Read each row as one query. On the left every token can look at the whole sentence; on the
# right the upper triangle is empty and the first token can only look at itself, so its row is
# a single 1. Both copies of "the" have the same vector, so they match each other as strongly
# as themselves. With $Q = K = X$ a token *often* matches itself best, but not always: the
# score $x_i \cdot x_j = \lVert x_i \rVert \lVert x_j \rVert \cos\theta$ also grows with the
# *length* of $x_j$, so a longer vector pointing roughly the same way beats $x_i$ itself. The
# cell below shows it with two 2-D tokens. Learned projections (L03-Q2) are what let a token look
# *away* from itself on purpose.
#
# %% tags=["nbval-check-output"]
short = torch.tensor([[1.0, 0.0], [2.0, 0.5]])  # token 1 is longer and points almost the same way
_, w_short = attention(short, short, short)
print("scores x_0·x_0 and x_0·x_1:", (short[0] @ short.T).tolist())
print("token 0's weights on (itself, token 1):", [round(w, 3) for w in w_short[0].tolist()])

# %% [markdown]
# Token 0 gives more weight to token 1 than to itself: $x_0 \cdot x_1 = 2 > x_0 \cdot x_0 = 1$.
# Only if every vector had the same length (after a normalisation, say) would a token
# always match itself best, by the Cauchy-Schwarz inequality.
#
# This formula is exactly what `utils.attention.scaled_dot_product_attention` computes; there it
# is tested against PyTorch's fused kernel and also handles heads and grouped keys. From here on
# the chapter uses the tested version.

# %% tags=["nbval-check-output"]
from utils.attention import causal_mask, scaled_dot_product_attention

out_u, w_u = scaled_dot_product_attention(x, x, x, mask=causal_mask(T, device=device),
                                          return_weights=True)
print("utils matches the cell above:", torch.allclose(w_u, w_causal), torch.allclose(out_u, out_causal))

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "self-attention exists to predict the next token"</strong></p>
#
# The learner of the source notes first answered that self-attention models the relations
# inside a sequence "in order to predict the next token", and later that "the BERT paper was
# about machine translation". The first half is right; the rest mixes up three things:
#
# - the **mechanism** (self-attention), which only mixes positions and has no goal of its own;
# - the **mask**, which decides what each position may see (causal for GPT, none for BERT);
# - the **objective**: next token for GPT, masked tokens (and next-sentence prediction) for
#   BERT, whose paper evaluates on understanding benchmarks such as GLUE and SQuAD.
#   Translation was the task of the original transformer paper (Vaswani et al., 2017), which
#   used an encoder–decoder with both self- and cross-attention.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what changes in cross-attention?</strong></p>
#
# If the queries come from one sequence of length $T_q$ and the keys and values from another
# of length $T_k$, what are the shapes of the weights and of the output?
#
# <details><summary>Answer</summary>
#
# The weights are $(T_q, T_k)$, one row per query; the output is $(T_q, d_v)$, one vector per
# query. Nothing in the formula requires $T_q = T_k$: self-attention is the special case where
# both come from the same sequence. The cell below checks the shapes.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
other = torch.randn(9, d_model, device=device)  # e.g. 9 encoder states of another sentence
out_cross, w_cross = attention(x, other, other)  # queries from our sentence, keys/values from the other
print("cross-attention weights:", tuple(w_cross.shape), " output:", tuple(out_cross.shape))

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: does self-attention know the word order?</strong></p>
#
# Shuffle the tokens of the sentence and run the same attention (no mask, no position
# information). How does the output change?
#
# <details><summary>Answer</summary>
#
# The output is shuffled in the same way and is otherwise identical: attention is
# *permutation-equivariant*. Each output is a weighted sum over a *set* of keys and values, and
# a set has no order. "the cat sat on the mat" and "the mat sat on the cat" give the same
# vectors, only in another order. This is why transformers add positional information (L03-Q13).
# A causal mask is the one exception inside the layer: it does depend on positions, and
# causal language models trained with no positional encoding at all still learn where their
# tokens are and come close to models with one (Haviv et al., 2022); a bidirectional model
# without positions cannot.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
perm = torch.randperm(T, device=device)
out_perm, _ = attention(x[perm], x[perm], x[perm])
print("shuffled input -> same outputs, shuffled:", torch.allclose(out_perm, out_bi[perm], atol=1e-6))

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q1")

# %% [markdown]
# ## L03-Q2 · Where do the names query, key and value come from?
#
# > Why "query", "key" and "value", and not A, B and C? Why are keys and values kept apart?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Think of a dictionary, a database or a search engine. What do you type, what is compared
#   with it, and what do you get back?
# - Is "the query" one token and "the keys" the other tokens, or does every token produce all
#   three?
# - Can you think of a task where *what makes a position relevant* is different from *what you
#   want to read there*?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q2**
#
# <div class="course-answer" data-question="L03-Q2">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# The names come from **information retrieval**. You type a *query*; it is compared with the
# *key* of every stored item (a title, an index entry); you get back the item's *value* (the
# document itself). Attention keeps these three roles, and the names say which is which:
# mathematically they are just three linear maps of the same input,
# $Q = XW_Q,\ K = XW_K,\ V = XW_V$, but they play asymmetric roles, which letters would hide.
#
# - **Query** $q_i$: what position $i$ is looking for.
# - **Key** $k_j$: what position $j$ advertises, to be matched against queries.
# - **Value** $v_j$: what position $j$ hands over when it is matched.
#
# Every token produces all three: it asks with its query and is found through its key and read
# through its value by every other query.
#
# **Why separate keys from values?** Because what makes a position relevant is often not what
# you want to read there. A "previous-token" head, found in trained transformers (Elhage et al.,
# 2021; it is half of the "induction heads" of Olsson et al., 2022), matches on
# *position* ("I want the token just before me") and returns *content* ("that token was `cat`").
# With separate $W_K$ and $W_V$ the key can encode the position and the value the word; the
# demo below builds such a head by hand.
#
# **Why separate queries from keys?** The score $q_i \cdot k_j = x_i W_Q W_K^\top x_j^\top$ is a
# learned *bilinear form*. With $W_Q \ne W_K$ it need not be symmetric (i may want j without j
# wanting i), and a token need not match itself best, unlike the $Q = K = X$ example of Q1.
#
# </details>

# %% [markdown]
# ### Show it: a hard dictionary and a soft one
#
# A Python `dict` is a *hard* lookup: the key must match exactly, and you get one value or an
# error.

# %% tags=["nbval-check-output"]
prices = {"apple": 1.0, "banana": 0.5, "cherry": 4.0}
print("prices['apple'] =", prices["apple"])
try:
    prices["aple"]
except KeyError as err:
    print("prices['aple'] -> KeyError:", err)

# %% [markdown]
# A *soft* lookup compares the query with **every** key, turns the similarities into weights
# with a softmax, and returns the weighted average of the values. Here a word's vector is its
# normalised letter counts, so similar spellings get similar vectors; `sharpness` plays the
# role that the scale of the learned projections plays in attention.

# %% tags=["nbval-check-output"]
def letter_vector(word):
    """Normalised letter counts of a lowercase word: a crude, fixed 'embedding'."""
    counts = torch.zeros(26)
    for ch in word:
        counts[ord(ch) - ord("a")] += 1
    return counts / counts.norm()


keys = torch.stack([letter_vector(w) for w in prices])  # (3, 26)
values = torch.tensor(list(prices.values()))  # (3,)
sharpness = 5.0
for query_word in ["apple", "aple", "grape"]:
    print(f"{query_word!r}: cosine with the key 'apple' = {float(letter_vector(query_word) @ keys[0]):.3f}")
for query_word in ["apple", "aple", "grape"]:
    weights = torch.softmax(sharpness * keys @ letter_vector(query_word), dim=0)
    shown = ", ".join(f"{w}: {p:.3f}" for w, p in zip(prices, weights.tolist(), strict=True))
    print(f"{query_word!r}: weights [{shown}] -> price {float(weights @ values):.3f}")

# %% [markdown]
# The typo `aple` (one `p` missing) is not the key `apple`, so the hard lookup fails; its
# letter vector is close to apple's but not equal (the cosine printed above is below 1), so the
# soft lookup gives it most of the apple's weight and a price near the apple's. `grape` has no
# close key and gets a blend of all three. (An anagram such as `appel` would be a poor test:
# it has exactly apple's letter counts, so this crude embedding cannot tell them apart at all.)
# A soft lookup always answers, which is a strength (it
# generalises to near misses, and, as Q6 shows, it can be trained) and a risk (it never says
# "not found").
#
# ### Show it: match on one thing, return another
#
# Now a hand-built attention head that reads *the previous token*. Each input vector is the
# one-hot code of the word followed by the one-hot code of the position. The projections are
# chosen, not learned:
#
# - $W_K$ keeps the **position** part: key $j$ says "I am at position $j$";
# - $W_Q$ maps position $i$ to position $i-1$: query $i$ says "I want position $i-1$";
# - $W_V$ keeps the **word** part: value $j$ says "my word is ...".

# %%
V_size = len(vocab)
x_onehot = torch.cat([F.one_hot(ids, V_size), torch.eye(T, dtype=torch.long)], dim=1).float()  # (T, V+T)

W_K = torch.cat([torch.zeros(V_size, T), torch.eye(T)])  # (V+T, T): keep the position part
shift = torch.eye(T).roll(-1, dims=1)  # row i has its 1 in column i-1
shift[0] = 0  # position 0 has no previous token: it asks for nothing
W_Q = 20.0 * torch.cat([torch.zeros(V_size, T), shift])  # (V+T, T); 20 makes the match sharp
W_V = torch.cat([torch.eye(V_size), torch.zeros(T, V_size)])  # (V+T, V): keep the word part

q_prev, k_prev = x_onehot @ W_Q, x_onehot @ W_K
out_sep = scaled_dot_product_attention(q_prev, k_prev, x_onehot @ W_V, mask=causal_mask(T))
out_tied = scaled_dot_product_attention(q_prev, k_prev, x_onehot @ W_K, mask=causal_mask(T))  # W_V = W_K

# %% tags=["nbval-check-output"]
for i, word in enumerate(sentence):
    read_word = vocab[int(out_sep[i].argmax())]
    read_tied = int(out_tied[i].argmax())
    note = "   (no previous token: attends to itself)" if i == 0 else ""
    print(f"{word:>4} | separate K, V returns the word {read_word!r:6} | "
          f"tied K = V returns 'position {read_tied}'{note}")

# %% [markdown]
# With separate keys and values, each token reads the word before it: the match was made on
# positions, the answer is a word. With the value projection tied to the key projection, the
# same match returns a position, which the token did not need to look up. (Position 0 has
# nothing before it; its all-zero query spreads its weight evenly over what it may see, which
# under the causal mask is only itself.)

# %% [markdown]
# ### Show it: a trained model learned the same head
#
# Nobody built the head above into a real model, yet trained models grow one. The course ships
# a small character-level GPT (4 layers of 4 heads, trained for a few minutes on this course's
# default corpus by `python -m tools.train_pretrained`). We score every head by the average
# weight a position puts on the position just before it, over text the model did not train on.

# %%
from utils.attention_maps import attention_maps, previous_token_scores
from utils.data import default_corpus, train_val_split
from utils.pretrained import load_pretrained

trained, char_tokenizer = load_pretrained()
held_out = train_val_split(torch.tensor(char_tokenizer.encode(default_corpus())), 0.1)[1]
windows = held_out[: 8 * 128].view(8, 128)  # eight windows of the model's context length
prev_scores = previous_token_scores(trained, windows)  # (layers, heads)
print("mean weight on the previous position (rows: layers, columns: heads):")
print(pd.DataFrame(prev_scores.numpy(), index=[f"layer {i}" for i in range(prev_scores.shape[0])],
                   columns=[f"head {j}" for j in range(prev_scores.shape[1])]).round(3).to_string())
best_layer, best_head = divmod(int(prev_scores.argmax()), prev_scores.shape[1])
print(f"best previous-token head: layer {best_layer}, head {best_head}")
best_maps = attention_maps(trained, windows)[:, best_layer, best_head]  # (8, T, T)
print("its mean weight on the position k steps back:",
      {k: round(best_maps.diagonal(offset=-k, dim1=-2, dim2=-1).mean().item(), 3)
       for k in range(4)})

# %%
phrase = "the cat sat on the mat"
phrase_ids = torch.tensor(char_tokenizer.encode(phrase))
trained_map = attention_maps(trained, phrase_ids)[best_layer, best_head]  # (T, T)
_, hand_map = scaled_dot_product_attention(q_prev, k_prev, x_onehot @ W_V, mask=causal_mask(T),
                                           return_weights=True)
fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 2.2]})
attention_heatmap(hand_map, sentence, sentence, ax=axes[0], title="built by hand (words)")
attention_heatmap(trained_map, list(phrase), list(phrase), ax=axes[1],
                  title=f"learned: layer {best_layer}, head {best_head} (characters)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The learned head puts the largest share of each row's weight one step left of the diagonal,
# like the hand-built one, but not all of it: as the cell above measured, some weight stays on
# the token itself and on the one two steps back. Training found a softer version of the same rule because nothing asked it for a
# perfect one. Previous-token heads are common in trained transformers, and they are one half
# of the *induction heads* that let a model copy a pattern it saw earlier in the context
# (Olsson et al., 2022). This small model, trained for minutes, has no induction head yet;
# the multi-head chapter looks at all its heads.

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the query is the current token, the keys are the other tokens"</strong></p>
#
# The learner's first answer was: query = the current input, key = the other tokens, value =
# the meaning of a token. The retrieval intuition is right, but Q, K and V are not different
# tokens: **every** token computes a query, a key and a value. In the table above, "cat" asks
# with its query *and* is found by "sat" through its key *and* is read by "sat" through its
# value. The three are three *roles*, played by three learned projections of the same vectors.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: cross-attention is not an argument for separating K and V</strong></p>
#
# The notes argue that keys and values must be separate because in cross-attention "K and V
# come from the encoder and Q from the decoder; without the separation this case could not be
# handled". That example shows why **queries** must be separate from keys (they come from a
# different sequence). Keys and values there come from the *same* encoder states, so it says
# nothing about K versus V. The real reason is the one demonstrated above: what a position is
# matched on and what it returns are different kinds of information.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what if we force K = V, one shared projection?</strong></p>
#
# Would a transformer still train? What would it lose?
#
# <details><summary>Answer</summary>
#
# It still trains: it is a valid, slightly smaller layer. What it loses is the freedom to
# match on one feature and return another. Every head must then return the very features it
# was matched on, as the tied column above shows. The output projection $W_O$ after attention
# can recombine those features, but it cannot recover information that the values never
# carried. Separate projections cost only $d \cdot d_k$ extra parameters per head.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: only the product W_Q W_Kᵀ enters the score. Why keep two matrices?</strong></p>
#
# <details><summary>Answer</summary>
#
# Per head, $W_Q$ and $W_K$ are $d \times d_k$ with $d_k = d/h$, so $M = W_Q W_K^\top$ is a
# $d \times d$ matrix of rank at most $d_k$. A merged layer would not multiply every pair
# through $M$; it would compute $u_i = x_i M$ once per token and then the scores
# $u_i \cdot x_j$. Compare that fair version with the factored one, per head:
#
# - **parameters**: $d^2$ for $M$ against $2\,d\,d_k$ for $W_Q, W_K$, a factor $h/2$;
# - **per-token work**: $d^2$ multiply-adds for $x_i M$ against $2\,d\,d_k$ for $q_i$ and $k_i$;
# - **scores**: $n^2 d$ against $n^2 d_k$, a factor $h$, and this is the term that grows
#   with the context.
#
# The cell below evaluates these counts for a MiniMind-sized layer. The factorisation is a
# deliberate low-rank constraint per head, and several heads together recover expressiveness
# (the multi-head chapter, L03-Q7 to Q12). It also fixes the width of what a KV cache must
# store per token ($d_k$ per head, not $d$).
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
d_mm, h_mm, n_ctx = 512, 8, 512  # MiniMind's width and heads, a 512-token context
d_k_mm = d_mm // h_mm
print(f"parameters per head:   merged M {d_mm**2:,}   factored W_Q, W_K {2 * d_mm * d_k_mm:,}"
      f"   ratio {d_mm**2 / (2 * d_mm * d_k_mm):g} (= h/2)")
print(f"score multiply-adds:   merged {n_ctx**2 * d_mm:,}   factored {n_ctx**2 * d_k_mm:,}"
      f"   ratio {d_mm / d_k_mm:g} (= h)")

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: is attention a learned similarity measure?</strong></p>
#
# The notes end this question by asking whether attention is a form of "parameterised
# similarity learning", and why that beats a fixed cosine similarity.
#
# <details><summary>Answer</summary>
#
# Yes. The score $x_i W_Q W_K^\top x_j^\top$ is a similarity whose matrix is learned for the
# task, can be asymmetric, and differs per head and per layer. A fixed cosine similarity
# compares the same features, symmetrically, always; it could never express "the token before
# me" or "the verb of my subject", which the letter-count lookup above illustrates: it can only
# find similar spellings.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q2")

# %% [markdown]
# ## L03-Q3 · Why divide by √d_k?
#
# > The scores are $QK^\top / \sqrt{d_k}$. What goes wrong without the division, and why the
# > square root rather than $d_k$ itself?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Let the $d_k$ components of $q$ and $k$ be independent with mean 0 and variance 1. What is
#   the variance of $q \cdot k = \sum_i q_i k_i$?
# - What does the softmax of $[20, 10, 5]$ look like, compared with that of $[2, 1, 0.5]$?
# - The derivative of $p = \operatorname{softmax}(s)$ is $\partial p_i / \partial s_j = p_i(\delta_{ij} - p_j)$.
#   What happens to it when $p$ is nearly one-hot?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q3**
#
# <div class="course-answer" data-question="L03-Q3">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **The variance grows with $d_k$.** If the components $q_i, k_i$ are independent with mean 0
# and variance 1, each product has $\mathbb{E}[q_i k_i] = 0$ and
# $\operatorname{Var}(q_i k_i) = \mathbb{E}[q_i^2]\,\mathbb{E}[k_i^2] = 1$, and the $d_k$
# products are independent, so
#
# $$\operatorname{Var}(q \cdot k) = d_k, \qquad \operatorname{std}(q \cdot k) = \sqrt{d_k}.$$
#
# (No Gaussian assumption is needed.) Dividing by $\sqrt{d_k}$ brings the variance back to 1
# for every width: the same reasoning as Xavier or He initialisation.
#
# **Large scores saturate the softmax.** Scaling all scores by $c$ is the same as a softmax
# temperature of $1/c$. When the spread of the scores is large, the softmax is nearly one-hot.
# Its Jacobian $J = \operatorname{diag}(p) - pp^\top$ then tends to zero, and so does the
# gradient that reaches the scores and, through them, $W_Q$ and $W_K$: the attention pattern
# learns slowly, or not at all. Without scaling this gets worse as $d_k$ grows; with it, the
# softmax sees scores of the same spread for every $d_k$. The measurements below show both,
# and one more effect: without scaling, the rare rows that are *not* saturated receive large
# gradients, so the gradient is both vanishing for most rows and spiky for a few.
#
# **Why not $d_k$?** Dividing by $d_k$ gives $\operatorname{Var} = 1/d_k$: at initialisation
# all scores are nearly equal and attention is nearly uniform, more so the wider the head. The
# gradient into the queries and keys also shrinks like $1/\sqrt{d_k}$. $\sqrt{d_k}$ is the
# scale that keeps the spread independent of $d_k$.
#
# **What the division is not for.** It is not about overflow of $e^x$: every softmax
# implementation subtracts the row maximum first, so it never overflows. And the assumption
# behind it holds at initialisation only; during training $q$ and $k$ become correlated and
# scores can grow like $d_k$, which is why μP (Yang et al., 2022) scales by $1/d_k$ and why
# several models normalise $q$ and $k$ ("QK-norm": Henry et al., 2020; at scale, Dehghani et
# al., 2023) to stop the
# logits from growing.
#
# </details>

# %% [markdown]
# ### Show it: the variance of q·k grows linearly with d_k

# %%
n_samples = 4000
rows = []
for d_k in [8, 32, 128, 512, 2048]:
    q = torch.randn(n_samples, d_k, device=device)
    k = torch.randn(n_samples, d_k, device=device)
    dots = (q * k).sum(-1)  # n_samples independent dot products
    rows.append({"d_k": d_k, "Var(q·k)": dots.var().item(), "Var(q·k) / d_k": dots.var().item() / d_k,
                 "Var(q·k / √d_k)": (dots / math.sqrt(d_k)).var().item()})
variance_table = pd.DataFrame(rows).set_index("d_k")
variance_table.round(3)

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.loglog(variance_table.index, variance_table["Var(q·k)"], "o", ms=8, label="measured Var(q·k)")
ax.loglog(variance_table.index, variance_table.index, "--", color="gray", label="Var = d_k")
ax.loglog(variance_table.index, variance_table["Var(q·k / √d_k)"], "s", ms=7,
          label="measured Var(q·k / √d_k)")
ax.set_xlabel("d_k")
ax.set_ylabel("variance of the score")
ax.legend()
plt.show()

# %% [markdown]
# The measured variance sits on the line $\operatorname{Var} = d_k$ (slope 1 on log-log axes),
# and after the division it stays near 1 at every width.
#
# ### Show it: saturation and gradients, with and without the scale
#
# For each width, 512 random queries each score 32 random keys. We compare three choices:
# no scaling, $1/\sqrt{d_k}$, and $1/d_k$. For each we measure
#
# - the **largest softmax weight** of a row (1 means one-hot);
# - the **gradient that reaches the scores**: we backpropagate a random upstream gradient $u$
#   through the softmax with autograd and take the norm of $\partial (u \cdot p) / \partial s$;
# - the **gradient that reaches the query** $q$ (it trains $W_Q$), median and maximum.

# %%
def saturation_stats(d_k, divide_by, n_queries=512, n_keys=32):
    """Softmax saturation and gradient norms for random scores q·k / divide_by."""
    q = torch.randn(n_queries, d_k, device=device, requires_grad=True)
    k = torch.randn(n_keys, d_k, device=device)
    scores = q @ k.T / divide_by  # (n_queries, n_keys)
    scores.retain_grad()  # keep the gradient at the scores, not only at the leaf q
    p = torch.softmax(scores, dim=-1)
    upstream = torch.randn_like(p)  # stands in for the gradient coming from the loss
    (p * upstream).sum().backward()
    grad_s, grad_q = scores.grad.norm(dim=-1), q.grad.norm(dim=-1)
    return {"max weight": p.max(-1).values.mean().item(),
            "median |∂/∂scores|": grad_s.median().item(),
            "median |∂/∂q|": grad_q.median().item(), "max |∂/∂q|": grad_q.max().item()}


rows = []
for d_k in [16, 64, 256, 1024, 4096]:
    for name, divide_by in [("none", 1.0), ("√d_k", math.sqrt(d_k)), ("d_k", d_k)]:
        rows.append({"d_k": d_k, "scale": name, **saturation_stats(d_k, divide_by)})
saturation = pd.DataFrame(rows)
saturation.pivot(index="d_k", columns="scale").map(lambda v: f"{v:.3g}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for name, group in saturation.groupby("scale", sort=False):
    axes[0].semilogx(group["d_k"], group["max weight"], "o-", label=f"divide by {name}")
    axes[1].loglog(group["d_k"], group["median |∂/∂scores|"], "o-", label=f"divide by {name}")
    axes[2].loglog(group["d_k"], group["max |∂/∂q|"], "o-", label=f"divide by {name}")
axes[0].set_title("mean largest weight (1 = one-hot)")
axes[1].set_title("median gradient at the scores")
axes[2].set_title("largest gradient at the query")
for ax in axes:
    ax.set_xlabel("d_k")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Explore it: move the width and the scale
#
# One query scores 24 random keys. Move `d_k` and pick the scale: the bars are the softmax
# weights, sorted. Without the scale the bars collapse to a single spike as $d_k$ grows; with
# $1/\sqrt{d_k}$ the picture does not depend on $d_k$; with $1/d_k$ it flattens towards uniform.
# (On the website the frames were computed in advance; in Jupyter or Colab each move recomputes
# the figure, so you can edit `draw_softmax_row` and see the effect.)

# %%
from utils.interactive import interactive_figure

row_generator = torch.Generator().manual_seed(3)  # the same random draws in every frame
row_q = torch.randn(4096, generator=row_generator)
row_k = torch.randn(24, 4096, generator=row_generator)


def draw_softmax_row(d_k, scale):
    """Sorted softmax weights of one query against 24 keys, using the first d_k dimensions."""
    scores = row_k[:, :d_k] @ row_q[:d_k]
    divide_by = {"none": 1.0, "√d_k": math.sqrt(d_k), "d_k": float(d_k)}[scale]
    weights = torch.softmax(scores / divide_by, dim=0).sort(descending=True).values
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.bar(range(len(weights)), weights.numpy(), color="#392061")
    ax.set_ylim(0, 1)
    ax.set_xlabel("keys, sorted by weight")
    ax.set_ylabel("softmax weight")
    ax.set_title(f"d_k = {d_k}, divide by {scale}: largest weight {weights[0]:.2f}")
    return fig


interactive_figure(draw_softmax_row, d_k=[4, 16, 64, 256, 1024, 4096],
                   scale=["none", "√d_k", "d_k"], initial={"d_k": 256})

# %% [markdown]
# Read the three columns of the table and the three panels together:
#
# - **No scaling**: the largest weight climbs towards 1 as $d_k$ grows, and the median gradient
#   at the scores collapses by orders of magnitude: most rows are saturated and stop learning.
#   Meanwhile the largest gradient at the query *grows*: the few rows that are not saturated get
#   large, erratic updates. The learner's "gradient explosion" was half a glimpse of this.
# - **Divide by $\sqrt{d_k}$**: every column is flat in $d_k$; the layer behaves the same at
#   every width.
# - **Divide by $d_k$**: the softmax is never saturated, but its largest weight falls towards
#   $1/32$ (uniform over the 32 keys), so attention cannot single anything out at initialisation,
#   and the gradient at the query shrinks as $d_k$ grows.
#
# The gradient at the scores is a product with the softmax Jacobian, which we can also get
# from autograd directly and compare with the closed form $\operatorname{diag}(p) - pp^\top$:

# %% tags=["nbval-check-output"]
s = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
J_autograd = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, dim=0), s)
p = torch.softmax(s, dim=0)
J_closed_form = torch.diag(p) - torch.outer(p, p)
print("autograd Jacobian equals diag(p) - p pᵀ:", torch.allclose(J_autograd, J_closed_form))

# %% [markdown]
# ### Recomputing the notes' softmax figures
#
# The notes illustrate saturation with the scores $[2, 1, 0.5]$ multiplied by 1, 2, 4 and 8, and
# with $[50, 25, 12.5]$. Here are the true values. The column $\max_i p_i(1-p_i)$ is the largest
# diagonal entry of the Jacobian, the quantity the notes call "gradient"; we also give the
# spectral norm of the whole Jacobian.

# %% tags=["nbval-check-output"]
base = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
rows = []
for c in [1, 2, 4, 8]:
    p = torch.softmax(c * base, dim=0)
    J = torch.diag(p) - torch.outer(p, p)
    rows.append({"scores": str((c * base).tolist()), "softmax": str([round(v, 4) for v in p.tolist()]),
                 "max p(1-p)": f"{(p * (1 - p)).max().item():.4f}",
                 "‖J‖₂": f"{torch.linalg.matrix_norm(J, ord=2).item():.4f}"})
p = torch.softmax(torch.tensor([50.0, 25.0, 12.5], dtype=torch.float64), dim=0)
J = torch.diag(p) - torch.outer(p, p)
rows.append({"scores": "[50.0, 25.0, 12.5]", "softmax": str([f"{v:.1e}" for v in p.tolist()]),
             "max p(1-p)": f"{(p * (1 - p)).max().item():.1e}",
             "‖J‖₂": f"{torch.linalg.matrix_norm(J, ord=2).item():.1e}"})
print(pd.DataFrame(rows).to_string(index=False))

# %% tags=["nbval-check-output"]
big = torch.tensor([100.0, 0.0])  # float32
print("naive exp(x) / sum(exp(x)):", (big.exp() / big.exp().sum()).tolist())
print("torch.softmax(x):          ", torch.softmax(big, dim=0).tolist())

# %% [markdown]
# Two more checks of claims in the notes. First, how the three scalings compare at the widest
# $d_k$ of the saturation table, column by column; then whether the scaled score is really a
# standard normal variable.

# %% tags=["nbval-check-output"]
widest = saturation[saturation["d_k"] == saturation["d_k"].max()].set_index("scale")
print(f"d_k = {saturation['d_k'].max()}:")
print(widest[["median |∂/∂scores|", "median |∂/∂q|", "max |∂/∂q|"]].map(lambda v: f"{v:.3g}")
      .to_string())

# %%
kurtosis_rows = []
for d_k in [1, 4, 16, 64, 256]:
    q = torch.randn(200_000, d_k, dtype=torch.float64)
    k = torch.randn(200_000, d_k, dtype=torch.float64)
    scaled = (q * k).sum(-1) / math.sqrt(d_k)
    z = (scaled - scaled.mean()) / scaled.std()
    kurtosis_rows.append({"d_k": d_k, "variance": scaled.var().item(),
                          "excess kurtosis": (z**4).mean().item() - 3, "theory 6/d_k": 6 / d_k,
                          "P(|score| > 3)": (scaled.abs() > 3).double().mean().item()})
print(pd.DataFrame(kurtosis_rows).set_index("d_k").round(4).to_string())
print(f"for N(0, 1), P(|z| > 3) = {math.erfc(3 / math.sqrt(2)):.4f} and the excess kurtosis is 0")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "we divide to avoid exploding gradients"</strong></p>
#
# The learner's first answer. The main failure is the opposite: without the scale, most rows of
# the softmax saturate and their gradient **vanishes** (the median column above). Large
# gradients do appear, but only in the few unsaturated rows. The cure for both is the same:
# keep the scores at unit variance so the softmax works in its sensitive range.
#
# </div>
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the variance of q·k stays 1 for any d_k"</strong></p>
#
# The learner's follow-up answer, for $d_k = 1024$. Unit-variance components do not give a
# unit-variance sum: variances of independent terms *add*, so $d_k$ terms of variance 1 give
# variance $d_k$. The variance table above measures exactly this. Only the *scaled* score
# $q \cdot k / \sqrt{d_k}$ has variance 1.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the softmax numbers</strong></p>
#
# The notes print, as "example output", figures that the code would not produce (compare the
# table computed above):
#
# - $\operatorname{softmax}([2, 1, 0.5])$ is $[0.6285, 0.2312, 0.1402]$, not $[0.506, 0.307, 0.186]$.
# - The rows for the scales 2, 4 and 8 are also wrong: the true largest weights are $0.8438$,
#   $0.9796$ and $0.9997$ (the notes give $0.705$, $0.930$ and $0.998$), so saturation sets in
#   *faster* than the notes show.
# - "Max gradient 0.25" for $[2, 1, 0.5]$: $\max_i p_i(1-p_i)$ is $0.2335$. The value $0.25$ is
#   only the upper bound of $p(1-p)$, reached at $p = 0.5$.
# - For $[50, 25, 12.5]$ the notes claim a largest gradient of about $10^{-6}$; it is about
#   $1.4 \times 10^{-11}$, five orders of magnitude smaller.
# - Overflow is not the reason for the scale: $e^{100}$ does overflow float32 (the naive formula
#   above returns `nan`), but `torch.softmax` subtracts the maximum first and returns
#   `[1.0, 3.78e-44]` (printed above): the second weight is $e^{-100}$, a tiny subnormal float32,
#   not an overflow and not even exactly zero.
# - The notes' table of the three scalings has a "gradient" row: "divide by $d_k$: also very
#   small", "divide by $\sqrt{d_k}$: moderate", "no division: vanishes". The cell printed just
#   above this box (at $d_k = 4096$) refines two of the three. Dividing by $d_k$ keeps the
#   gradient at the *scores* of the same order as dividing by $\sqrt{d_k}$ (medians $0.172$ and
#   $0.221$): a near-uniform softmax is far from saturated. What it makes tiny is the gradient
#   that reaches the *query* (median $0.00268$ against $0.221$), because the scores themselves
#   are scaled down. Without the division the median gradient does vanish ($1.81 \times
#   10^{-9}$ at the scores), yet the largest gradient at the query is by far the biggest of the
#   three ($79.1$): vanishing for most rows, exploding for a few.
# - "$(Q \cdot K)/\sqrt{d_k} \sim N(0, 1)$" is too strong. The scaled score has mean 0 and
#   variance 1, but it is not Gaussian: a product of two independent standard normals has
#   excess kurtosis 6, so the scaled sum of $d_k$ of them has excess kurtosis $6/d_k$ and
#   heavier tails than $N(0,1)$. It only *approaches* a normal distribution as $d_k$ grows
#   (central limit theorem), as the kurtosis cell above measures.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why the square root, and not d_k?</strong></p>
#
# <details><summary>Answer</summary>
#
# Because the *standard deviation* of $q \cdot k$ grows like $\sqrt{d_k}$, and the softmax
# cares about the spread of its inputs. Dividing by $d_k$ over-corrects: the spread becomes
# $1/\sqrt{d_k}$, attention starts out nearly uniform (the "divide by d_k" column of the
# saturation table), and the gradient into $q$ and $k$ shrinks with width. A model *can* undo a
# constant factor by growing $W_Q$ and $W_K$, so the choice matters most for how training
# starts and how settings transfer across widths. That is also why μP, which studies exactly
# that transfer, does choose $1/d_k$: in a trained model $q$ and $k$ are correlated and the
# score grows like $d_k$, not $\sqrt{d_k}$.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why not let the model learn the scale?</strong></p>
#
# <details><summary>Answer</summary>
#
# It already can: multiplying $W_Q$ by a constant multiplies every score by it, so a learnable
# temperature adds nothing the model could not express. The fixed $1/\sqrt{d_k}$ is about
# *conditioning*, starting the softmax in its sensitive range. When training makes logits grow
# too large anyway, models add normalisation of $q$ and $k$ (QK-norm) rather than a learned
# scale alone.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q3")

# %% [markdown]
# ## L03-Q4 · What does attention cost, and when is it the bottleneck?
#
# > What is the computational complexity of self-attention? Why is it often called *the*
# > bottleneck, and is it always?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - List the matrix products of one attention layer and the shape of each. A product
#   $(m \times k)(k \times n)$ costs $m \cdot k \cdot n$ multiply-adds, i.e. $2mkn$ FLOPs.
# - Which products grow with $n^2$ and which with $n$?
# - Going from $n = 1000$ to $n = 10000$, by how much does each part grow?
# - What has to be *stored* that grows with $n^2$?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q4**
#
# <div class="course-answer" data-question="L03-Q4">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Take one layer, one sequence of $n$ tokens, model width $d$, $h$ heads of width $d_k = d/h$,
# and count FLOPs (2 per multiply-add):
#
# | step | product | FLOPs |
# |---|---|---|
# | projections $Q, K, V$ and output $W_O$ | four $(n \times d)(d \times d)$ | $8nd^2$ |
# | scores $QK^\top$, all heads | $h \times (n \times d_k)(d_k \times n)$ | $2n^2d$ |
# | weighted sum $AV$, all heads | $h \times (n \times n)(n \times d_k)$ | $2n^2d$ |
# | softmax, scaling, masking | element-wise on $h \times n \times n$ | $O(hn^2)$, negligible |
#
# So attention costs $O(n^2 d + n d^2)$ time, and the number of heads does not change the
# $n^2$ term. The $n \times n$ weights must also be stored per head: $O(hn^2)$ memory, unless a
# fused kernel such as FlashAttention computes them block by block without storing them.
#
# **Which term dominates?** The ratio of the quadratic part to the projections is
# $4n^2d / 8nd^2 = n / 2d$. For $n < 2d$ the projections cost more; for $n > 2d$ the $n^2$ part
# does. The feed-forward network adds $16nd^2$ (two matrices, hidden width $4d$), so the $n^2$
# part overtakes the whole rest of the layer only at $n > 6d$. At the context lengths most
# models were trained on, the weights' matrix products dominate; the quadratic term takes over
# at long context, and its memory becomes a problem earlier than its FLOPs.
#
# **Why call it the bottleneck, then?** Because it is the only part that grows faster than
# linearly in $n$: doubling the context doubles the projections and the FFN but quadruples the
# scores and their memory; ten times the context multiplies the quadratic part by a hundred.
# It can be reduced (sparse, local, low-rank or kernelised "linear" attention), at the price of
# an approximation; FlashAttention keeps exact attention and removes the $n^2$ memory, not the
# $n^2$ FLOPs (Q21, Q22).
#
# </details>

# %% [markdown]
# ### Show it: time and memory versus sequence length
#
# We time one head of width $d = 256$ for growing $n$, in three pieces:
#
# - the four **projections** $xW_Q, xW_K, xW_V, oW_O$;
# - the **quadratic part**, scores, softmax and $AV$, computed the textbook way, which stores
#   the whole $n \times n$ weight matrix;
# - the same quadratic part computed **in blocks of 128 queries**: the same FLOPs, but only a
#   $128 \times n$ slice of the weights exists at any time. This is the idea behind
#   FlashAttention (which also blocks the keys, and fuses everything into one kernel).
#
# On a CPU we measure the CPU time of one thread (`time.thread_time`), so other programs on
# the machine barely disturb the result; on a GPU, wall-clock time after synchronising. The
# times depend on your hardware; the slopes should not.

# %%
from utils.timing import best_time  # best of repeats: thread CPU time, or synced wall clock


def projections(x):
    """The four (n, d) @ (d, d) products of a head: q, k, v and the output projection."""
    return [x @ W for W in (W_q, W_k, W_v, W_o)]


def quadratic_part(q, k, v):
    """softmax(q k^T / sqrt(d)) v with the full (n, n) weight matrix in memory."""
    return torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1) @ v


def quadratic_part_blocked(q, k, v, block=128):
    """The same result, 128 queries at a time: only a (block, n) slice of weights at once."""
    return torch.cat([quadratic_part(q[i:i + block], k, v) for i in range(0, len(q), block)])


d = 256
W_q, W_k, W_v, W_o = (torch.randn(d, d, device=device) / math.sqrt(d) for _ in range(4))
threads = torch.get_num_threads()
torch.set_num_threads(1)  # one thread: thread_time then measures all of the work
repeats = {"min_total": 0.1, "max_repeat": 20}  # up to 20 runs or 0.1 s of measured time
rows = []
try:
    for n in [256, 512, 1024, 2048, 4096]:
        x_n = torch.randn(n, d, device=device)
        q_n, k_n, v_n = x_n @ W_q, x_n @ W_k, x_n @ W_v
        rows.append({
            "n": n,
            "projections (s)": best_time(lambda: projections(x_n), device, **repeats),
            "quadratic part (s)": best_time(lambda: quadratic_part(q_n, k_n, v_n), device,
                                            **repeats),
            "quadratic, blocked (s)": best_time(lambda: quadratic_part_blocked(q_n, k_n, v_n),
                                                device, **repeats),
            "n×n weights (MiB)": n * n * q_n.element_size() / 2**20,
            "128×n weights (MiB)": min(n, 128) * n * q_n.element_size() / 2**20,
        })
finally:
    torch.set_num_threads(threads)
same = torch.allclose(quadratic_part_blocked(q_n, k_n, v_n), quadratic_part(q_n, k_n, v_n), atol=1e-5)
print("blocked result equals the full one:", same)
cost = pd.DataFrame(rows).set_index("n")
cost.map(lambda v: f"{v:.3g}")

# %%
large = cost.index >= 512  # at the smallest size fixed overheads weigh too much
slopes = {col: np.polyfit(np.log(cost.index[large]), np.log(cost[col][large]), 1)[0] for col in cost}
fig, ax = plt.subplots(figsize=(6.5, 4))
for col, marker in zip(cost.columns[:3], "os^", strict=True):
    ax.loglog(cost.index, cost[col], marker + "-", label=f"{col[:-4]}: slope {slopes[col]:.2f}")
ax.set_xticks(cost.index, [str(n) for n in cost.index])  # label the measured sizes only
ax.minorticks_off()
ax.set_xlabel("sequence length n")
ax.set_ylabel("seconds (best of repeats)")
ax.set_title(f"one head, d = {d}")
ax.legend()
plt.show()
print("fitted slopes (n >= 512):", {col: round(float(slope), 2) for col, slope in slopes.items()})

# %% [markdown]
# On log-log axes a cost $\propto n^a$ is a line of slope $a$. Expect a slope near 1 for the
# projections and near 2 for the quadratic part, and exactly 2 and 1 for the two memory
# columns ($4n^2$ and $4 \cdot 128\, n$ bytes in float32). The textbook quadratic part often
# comes out a little *steeper* than 2 on a CPU: once the $n \times n$ matrix no longer fits in
# the processor's cache, every element costs more to write and read back, a jump of the
# constant factor in the middle of the range. The blocked version keeps its working set small
# and tracks the FLOP count more closely. Blocking removes the $n^2$ memory, not the $n^2$
# work.
#
# By FLOPs, the quadratic part of this head overtakes the projections at $n = 2d = 512$; in
# time the crossing can shift, because the two kinds of operation run at different speeds.
#
# ### Show it: counting FLOPs with `utils.accounting`
#
# `utils.accounting.forward_flops` counts the matrix-product FLOPs of a model configuration,
# part by part (its tests check it against PyTorch's `FlopCounterMode`). Here is one layer of
# width $d = 4096$ with a GELU FFN of width $4d$, for growing $n$:

# %%
from utils.accounting import forward_flops
from utils.model import GPTConfig


def layer_flops(n, d, n_heads, vocab_size=50257):
    """Per-layer forward FLOPs of one sequence: projections, scores + AV, FFN (4d, GELU)."""
    config = GPTConfig(vocab_size=vocab_size, context_length=n, d_model=d, n_layers=1,
                       n_heads=n_heads, ffn="gelu", position="learned")
    flops = forward_flops(config, n)
    return {part: flops[part] for part in ("attention_proj", "attention_scores", "ffn")}


rows = []
for n in [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]:
    f = layer_flops(n, 4096, 32)
    rows.append({"n": n, **{k: v / 1e9 for k, v in f.items()},
                 "scores / proj": f["attention_scores"] / f["attention_proj"],
                 "scores share of layer": f["attention_scores"] / sum(f.values())})
flop_table = pd.DataFrame(rows).set_index("n")
flop_table.round(3).rename(columns={"attention_proj": "proj (GFLOP)",
                                    "attention_scores": "scores+AV (GFLOP)", "ffn": "FFN (GFLOP)"})

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for col, label in [("attention_proj", "projections 8nd²"), ("attention_scores", "scores + AV 4n²d"),
                   ("ffn", "FFN 16nd²")]:
    ax.loglog(flop_table.index, flop_table[col], "o-", label=label)
for crossing, text in [(2 * 4096, "n = 2d"), (6 * 4096, "n = 6d")]:
    ax.axvline(crossing, color="gray", ls=":")
    ax.text(crossing * 1.05, flop_table["attention_proj"].min(), text, color="gray")
ax.set_xlabel("sequence length n")
ax.set_ylabel("GFLOP per layer, one sequence")
ax.set_title("d = 4096")
ax.legend()
plt.show()

# %% [markdown]
# The scores equal the projections at $n = 2d$ (the ratio column is exactly 1 there), equal the
# FFN at $n = 4d$ ($4n^2d = 16nd^2$), and equal projections and FFN together at $n = 6d$, where
# they are half of the layer (between the rows $n = 16384$ and $32768$ of the table).
#
# ### Recomputing the notes' FLOP figures
#
# The notes compare attention with the FFN for GPT-2 small ($n = 1024$, $d = 768$) and GPT-3
# ($n = 2048$, $d = 12288$), and claim that for $n = 2048$, $d = 4096$ "attention is the
# bottleneck". The next cell recomputes each figure, and checks the per-layer totals a second,
# independent way: PyTorch's `FlopCounterMode` counting the products of an actual layer built
# on the `meta` device (shapes only, no memory, no arithmetic).

# %%
from torch.utils.flop_counter import FlopCounterMode


def counted_layer_flops(n, d, n_heads):
    """Count the matmul FLOPs of one attention + FFN layer on meta tensors (shapes only)."""
    def weight(rows, cols):
        return torch.empty(rows, cols, device="meta")
    with FlopCounterMode(display=False) as counter:
        x_meta = torch.empty(n, d, device="meta")
        q, k, v = (x_meta @ weight(d, d) for _ in range(3))
        q, k, v = (t.view(n, n_heads, d // n_heads).transpose(0, 1) for t in (q, k, v))  # (h, n, d_k)
        a = torch.softmax(q @ k.transpose(-2, -1), dim=-1)  # (h, n, n)
        (a @ v).transpose(0, 1).reshape(n, d) @ weight(d, d)  # output projection
        F.gelu(x_meta @ weight(d, 4 * d)) @ weight(4 * d, d)  # FFN
    return counter.get_total_flops()


models = {"GPT-2 small": (1024, 768, 12), "GPT-3 175B": (2048, 12288, 96),
          "n=2048, d=4096": (2048, 4096, 32), "n=16384, d=4096": (16384, 4096, 32)}
notes_attention = {"GPT-2 small": 1024**2 * 768, "GPT-3 175B": 2048**2 * 12288,
                   "n=2048, d=4096": 2048**2 * 4096, "n=16384, d=4096": 16384**2 * 4096}
notes_ffn = {"GPT-2 small": 1024 * 768 * 3072 * 2, "GPT-3 175B": 2048 * 12288 * 49152 * 2}
rows = []
for name, (n, d_m, h) in models.items():
    f = layer_flops(n, d_m, h)
    rows.append({"model": name, "notes: attention": notes_attention[name],
                 "scores + AV": f["attention_scores"], "notes: FFN": notes_ffn.get(name, float("nan")),
                 "FFN": f["ffn"], "projections": f["attention_proj"],
                 "layer total = FlopCounterMode": sum(f.values()) == counted_layer_flops(n, d_m, h)})
notes_check = pd.DataFrame(rows).set_index("model")
print("GFLOP per layer, one sequence (forward):")
print(notes_check.map(lambda v: v if isinstance(v, (bool, np.bool_)) else round(v / 1e9, 1))
      .to_string())

# %% tags=["nbval-check-output"]
n, d_m, h = 2048, 4096, 32
print(f"n = {n}, d = {d_m}:  n²d = {n * n * d_m:,}   nd² = {n * d_m * d_m:,}")
n_long = 16384
per_head = n_long**2 * 2  # one n×n matrix of 2-byte (fp16/bf16) weights
print(f"n = {n_long}: one head's weights {per_head:,} bytes = {per_head / 2**20:.0f} MiB; "
      f"all {h} heads of one layer: {h * per_head / 2**30:.0f} GiB")
n_q21 = 4096  # the example of the notes' Q21
per_head_q21 = n_q21**2 * 2
print(f"n = {n_q21}: one head, one sequence {per_head_q21 / 2**20:.0f} MiB; "
      f"one layer of {h} heads {h * per_head_q21 / 2**20:,.0f} MiB per sequence")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "O(n²·d) is the cost of attention"</strong></p>
#
# The learner's answer $O(n^2 \cdot d)$ is the cost of the *scores and the weighted sum*, and
# it is the part that matters at long context. But an attention layer also has its four
# projections, $O(nd^2)$, and for $n < 2d$ they cost more (the FLOP table above). The full
# answer is $O(n^2 d + n d^2)$, and which term dominates depends on $n / d$.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: who dominates, and the FLOP counts</strong></p>
#
# - **$n = 2048$, $d = 4096$.** The notes compute $n^2 d = 17{,}179{,}869{,}184$ and conclude
#   "attention is the bottleneck", but $n d^2 = 34{,}359{,}738{,}368$ is twice as large. With the
#   full counts the gap is wider: scores + $AV$ cost $68.7$ GFLOP per layer, the projections
#   $274.9$ and the FFN $549.8$. Here $n < 2d$, so the projections and the FFN dominate.
# - **GPT-2 small and GPT-3.** The notes' "attention FLOPs" $n^2 d$ ($0.8$ and $51.5$ GFLOP)
#   count one matrix product ($QK^\top$, not $AV$) and one FLOP per multiply-add; the right
#   figures are $4n^2 d$: $3.2$ and $206.2$ GFLOP per layer. Their FFN figures ($4.8$ and
#   $2473.9$ GFLOP) are half the true $16nd^2$ ($9.7$ and $4947.8$ GFLOP): the factor 2 stands for the
#   two matrices but the 2 FLOPs per multiply-add is missing. The conclusion "the FFN dominates"
#   survives, and the notes leave out the projections ($4.8$ and $2473.9$ GFLOP), which also
#   exceed the quadratic part in both models.
# - **$n = 16384$, $d = 4096$.** The quadratic part is $4n^2 d \approx 4398$ GFLOP, not
#   $1.1$ TFLOP; and the $512$ MiB of weights the notes call "one layer" are one *head*: with
#   $32$ heads, one layer would store $16$ GiB in 16-bit floats. This is why FlashAttention
#   never stores them.
# - **The same slip in the notes' Q21** (the memory bottleneck): "$n = 4096$, fp16:
#   $4096^2 \times 2$ B = 32 MB (one layer!)". The 32 MiB is one head's weight matrix for one
#   sequence; a layer of $32$ heads holds $1{,}024$ MiB per sequence (the cell above), and a
#   batch multiplies that again.
#
# All figures are per layer, for one sequence, forward pass only.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: from n = 1000 to n = 10000, how much does each part grow?</strong></p>
#
# <details><summary>Answer</summary>
#
# The quadratic part (FLOPs and the memory of the weights) grows $10^2 = 100$ times; the
# projections and the FFN grow $10$ times. The share of attention in the layer therefore grows
# with $n$, which is why long context is where attention becomes *the* bottleneck.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can we go below O(n²), and what does it cost?</strong></p>
#
# <details><summary>Answer</summary>
#
# Yes, by giving up exact, all-pairs attention: *sparse* or *local* patterns (each token sees a
# window or a few global tokens), *low-rank* projections of the keys (Linformer), or
# *kernelised* attention, which replaces $\operatorname{softmax}(qk^\top)$ with
# $\phi(q)\phi(k)^\top$ so that the products can be reordered to cost $O(nd^2)$
# (`utils.attention.linear_attention` implements one). All of them trade some accuracy or
# generality for speed. FlashAttention is different: the result is exact and the FLOPs are the
# same; it avoids storing the $n \times n$ matrix and moving it through slow memory. These are
# questions Q21 and Q22 of the course.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q4")

# %% [markdown]
# ## L03-Q5 · What is the output of attention?
#
# > What does an attention layer return, and how does it change the representation of each
# > token?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Go through the formula step by step: scores, weights, output. Which of them has shape
#   $(n, n)$, and which has one vector per token?
# - What does a row of the weight matrix represent? What do its entries add up to?
# - If every weight in a row were equal, what would that row of the output be?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q5**
#
# <div class="course-answer" data-question="L03-Q5">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# There are three stages, and only the last is the output:
#
# 1. **scores** $S = QK^\top/\sqrt{d_k}$, shape $(n, n)$: how well each query matches each key;
# 2. **weights** $A = \operatorname{softmax}(S)$ row by row, shape $(n, n)$: row $i$ is a
#    probability distribution over the positions that token $i$ may see;
# 3. **output** $O = AV$, shape $(n, d_v)$: one new vector per token,
#    $o_i = \sum_j A_{ij} v_j$.
#
# So the output is, for each position, a **weighted average of the value vectors**, a convex
# combination. Consequences you can check below: every coordinate of $o_i$ lies between the
# smallest and largest value of that coordinate over the visible $v_j$ (attention mixes, it
# cannot amplify), and if all weights of a row are equal, $o_i$ is the plain mean of the visible
# values.
#
# In a transformer the output then goes through the output projection $W_O$ and is **added**
# to the input: $x_i \leftarrow x_i + W_O\, o_i$. Attention does not replace a token's
# representation; it adds to it information gathered from the context. That is how "bank" next
# to "river" ends up with a different vector from "bank" next to "account".
#
# </details>

# %% [markdown]
# ### Show it: shapes, and the uniform case
#
# We take $d_k = 8$ but $d_v = 3$, so the shapes tell the stages apart.

# %% tags=["nbval-check-output"]
n_tok, d_k, d_v = 5, 8, 3
q5, k5 = torch.randn(n_tok, d_k, device=device), torch.randn(n_tok, d_k, device=device)
v5 = torch.randn(n_tok, d_v, device=device)
out5, w5 = scaled_dot_product_attention(q5, k5, v5, return_weights=True)
print("scores and weights:", tuple(w5.shape), " output:", tuple(out5.shape), " (one d_v-vector per token)")
print("output = weights @ V:", torch.allclose(out5, w5 @ v5))
inside = (out5 >= v5.min(0).values - 1e-6) & (out5 <= v5.max(0).values + 1e-6)
print("every output coordinate lies between the min and max of the values:", bool(inside.all()))

# %% [markdown]
# Uniform attention happens when every score in a row is the same, for example when the
# queries are all zero. Then each output row should be the mean of the values.

# %% tags=["nbval-check-output"]
zero_q = torch.zeros(n_tok, d_k, device=device)
out_uniform, w_uniform = scaled_dot_product_attention(zero_q, k5, v5, return_weights=True)
print("weights are all 1/n:", torch.allclose(w_uniform, torch.full_like(w_uniform, 1 / n_tok)))
print("every output row equals mean(V):", torch.allclose(out_uniform, v5.mean(0).expand(n_tok, d_v), atol=1e-6))
print("all output rows identical:", torch.allclose(out_uniform, out_uniform[:1].expand_as(out_uniform)))

# %% [markdown]
# Under a causal mask, "uniform" means uniform over the positions a token may see, so row $i$
# becomes the mean of $v_0, \dots, v_i$, a running average, and the rows differ:

# %% tags=["nbval-check-output"]
out_uc = scaled_dot_product_attention(zero_q, k5, v5, mask=causal_mask(n_tok, device=device))
running_mean = v5.cumsum(0) / torch.arange(1, n_tok + 1, device=device).unsqueeze(1)
print("causal + uniform = running mean of V:", torch.allclose(out_uc, running_mean, atol=1e-6))
print("all output rows identical:", torch.allclose(out_uc, out_uc[:1].expand_as(out_uc)))

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the output is the relevance scores"</strong></p>
#
# The learner's first answer. The relevance scores (and the weights made from them) are an
# intermediate $(n, n)$ matrix: useful to look at, as in the heatmaps of Q1, but not what the
# layer passes on. The output has one vector per token, $(n, d_v)$, the weighted average of the
# values. The first cell of this section shows both shapes.
#
# </div>
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "with uniform weights the output is one of the inputs, picked at random"</strong></p>
#
# The learner's follow-up answer. Nothing is sampled: attention computes a deterministic
# weighted average, and with equal weights that average is the **mean** of all visible values,
# the same for every token in the bidirectional case (checked above).
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: uniform attention gives identical rows only without a causal mask</strong></p>
#
# The notes conclude that with uniform weights "the outputs of all positions are identical" and
# "position information is completely lost". That holds for bidirectional attention. In a
# causal (GPT-style) layer each row averages a different prefix, so the rows are running means
# and differ, as the last cell shows: `all output rows identical: False`.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what does the uniform case tell us about attention?</strong></p>
#
# <details><summary>Answer</summary>
#
# That the information of attention lies in the *non-uniformity* of its weights. Uniform
# weights are the maximum-entropy distribution, $\log n$ nats per row: the query expresses no
# preference, and the layer degrades to average pooling. A useful head concentrates its weight
# on a few positions (low entropy), and which positions depends on the query. The entropy of a
# row's weights is a common diagnostic of what a head does.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can attention make a feature larger than in any value vector?</strong></p>
#
# <details><summary>Answer</summary>
#
# No: a convex combination stays inside the range of the values, coordinate by coordinate (the
# first cell of this section checks it). Amplification has to come from elsewhere: the value
# and output projections, the residual sum, and the FFN.
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q5")

# %% [markdown]
# ## L03-Q6 · Why is attention a "differentiable dictionary lookup"?
#
# > In what sense is attention a dictionary lookup, what makes it differentiable, and why does
# > that matter?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - How does a hash map answer a query? What happens for a key that is *almost* present?
# - Replace the exact match by a similarity and the single answer by a weighted average. What
#   does a temperature in the softmax do as it goes to 0?
# - Write the hard lookup as `V[argmax(K @ q)]`. Which of `q`, `K`, `V` can receive a
#   gradient through it?
#
# </details>

# %% [markdown]
# **✍️ Your answer to L03-Q6**
#
# <div class="course-answer" data-question="L03-Q6">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# A **hard** lookup compares the query with the keys for an exact match and returns the one
# matching value: $\text{out} = v_{j^*}$ with $j^* = \arg\max_j q \cdot k_j$ (or "not found").
# Attention makes each step soft:
#
# $$\text{out}(\tau) = \sum_j \operatorname{softmax}_j\!\left(\frac{q \cdot k_j}{\tau}\right) v_j .$$
#
# The softmax is a smooth version of the (one-hot) argmax: as the temperature $\tau \to 0$ the
# weights tend to the one-hot vector of the best key (when it is unique) and the soft lookup
# becomes the hard one. Standard attention uses $\tau = \sqrt{d_k}$ (Q3).
#
# **Why differentiability matters.** The output of the soft lookup is a smooth function of
# $q$, of every $k_j$ and of every $v_j$. So the loss tells the query *how to change to find a
# better key*, and the keys how to be found: gradient descent can learn $W_Q$, $W_K$ and $W_V$
# end to end, that is, learn *what to ask*, *how to be found* and *what to return*. Through the
# argmax, the choice of $j^*$ is piecewise constant in $q$ and $K$: its gradient is zero almost
# everywhere and undefined at the ties. A hard lookup can still pass a gradient to the *one
# value it returned*, but never to the query and keys that chose it.
#
# **The price.** A soft lookup reads every entry, $O(n)$ work per query instead of a hash map's
# $O(1)$, which is where the $n^2$ of Q4 comes from. And near the hard limit (low temperature)
# the gradient vanishes again: the saturation of Q3.
#
# </details>

# %% [markdown]
# ### Show it: from soft to hard as the temperature falls
#
# Six keys and values, one query. For each temperature we record the largest weight, the
# distance from the hard answer $v_{j^*}$, and the size of the gradient of the output with
# respect to the query.

# %%
def soft_lookup(q, keys, values, tau):
    """Attention for one query: softmax(keys @ q / tau) @ values.

    q (d,), keys (m, d), values (m, d_v). Returns the output (d_v,) and the weights (m,).
    """
    weights = torch.softmax(keys @ q / tau, dim=0)  # (m,)
    return weights @ values, weights


keys6 = torch.randn(6, 8, device=device)
values6 = torch.randn(6, 4, device=device)
query = torch.randn(8, device=device)
best = int((keys6 @ query).argmax())
hard = values6[best]  # the hard lookup: the value of the best-matching key
upstream = torch.randn(4, device=device)  # a fixed direction to take the gradient along

rows = []
for tau in [4.0, 1.0, 0.3, 0.1, 0.03, 0.01]:
    q_leaf = query.clone().requires_grad_(True)
    out, weights = soft_lookup(q_leaf, keys6, values6, tau)
    (out @ upstream).backward()
    rows.append({"tau": tau, "largest weight": weights.max().item(),
                 "distance to hard answer": (out - hard).norm().item(),
                 "gradient norm at q": q_leaf.grad.norm().item()})
temperature = pd.DataFrame(rows).set_index("tau")
temperature.map(lambda v: f"{v:.3g}")

# %% [markdown]
# ### Explore it: the temperature of the lookup
#
# Lower the temperature $\tau$ and watch the weights over the six keys (left) and the soft
# answer next to the hard one (right). The dashed bars are the hard lookup's value $v_{j^*}$.

# %%
def draw_lookup(tau):
    """Weights of the soft lookup at temperature tau, and its answer next to the hard one."""
    out, weights = soft_lookup(query, keys6, values6, tau)
    fig, (ax_w, ax_v) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_w.bar(range(6), weights.cpu().numpy(), color="#392061")
    ax_w.set_ylim(0, 1)
    ax_w.set_xticks(range(6), [f"key {j}" + (" *" if j == best else "") for j in range(6)])
    ax_w.set_title(f"weights at τ = {tau:g}")
    positions = np.arange(values6.shape[1])
    ax_v.bar(positions - 0.2, out.cpu().numpy(), width=0.4, label="soft answer", color="#f75c03")
    ax_v.bar(positions + 0.2, hard.cpu().numpy(), width=0.4, label="hard answer v_j*",
             fill=False, linestyle="--", edgecolor="black")
    ax_v.set_xticks(positions, [f"dim {i}" for i in positions])
    ax_v.set_title(f"distance to the hard answer: {(out - hard).norm():.3f}")
    ax_v.legend(loc="lower right")
    fig.tight_layout()
    return fig


interactive_figure(draw_lookup, tau=[4.0, 2.0, 1.0, 0.5, 0.3, 0.1, 0.03, 0.01], initial={"tau": 1.0})

# %% [markdown]
# As $\tau$ falls, the largest weight goes to 1 and the soft answer converges to the hard one.
# The gradient with respect to the query can first grow (a sharper softmax reacts more
# strongly to a change of $q$), but it collapses once the softmax is saturated. The limit is exact but
# untrainable.
#
# ### Show it: no gradient through argmax

# %% tags=["nbval-check-output"]
q_hard = query.clone().requires_grad_(True)
keys_hard = keys6.clone().requires_grad_(True)
values_hard = values6.clone().requires_grad_(True)
index = (keys_hard @ q_hard).argmax()  # an integer: the graph stops here
print("argmax result has a gradient path:", index.requires_grad)
(values_hard[index] @ upstream).backward()
print("gradient reaches the query:", q_hard.grad is not None)
print("gradient reaches the keys: ", keys_hard.grad is not None)
rows_with_grad = (values_hard.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
print("the only value row with a gradient is the selected one:", rows_with_grad == [best])

q_soft = query.clone().requires_grad_(True)
keys_soft = keys6.clone().requires_grad_(True)
out_soft, _ = soft_lookup(q_soft, keys_soft, values6, tau=1.0)
(out_soft @ upstream).backward()
print("soft lookup: gradient reaches the query and the keys:",
      bool(q_soft.grad.abs().sum() > 0), bool(keys_soft.grad.abs().sum() > 0))

# %% [markdown]
# ### Show it: learning what to ask
#
# Differentiability means we can *learn* a query. Start from a random query and train it with
# gradient descent so that the soft lookup returns the value stored under the key it matches
# *least* at the start. The hard lookup gives nothing to train: its query never receives a
# gradient.

# %%
q_learn = torch.randn(8, device=device, requires_grad=True)
with torch.no_grad():
    start_weights = soft_lookup(q_learn, keys6, values6, tau=1.0)[1]
target = int(start_weights.argmin())  # the key this query is least interested in
print("at the start the hard lookup picks key", int(start_weights.argmax()), "; target key:", target)
optimizer = torch.optim.Adam([q_learn], lr=0.1)
history = []
for _ in range(150):
    out, weights = soft_lookup(q_learn, keys6, values6, tau=1.0)
    loss = (out - values6[target]).pow(2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    history.append(weights[target].item())
print(f"weight on key {target}: {history[0]:.3f} at the start -> {history[-1]:.3f} "
      f"after {len(history)} steps")
print("the hard lookup now picks key", int((keys6 @ q_learn.detach()).argmax()))

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Trap: "soft means differentiable means the gradients are fine"</strong></p>
#
# Not a mistake the learner made: their answer, "the QKV computation is a dictionary lookup
# whose accuracy is tuned by gradients", is right. It is a trap that answer sits next to:
# thinking a softmax always gives useful gradients. It is
# differentiable everywhere, but near the hard limit its gradient is nearly zero (the
# temperature table above). Differentiable is necessary for learning, not sufficient; the
# $\sqrt{d_k}$ of Q3 exists to keep attention away from that limit.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: what a hard lookup cannot learn</strong></p>
#
# The notes say that with a hard lookup "backpropagation is impossible, so it cannot be
# trained". More precisely, the gradient does reach the *value* that was returned (the cell
# above finds a gradient in exactly the selected row of `values`). What gets no gradient is
# the *selection*: the query and the keys. A hard-attention model could learn what to store,
# but not what to look for. That is why hard attention needs other estimators
# (REINFORCE, Gumbel-softmax, straight-through), and why soft attention won.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can we have hard choices and gradients?</strong></p>
#
# <details><summary>Answer</summary>
#
# Approximately. *Gumbel-softmax* adds Gumbel noise to the scores and uses a softmax with a
# temperature that is lowered during training; the *straight-through* estimator uses the hard
# choice in the forward pass and the softmax's gradient in the backward pass; *REINFORCE*
# treats the choice as a sampled action and estimates the gradient of its expected loss. All
# trade the exact gradient of soft attention for discreteness. *Sparsemax* and *entmax* are a
# middle way: differentiable (almost everywhere) maps that can put exactly zero weight on
# keys. Do not confuse them with "sparse attention" in the sense of Q4, which restricts which
# pairs are computed at all.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what plays the role of the dictionary's contents in a transformer?</strong></p>
#
# <details><summary>Answer</summary>
#
# The keys and values are not stored in advance: they are computed from the current sequence
# at every layer, so the "dictionary" is rebuilt for every input. What is learned and stored
# are the projections $W_Q$, $W_K$, $W_V$, that is, *how* to make queries, keys and values.
# During generation the keys and values of past tokens do not change, which is why they can be
# cached (the KV cache of L03-Q21).
#
# Differentiable key-value memories are older than the transformer: memory networks (Weston,
# Chopra and Bordes, 2015; Sukhbaatar et al., 2015) and key-value memory networks (Miller et
# al., 2016) stored facts as separate keys and values and read them with a softmax over
# similarities. Inside a transformer, a *fixed* learned dictionary does exist too: Geva et al.
# (2021) read the feed-forward layer as a key-value memory whose first matrix holds the keys
# and whose second holds the values (the block chapter, L03-Q19).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("L03-Q6")

# %% [markdown]
# ## Build it yourself
#
# Write scaled dot-product attention from memory, in the cell below. It must
#
# - accept `q` of shape `(..., Tq, d_k)`, `k` of shape `(..., Tk, d_k)`, `v` of shape
#   `(..., Tk, d_v)`, with any leading batch or head dimensions;
# - accept an optional boolean `mask` broadcastable to `(..., Tq, Tk)`, True meaning *may attend*;
# - return the output only, shape `(..., Tq, d_v)`, in the dtype of `q`.
#
# Then run the checker: it tries your function on several cases (batched, masked, cross-attention,
# $d_v \ne d_k$, large inputs) and tells you what, if anything, is wrong. As committed, the stub
# raises `NotImplementedError`, and the checker says so.

# %%
def my_attention(q, k, v, mask=None):
    """Your scaled dot-product attention: returns (..., Tq, d_v)."""
    # 1. scores: (..., Tq, Tk), scaled by 1/sqrt(d_k)
    # 2. where the mask is False: -inf
    # 3. softmax over the keys
    # 4. weighted sum of the values
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_attention

check_attention(my_attention)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_attention(q, k, v, mask=None):
#     scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
#     if mask is not None:
#         scores = scores.masked_fill(~mask, float("-inf"))
#     return torch.softmax(scores, dim=-1) @ v
# ```
#
# `k.transpose(-2, -1)` rather than `k.T` keeps the batch and head dimensions in place, and
# `torch.softmax` subtracts each row's maximum, so large scores do not overflow.
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# From now on the course imports attention from `utils.attention` instead of rewriting it.
# `scaled_dot_product_attention` there is the formula of this chapter, with input checks (a
# mask row that allows no key is an error, not a silent `nan`) and grouped-query heads. Here it
# is next to the `attention` cell of Q1 and PyTorch's fused kernel, on a batch of 2 sequences
# with 4 heads and a causal mask:

# %% tags=["nbval-check-output"]
B, H, T_demo, D = 2, 4, 8, 16
q_b, k_b, v_b = (torch.randn(B, H, T_demo, D, device=device) for _ in range(3))
mask_b = causal_mask(T_demo, device=device)

ours, _ = attention(q_b, k_b, v_b, mask=mask_b)  # the cell of Q1
from_utils = scaled_dot_product_attention(q_b, k_b, v_b, mask=mask_b)
fused = F.scaled_dot_product_attention(q_b, k_b, v_b, attn_mask=mask_b)  # True = may attend, too
print("output shape:", tuple(from_utils.shape))
print("utils == our cell:", torch.allclose(from_utils, ours, atol=1e-6))
print("utils == torch fused kernel:", torch.allclose(from_utils, fused, atol=1e-5))
print("causal: output 0 depends only on token 0:",
      torch.allclose(from_utils[..., 0, :], v_b[..., 0, :], atol=1e-6))

# %% [markdown]
# The same module also holds `causal_mask`, the multi-head layer `MultiHeadAttention` (explicit
# and fused paths side by side), the KV cache and linear attention, each built in the chapter
# that explains it.
#
# ## Summary
#
# - **Q1** Self-attention: queries, keys and values all come from one sequence; the mask, not
#   the mechanism, decides who sees whom; the objective is a separate matter.
# - **Q2** Q, K, V are three roles every token plays. Separate keys and values let a head match
#   on one thing and return another.
# - **Q3** $\operatorname{Var}(q \cdot k) = d_k$; dividing by $\sqrt{d_k}$ keeps the softmax out
#   of saturation, where most gradients vanish, at every width.
# - **Q4** $O(n^2 d + nd^2)$: the quadratic part overtakes the projections at $n = 2d$ and the
#   whole layer at $n = 6d$; its $n^2$ memory per head bites first.
# - **Q5** The output is a convex combination of value vectors, one per token, added to the
#   residual stream; uniform weights give a mean (or running mean, if causal).
# - **Q6** Softmax is a smooth argmax: the soft lookup converges to the hard one as the
#   temperature falls, and only the soft one lets gradients reach the query and the keys.
#
# Next: several heads side by side (L03-Q7 to Q12).
#
# ## References
#
# - Bahdanau, D., Cho, K., Bengio, Y. (2014). *Neural Machine Translation by Jointly Learning
#   to Align and Translate*. arXiv:1409.0473.
# - Graves, A. (2013). *Generating Sequences With Recurrent Neural Networks*. arXiv:1308.0850.
#   (A learned soft attention window over the input, for handwriting synthesis.)
# - Weston, J., Chopra, S., Bordes, A. (2015). *Memory Networks*. ICLR. arXiv:1410.3916.
# - Sukhbaatar, S., Szlam, A., Weston, J., Fergus, R. (2015). *End-To-End Memory Networks*.
#   NeurIPS. arXiv:1503.08895.
# - Miller, A. et al. (2016). *Key-Value Memory Networks for Directly Reading Documents*.
#   EMNLP. arXiv:1606.03126.
# - Vaswani, A. et al. (2017). *Attention Is All You Need*. NeurIPS. arXiv:1706.03762.
# - Devlin, J. et al. (2019). *BERT: Pre-training of Deep Bidirectional Transformers for
#   Language Understanding*. NAACL. arXiv:1810.04805.
# - Henry, A. et al. (2020). *Query-Key Normalization for Transformers*. Findings of EMNLP.
#   arXiv:2010.04245.
# - Geva, M., Schuster, R., Berant, J., Levy, O. (2021). *Transformer Feed-Forward Layers Are
#   Key-Value Memories*. EMNLP. arXiv:2012.14913.
# - Elhage, N. et al. (2021). *A Mathematical Framework for Transformer Circuits*. Transformer
#   Circuits Thread (Anthropic).
# - Olsson, C. et al. (2022). *In-context Learning and Induction Heads*. Transformer Circuits
#   Thread (Anthropic). arXiv:2209.11895.
# - Haviv, A., Ram, O., Press, O., Izsak, P., Levy, O. (2022). *Transformer Language Models
#   without Positional Encodings Still Learn Positional Information*. Findings of EMNLP.
#   arXiv:2203.16634.
# - Yang, G. et al. (2022). *Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
#   Hyperparameter Transfer* (μP). arXiv:2203.03466.
# - Dehghani, M. et al. (2023). *Scaling Vision Transformers to 22 Billion Parameters*. ICML.
#   arXiv:2302.05442.
