"""Sampling filters against brute force, and cached generation against uncached generation."""

import itertools

import pytest
import torch
from tiny_models import tiny_model

from utils.generation import generate, sample_next_token, top_k_filter, top_p_filter

# -----------------------------------------------------------------------------
# filters


def brute_force_nucleus(probs: list[float], p: float) -> set[int]:
    """Among all subsets with mass >= p, the smallest; among those, the most probable."""
    n = len(probs)
    for size in range(1, n + 1):
        subsets = itertools.combinations(range(n), size)
        best = max(subsets, key=lambda s: sum(probs[i] for i in s))
        if sum(probs[i] for i in best) >= p - 1e-12:  # float sums of all probs may miss 1.0
            return set(best)
    raise AssertionError("unreachable: the full set has mass 1")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
def test_top_p_keeps_smallest_set_with_enough_mass(seed: int, p: float) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(7, generator=g, dtype=torch.float64) * 2
    probs = torch.softmax(logits, -1).tolist()
    kept = torch.isfinite(top_p_filter(logits, p)).nonzero().flatten().tolist()
    assert set(kept) == brute_force_nucleus(probs, p)


def test_top_p_stops_as_soon_as_mass_reaches_p_exactly() -> None:
    # dyadic probabilities are exact in float32, so the ">= p" boundary is really tested
    logits = torch.log(torch.tensor([0.25, 0.5, 0.125, 0.125]))
    for p, n_kept in [(0.5, 1), (0.5001, 2), (0.75, 2), (0.7499, 2), (0.76, 3)]:
        kept = torch.isfinite(top_p_filter(logits, p))
        assert kept.sum().item() == n_kept, f"p={p}"
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


def test_top_p_works_on_batches_and_keeps_kept_logits_unchanged() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    out = top_p_filter(logits, 0.6)
    inf = float("-inf")
    expected = torch.tensor([[logits[0, 0], logits[0, 1], inf], [inf, inf, logits[1, 2]]])
    torch.testing.assert_close(out, expected)
    # p tiny: still keeps the single most likely token
    assert torch.isfinite(top_p_filter(logits, 1e-9)).sum(-1).tolist() == [1, 1]


def test_top_k_keeps_k_largest() -> None:
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [1, 3]
    torch.testing.assert_close(out[0, [1, 3]], logits[0, [1, 3]])
    assert torch.isfinite(top_k_filter(logits, 100)).all()  # k > V keeps all


def test_filters_reject_bad_arguments() -> None:
    logits = torch.randn(2, 5)
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        top_k_filter(logits, 0)
    for bad_p in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"top_p must be in \(0, 1\], got {bad_p}"):
            top_p_filter(logits, bad_p)


# -----------------------------------------------------------------------------
# sampling


def test_temperature_zero_is_argmax() -> None:
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    out = sample_next_token(logits, temperature=0.0)
    assert out.shape == (4, 1) and out.dtype == torch.long
    assert torch.equal(out[:, 0], logits.argmax(-1))


def test_seeded_sampling_is_reproducible_and_respects_filters() -> None:
    logits = torch.randn(3, 20, generator=torch.Generator().manual_seed(0))
    draws = [
        sample_next_token(logits, 1.5, top_k=5, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    allowed = logits.topk(5, dim=-1).indices
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        tok = sample_next_token(logits, 2.0, top_k=5, generator=g)
        assert (allowed == tok).any(-1).all()


def test_sampling_frequencies_follow_softmax() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(4000, 3)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next_token(logits, generator=g)[:, 0], minlength=3)
    assert (counts / 4000).tolist() == pytest.approx([0.6, 0.3, 0.1], abs=0.03)
    # temperature 0.5 squares the ratios: p ~ (0.36, 0.09, 0.01) / 0.46
    counts = torch.bincount(sample_next_token(logits, 0.5, generator=g)[:, 0], minlength=3)
    expected = [0.36 / 0.46, 0.09 / 0.46, 0.01 / 0.46]
    assert (counts / 4000).tolist() == pytest.approx(expected, abs=0.03)


def test_sample_next_token_rejects_bad_arguments() -> None:
    logits = torch.randn(2, 5)
    with pytest.raises(ValueError, match="temperature must be >= 0, got -1"):
        sample_next_token(logits, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        sample_next_token(logits, top_k=0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 1.2"):
        sample_next_token(logits, top_p=1.2)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, V\)"):
        sample_next_token(torch.randn(5))


# -----------------------------------------------------------------------------
# generation


@pytest.mark.parametrize(
    "overrides",
    [dict(n_kv_heads=2), dict(n_kv_heads=1), dict(position="learned"), dict(position="sinusoidal")],
)
def test_greedy_generation_with_and_without_cache_agree(overrides: dict) -> None:
    model = tiny_model(**overrides)
    prompt = torch.randint(0, 13, (2, 4), generator=torch.Generator().manual_seed(1))
    # 4 + 20 tokens: runs past the 16-token context, so the sliding window is tested too
    cached = generate(model, prompt, 20, temperature=0.0, use_cache=True)
    uncached = generate(model, prompt, 20, temperature=0.0, use_cache=False)
    assert cached.shape == (2, 24)
    assert torch.equal(cached[:, :4], prompt)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0, 4:].tolist())) > 1  # not a degenerate constant sequence


def test_seeded_sampled_generation_is_reproducible_with_and_without_cache() -> None:
    model = tiny_model(n_kv_heads=2)
    prompt = torch.zeros(3, 1, dtype=torch.long)

    def run(use_cache: bool) -> torch.Tensor:
        g = torch.Generator().manual_seed(123)
        return generate(
            model, prompt, 10, 0.8, top_k=8, top_p=0.9, use_cache=use_cache, generator=g
        )

    assert torch.equal(run(True), run(True))
    assert torch.equal(run(True), run(False))


def test_generate_restores_training_mode_and_validates() -> None:
    model = tiny_model(dropout=0.1).train()
    generate(model, torch.zeros(1, 2, dtype=torch.long), 3)
    assert model.training
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0, got -1"):
        generate(model, torch.zeros(1, 2, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, torch.zeros(1, 2, dtype=torch.long), 0, temperature=-0.5)
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\) with T >= 1"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)
