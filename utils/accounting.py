"""Back-of-the-envelope accounting: parameters, FLOPs, KV-cache and activation memory,
training state, arithmetic intensity (roofline) and cost per token.

Conventions:

- One multiply-add is 2 FLOPs, so ``(m, k) @ (k, n)`` costs ``2 m k n``.
- Only matrix multiplications are counted (they are over 95% of the work at every size the
  course uses); norms, activations, softmax, RoPE and additions are left out. This is what
  ``torch.utils.flop_counter.FlopCounterMode`` counts too, and the tests check the formulas
  against it exactly.
- The attention scores ``Q K^T`` and the weighted sum ``A V`` are counted as full dense
  ``T x T`` products, even under a causal mask. A causal kernel can skip the masked half, but
  ``FlopCounterMode`` (and most published MFU figures) count the dense product.
- A training step costs about 3 forward passes: the backward pass computes two matmuls per
  forward matmul (gradients with respect to the input and to the weight).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count the parameters of a model; a tied (shared) tensor counts once.

    Args:
        model: Any module.
        trainable_only: Only count parameters with ``requires_grad``.

    Returns:
        The number of scalar parameters.
    """
    # model.parameters() already yields each shared tensor once
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _dims(config: Any) -> dict[str, int]:
    """Resolve the sizes of a ``GPTConfig`` (defaults of ``n_kv_heads`` and ``d_ff``)."""
    d, h = config.d_model, config.n_heads
    n_kv = config.n_kv_heads or h
    if config.d_ff is not None:
        d_ff = config.d_ff
    elif config.ffn == "swiglu":
        d_ff = 64 * math.ceil(8 / 3 * d / 64)  # MiniMind's rule, see utils.model
    else:
        d_ff = 4 * d
    head_dim = d // h
    return {"d": d, "h": h, "n_kv": n_kv, "head_dim": head_dim, "kv_dim": n_kv * head_dim,
            "d_ff": d_ff, "L": config.n_layers, "V": config.vocab_size}


def attention_flops(seq_len: int, d_model: int) -> int:
    """FLOPs of the attention scores ``Q K^T`` plus ``A V`` in one layer, one sequence.

    Each is ``n_heads`` products of size ``(T, head_dim) x (head_dim, T)``, so together
    ``2 * 2 * T^2 * n_heads * head_dim = 4 T^2 d_model``: quadratic in the sequence length,
    independent of the number of heads.

    Args:
        seq_len: Sequence length ``T`` (keys and queries).
        d_model: ``n_heads * head_dim``.

    Returns:
        FLOPs.

    Raises:
        ValueError: If a size is not positive.
    """
    if seq_len < 1 or d_model < 1:
        raise ValueError(f"seq_len and d_model must be >= 1, got {seq_len} and {d_model}")
    return 4 * seq_len * seq_len * d_model


def forward_flops(config: Any, seq_len: int) -> dict[str, int]:
    """Matmul FLOPs of one forward pass over one sequence of ``seq_len`` tokens.

    Per layer, with ``d = d_model``, ``d_kv = n_kv_heads * head_dim`` and ``f = d_ff``:

    - ``attention_proj``: ``2 T d (2 d + 2 d_kv)`` for ``q_proj``, ``k_proj``, ``v_proj``,
      ``o_proj``; grouped-query attention shrinks only ``k_proj`` and ``v_proj``.
    - ``attention_scores``: ``4 T^2 d`` (see :func:`attention_flops`).
    - ``ffn``: ``2 T d f`` per weight matrix, 3 for SwiGLU and 2 for a GELU/ReLU MLP.

    plus ``lm_head``: ``2 T d V`` once. The embedding lookup is not a matmul and costs nothing.

    Args:
        config: A ``utils.model.GPTConfig``.
        seq_len: Tokens in the sequence, ``T``.

    Returns:
        Dict with keys ``attention_proj``, ``attention_scores``, ``ffn``, ``lm_head``
        (summed over layers) and ``total``.

    Raises:
        ValueError: If ``seq_len < 1``.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    s, T = _dims(config), seq_len
    d, L = s["d"], s["L"]
    n_ffn_matrices = 3 if config.ffn == "swiglu" else 2
    out = {
        "attention_proj": L * 2 * T * d * (2 * d + 2 * s["kv_dim"]),
        "attention_scores": L * attention_flops(T, d),
        "ffn": L * n_ffn_matrices * 2 * T * d * s["d_ff"],
        "lm_head": 2 * T * d * s["V"],
    }
    out["total"] = sum(out.values())
    return out


def flops_per_token(config: Any, seq_len: int, backward: bool = True) -> int:
    """Average FLOPs per token, for a forward pass or a full training step.

    Args:
        config: A ``utils.model.GPTConfig``.
        seq_len: Length of the sequences the tokens come in.
        backward: Include the backward pass (forward x 3).

    Returns:
        FLOPs per token. About ``2 N`` (forward) or ``6 N`` (training) for ``N`` non-embedding
        parameters, plus the attention term that grows with ``seq_len``.
    """
    per_token = forward_flops(config, seq_len)["total"] // seq_len  # every term has a factor T
    return 3 * per_token if backward else per_token


def kv_cache_bytes(config: Any, batch_size: int, seq_len: int, bytes_per_value: int = 2) -> int:
    """Memory of a full KV cache: keys and values of every layer and cached position.

    ``2 * n_layers * batch_size * seq_len * n_kv_heads * head_dim * bytes_per_value``;
    grouped-query attention divides it by ``n_heads / n_kv_heads``.

    Args:
        config: A ``utils.model.GPTConfig``.
        batch_size: Sequences decoded together.
        seq_len: Cached positions per sequence.
        bytes_per_value: 2 for bf16/fp16, 4 for fp32.

    Returns:
        Bytes.

    Raises:
        ValueError: If a size is negative or ``bytes_per_value < 1``.
    """
    if batch_size < 0 or seq_len < 0 or bytes_per_value < 1:
        raise ValueError(
            f"need batch_size >= 0, seq_len >= 0 and bytes_per_value >= 1, got {batch_size}, "
            f"{seq_len} and {bytes_per_value}"
        )
    s = _dims(config)
    return 2 * s["L"] * batch_size * seq_len * s["kv_dim"] * bytes_per_value


def activation_memory_bytes(
    config: Any,
    batch_size: int,
    seq_len: int,
    bytes_per_value: int = 2,
    store_attention_scores: bool | None = None,
) -> dict[str, int]:
    """Estimate the activations a training forward pass keeps for the backward pass.

    Follows the counting of Korthikanti et al. (2022), "Reducing Activation Recomputation in
    Large Transformer Models", section 4.1, adapted to this architecture. With ``s`` tokens,
    batch ``b``, width ``h``, ``a`` heads, ``p`` bytes per value, each layer stores:

    - ``norms``: the input of both norms, ``2 p s b h``.
    - ``attention``: the input of the q/k/v projections, ``Q``, ``K``, ``V`` (``K`` and ``V``
      are narrower with grouped-query attention) and the input of ``o_proj``; plus, unless a
      fused (flash) kernel recomputes them, the softmax output ``p a s^2 b``. With dropout:
      1-byte masks for the probabilities and the residual, and the dropped probabilities.
    - ``ffn``: the input of the first projection plus, per hidden unit, 2 values for a
      GELU/ReLU MLP (pre- and post-activation) or 4 for SwiGLU (gate, its SiLU, up, their
      product). With dropout: a 1-byte residual mask.

    With a GELU MLP (``f = 4h``), dropout, stored scores and ``p = 2`` this is the paper's
    ``s b h (34 + 5 a s / h)`` bytes per layer. The final norm and the logits are counted once
    (``lm_head``); the fp32 copy of the logits a loss may make is not. Small buffers (norm
    statistics, softmax log-sum-exp) are ignored.

    Args:
        config: A ``utils.model.GPTConfig``.
        batch_size: Sequences per micro-batch, ``b``.
        seq_len: Tokens per sequence, ``s``.
        bytes_per_value: 2 for bf16/fp16, 4 for fp32.
        store_attention_scores: Whether the ``s x s`` probabilities are stored; None means
            ``not config.use_fused_attention``.

    Returns:
        Dict with keys ``norms``, ``attention``, ``ffn``, ``per_layer`` (their sum),
        ``lm_head`` and ``total`` (``n_layers * per_layer + lm_head``), in bytes.

    Raises:
        ValueError: If a size is not positive.
    """
    if batch_size < 1 or seq_len < 1 or bytes_per_value < 1:
        raise ValueError(
            f"need batch_size, seq_len and bytes_per_value >= 1, got {batch_size}, {seq_len} "
            f"and {bytes_per_value}"
        )
    if store_attention_scores is None:
        store_attention_scores = not getattr(config, "use_fused_attention", False)
    dims = _dims(config)
    p, sb, h, a = bytes_per_value, seq_len * batch_size, dims["d"], dims["h"]
    scores = a * seq_len * seq_len * batch_size  # one value per head, query and key
    dropout = getattr(config, "dropout", 0.0) > 0

    attention = p * sb * (3 * h + 2 * dims["kv_dim"])  # x, Q, K, V, o_proj input
    if store_attention_scores:
        attention += p * scores
        if dropout:
            attention += scores + p * scores  # 1-byte mask and the dropped probabilities
    if dropout:
        attention += sb * h  # residual dropout mask
    values_per_unit = 4 if config.ffn == "swiglu" else 2
    ffn = p * sb * h + values_per_unit * p * sb * dims["d_ff"] + (sb * h if dropout else 0)
    norms = 2 * p * sb * h
    per_layer = norms + attention + ffn
    lm_head = p * sb * h + p * sb * dims["V"]
    return {"norms": norms, "attention": attention, "ffn": ffn, "per_layer": per_layer,
            "lm_head": lm_head, "total": dims["L"] * per_layer + lm_head}


def training_state_bytes(
    n_params: int,
    weight_bytes: int = 2,
    grad_bytes: int = 2,
    master_bytes: int = 4,
    optimizer_bytes: int = 8,
) -> dict[str, int]:
    """Memory that a training run with AdamW keeps for every parameter, whatever the batch.

    The defaults are mixed-precision training as in Rajbhandari et al. (2020), "ZeRO": bf16
    weights and gradients, an fp32 master copy of the weights, and AdamW's two fp32 moments
    ``m`` and ``v``: ``2 + 2 + 4 + 8 = 16`` bytes per parameter. Plain fp32 training is
    ``weight_bytes=4, grad_bytes=4, master_bytes=0``, which is 16 bytes too. Activations
    come on top (:func:`activation_memory_bytes`).

    Args:
        n_params: Number of parameters ``N``.
        weight_bytes: Bytes per weight used in the forward pass.
        grad_bytes: Bytes per gradient.
        master_bytes: Bytes per master copy of a weight (0 when there is none).
        optimizer_bytes: Optimizer state per parameter (AdamW in fp32: 8; SGD: 0).

    Returns:
        Dict with keys ``weights``, ``gradients``, ``master_weights``, ``optimizer`` and
        ``total``, in bytes.

    Raises:
        ValueError: If a count is negative.
    """
    sizes = {"weights": weight_bytes, "gradients": grad_bytes, "master_weights": master_bytes,
             "optimizer": optimizer_bytes}
    if n_params < 0 or min(sizes.values()) < 0:
        raise ValueError(f"need n_params >= 0 and byte counts >= 0, got {n_params}, {sizes}")
    out = {key: n_params * size for key, size in sizes.items()}
    out["total"] = sum(out.values())
    return out


def matmul_intensity(m: int, k: int, n: int, bytes_per_value: int = 2) -> float:
    """Arithmetic intensity of ``(m, k) @ (k, n)``: FLOPs per byte of memory traffic.

    ``2 m k n`` FLOPs over the bytes of reading both inputs once and writing the output
    once, ``p (m k + k n + m n)``. This is the best case (every value moves exactly once);
    a real kernel moves at least that much.

    Args:
        m, k, n: The sizes of the product.
        bytes_per_value: 2 for bf16/fp16, 4 for fp32.

    Returns:
        FLOPs per byte.

    Raises:
        ValueError: If a size is not positive.
    """
    if min(m, k, n, bytes_per_value) < 1:
        raise ValueError(f"sizes and bytes_per_value must be >= 1, got "
                         f"{(m, k, n, bytes_per_value)}")
    return 2 * m * k * n / (bytes_per_value * (m * k + k * n + m * n))


def roofline_flops(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """Attainable FLOP/s of a kernel on the roofline model (Williams et al., 2009).

    ``min(peak_flops, intensity * bandwidth)``: below the *ridge point*
    ``peak_flops / bandwidth`` a kernel is memory-bound, above it compute-bound.

    Args:
        intensity: FLOPs per byte moved.
        peak_flops: The machine's peak, FLOP/s.
        bandwidth: The machine's memory bandwidth, bytes/s.

    Returns:
        FLOP/s.

    Raises:
        ValueError: If an argument is negative or the machine's figures are not positive.
    """
    if intensity < 0 or peak_flops <= 0 or bandwidth <= 0:
        raise ValueError(f"need intensity >= 0 and positive peak and bandwidth, got "
                         f"{intensity}, {peak_flops}, {bandwidth}")
    return min(peak_flops, intensity * bandwidth)


def cost_per_million_tokens(
    flops_per_token: float, peak_flops: float, utilisation: float, dollars_per_hour: float
) -> float:
    """Dollars per million tokens of compute-bound work on one accelerator.

    ``1e6 * flops_per_token / (peak_flops * utilisation)`` seconds, priced at
    ``dollars_per_hour / 3600`` per second. Use ``2 N`` FLOPs per token for inference and
    ``6 N`` for training (:func:`flops_per_token`). Memory-bound decoding at a small batch
    costs more than this (see the challenges chapter).

    Args:
        flops_per_token: FLOPs per token.
        peak_flops: Peak FLOP/s of the accelerator.
        utilisation: Achieved fraction of the peak (model-FLOPs utilisation), in (0, 1].
        dollars_per_hour: Price of one accelerator for one hour.

    Returns:
        Dollars per million tokens.

    Raises:
        ValueError: If utilisation is not in (0, 1] or another argument is not positive.
    """
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation}")
    if flops_per_token <= 0 or peak_flops <= 0 or dollars_per_hour < 0:
        raise ValueError(f"need positive flops_per_token and peak_flops and a price >= 0, got "
                         f"{flops_per_token}, {peak_flops}, {dollars_per_hour}")
    seconds = 1e6 * flops_per_token / (peak_flops * utilisation)
    return seconds * dollars_per_hour / 3600
