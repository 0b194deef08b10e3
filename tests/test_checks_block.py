"""Tests for check_block: correct blocks pass, each typical mistake gets its own hint."""

from __future__ import annotations

import torch

from utils.checks import check_block
from utils.model import GPTConfig, TinyGPT


def block(x, attn, ffn, norm1, norm2):
    h = x + attn(norm1(x))
    return h + ffn(norm2(h))


def block_other_style(x, attn, ffn, norm1, norm2):
    out = x.clone()
    out = out + attn(norm1(out))
    return torch.add(out, ffn(norm2(out)))


def post_norm(x, attn, ffn, norm1, norm2):
    h = norm1(x + attn(x))
    return norm2(h + ffn(h))


def no_residual(x, attn, ffn, norm1, norm2):
    return ffn(norm2(attn(norm1(x))))


def parallel(x, attn, ffn, norm1, norm2):
    return x + attn(norm1(x)) + ffn(norm2(x))


def normalised_stream(x, attn, ffn, norm1, norm2):
    x = norm1(x)
    x = x + attn(x)
    x = norm2(x)
    return x + ffn(x)


def swapped_norms(x, attn, ffn, norm1, norm2):
    return block(x, attn, ffn, norm2, norm1)


def in_place(x, attn, ffn, norm1, norm2):
    x += attn(norm1(x))
    return x + ffn(norm2(x))


def as_float32(x, attn, ffn, norm1, norm2):
    return block(x, attn, ffn, norm1, norm2).float()


def returns_none(x, attn, ffn, norm1, norm2):
    block(x, attn, ffn, norm1, norm2)


def raises(x, attn, ffn, norm1, norm2):
    raise NotImplementedError("replace this line with your implementation")


def _text(result) -> str:
    return "\n".join(result.messages)


def test_correct_blocks_pass():
    for fn in (block, block_other_style):
        result = check_block(fn)
        assert result.passed, _text(result)


def test_the_utils_block_passes_when_wrapped():
    # the model's own pre-norm Block, with its sublayers handed in, is a correct solution
    config = GPTConfig.nano(10, d_model=8, n_heads=2)
    ref = TinyGPT(config).blocks[0]

    def with_model_code(x, attn, ffn, norm1, norm2):
        ref.attn, ref.ffn, ref.norm1, ref.norm2 = attn, ffn, norm1, norm2
        return ref.forward.__func__(ref, x)  # type: ignore[attr-defined]

    class _Wrap(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.f = f

        def forward(self, x, **_):
            return self.f(x)

    def wrapped(x, attn, ffn, norm1, norm2):
        return with_model_code(x, _Wrap(attn), _Wrap(ffn), _Wrap(norm1), _Wrap(norm2))

    result = check_block(wrapped)
    assert result.passed, _text(result)


def test_each_mistake_is_named():
    expected = {
        post_norm: "Post-LN",
        no_residual: "residual additions are missing",
        parallel: "FFN reads the stream after attention",
        normalised_stream: "stays unnormalised",
        swapped_norms: "norms are swapped",
    }
    for fn, phrase in expected.items():
        result = check_block(fn)
        assert not result.passed
        assert phrase in _text(result), (fn.__name__, _text(result))


def test_generic_failures():
    assert "in place" in _text(check_block(in_place))
    assert "dtype" in _text(check_block(as_float32))
    assert "None" in _text(check_block(returns_none))
    assert "NotImplementedError" in _text(check_block(raises))
    assert "got None" in _text(check_block(None))
    assert not check_block(lambda x: x).passed  # wrong signature


def test_checker_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    check_block(block)
    assert torch.equal(torch.rand(1), before)
