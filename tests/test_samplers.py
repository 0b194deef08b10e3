"""Min-p and the repetition penalty against brute-force references, and in generate()."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_model

from utils.generation import (
    apply_repetition_penalty,
    generate,
    min_p_filter,
    sample_next_token,
)


def brute_min_p(logits: list[float], min_p: float) -> set[int]:
    exps = [math.exp(x) for x in logits]
    probs = [e / sum(exps) for e in exps]
    return {i for i, p in enumerate(probs) if p >= min_p * max(probs) - 1e-12}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
def test_min_p_keeps_tokens_above_a_fraction_of_the_top(seed: int, min_p: float) -> None:
    logits = torch.randn(9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = min_p_filter(logits * 2, min_p)
    kept = {i for i in range(9) if out[i] > float("-inf")}
    assert kept == brute_min_p((logits * 2).tolist(), min_p)
    assert torch.equal(out[list(kept)], (logits * 2)[list(kept)])  # kept logits unchanged


def test_min_p_on_batches_and_validates() -> None:
    logits = torch.tensor([[0.0, math.log(0.5), math.log(0.09)], [math.log(0.01), 0.0, -1.0]])
    out = min_p_filter(logits, 0.1)
    assert (out > float("-inf")).tolist() == [[True, True, False], [False, True, True]]
    with pytest.raises(ValueError, match="min_p"):
        min_p_filter(logits, 1.5)


def brute_penalty(logits: list[float], seen: list[int], penalty: float) -> list[float]:
    out = list(logits)
    for i in set(seen):
        out[i] = out[i] / penalty if out[i] > 0 else out[i] * penalty
    return out


def test_repetition_penalty_matches_the_ctrl_rule() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, generator=g, dtype=torch.float64)
    prev = torch.randint(0, 10, (3, 6), generator=g)
    out = apply_repetition_penalty(logits, prev, 1.3)
    for b in range(3):
        expected = brute_penalty(logits[b].tolist(), prev[b].tolist(), 1.3)
        torch.testing.assert_close(out[b], torch.tensor(expected, dtype=torch.float64))
    # every seen logit drops, whatever its sign, so it loses against every unseen token
    for b in range(3):
        for i in set(prev[b].tolist()):
            assert out[b, i] < logits[b, i]
    assert torch.equal(apply_repetition_penalty(logits, prev, 1.0), logits)
    with pytest.raises(ValueError, match="repetition_penalty"):
        apply_repetition_penalty(logits, prev, 0.5)


def test_sample_next_token_with_min_p_and_penalty() -> None:
    logits = torch.tensor([[3.0, 2.9, -5.0, 1.0]])
    # greedy with a penalty on token 0 picks token 1
    prev = torch.tensor([[0]])
    assert sample_next_token(logits, 0.0, repetition_penalty=2.0, prev_tokens=prev).item() == 1
    with pytest.raises(ValueError, match="prev_tokens"):
        sample_next_token(logits, 0.0, repetition_penalty=2.0)
    g = torch.Generator().manual_seed(0)
    draws = {sample_next_token(logits, 1.0, min_p=0.5, generator=g).item() for _ in range(200)}
    assert draws == {0, 1}  # token 3 has p/p_max = e^-2 < 0.5


def test_generate_with_penalty_repeats_less() -> None:
    model = tiny_model(context_length=32)
    prompt = torch.zeros(1, 1, dtype=torch.long)
    plain = generate(model, prompt, 30, temperature=0.0)
    penalised = generate(model, prompt, 30, temperature=0.0, repetition_penalty=3.0)
    assert len(set(penalised[0].tolist())) > len(set(plain[0].tolist()))
    cached = generate(model, prompt, 30, temperature=0.0, repetition_penalty=3.0)
    uncached = generate(model, prompt, 30, temperature=0.0, repetition_penalty=3.0,
                        use_cache=False)
    assert torch.equal(cached, uncached)
