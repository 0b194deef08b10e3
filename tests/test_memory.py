"""Tests of utils.memory: saved-activation bytes against hand counts and linearity."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from utils.memory import (
    SavedTensorCounter,
    activation_bytes,
    cuda_peak_bytes,
    training_state_bytes,
)


def test_counts_what_autograd_saves_for_a_known_graph() -> None:
    # y = relu(x @ w): matmul saves x (w is excluded), relu saves its output
    x = torch.randn(8, 16, requires_grad=True)
    w = torch.randn(16, 32, requires_grad=True)
    with SavedTensorCounter([w]) as counter:
        y = torch.relu(x @ w)
    assert counter.bytes == x.nbytes + y.nbytes
    # without the exclusion the weight counts too
    with SavedTensorCounter() as counter:
        torch.relu(x @ w)
    assert counter.bytes == x.nbytes + w.nbytes + y.nbytes


def test_a_storage_saved_twice_counts_once() -> None:
    x = torch.randn(10, requires_grad=True)
    with SavedTensorCounter() as counter:
        y = x * x  # mul saves both operands: the same tensor
    assert counter.n_saved == 2 and counter.bytes == x.nbytes
    y.sum().backward()  # the hooks gave the tensors back unchanged
    torch.testing.assert_close(x.grad, 2 * x.detach())


def test_nothing_is_saved_without_grad() -> None:
    with torch.no_grad(), SavedTensorCounter() as counter:
        torch.randn(4, 4, requires_grad=True).exp()
    assert counter.bytes == 0
    model = tiny_model()
    with torch.no_grad(), pytest.raises(ValueError, match="no_grad"):
        activation_bytes(model, torch.zeros(1, 4, dtype=torch.long))


def test_model_activations_grow_linearly_with_tokens() -> None:
    model = tiny_model()
    V, ctx = model.config.vocab_size, model.config.context_length

    def measure(B: int, T: int) -> int:
        x = torch.randint(V, (B, T), generator=torch.Generator().manual_seed(0))
        return activation_bytes(model, x, x)
    half = ctx // 2
    per_sequence = measure(2, half) - measure(1, half)
    assert per_sequence > 0
    # parameters and buffers (RoPE tables) are excluded, so the count is affine in B * T with
    # a constant of a few bytes (the loss's scalars)
    assert measure(4, half) == measure(1, half) + 3 * per_sequence
    assert measure(1, ctx) == measure(2, half)
    assert 0 <= measure(1, half) - per_sequence < 64


def test_training_state_bytes() -> None:
    model = tiny_model()
    n = model.num_parameters()
    assert training_state_bytes(model) == {"weights": 4 * n, "gradients": 4 * n,
                                           "optimizer": 8 * n}


def test_cuda_peak_needs_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        cuda_peak_bytes(lambda: None, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_sees_an_allocation() -> None:
    size = 64 * 2**20
    peak = cuda_peak_bytes(lambda: torch.empty(size, dtype=torch.uint8, device="cuda"))
    assert peak >= size
