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
# # 8 · From text to tensors (MiniMind, part 1)
#
# Before a transformer sees anything, text has to become a tensor of integers, the integers
# have to be arranged into inputs and targets, the batch has to be padded or packed, and
# each integer has to become a vector. This chapter follows those four steps through four
# questions (MM-Q1 to Q4 of the course), using MiniMind, a 26M-parameter GPT you can
# pretrain on one GPU, as the running example:
#
# 1. Tokens or bytes, and how large a vocabulary?
# 2. Why are the targets the inputs shifted by one?
# 3. What do loss masks and padding do?
# 4. Why embeddings instead of one-hot vectors, and how wide?
#
# **Prerequisites.** Chapter 1 (self-attention and its $O(T^2)$ cost), PyTorch tensors,
# cross-entropy, what UTF-8 is (roughly).
#
# **How to use this chapter.** Every section follows the same pattern. Read the question, open
# the hints if you are stuck, and *write your own answer* in the cell marked "Your answer"
# before you open the answer. Then run the code cells: each one checks a claim of the answer
# by measuring it. Boxes mark a typical wrong first answer (⚠️) and places where the source
# notes of this course were wrong (✏️); every number in them is computed by a cell above. At
# the end you write the masked next-token loss yourself and a checker tells you whether it is
# right.
#
# The whole notebook runs on a laptop CPU in under a minute; it downloads nothing. The
# tokenizer it trains is `utils.tokenizer.BPETokenizer`, which can also read MiniMind's own
# `tokenizer.json` if you have downloaded it.

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
import os
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F

from utils.data import CharTokenizer, default_corpus, get_batch, pad_batch
from utils.device import get_device, set_seed
from utils.interactive import interactive_figure
from utils.model import GPTConfig, TinyGPT
from utils.plots import use_style
from utils.pretrained import load_pretrained
from utils.quiz import quiz
from utils.tokenizer import BPETokenizer

set_seed(0)  # the only seed of the chapter: run the cells top to bottom to get these numbers
device = get_device()
use_style()
print("device:", device)

# %% [markdown]
# ## MM-Q1 · Tokens or bytes, and how large a vocabulary?
#
# > A computer already stores text as numbers (bytes). Why does a language model not simply
# > read bytes, or characters? And MiniMind has 6,400 tokens: why not 1,000, or 100,000?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - How many bytes is "你好" in UTF-8? How many characters? What would a model have to learn
#   before it could even "see" a Chinese character if it read bytes?
# - What does a longer sequence cost in attention (chapter 1, L03-Q4)? What does a larger
#   vocabulary cost, and where?
# - A tokenizer is *trained* on some text. What happens to text it was not trained on?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q1**
#
# <div class="course-answer" data-question="MM-Q1">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# Bytes would work: any text is a sequence of UTF-8 bytes, a vocabulary of 256 can write
# anything, and byte-level models exist (ByT5, Xue et al., 2022). The reason to group bytes
# into **tokens** is the **length of the sequence**. Every layer's attention costs
# $O(T^2 d)$ and the context window is counted in tokens, so a representation that needs
# four times as many symbols costs up to sixteen times as much attention and sees a quarter
# as much text per window. Characters are in between: one symbol per character, but a
# character vocabulary of all of Unicode is huge and sparse, and an unseen character has no
# id.
#
# **Byte-pair encoding** (BPE; Sennrich, Haddow and Birch, 2016, after a compression
# algorithm of Gage, 1994) starts from the 256 bytes and repeatedly adds the most frequent
# adjacent pair as a new token. Byte-level BPE (GPT-2; Radford et al., 2019) keeps the bytes
# as the base alphabet, so *nothing* is ever out of vocabulary: a rare word or a Chinese
# character it has not learnt falls back to smaller pieces, down to single bytes.
#
# The vocabulary size $V$ trades two costs against each other:
#
# - a **larger $V$** gives **shorter sequences** (fewer tokens per character, so cheaper
#   attention and more text per context window) but a larger embedding matrix and output
#   layer, $V \times d$ parameters each (one if tied), and rarer tokens, each seen fewer times
#   in training;
# - a **smaller $V$** gives a small embedding but longer sequences.
#
# The gain in length shrinks quickly: the first few hundred merges capture the most frequent
# pairs, later merges add rarer and rarer words. For a 26M-parameter model like MiniMind, the
# embedding is already an eighth of the model at $V = 6400$ (MM-Q4 counts it); at $V = 100{,}000$
# it would be more than twice the size of the whole rest of the model. There is no law that picks
# 6,400: it is a choice that keeps the embedding a small share of a small model while the
# tokenizer (trained on Chinese and English) still shortens the text a lot.
#
# </details>

# %% [markdown]
# ### Show it: bytes, characters and tokens
#
# UTF-8 writes an ASCII character in one byte and a Chinese character in three.

# %% tags=["nbval-check-output"]
for text in ["hi", "你好", "机器学习很有趣", "😀"]:
    data = text.encode("utf-8")
    print(f"{text!r}: {len(text)} characters, {len(data)} UTF-8 bytes {list(data)}")

corpus = default_corpus()
print(f"\ndefault corpus: {len(corpus):,} characters, {len(corpus.encode()):,} bytes, "
      f"{len(set(corpus))} distinct characters")

# %% [markdown]
# The course corpus (the English help texts of Python) is almost pure ASCII, so bytes and
# characters nearly coincide there. Now train a byte-level BPE on 90% of it, with three
# special tokens we need later, and measure on the held-out 10%. BPE training is greedy and
# sequential, so the tokenizer with the first $k$ merges of a 4,096-token run *is* the
# tokenizer a run to $256 + k$ tokens would have learnt: one training gives every smaller
# vocabulary for free.

# %%
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # MiniMind's three special tokens
split = int(0.9 * len(corpus))
train_text, held_out = corpus[:split], corpus[split:]

start = time.perf_counter()
bpe = BPETokenizer.train(train_text, vocab_size=4096, special_tokens=SPECIALS)
print(f"trained {bpe} in {time.perf_counter() - start:.2f} s")
merges = list(bpe.merges.items())


def first_merges(n_tokens):
    """The tokenizer with the first n_tokens - 256 merges of `bpe` (no special tokens)."""
    return BPETokenizer(dict(merges[: n_tokens - 256]))


# %% tags=["nbval-check-output"]
char_tok = CharTokenizer.from_text(corpus)
n_chars = len(held_out)
rows = [{"tokenizer": "characters", "vocab": char_tok.vocab_size,
         "tokens": len(char_tok.encode(held_out))}]
for V in [256, 320, 512, 1024, 2048, 4093]:
    rows.append({"tokenizer": "bytes" if V == 256 else "BPE", "vocab": V,
                 "tokens": len(first_merges(V).encode(held_out))})
lengths = pd.DataFrame(rows)
lengths["tokens per char"] = (lengths["tokens"] / n_chars).round(3)
lengths["chars per token"] = (n_chars / lengths["tokens"]).round(2)
print(f"held-out text: {n_chars:,} characters")
print(lengths.to_string(index=False))

# %% [markdown]
# The first 64 merges already cut the byte sequence by more than a third; going from 2,048 to
# 4,093 tokens saves only about a tenth more. What did it learn? The first merges are the most
# frequent pairs (spaces of indentation, the rules of tables, common English pairs); the
# longest word tokens are whole words of the Python documentation:

# %% tags=["nbval-check-output"]
print("first 12 merges:", [bpe.token_bytes(i).decode() for i in range(256, 268)])
words = [bpe.token_bytes(i).decode(errors="replace") for i in range(256, 256 + len(merges))]
words = [w for w in words if w.strip().isalpha()]  # word tokens (leaving out table borders)
print("longest words:  ", sorted(words, key=len, reverse=True)[:8])
for text in ["tokenization", "机器学习很有趣"]:
    ids = bpe.encode(text)
    print(f"{text!r}: {len(ids)} tokens {[bpe.token_bytes(i) for i in ids][:8]}")

# %% [markdown]
# Our tokenizer never saw Chinese, so "机器学习很有趣" falls back to its 21 single bytes: three
# tokens per character, worse than characters. A tokenizer compresses the language it was
# trained on; MiniMind's is trained on Chinese and English text, which is why its
# vocabulary is full of Chinese words.
#
# ### Explore it: how a sentence is cut at each vocabulary size
#
# Each coloured box is one token. Move the slider from bytes to 4,093 tokens.

# %%
SAMPLE = "The tokenizer splits each identifier into subword tokens; def __init__(self):"


def draw_tokens(vocab_size):
    """The sample sentence cut into tokens by the first vocab_size - 256 merges."""
    tok = first_merges(vocab_size)
    pieces = [tok.token_bytes(i).decode("utf-8", errors="replace") for i in tok.encode(SAMPLE)]
    per_line = 64  # x and y are in character cells of the monospace font
    fig, ax = plt.subplots(figsize=(9, 1.9))
    ax.set_axis_off()
    ax.set_xlim(0, per_line)
    ax.set_ylim(-2.6, 0.6)
    x, y = 0.0, 0.0
    colours = ["#fde68a", "#bfdbfe"]
    for k, piece in enumerate(pieces):
        if x + len(piece) > per_line:
            x, y = 0.0, y - 1.3
        ax.text(x, y, piece.replace(" ", "␣"), family="monospace", fontsize=13, va="center",
                bbox={"boxstyle": "square,pad=0.2", "fc": colours[k % 2], "ec": "#555555"})
        x += len(piece) + 1.2
    ax.set_title(f"vocabulary {vocab_size}: {len(pieces)} tokens for {len(SAMPLE)} characters")
    return fig


interactive_figure(draw_tokens, vocab_size=[256, 300, 400, 512, 1024, 2048, 4093],
                   initial={"vocab_size": 512})

# %% [markdown]
# ### Show it: sequence length against embedding size
#
# For MiniMind's width $d = 512$, the embedding matrix has $V \times 512$ parameters. The
# attention of one layer over a text of $N$ characters costs about $4 T^2 d$ FLOPs with
# $T = N \times$ (tokens per character) (chapter 1). Relative to bytes, the attention cost
# falls with the *square* of the compression, while the embedding grows linearly in $V$.

# %%
d = 512
bpe_rows = lengths[lengths["tokenizer"] != "characters"].copy()
ratio = bpe_rows["tokens"] / bpe_rows["tokens"].iloc[0]  # sequence length relative to bytes
fig, (ax_len, ax_cost) = plt.subplots(1, 2, figsize=(10, 3.6))
ax_len.plot(bpe_rows["vocab"], bpe_rows["tokens per char"], "o-", color="#392061")
ax_len.set_xscale("log", base=2)
ax_len.set_xlabel("vocabulary size V")
ax_len.set_ylabel("tokens per character")
ax_len.set_title("held-out text: length falls fast, then slowly")
ax_cost.plot(bpe_rows["vocab"], ratio**2, "o-", color="#f75c03", label="attention cost (bytes = 1)")
ax_cost.set_xscale("log", base=2)
ax_cost.set_xlabel("vocabulary size V")
ax_cost.set_ylabel("attention cost relative to bytes")
ax_emb = ax_cost.twinx()
ax_emb.plot(bpe_rows["vocab"], bpe_rows["vocab"] * d / 1e6, "s--", color="#15803d",
            label="embedding parameters (M)")
ax_emb.set_ylabel("embedding parameters, millions (d = 512)")
ax_cost.set_title("attention cost falls, the embedding grows")
fig.legend(loc="upper center", bbox_to_anchor=(0.75, 0.85), fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Now the notes' table, recomputed. An fp32 parameter takes 4 bytes (bf16: 2).

# %% tags=["nbval-check-output"]
table = pd.DataFrame({"vocab": [1000, 6400, 100_000]})
table["parameters (V x 512)"] = table["vocab"] * d
table["fp32 MB"] = (table["parameters (V x 512)"] * 4 / 1e6).round(2)
table["fp32 MiB"] = (table["parameters (V x 512)"] * 4 / 2**20).round(2)
table["bf16 MB"] = (table["parameters (V x 512)"] * 2 / 1e6).round(2)
print(table.to_string(index=False))

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "text becomes numbers because computers only handle numbers"</strong></p>
#
# That was the first answer in the notes. It is true, and it explains nothing: UTF-8 bytes
# are already numbers, and a model could read them (byte-level models do). The question is
# *which* numbers. The answer is an engineering trade-off: grouping frequent byte sequences
# into tokens makes the sequence shorter (the table above: about 4 bytes per token on
# held-out text at 4,093 tokens), which makes attention cheaper and the context window
# longer, at the price of a larger embedding table and of a tokenizer that only compresses
# the kind of text it was trained on.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: ASCII, kilobytes and invented token counts</strong></p>
#
# - The notes call `"你好" → [228, 189, 160, 229, 165, 189]` its "ASCII codes". ASCII has
#   no Chinese characters (it stops at 127); these six numbers are the **UTF-8 bytes**, as
#   the first cell prints.
# - Their table gives the 1,000-token embedding as "512KB". $1000 \times 512$ is **512,000
#   parameters**, which is **2.05 MB** (1.95 MiB) in fp32, or 1.02 MB in bf16: parameters
#   and bytes were mixed up. The 100,000-token line ("200MB") is about right in fp32
#   (204.8 MB); 6,400 tokens take 13.11 MB in fp32 (the cell above).
# - The token counts "12, 6 and 5 tokens" for "机器学习很有趣" at 1,000, 6,400 and 100,000
#   tokens were not measured: a token count depends on the tokenizer's training text, not only
#   on its size. Our 4,096-token tokenizer, trained on English, needs 21 tokens (one per byte);
#   MiniMind's real 6,400-token tokenizer needs 3, not 6 (the second follow-up below).
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why do special tokens have to be protected from the merges?</strong></p>
#
# MiniMind marks the end of a document with `<|endoftext|>` and chat turns with
# `<|im_start|>` and `<|im_end|>`. What would go wrong if these were ordinary text?
#
# <details><summary>Answer</summary>
#
# As text, `<|endoftext|>` is thirteen characters that BPE would cut into several ordinary
# tokens, differently depending on their neighbours, and a user could type it to forge a turn
# boundary. A **special token** is one fixed id, cut out of the text *before* the BPE runs, and
# never produced by a merge. The tokenizer encodes it as one id when allowed and as plain text
# when not (`allowed_special="none"`, for untrusted input). The cell below shows both.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
chat = "<|im_start|>user\nhi<|im_end|>"
print("as special tokens:", bpe.encode(chat))
print("as plain text:    ", bpe.encode(chat, allowed_special="none"))
print("round trip:", bpe.decode(bpe.encode(chat)) == chat)

# %% [markdown]
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: can our tokenizer read MiniMind's (or GPT-2's) tokenizer?</strong></p>
#
# <details><summary>Answer</summary>
#
# Yes, if it is a byte-level BPE in Hugging Face's `tokenizer.json` format, as MiniMind's
# 6,400-token tokenizer is: `BPETokenizer.load("tokenizer.json")` reads its vocabulary, merges
# and special tokens, and `save` writes the same format. The course's tests train a tokenizer
# with the Hugging Face `tokenizers` library, load it, and check that both give identical ids
# on English, Chinese, emoji, code and runs of whitespace. Its GPT-2 pre-tokenisation regex
# first cuts the text into words, numbers, punctuation runs and whitespace, so no token ever
# spans a word and the space before the next one.
#
# We ran the cell below on `model/tokenizer.json` of the MiniMind repository (commit
# `d65ef2c`): 6,400 ids, 36 added tokens, identical ids to the `tokenizers` library on
# Chinese, English, chat markup and random strings, and "机器学习很有趣" in **3** tokens,
# 机器学习 | 很 | 有趣. Set `MINIMIND_TOKENIZER` to the path of that file to repeat it; the
# notebook itself downloads nothing.
#
# </details>
#
# </div>

# %%
path = os.environ.get("MINIMIND_TOKENIZER", "minimind/model/tokenizer.json")
if os.path.isfile(path):
    minimind_tok = BPETokenizer.load(path)
    for text in ["机器学习很有趣", "你好，世界！今天天气很好。"]:
        pieces = [minimind_tok.decode([i]) for i in minimind_tok.encode(text)]
        print(f"{text!r}: {len(pieces)} tokens {pieces}")
else:
    print(f"no MiniMind tokenizer at {path!r}: set MINIMIND_TOKENIZER to run this cell on it")

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q1")

# %% [markdown]
# ## MM-Q2 · Why are the targets the inputs shifted by one?
#
# > From one sequence of token ids, pretraining makes an input `x` and a target `y` with
# > `y[t] = x[t + 1]`. Why this pairing, and not `y = x`, or the shift the other way?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - What does the model compute at position $t$, and which tokens can it see there (the
#   causal mask of chapter 1)?
# - How many training examples does one sequence of $T + 1$ tokens give?
# - If the target at position $t$ is a token the model can already see, what is the easiest
#   way to get the loss to zero?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q2**
#
# <div class="course-answer" data-question="MM-Q2">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# A language model factorises the probability of a text left to right,
# $p(w_1 \dots w_n) = \prod_t p(w_{t+1} \mid w_1 \dots w_t)$, and is trained to maximise it,
# one factor per position. Output $t$ of a causal transformer has seen exactly
# $w_1 \dots w_t$ (the mask hides the rest), so its target must be $w_{t+1}$: with
# `x = ids[:-1]` and `y = ids[1:]`, one forward pass over $T$ inputs trains $T$ predictions
# at once, each with exactly the context it will have when generating. The text is its own
# label: no annotation is needed (**self-supervision**).
#
# The shift is not a convention that could go either way. The target must be a token the
# position **cannot see**. With `y = x` the answer is the input at the same position; with
# the shift reversed (`y[t] = x[t-1]`) it is the previous token, which the causal mask
# leaves visible. In both cases the model can reach a loss near zero by *copying*, and learns
# nothing about language. The experiment below trains all three.
#
# At inference the same model generates: it predicts $w_{t+1}$, appends it, and predicts again.
# Training on the true prefix, rather than on the model's own earlier outputs, is called
# **teacher forcing** (Williams and Zipser, 1989).
#
# </details>

# %% [markdown]
# ### Show it: inputs and targets from one sequence

# %% tags=["nbval-check-output"]
ids = torch.tensor(bpe.encode("The model predicts the next token."))
x, y = ids[:-1], ids[1:]
print(f"{'position':>8}  {'input x[t]':<14} target y[t]")
for t in range(len(x)):
    print(f"{t:>8}  {bpe.decode([x[t]])!r:<14} {bpe.decode([y[t]])!r}")
print("y[t] == x[t+1] for every t:", bool((y[:-1] == x[1:]).all()))

# %% [markdown]
# `utils.data.get_batch` cuts random windows of a token stream the same way, one row per
# window: `x = data[i : i+T]`, `y = data[i+1 : i+T+1]`.

# %% tags=["nbval-check-output"]
stream = torch.tensor(char_tok.encode(corpus))
xb, yb = get_batch(stream, batch_size=4, block_size=16, generator=torch.Generator().manual_seed(0))
print("x, y shapes:", tuple(xb.shape), tuple(yb.shape), " y == x shifted:",
      bool((yb[:, :-1] == xb[:, 1:]).all()))

# %% [markdown]
# ### Show it: train with the right shift and two wrong ones
#
# Three small character-level models, identical except for the targets, trained for a few
# steps each; then all three are evaluated on the real task, next-character prediction on
# held-out text.

# %%
steps = 400 if device.type == "cuda" else 80
train_ids, val_ids = stream[:split].to(device), stream[split:].to(device)
small = GPTConfig.nano(char_tok.vocab_size, n_layers=2, d_model=64, context_length=64)


def make_targets(xw, scheme):
    """Inputs and targets for one batch of windows xw (B, T + 1) under a pairing scheme."""
    if scheme == "shift by one (y[t] = x[t+1])":
        return xw[:, :-1], xw[:, 1:]
    if scheme == "no shift (y = x)":
        return xw[:, :-1], xw[:, :-1]
    return xw[:, 1:], xw[:, :-1]  # reversed: the target is the previous token


def windows(data, batch_size, generator):
    """batch_size random windows of length context + 1."""
    starts = torch.randint(len(data) - small.context_length - 1, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(small.context_length + 1)
    return data[idx.to(data.device)]


schemes = ["shift by one (y[t] = x[t+1])", "no shift (y = x)", "reversed (y[t] = x[t-1])"]
results = []
for scheme in schemes:
    torch.manual_seed(1)
    model = TinyGPT(small).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        xs, ys = make_targets(windows(train_ids, 32, g), scheme)
        _, loss = model(xs, ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        xv, yv = make_targets(windows(val_ids, 64, torch.Generator().manual_seed(3)),
                              schemes[0])  # always evaluated on the real task
        _, val_loss = model(xv, yv)
    results.append({"targets during training": scheme, "final training loss": loss.item(),
                    "next-token loss on held-out text": val_loss.item()})
shift_table = pd.DataFrame(results).set_index("targets during training")
print(f"{steps} steps each; uniform guessing would give ln({char_tok.vocab_size}) = "
      f"{math.log(char_tok.vocab_size):.2f}")
print(shift_table.round(3).to_string())

# %% [markdown]
# Both wrong pairings reach a training loss far below the right one, because their target is
# visible: the model learns to copy the current or the previous input. On the real task they
# are far worse than the correctly trained model, here even worse than guessing uniformly:
# they never learnt to predict anything.
#
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the shift is simply the standard way language models are trained"</strong></p>
#
# That was the first answer in the notes: true, but it names a habit, not a reason. The
# reason is what the model can see. Position $t$ sees tokens $\le t$, so only a target at
# $t+1$ or later is a prediction. Any pairing that puts a visible token in the target (the
# table above) turns training into copying, and the loss falls *faster* than with the right
# targets: a low training loss is then a symptom, not a success.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: what goes wrong with the reversed shift</strong></p>
#
# The notes reject `X = [今天, 天气, 很好, EOS], Y = [BOS, 今天, 天气, 很好]` because "the
# future cannot predict the past". Predicting the previous token is not impossible, it is
# *trivial*: with a causal mask the previous token is in view, so the model copies it. The
# experiment above shows the result: a training loss far below the correct model's and a
# useless model on held-out next-token prediction. (A model trained right-to-left on
# reversed text is perfectly possible: it would shift the reversed sequence by one.)
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: how many predictions does one window train?</strong></p>
#
# <details><summary>Answer</summary>
#
# A window of $T + 1$ tokens gives $T$ predictions, all computed in one forward pass: the
# causal mask gives position $t$ exactly the prefix it would have at generation time. An RNN
# trains the same $T$ predictions, but must compute them one after the other (L03-Q23).
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what if we shifted and forgot the causal mask?</strong></p>
#
# <details><summary>Answer</summary>
#
# Then position $t$ could see $w_{t+1}$ through attention, and the right targets would leak
# again: the training loss would collapse by copying from the next position, and generation,
# where the future does not exist yet, would fail. The shift and the mask work as a pair
# (L03-Q20).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q2")

# %% [markdown]
# ## MM-Q3 · What do loss masks and padding do?
#
# > Sentences have different lengths, but a batch is a rectangle. What does padding cost,
# > what does the loss mask do, and is there a way to waste nothing?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - After padding, which positions have a real next token to predict? (Count the last real
#   token too.)
# - If you average the loss per sentence and then over sentences, does a token of a short
#   sentence weigh the same as a token of a long one?
# - Does a loss mask make the forward pass cheaper?
# - In chat fine-tuning, should the model be trained to predict the user's words?
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q3**
#
# <div class="course-answer" data-question="MM-Q3">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# **Padding** fills the short sequences of a batch up to the longest with a pad id, so the
# batch is a $(B, L)$ tensor. The pad positions carry no text, so the **loss mask** (or the
# target id $-100$, which `F.cross_entropy` ignores) removes from the loss every position
# whose target is not a real next token: the padding *and the last real token* of each
# sequence, which has no next token. Without it the model is trained to predict pad after
# the last word and pad after pad, and the loss value is a mixture of text and filler.
#
# The mask decides *which* positions count; the **average** decides *how much*. Averaging
# over all real tokens of the batch gives every token the same weight. Averaging each
# sequence first and then the sequences gives every *sequence* the same weight, so a token
# of a short sentence weighs $n_\text{long}/n_\text{short}$ times as much as a token of a
# long one (a 3-token sentence's tokens count 4 times as much as a 12-token sentence's).
#
# A loss mask saves **no computation**: the model still runs over the whole $(B, L)$
# rectangle. With right padding and a causal mask, real tokens never attend to the pads
# after them, so their outputs are exactly those of the unpadded sequence, but the pads are
# still computed. The alternative that wastes nothing is **packing**: concatenate the
# documents with an end-of-text token between them and cut the stream into full windows.
# Every position is then real text (at the price of windows that start mid-document and,
# unless attention is masked per document, tokens that attend across a document boundary).
#
# The same mechanism does more than hide padding. In MiniMind's chat fine-tuning, the mask
# is True only on the **assistant's replies**: the model reads the system prompt and the
# user's turn as context but is trained only to produce the answer.
#
# </details>

# %% [markdown]
# ### Show it: the notes' padding example, recounted
#
# Two sequences of 5 and 12 tokens padded to 12. We count the score entries of one attention
# matrix per sequence ($12 \times 12$ each) that involve a pad, and the positions of the loss.

# %% tags=["nbval-check-output"]
lengths_ex = [5, 12]
L = max(lengths_ex)
seqs = [list(range(1, n + 1)) for n in lengths_ex]
input_ids, targets, loss_mask = pad_batch(seqs, pad_id=0)
real = input_ids != 0  # (B, L) True on real tokens
pair_real = real[:, :, None] & real[:, None, :]  # (B, L, L) query and key both real
print("score entries:", pair_real.numel())
print("entries with a pad query or key:", int((~pair_real).sum()),
      f"({(~pair_real).float().mean().item():.1%})")
print("entries with a pad query and a pad key:", int((~real[:, :, None] & ~real[:, None, :]).sum()))
causal = torch.ones(L, L, dtype=torch.bool).tril()
print("with the causal mask, computed entries:", int(causal.sum()) * 2,
      " of which involve a pad:", int((causal & ~pair_real).sum()))
print("padding positions:", int((~real).sum()))
print("loss positions (real next token):", int(loss_mask.sum()), " masked out:",
      int((~loss_mask).sum()))

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the padding arithmetic</strong></p>
#
# The notes say padding [5, 12] to 12 wastes "7×7×2 = 98 of 288 score entries (34%)", that the
# loss is computed "at only 17 valid positions", and that the mask "saves the gradients of 14
# padding positions". Recounted above:
#
# - Only the first sequence is padded, so there are **7** padding positions, not 14, and the
#   factor 2 does not apply.
# - A score entry is wasted if its query *or* its key is a pad: **119 of 288** entries
#   (41.3%), not 98. Only 49 have both a pad query and a pad key. With the causal mask, 156
#   entries are computed and 63 of them involve a pad.
# - The loss has **15** real positions (4 + 11: the last token of each sequence has no
#   target), not 17; 9 positions are masked.
# - The mask saves no computation: logits and gradients flow through the whole rectangle;
#   masked positions simply contribute zero to the loss.
#
# </div>

# %% [markdown]
# ### Show it: the loss with and without the mask
#
# Four sentences of the held-out text, of very different lengths, through the course's
# trained character model, padded with the space character. First a check that padding does
# not change the real positions' logits (right padding, causal mask); then the loss three
# ways.

# %%
pretrained = load_pretrained()
char_model, char_tok_pre = pretrained.model.to(device), pretrained.tokenizer
sentences = ["The loop ends.", "Each argument is evaluated from left to right.",
             "A class definition defines a class object.",
             "The return statement leaves the current function call with the expression list "
             "as the return value."]
seq_ids = [char_tok_pre.encode(s) for s in sentences]
pad_id = char_tok_pre.stoi[" "]
inp, tgt, mask = (t.to(device) for t in pad_batch(seq_ids, pad_id=pad_id))
with torch.no_grad():
    logits, _ = char_model(inp)
    nll = F.cross_entropy(logits.transpose(1, 2), tgt.clamp(min=0), reduction="none")  # (B, L)

# %% tags=["nbval-check-output"]
with torch.no_grad():
    alone, _ = char_model(torch.tensor([seq_ids[0]], device=device))
n0 = len(seq_ids[0])
print("lengths:", [len(s) for s in seq_ids], " padded to", inp.shape[1])
print("padding leaves the real positions' logits unchanged:",
      torch.allclose(alone[0], logits[0, :n0], atol=1e-4))

# %%
unmasked_tgt = torch.roll(inp, -1, dims=1)  # every next id, pads included
nll_all = F.cross_entropy(logits[:, :-1].transpose(1, 2), unmasked_tgt[:, :-1], reduction="none")
n_tok = mask.sum(1).float()  # real targets per sequence
per_token = (nll * mask).sum() / mask.sum()
per_sequence = ((nll * mask).sum(1) / n_tok).mean()
print(f"loss without a mask (pads are targets too):   {nll_all.mean().item():.3f}")
print(f"masked, averaged over tokens:                  {per_token.item():.3f}")
print(f"masked, averaged per sentence, then sentences: {per_sequence.item():.3f}")
print("per-sentence losses:", [round(v, 3) for v in ((nll * mask).sum(1) / n_tok).tolist()])

# %% [markdown]
# The unmasked loss is *lower* than the masked one: it mixes in many predictions of a space
# after a space (our pad), which the model finds easy, so it flatters the model and says
# little about the text. The two masked averages differ because they weigh the sentences
# differently. Here are the weights each real token gets:

# %% tags=["nbval-check-output"]
weights = pd.DataFrame({"real targets": n_tok.long().tolist(),
                        "weight per token (per-token mean)": (1 / n_tok.sum()).item(),
                        "weight per token (per-sentence mean)": (1 / (len(n_tok) * n_tok)).tolist()})
print(weights.round(4).to_string())
print("a token of the shortest sentence weighs",
      round((n_tok.max() / n_tok.min()).item(), 2), "times a token of the longest (per sentence)")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "the loss mask is there to ignore the padding"</strong></p>
#
# That was the first answer in the notes, and it is a third of the story. The mask also
# removes the last real token of every sequence (it has no next token: 9 masked positions,
# not 7, in the example above), and in chat fine-tuning it removes the prompt. And masking
# is not the whole decision: per-token and per-sequence averages of the *same* masked
# losses differ (the two numbers above), because the second gives the 13 targets of the
# shortest sentence as much total weight as the 98 of the longest.
#
# </div>

# %% [markdown]
# ### Show it: padding or packing the course corpus
#
# The corpus is 79 documents (one per help topic). Tokenise each with our BPE and fill
# windows of $T = 512$ tokens two ways: **padding** (a document longer than $T$ is cut into
# windows; random batches of 8 windows are padded to their longest, as in dynamic padding),
# and **packing** (all documents in one stream, separated by `<|endoftext|>`, cut into full
# windows).

# %% tags=["nbval-check-output"]
from pydoc_data.topics import topics

docs = [topics[key].strip("\n") for key in sorted(topics)]  # the documents of default_corpus()
doc_ids = [bpe.encode(doc) for doc in docs]
T_win, B_win = 512, 8
pieces = [ids[i : i + T_win] for ids in doc_ids for i in range(0, len(ids), T_win)]
order = torch.randperm(len(pieces), generator=torch.Generator().manual_seed(0)).tolist()
padded_positions = 0
for b in range(0, len(order), B_win):
    batch = [pieces[i] for i in order[b : b + B_win]]
    padded_positions += len(batch) * max(len(p) for p in batch)
real_tokens = sum(len(ids) for ids in doc_ids)
eot = bpe.special_id("<|endoftext|>")
packed = [t for ids in doc_ids for t in ids + [eot]]
n_windows = math.ceil(len(packed) / T_win)
print(f"{len(docs)} documents, {real_tokens:,} tokens, {len(pieces)} windows when cut at {T_win}")
print(f"padding: {padded_positions:,} positions computed, "
      f"{1 - real_tokens / padded_positions:.1%} of them padding")
print(f"packing: {n_windows * T_win:,} positions computed, {len(docs)} of them end-of-text "
      f"tokens, {n_windows * T_win - len(packed)} padding in the last window "
      f"({(n_windows * T_win - len(packed)) / (n_windows * T_win):.1%})")

# %% [markdown]
# ### Show it: MiniMind's chat mask
#
# In supervised fine-tuning, MiniMind formats a conversation in the ChatML style with the two
# special tokens, and its dataset builds the loss mask by searching the token ids for the
# start of each assistant turn and for its end token: only the reply, closing token included,
# is trained. The function below does the same.

# %% tags=["nbval-check-output"]
conversation = ("<|im_start|>system\nYou are helpful.<|im_end|>\n"
                "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                "<|im_start|>assistant\n4.<|im_end|>\n")
chat_ids = bpe.encode(conversation)
opening = bpe.encode("<|im_start|>assistant\n")
closing = bpe.encode("<|im_end|>")


def reply_mask(ids, opening, closing):
    """True on the tokens of each assistant reply, its closing token included."""
    mask = [False] * len(ids)
    i = 0
    while i < len(ids):
        if ids[i : i + len(opening)] == opening:
            j = i + len(opening)
            while j < len(ids) and ids[j : j + len(closing)] != closing:
                mask[j] = True
                j += 1
            for k in range(j, min(j + len(closing), len(ids))):
                mask[k] = True
            i = j + len(closing)
        else:
            i += 1
    return mask


chat_mask = reply_mask(chat_ids, opening, closing)
print("trained on:", repr(bpe.decode([t for t, m in zip(chat_ids, chat_mask, strict=True) if m])))
print(f"{sum(chat_mask)} of {len(chat_ids)} tokens carry a loss")

# %% [markdown]
# (As a loss mask for next-token training it is applied to the *targets*: position $t$ is
# trained if token $t+1$ is part of a reply.)
#
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: in a packed window, may a token attend to the previous document?</strong></p>
#
# <details><summary>Answer</summary>
#
# With a plain causal mask it does: the first tokens of a document see the end of an
# unrelated one. Short-context pretraining usually accepts this (the end-of-text token tells
# the model that a new document starts). Llama 3 masks attention across document boundaries
# in packed sequences, and reports that it matters mostly for very long sequences (Llama
# Team, 2024). That mask is block-diagonal within the causal triangle; fused kernels accept
# it through the sequence boundaries (variable-length attention).
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: left or right padding?</strong></p>
#
# <details><summary>Answer</summary>
#
# For training a causal model, right padding is simplest: the pads come after the text, so the
# causal mask already keeps real tokens from seeing them (the check above). For *batched
# generation* left padding is used, so that every sequence's last real token sits in the last
# column and the new tokens are appended in one column; then the pads come first and need an
# attention mask (and position ids that start at the first real token).
#
# </details>
#
# </div>

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q3")

# %% [markdown]
# ## MM-Q4 · Why embeddings instead of one-hot vectors, and how wide?
#
# > A token id is an integer. Why does the model turn it into a learned vector of 512 numbers
# > instead of a one-hot vector of length 6,400? And why 512?

# %% [markdown]
# <details><summary>Hints</summary>
#
# - Multiply a one-hot row vector by a matrix $W$. What do you get?
# - Count the parameters of "one-hot then a linear layer" and of an embedding table.
# - Which rows of the embedding get a gradient from one batch?
# - Where do MiniMind's 26M parameters actually sit? Count them.
#
# </details>

# %% [markdown]
# **✍️ Your answer to MM-Q4**
#
# <div class="course-answer" data-question="MM-Q4">
#
# *Double-click this cell and write your answer here, before you open the answer below.*
#
# </div>

# %% [markdown]
# <details><summary>Answer</summary>
#
# An embedding **is** a one-hot vector times a matrix: $\text{onehot}(i)\,W = W_{i,:}$, row $i$
# of a learned $V \times d$ table. The two have exactly the same parameters and give the same
# output and the same gradient (only the rows of tokens in the batch get one). The embedding
# layer is just the efficient way to compute it: a row lookup costs $O(d)$ per token and no
# memory for the input, the matrix product $O(Vd)$ per token and a $V$-wide input that is all
# zeros but one.
#
# What makes the representation useful is that it is **dense and learned**. One-hot vectors
# are all orthogonal and equally far apart, so "a" is as different from "e" as from "%". After
# training, tokens that behave alike get nearby vectors, and everything the model learns
# about one of them transfers partly to its neighbours. The cells below show it on the
# course's small character model.
#
# **How wide?** $d$ is the width of the whole model, not only of the embedding: every
# attention and feed-forward matrix is $d \times$ something, so the non-embedding parameters
# grow like $12\,L\,d^2$ (classic MLP) while the embedding grows like $V d$. For MiniMind2-small
# ($d = 512$, $L = 8$, GQA with 2 KV heads, SwiGLU of width 1,408, tied embeddings) that gives
# 25,829,888 parameters, counted below. The choice of 512 is a budget decision: how many
# parameters (and FLOPs per token) the authors wanted to train, split between depth and
# width, with widths that are multiples of 64 so the matrix multiplications map well onto GPU
# tiles. Scaling studies find that, at a fixed parameter count, the loss depends only weakly
# on the exact shape (Kaplan et al., 2020).
#
# </details>

# %% [markdown]
# ### Show it: a one-hot product is a row lookup

# %% tags=["nbval-check-output"]
V_mm, d_mm = 6400, 512
W = torch.randn(V_mm, d_mm, device=device)
tokens = torch.randint(V_mm, (4, 128), device=device)  # (B, T)
one_hot = F.one_hot(tokens, V_mm).float()  # (B, T, V): all zeros but one 1 per row
print("one_hot(ids) @ W == W[ids] exactly:", torch.equal(one_hot @ W, W[tokens]))
emb = torch.nn.Embedding(V_mm, d_mm).to(device)
print("nn.Embedding is the same lookup:", torch.equal(emb(tokens), emb.weight[tokens]))
print(f"one-hot input: {one_hot.numel() * 4 / 1e6:.1f} MB for {tokens.numel()} tokens "
      f"(ids: {tokens.numel() * 8 / 1e3:.1f} kB)")

# %%
from utils.timing import best_time  # best of repeats: thread CPU time, or synced wall clock

t_matmul = 1e3 * best_time(lambda: F.one_hot(tokens, V_mm).float() @ W, device, max_repeat=5)
t_lookup = 1e3 * best_time(lambda: W[tokens], device, max_repeat=5)
print(f"one-hot matmul {t_matmul:.2f} ms, lookup {t_lookup:.3f} ms: "
      f"the lookup is about {t_matmul / t_lookup:.0f}x faster here (timings vary by machine)")

# %% [markdown]
# ### Show it: which rows get a gradient?
#
# One backward pass through the same one-hot product and through `nn.Embedding`: the
# gradients are identical, and only the rows of tokens that occur in the batch are non-zero.
# Then the same count inside a whole (small) GPT, with its output layer tied to the embedding
# and untied.

# %% tags=["nbval-check-output"]
W1 = torch.randn(V_mm, d_mm, device=device, requires_grad=True)
W2 = W1.detach().clone().requires_grad_(True)
upstream = torch.randn(4, 128, d_mm, device=device)
(F.one_hot(tokens, V_mm).float() @ W1 * upstream).sum().backward()
(F.embedding(tokens, W2) * upstream).sum().backward()
print("same gradient:", torch.allclose(W1.grad, W2.grad, atol=1e-5))
print("rows with a gradient:", int((W1.grad.abs().sum(1) > 0).sum()),
      " distinct tokens in the batch:", tokens.unique().numel())

for tie in (False, True):
    torch.manual_seed(0)
    gpt = TinyGPT(GPTConfig.nano(512, n_layers=1, d_model=64, tie_embeddings=tie)).to(device)
    batch = torch.randint(0, 256, (4, 32), device=device)  # ids 256..511 never occur
    inputs = batch[:, :-1]
    _, loss = gpt(inputs, batch[:, 1:])
    loss.backward()
    rows = int((gpt.tok_emb.weight.grad.abs().sum(1) > 0).sum())
    print(f"tie_embeddings={tie}: {rows} of 512 embedding rows get a gradient "
          f"({inputs.unique().numel()} distinct input tokens)")

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: the embedding's gradient</strong></p>
#
# The notes say one-hot inputs update only the rows of the tokens seen, while an embedding,
# "through attention, indirectly updates more words". The cell above shows otherwise: the two
# have the same gradient, and the input embedding of a token that is not in the batch gets
# exactly zero, whatever attention does downstream. Rows of unseen tokens are updated only
# when the matrix is *also* the output layer (tied embeddings, as in MiniMind): the softmax
# over the whole vocabulary then sends a gradient to every row.
#
# </div>

# %% [markdown]
# ### Show it: what the embedding of the trained model learnt
#
# The course's trained character model (4 layers, $d = 128$) has one 128-number vector per
# character. Its nearest neighbours by cosine similarity:

# %%
E = char_model.tok_emb.weight.detach().float()
E_unit = F.normalize(E, dim=1)
cos = E_unit @ E_unit.T
rows = []
for ch in ["a", "e", "T", "7", "(", "."]:
    i = char_tok_pre.stoi[ch]
    best = cos[i].topk(6).indices[1:].tolist()  # skip the character itself
    rows.append({"character": repr(ch),
                 "5 nearest (cosine)": ", ".join(f"{char_tok_pre.itos[j]!r} {cos[i, j]:.2f}"
                                                  for j in best)})
print(pd.DataFrame(rows).set_index("character").to_string())

# %% [markdown]
# Vowels sit near vowels, digits near digits, capitals near capitals, and brackets near
# punctuation: nobody told the model these categories, it found them because characters of
# a category are followed and preceded by similar things. One-hot vectors cannot express any
# of this: every pair is at cosine 0.
#
# ### Show it: where MiniMind's 26M parameters are
#
# `GPTConfig.minimind2_small()` is MiniMind2-small's configuration. Build it on PyTorch's
# `meta` device (shapes only, no memory) and count by component:

# %% tags=["nbval-check-output"]
mm_config = GPTConfig.minimind2_small()
with torch.device("meta"):
    minimind = TinyGPT(mm_config)
groups = {"embedding (tied with the output layer)": 0, "attention": 0, "feed-forward": 0,
          "norms": 0}
for name, p in minimind.named_parameters():
    if "emb" in name:
        groups["embedding (tied with the output layer)"] += p.numel()
    elif "attn" in name:
        groups["attention"] += p.numel()
    elif "ffn" in name or "mlp" in name:
        groups["feed-forward"] += p.numel()
    else:
        groups["norms"] += p.numel()
for group, n in groups.items():
    print(f"{group:40} {n:>12,}  {n / minimind.num_parameters():6.1%}")
print(f"{'total':40} {minimind.num_parameters():>12,}")
print("by hand:", 6400 * 512 + 8 * (512 * 512 * 2 + 512 * 128 * 2) + 8 * 3 * 512 * 1408
      + 8 * 2 * 512 + 512)

# %% [markdown]
# By hand: the embedding is $6400 \times 512$; each layer's attention has $W_Q$ and $W_O$ of
# $512 \times 512$ and, with 2 KV heads of width 64, $W_K$ and $W_V$ of $512 \times 128$; each
# SwiGLU has three $512 \times 1408$ matrices; each layer has two RMSNorm weight vectors, plus
# the final one. And the notes' version:

# %% tags=["nbval-check-output"]
notes = {"embedding 6400 x 512": 6400 * 512, "attention 4 x 512^2 x 8": 4 * 512**2 * 8,
         "FFN 2 x 512 x 1365 x 8": 2 * 512 * 1365 * 8}
for k, v in notes.items():
    print(f"{k:28} {v:>12,}")
print(f"{'sum':28} {sum(notes.values()):>12,}")
for name, n, layers, width in [("MiniMind2-small", minimind.num_parameters(), 8, 512),
                               ("GPT-2 small", 124_000_000, 12, 768),
                               ("LLaMA-7B", 6_700_000_000, 32, 4096)]:
    print(f"{name:16} width / sqrt(params) = {width / math.sqrt(n):.3f}, "
          f"sqrt(params / (12 x layers)) = {math.sqrt(n / (12 * layers)):,.0f} vs width {width}")

# %% [markdown]
# <div class="admonition warning course-box" style="border: 1px solid #d97706; border-left: 6px solid #d97706; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>⚠️ Misconception: "embeddings are used because they save memory"</strong></p>
#
# That was the first answer in the notes. The *parameters* are the same either way, $V \times
# d$ (the first cells of this section). What the lookup saves is the one-hot **input** (a
# 13 MB tensor for 512 tokens above, against 4 kB of ids) and the multiplication by zeros.
# The real point is the representation: a dense learned vector puts similar tokens close
# together, which one-hot vectors cannot.
#
# </div>

# %% [markdown]
# <div class="admonition error course-box" style="border: 1px solid #c2410c; border-left: 6px solid #c2410c; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>✏️ Correction to the notes: MiniMind's parameter budget and the "rules" for its width</strong></p>
#
# - The notes add 3.28M + 8.39M + 11.16M and call it "26M"; those three numbers sum to
#   22.8M, and two of them describe another model. MiniMind2-small's attention uses grouped
#   queries (8 query heads, 2 KV heads), so its attention has **5.24M** parameters, not
#   8.39M; its feed-forward network is a three-matrix SwiGLU of width 1,408, **17.30M**,
#   not a two-matrix MLP of width 1,365 (which would be 11.18M, not 11.16M). With the
#   3.28M tied embedding and 8,704 norm weights the total is **25,829,888**.
# - "hidden ≈ √params × constant" is not a rule: the printed ratio is 0.101, 0.069 and 0.050
#   for three models. What does hold is the count itself: most parameters are about
#   $12 L d^2$, so $d \approx \sqrt{\text{params}/(12L)}$, which depends on the depth $L$
#   the designer chose (the last column lands within about 20% of the true widths, not on
#   them, because embeddings and FFN shapes are left out of $12 L d^2$).
# - "64 dimensions distinguish $2^{64}$ directions" is not an argument either: a real vector
#   space of any dimension $\ge 2$ has infinitely many directions. What grows exponentially
#   with $d$ is the number of *nearly orthogonal* directions, and that is not what fixes 512.
#   The width is set by the compute and parameter budget, and by hardware-friendly multiples.
#
# </div>

# %% [markdown]
# ### Follow-ups
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: why may the input embedding and the output layer share one matrix?</strong></p>
#
# <details><summary>Answer</summary>
#
# The output layer scores every token by a dot product of the final hidden state with that
# token's row: $\text{logit}_i = h \cdot W_{i,:}$. The input embedding maps token $i$ to the
# same kind of row. Using one matrix for both (Press and Wolf, 2017; Inan et al., 2017) says
# "the vector a token is read as is the vector it is predicted by". It saves $V d$ parameters,
# 3.28M of MiniMind's 25.8M, and gives every row a gradient at every step (the cell above).
# Large models often untie them, because there $V d$ is a small share of the total.
#
# </details>
#
# </div>
#
# <div class="admonition tip course-box" style="border: 1px solid #15803d; border-left: 6px solid #15803d; border-radius: 4px; padding: 0.1em 1em; margin: 1em 0;">
# <p class="admonition-title"><strong>Follow-up: what would $V = 100{,}000$ do to MiniMind?</strong></p>
#
# <details><summary>Answer</summary>
#
# The embedding would grow from 3.28M to 51.2M parameters, 2.27 times all the rest of the
# model (22.55M): most of the parameters would sit in a table of which each
# step touches only the rows of the tokens in the batch (and, tied, the output softmax would
# cost $100{,}000 \times 512$ multiply-adds per token). The cell below computes it.
#
# </details>
#
# </div>

# %% tags=["nbval-check-output"]
rest = minimind.num_parameters() - 6400 * 512
print(f"non-embedding parameters: {rest:,}; a 100,000 x 512 embedding: {100_000 * 512:,} "
      f"= {100_000 * 512 / rest:.2f} times the rest")

# %% [markdown]
# ### Check yourself

# %% tags=["remove-input"]
quiz("MM-Q4")

# %% [markdown]
# ## Build it yourself
#
# Write the masked next-token loss of MM-Q3 in the cell below. It must
#
# - take `logits` of shape `(B, T, V)`, `targets` of shape `(B, T)` (token ids; where the mask
#   is False they are padding, any id) and a boolean `loss_mask` of shape `(B, T)`;
# - return one number (a 0-dim tensor in the dtype of `logits`): the cross-entropy averaged
#   over the positions where the mask is True, every such token weighing the same.
#
# The checker tries it on batches with and without padding, sequences of very different
# lengths, a chat-style mask in the middle of a sequence and large logits. As committed, the
# stub raises `NotImplementedError`, and the checker says so.

# %%
def my_masked_loss(logits, targets, loss_mask):
    """Your masked next-token loss: a 0-dim tensor."""
    # 1. the cross-entropy of every position: (B, T)
    # 2. keep only the positions where loss_mask is True
    # 3. average over those positions (of the whole batch)
    raise NotImplementedError("replace this line with your implementation")


# %%
from utils.checks import check_masked_loss

check_masked_loss(my_masked_loss)

# %% [markdown]
# <details><summary>A solution (open it after you have tried)</summary>
#
# ```python
# def my_masked_loss(logits, targets, loss_mask):
#     nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
#     return (nll * loss_mask).sum() / loss_mask.sum()
# ```
#
# `F.cross_entropy` wants the classes in dimension 1, hence the transpose; it works with
# `log_softmax`, so large logits do not overflow. Setting masked targets to $-100$ and using
# `ignore_index=-100` is the other common way (it is what `TinyGPT.forward` does).
#
# </details>

# %% [markdown]
# ## What `utils` holds
#
# `utils.tokenizer` holds the tokenizer of this chapter: `BPETokenizer.train` (with special
# tokens), `encode`/`decode`, `save`/`load` in Hugging Face's `tokenizer.json` format (so
# MiniMind's 6,400-token tokenizer loads too), and `pre_tokenize`, the GPT-2 regex. Its tests
# check it against the `tokenizers` library and a brute-force trainer. `utils.data` holds
# `get_batch` (the shift of MM-Q2) and `pad_batch` (padding and the loss mask of MM-Q3), and
# `TinyGPT.forward` accepts a `loss_mask`. Here `pad_batch` and the model's masked loss agree
# with the per-token average computed by hand above:

# %% tags=["nbval-check-output"]
with torch.no_grad():
    _, model_loss = char_model(inp, tgt.clamp(min=0), loss_mask=mask)
print("TinyGPT's masked loss == the per-token average:",
      torch.allclose(model_loss, per_token, atol=1e-5))

# %% [markdown]
# ## Summary
#
# - **MM-Q1** Tokens are groups of bytes. A larger vocabulary shortens the sequence (fewer
#   tokens per character, quadratically cheaper attention) and grows the embedding linearly;
#   the gain in length flattens after the first thousand or so merges, and a tokenizer only
#   compresses the kind of text it was trained on.
# - **MM-Q2** Output $t$ sees tokens $\le t$, so its target must be token $t+1$. A target the
#   model can see (no shift, reversed shift) is learnt by copying: a low training loss and a
#   useless model.
# - **MM-Q3** The mask removes positions without a real next token (padding, the last token,
#   and in chat fine-tuning the prompt); per-token and per-sequence averages weigh sentences
#   differently; padding costs compute that a mask does not save, packing with an
#   end-of-text token wastes almost nothing.
# - **MM-Q4** An embedding is a one-hot product computed as a lookup: same parameters, same
#   gradient, far cheaper. Its value is a dense learned geometry. MiniMind2-small has
#   25,829,888 parameters, two thirds of them in its SwiGLU layers.
#
# Next: training the tiny GPT (MM-Q8 to Q10).
#
# ## References
#
# - Gage, P. (1994). *A New Algorithm for Data Compression*. The C Users Journal 12(2).
# - Sennrich, R., Haddow, B., Birch, A. (2016). *Neural Machine Translation of Rare Words with
#   Subword Units*. ACL. arXiv:1508.07909.
# - Radford, A. et al. (2019). *Language Models are Unsupervised Multitask Learners* (GPT-2,
#   byte-level BPE; GPT-2 small has about 124M parameters). OpenAI technical report.
# - Xue, L. et al. (2022). *ByT5: Towards a Token-Free Future with Pre-trained Byte-to-Byte
#   Models*. TACL. arXiv:2105.13626.
# - Williams, R. J., Zipser, D. (1989). *A Learning Algorithm for Continually Running Fully
#   Recurrent Neural Networks*. Neural Computation 1(2). (Teacher forcing.)
# - Press, O., Wolf, L. (2017). *Using the Output Embedding to Improve Language Models*. EACL.
#   arXiv:1608.05859.
# - Inan, H., Khosravi, K., Socher, R. (2017). *Tying Word Vectors and Word Classifiers: A Loss
#   Framework for Language Modeling*. ICLR. arXiv:1611.01462.
# - Kaplan, J. et al. (2020). *Scaling Laws for Neural Language Models*. arXiv:2001.08361.
# - Touvron, H. et al. (2023). *LLaMA: Open and Efficient Foundation Language Models*.
#   arXiv:2302.13971. (LLaMA-7B: 6.7B parameters, 32 layers, width 4096.)
# - Llama Team, AI @ Meta (2024). *The Llama 3 Herd of Models*. arXiv:2407.21783.
# - Gong, J. (2024). *MiniMind: train a 26M-parameter GPT from scratch*. GitHub repository
#   jingyaogong/minimind. (Tokenizer, configuration, pretraining and SFT data format.)
