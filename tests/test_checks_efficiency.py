"""Tests for check_tiled_attention: correct loops pass, each typical mistake gets its own hint."""

from __future__ import annotations

import math

import torch

from utils.checks import check_tiled_attention
from utils.flash import tiled_attention


def tiled(q, k, v, block_size):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype)
    total = torch.zeros((*q.shape[:-1], 1), dtype=q.dtype)
    acc = torch.zeros((*q.shape[:-1], v.shape[-1]), dtype=q.dtype)
    for j in range(0, k.shape[-2], block_size):
        s = q @ k[..., j:j + block_size, :].transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        alpha = torch.exp(m - m_new)
        total = alpha * total + p.sum(-1, keepdim=True)
        acc = alpha * acc + p @ v[..., j:j + block_size, :]
        m = m_new
    return acc / total


def utils_version(q, k, v, block_size):
    return tiled_attention(q, k, v, block_q=3, block_k=block_size)


def full_matrix(q, k, v, block_size):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v


def no_output_rescale(q, k, v, block_size):
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full((*q.shape[:-1], 1), float("-inf"))
    total = torch.zeros((*q.shape[:-1], 1))
    acc = torch.zeros((*q.shape[:-1], v.shape[-1]))
    for j in range(0, k.shape[-2], block_size):
        s = q @ k[..., j:j + block_size, :].transpose(-2, -1) * scale
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        total = torch.exp(m - m_new) * total + p.sum(-1, keepdim=True)
        acc = acc + p @ v[..., j:j + block_size, :]
        m = m_new
    return acc / total


def naive_exp(q, k, v, block_size):
    num = torch.zeros((*q.shape[:-1], v.shape[-1]))
    den = torch.zeros((*q.shape[:-1], 1))
    for j in range(0, k.shape[-2], block_size):
        e = torch.exp(q @ k[..., j:j + block_size, :].transpose(-2, -1) / math.sqrt(q.shape[-1]))
        num = num + e @ v[..., j:j + block_size, :]
        den = den + e.sum(-1, keepdim=True)
    return num / den


def unscaled(q, k, v, block_size):
    return tiled(q * math.sqrt(q.shape[-1]), k, v, block_size)


def in_place(q, k, v, block_size):
    q /= 1.0
    k.mul_(1.0)
    k[..., 0, 0] += 1.0
    return tiled(q, k, v, block_size)


def as_float64(q, k, v, block_size):
    return tiled(q.double(), k.double(), v.double(), block_size)


def returns_none(q, k, v, block_size):
    tiled(q, k, v, block_size)


def stub(q, k, v, block_size):
    raise NotImplementedError("replace this line with your implementation")


def _text(result) -> str:
    return "\n".join(result.messages)


def test_correct_versions_pass():
    for fn in (tiled, utils_version):
        result = check_tiled_attention(fn)
        assert result.passed, _text(result)
        assert "no full score matrix" in _text(result)


def test_full_matrix_is_named():
    result = check_tiled_attention(full_matrix)
    assert not result.passed
    assert "full score matrix" in _text(result) and "(2, 24, 40)" in _text(result)


def test_missing_rescale_gets_its_hint():
    result = check_tiled_attention(no_output_rescale)
    assert not result.passed
    assert "multiply the running output by exp(m_old - m_new)" in _text(result)


def test_overflow_is_reported():
    result = check_tiled_attention(naive_exp)
    assert not result.passed
    assert "scores in the hundreds" in _text(result)
    assert "NaN" in _text(result) or "Inf" in _text(result)


def test_missing_scale():
    result = check_tiled_attention(unscaled)
    assert not result.passed and "sqrt(d)" in _text(result)


def test_in_place_dtype_none_stub_and_not_callable():
    assert "in place" in _text(check_tiled_attention(in_place))
    assert "Wrong dtype" in _text(check_tiled_attention(as_float64))
    assert "returned None" in _text(check_tiled_attention(returns_none))
    text = _text(check_tiled_attention(stub))
    assert "NotImplementedError" in text and "test_checks_efficiency.py" in text
    assert "run the cell" in _text(check_tiled_attention(None))
