"""Tests of utils.moe against independent references: the dense MLP, brute-force routing."""

from __future__ import annotations

import math

import pytest
import torch

from utils.model import MLP, GPTConfig, TinyGPT
from utils.moe import (
    MoEFFN,
    dense_gates,
    expert_capacity,
    load_balancing_loss,
    moe_aux_loss,
    top_k_gates,
    use_moe,
)


def test_one_expert_equals_the_dense_ffn():
    torch.manual_seed(0)
    moe = MoEFFN(16, 32, n_experts=1, top_k=1)
    dense = MLP(16, 32)
    dense.load_state_dict(moe.experts[0].state_dict())
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(moe(x), dense(x))
    assert moe.dropped == 0.0 and moe.load.tolist() == [15]


@pytest.mark.parametrize("k", [1, 2, 4])
def test_routing_weights_sum_to_one_and_pick_the_largest(k):
    torch.manual_seed(1)
    logits = torch.randn(50, 4)
    weights, indices = top_k_gates(logits, k)
    torch.testing.assert_close(weights.sum(-1), torch.ones(50))
    gates = dense_gates(logits, k)
    torch.testing.assert_close(gates.sum(-1), torch.ones(50))
    # brute force: the chosen experts are the k largest logits, weights = renormalised softmax
    for row, g in zip(logits, gates, strict=True):
        best = sorted(range(4), key=lambda e: -row[e].item())[:k]
        assert set(torch.nonzero(g).flatten().tolist()) == set(best)
        p = torch.softmax(row, -1)
        torch.testing.assert_close(g[best], p[best] / p[best].sum())


def test_top_k_rejects_bad_k():
    with pytest.raises(ValueError):
        top_k_gates(torch.randn(2, 3), 4)
    with pytest.raises(ValueError):
        MoEFFN(8, 8, n_experts=2, top_k=3)


def test_aux_loss_is_minimal_for_a_uniform_load():
    n, E = 60, 3
    uniform_probs = torch.full((n, E), 1 / E)
    balanced = torch.arange(n).remainder(E)[:, None]
    assert load_balancing_loss(uniform_probs, balanced).item() == pytest.approx(1.0)
    # brute force over every load (a, b, c) of 60 tokens, with router probabilities equal to
    # the load (a confident router): the loss is E * sum f_i^2, smallest at the uniform load
    losses = {}
    for a in range(0, n + 1, 5):
        for b in range(0, n - a + 1, 5):
            counts = [a, b, n - a - b]
            idx = torch.cat([torch.full((c, 1), e) for e, c in enumerate(counts)])
            probs = torch.zeros(n, E).scatter(1, idx, 1.0)
            losses[tuple(counts)] = load_balancing_loss(probs, idx).item()
    assert min(losses, key=losses.get) == (20, 20, 20)
    assert min(losses.values()) == pytest.approx(1.0)
    assert losses[(60, 0, 0)] == pytest.approx(E)  # collapse onto one expert: the maximum


def test_aux_loss_matches_the_formula_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.25, 0.25]])
    idx = torch.tensor([[0], [1], [0], [0]])
    f = [3 / 4, 1 / 4, 0.0]
    p = probs.mean(0).tolist()
    expected = 3 * sum(a * b for a, b in zip(f, p, strict=True))
    assert load_balancing_loss(probs, idx).item() == pytest.approx(expected)


def test_moe_equals_a_brute_force_per_token_loop():
    torch.manual_seed(3)
    moe = MoEFFN(8, 16, n_experts=4, top_k=2)
    x = torch.randn(2, 6, 8)
    out = moe(x)
    flat = x.reshape(-1, 8)
    weights, indices = top_k_gates(moe.router(flat), 2)
    ref = torch.stack([
        sum(w * moe.experts[int(e)](t[None])[0]
            for w, e in zip(weights[i], indices[i], strict=True))
        for i, t in enumerate(flat)
    ])
    torch.testing.assert_close(out.reshape(-1, 8), ref)
    assert moe.load.sum().item() == 12 * 2


def test_capacity_drops_the_later_tokens_of_an_overloaded_expert():
    torch.manual_seed(4)
    moe = MoEFFN(8, 16, n_experts=2, top_k=1, capacity_factor=1.0)
    with torch.no_grad():  # a router that sends every token to expert 0
        moe.router.weight.zero_()
        moe.router.weight[0, 0] = 10.0
    x = torch.randn(10, 8)
    x[:, 0] = x[:, 0].abs() + 1.0
    out = moe(x)
    cap = expert_capacity(10, 2, 1, 1.0)
    assert cap == 5
    torch.testing.assert_close(out[:cap], moe.experts[0](x[:cap]))  # weight 1 with top-1
    assert bool((out[cap:] == 0).all())  # dropped: only the residual carries them on
    assert moe.dropped == pytest.approx(0.5)
    assert moe.load.tolist() == [10, 0]


def test_capacity_formula():
    assert expert_capacity(100, 8, 2, 1.25) == math.ceil(1.25 * 100 * 2 / 8)
    assert expert_capacity(7, 4, 1, 1.0) == 2


def test_use_moe_trains_and_sums_aux_losses():
    torch.manual_seed(5)
    cfg = GPTConfig(vocab_size=11, d_model=16, n_layers=2, n_heads=2, context_length=8,
                    ffn="gelu", d_ff=32)
    model = use_moe(TinyGPT(cfg), n_experts=4, top_k=1)
    idx = torch.randint(0, 11, (3, 8))
    _, loss = model(idx, idx)
    aux = moe_aux_loss(model)
    assert aux.item() >= 2 * (1.0 - 1e-6)  # two layers, each >= 1 for top-1
    (loss + 0.01 * aux).backward()
    assert model.blocks[0].ffn.router.weight.grad is not None
    with pytest.raises(ValueError):
        use_moe(TinyGPT(GPTConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2)), 2)
