"""check_multihead_attention: correct solutions pass, each typical mistake is named."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.attention import MultiHeadAttention
from utils.checks import check_multihead_attention


def mha_explicit(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, C = x.shape
    D = C // n_heads
    q, k, v = (
        (x @ w).view(B, T, n_heads, D).transpose(1, 2) for w in (w_q, w_k, w_v)
    )
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, C) @ w_o


def mha_loop(x, w_q, w_k, w_v, w_o, n_heads):
    """A Python loop over heads with the fused kernel: written differently, also right."""
    D = x.shape[-1] // n_heads
    outs = []
    for h in range(n_heads):
        cols = slice(h * D, (h + 1) * D)
        outs.append(F.scaled_dot_product_attention(
            x @ w_q[:, cols], x @ w_k[:, cols], x @ w_v[:, cols], is_causal=True))
    return torch.cat(outs, dim=-1) @ w_o


def mha_module(x, w_q, w_k, w_v, w_o, n_heads):
    """The course's nn.Module, loaded with the weights (nn.Linear stores them transposed)."""
    layer = MultiHeadAttention(x.shape[-1], n_heads)
    with torch.no_grad():
        for linear, w in ((layer.q_proj, w_q), (layer.k_proj, w_k), (layer.v_proj, w_v),
                          (layer.o_proj, w_o)):
            linear.weight.copy_(w.T)
        return layer(x, causal=True)


def mha_no_split(x, w_q, w_k, w_v, w_o, n_heads):
    return mha_explicit(x, w_q, w_k, w_v, w_o, 1)


def mha_scale_c(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, C = x.shape
    D = C // n_heads
    q, k, v = ((x @ w).view(B, T, n_heads, D).transpose(1, 2) for w in (w_q, w_k, w_v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(C)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, C) @ w_o


def mha_bad_reshape(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, C = x.shape
    D = C // n_heads
    q, k, v = ((x @ w).reshape(B, n_heads, T, D) for w in (w_q, w_k, w_v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return (torch.softmax(scores, -1) @ v).reshape(B, T, C) @ w_o


def mha_no_mask(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, C = x.shape
    D = C // n_heads
    q, k, v = ((x @ w).view(B, T, n_heads, D).transpose(1, 2) for w in (w_q, w_k, w_v))
    y = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), -1) @ v
    return y.transpose(1, 2).reshape(B, T, C) @ w_o


def mha_no_wo(x, w_q, w_k, w_v, w_o, n_heads):
    return mha_explicit(x, w_q, w_k, w_v, torch.eye(x.shape[-1], dtype=x.dtype), n_heads)


def mha_heads_out(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, C = x.shape
    D = C // n_heads
    q, k, v = ((x @ w).view(B, T, n_heads, D).transpose(1, 2) for w in (w_q, w_k, w_v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def mha_in_place(x, w_q, w_k, w_v, w_o, n_heads):
    x /= 1.0 + 1e-3  # modifies the caller's tensor
    return mha_explicit(x, w_q, w_k, w_v, w_o, n_heads)


def mha_float64(x, w_q, w_k, w_v, w_o, n_heads):
    return mha_explicit(x.double(), w_q.double(), w_k.double(), w_v.double(), w_o.double(),
                        n_heads)


def mha_raises(x, w_q, w_k, w_v, w_o, n_heads):
    return x @ w_q @ torch.zeros(3, 3)


def mha_returns_none(x, w_q, w_k, w_v, w_o, n_heads):
    mha_explicit(x, w_q, w_k, w_v, w_o, n_heads)


def mha_stub(x, w_q, w_k, w_v, w_o, n_heads):
    raise NotImplementedError("replace this line with your implementation")


def _text(fn) -> str:
    result = check_multihead_attention(fn)
    return repr(result)


def test_correct_solutions_pass() -> None:
    for fn in (mha_explicit, mha_loop, mha_module):
        result = check_multihead_attention(fn)
        assert result.passed, repr(result)


def test_each_mistake_gets_its_hint() -> None:
    expected = {
        mha_no_split: "split q, k and v into n_heads heads",
        mha_scale_c: "not by 1 / sqrt(C)",
        mha_bad_reshape: "mixes tokens across heads",
        mha_no_mask: "causal mask",
        mha_no_wo: "output projection w_o",
        mha_heads_out: "put the heads back side by side",
    }
    for fn, phrase in expected.items():
        result = check_multihead_attention(fn)
        assert not result.passed, fn.__name__
        assert phrase in repr(result), (fn.__name__, repr(result))


def test_exceptions_none_dtype_and_in_place_edits_are_named() -> None:
    assert "NotImplementedError" in _text(mha_stub)
    raised = _text(mha_raises)
    assert "RuntimeError" in raised and "mha_raises" in raised  # the reader's line is shown
    assert "returned None" in _text(mha_returns_none)
    assert "Wrong dtype" in _text(mha_float64)
    assert "in place" in _text(mha_in_place)
    assert "needs your function" in _text(None)
    assert "cannot be called" in _text(lambda x: x)


def test_the_checker_never_shows_the_solution() -> None:
    text = _text(mha_no_split)
    assert "def " not in text and "masked_fill(" not in text
