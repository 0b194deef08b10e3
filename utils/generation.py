"""Turning next-token logits into text: sampling filters and the generation loop.

A language model only scores the next token. How we pick from those scores (greedy,
temperature, top-k, nucleus/top-p) and whether we recompute the whole prefix at every step or
reuse cached keys and values decide what the text looks like and how fast it comes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import KVCache

# -----------------------------------------------------------------------------
# Filters: set the logits of excluded tokens to -inf, so softmax gives them probability 0


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row; set the others to ``-inf``.

    Tokens tied with the ``k``-th largest logit are kept as well.

    Args:
        logits: Tensor of shape ``(..., V)``.
        k: Number of tokens to keep; values above ``V`` keep everything.

    Returns:
        Tensor of the same shape (a new tensor; the input is not modified).

    Raises:
        ValueError: If ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability is ``>= p``.

    The most likely token is always kept, so the result can always be sampled from.

    Args:
        logits: Tensor of shape ``(..., V)``.
        p: Probability mass to keep, in ``(0, 1]``.

    Returns:
        Tensor of the same shape with excluded logits set to ``-inf``.

    Raises:
        ValueError: If ``p`` is not in ``(0, 1]``.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p == 1.0:  # keep everything, even tokens whose probability rounds the cumsum to 1
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    # a token is needed iff the tokens ranked above it have not reached p yet
    mass_before = torch.cumsum(probs, dim=-1) - probs
    remove_sorted = mass_before >= p  # the top token has mass_before 0 < p: always kept
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def min_p_filter(logits: Tensor, min_p: float) -> Tensor:
    """Min-p filter: keep tokens whose probability is at least ``min_p`` times the largest.

    The threshold scales with the model's confidence: a peaked distribution keeps few tokens,
    a flat one many (Nguyen et al., 2024). The most likely token is always kept.

    Args:
        logits: Tensor of shape ``(..., V)``.
        min_p: Fraction of the top probability, in ``[0, 1]``; 0 keeps everything.

    Returns:
        Tensor of the same shape with excluded logits set to ``-inf``.

    Raises:
        ValueError: If ``min_p`` is not in ``[0, 1]``.
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1], got {min_p}")
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed
    if min_p == 0.0:
        return logits.clone()
    threshold = logits.amax(dim=-1, keepdim=True) + math.log(min_p)
    return logits.masked_fill(logits < threshold, float("-inf"))


def apply_repetition_penalty(logits: Tensor, prev_tokens: Tensor, penalty: float) -> Tensor:
    """Make every token that already occurs in the sequence less likely (Keskar et al., 2019).

    A seen token's logit is divided by ``penalty`` when positive and multiplied by it when
    negative, so its probability drops either way (the rule of CTRL and Hugging Face).

    Args:
        logits: Tensor ``(B, V)``.
        prev_tokens: Long tensor ``(B, T)`` of the tokens so far (prompt included).
        penalty: ``>= 1``; 1 changes nothing.

    Returns:
        A new tensor ``(B, V)``.

    Raises:
        ValueError: If ``penalty < 1`` or the batch sizes differ.
    """
    if penalty < 1.0:
        raise ValueError(f"repetition_penalty must be >= 1, got {penalty}")
    if prev_tokens.shape[0] != logits.shape[0]:
        raise ValueError(
            f"prev_tokens {tuple(prev_tokens.shape)} and logits {tuple(logits.shape)} "
            "need the same batch size"
        )
    seen = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    seen.scatter_(-1, prev_tokens, True)  # (B, V): each token counts once, however often
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def _check_sampling_args(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> None:
    if min_p is not None and not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1], got {min_p}")
    if repetition_penalty < 1.0:
        raise ValueError(f"repetition_penalty must be >= 1, got {repetition_penalty}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample_next_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    prev_tokens: Tensor | None = None,
) -> Tensor:
    """Pick the next token of each sequence from its logits.

    The repetition penalty (if any) applies first; temperature then divides the logits
    (below 1 sharpens, above 1 flattens); then top-k, top-p and min-p filtering apply; then
    one token is drawn. Temperature 0 means greedy argmax (after the penalty).

    Args:
        logits: Tensor of shape ``(B, V)``.
        temperature: Non-negative; 0 selects the argmax.
        top_k: Optional number of most likely tokens to sample among.
        top_p: Optional nucleus mass in ``(0, 1]``.
        generator: Optional ``torch.Generator`` for reproducible sampling.
        min_p: Optional min-p fraction in ``[0, 1]`` (:func:`min_p_filter`).
        repetition_penalty: ``>= 1``; needs ``prev_tokens`` when above 1.
        prev_tokens: Long tensor ``(B, T)``, the tokens so far (for the penalty).

    Returns:
        Long tensor of shape ``(B, 1)``.

    Raises:
        ValueError: If ``temperature < 0``, ``top_k < 1`` or ``top_p`` is not in ``(0, 1]``,
            or ``logits`` is not 2-D.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    _check_sampling_args(temperature, top_k, top_p, min_p, repetition_penalty)
    if repetition_penalty != 1.0:
        if prev_tokens is None:
            raise ValueError("repetition_penalty needs prev_tokens, the tokens so far")
        logits = apply_repetition_penalty(logits, prev_tokens, repetition_penalty)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


# -----------------------------------------------------------------------------
# The generation loop


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    cache: Any = None,
) -> Tensor:
    """Extend ``idx`` by ``max_new_tokens`` sampled tokens.

    The model must look like :class:`~utils.model.TinyGPT`: ``model(idx, cache=...)`` returns
    ``(logits, loss)`` and ``model.config`` has ``context_length`` and ``n_layers``. It runs in
    eval mode (no dropout) and its previous mode is restored afterwards.

    Without a cache every step reruns the model on the last ``context_length`` tokens. With a
    cache the prompt is processed once and then one token per step; when the sequence outgrows
    the context the cache is rebuilt from the last ``context_length`` tokens, which gives
    exactly the tokens of the uncached loop.

    Args:
        model: The language model.
        idx: Prompt token ids ``(B, T)``.
        max_new_tokens: Number of tokens to append.
        temperature: See :func:`sample_next_token`.
        top_k: See :func:`sample_next_token`.
        top_p: See :func:`sample_next_token`.
        use_cache: Reuse keys and values of past tokens (:class:`~utils.attention.KVCache`).
        generator: Optional ``torch.Generator`` for reproducible sampling.
        min_p: See :func:`sample_next_token`.
        repetition_penalty: See :func:`sample_next_token` (the prompt counts as seen).
        cache: The cache object to use (e.g. ``KVCache(n, quantize="int8")`` or a
            :class:`~utils.paged_cache.PagedKVCache`); it is reset first. None with
            ``use_cache`` makes a plain :class:`~utils.attention.KVCache`.

    Returns:
        Long tensor ``(B, T + max_new_tokens)``: the prompt followed by the new tokens.

    Raises:
        ValueError: If ``max_new_tokens < 0``, ``idx`` is not 2-D or empty, or a sampling
            argument is invalid.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must have shape (B, T) with T >= 1, got {tuple(idx.shape)}")
    _check_sampling_args(temperature, top_k, top_p, min_p, repetition_penalty)  # fail early
    ctx = model.config.context_length
    if cache is not None:
        cache.reset()
    elif use_cache:
        cache = KVCache(model.config.n_layers)
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            if cache is not None and 0 < cache.length < ctx:
                # only the newest token is new; everything before it is in the cache
                logits, _ = model(idx[:, -1:], cache=cache)
            else:
                # first step, no cache, or the context is full: (re)run on the last ctx tokens
                if cache is not None:
                    cache.reset()
                logits, _ = model(idx[:, -ctx:], cache=cache)
            next_token = sample_next_token(
                logits[:, -1, :], temperature, top_k, top_p, generator,
                min_p=min_p, repetition_penalty=repetition_penalty, prev_tokens=idx,
            )
            idx = torch.cat([idx, next_token], dim=1)  # (B, T + 1)
    finally:
        model.train(was_training)
    return idx
