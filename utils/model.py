"""A tiny GPT in the MiniMind style, with switches to take it apart.

The default configuration is a Llama-like decoder: pre-norm RMSNorm, RoPE, SwiGLU, grouped-
query attention, tied input/output embeddings and no biases. Every design choice is a field of
:class:`GPTConfig`, so a chapter can flip one (post-norm, learned positions, no residual
stream, GELU, LayerNorm, ...) and watch what breaks.

References:
1) MiniMind: https://github.com/jingyaogong/minimind
2) nanoGPT: https://github.com/karpathy/nanoGPT
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import KVCache, MultiHeadAttention
from .positional import LearnedPositionalEmbedding, sinusoidal_table

_CHOICES = {
    "ffn": ("swiglu", "gelu", "relu"),
    "norm": ("rmsnorm", "layernorm"),
    "norm_position": ("pre", "post"),
    "position": ("rope", "learned", "sinusoidal", "alibi", "none"),
    "rope_scaling": (None, "linear", "ntk"),
}


@dataclass
class GPTConfig:
    """Hyper-parameters and architecture switches of :class:`TinyGPT`.

    ``n_kv_heads`` and ``d_ff`` may be given as None; ``__post_init__`` then replaces them by
    ``n_heads`` and by the default width of the chosen feed-forward network (SwiGLU: MiniMind's
    ``64 * ceil(8/3 * d_model / 64)``, which keeps its parameters close to a ``4 * d_model``
    MLP; GELU/ReLU: ``4 * d_model``).

    Raises:
        ValueError: If the sizes do not divide or a switch has an unknown value.
    """

    vocab_size: int = 6400
    context_length: int = 256
    d_model: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int | None = None
    d_ff: int | None = None
    ffn: Literal["swiglu", "gelu", "relu"] = "swiglu"
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_position: Literal["pre", "post"] = "pre"
    position: Literal["rope", "learned", "sinusoidal", "alibi", "none"] = "rope"
    rope_theta: float = 1e6
    rope_interleaved: bool = False
    rope_scaling: Literal["linear", "ntk"] | None = None
    rope_scaling_factor: float = 1.0
    residual: bool = True
    dropout: float = 0.0
    tie_embeddings: bool = True
    bias: bool = False
    norm_eps: float = 1e-5
    use_fused_attention: bool = True

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name}={getattr(self, name)!r}; choose from {allowed}")
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"n_heads must be divisible by n_kv_heads, got n_heads={self.n_heads}, "
                f"n_kv_heads={self.n_kv_heads}"
            )
        if self.position == "rope" and self.head_dim % 2 != 0:
            raise ValueError(f"RoPE needs an even head_dim, got head_dim={self.head_dim}")
        if self.position == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if self.d_ff is None:
            if self.ffn == "swiglu":
                self.d_ff = 64 * math.ceil(8 * self.d_model / 3 / 64)
            else:
                self.d_ff = 4 * self.d_model
        if not self.rope_scaling_factor >= 1.0:
            raise ValueError(f"rope_scaling_factor must be >= 1, got {self.rope_scaling_factor}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @classmethod
    def minimind2_small(cls) -> GPTConfig:
        """MiniMind2-small: 25,829,888 parameters (vocab 6400, d 512, 8 layers, GQA 8/2).

        Returns:
            The configuration; ``context_length`` is 512 (RoPE has no parameters, so the
            context does not change the count).
        """
        return cls(
            vocab_size=6400,
            context_length=512,
            d_model=512,
            n_layers=8,
            n_heads=8,
            n_kv_heads=2,
            d_ff=1408,
            rope_theta=1e6,
        )

    @classmethod
    def nano(cls, vocab_size: int, **overrides: object) -> GPTConfig:
        """A model small enough to train on a laptop CPU in minutes.

        Args:
            vocab_size: Vocabulary size of the tokenizer in use.
            **overrides: Any other field, e.g. ``position="learned"``.

        Returns:
            4 layers, 4 heads, ``d_model`` 128, context 64, unless overridden.
        """
        fields: dict[str, object] = dict(n_layers=4, n_heads=4, d_model=128, context_length=64)
        fields.update(overrides)
        return cls(vocab_size=vocab_size, **fields)  # type: ignore[arg-type]


# -----------------------------------------------------------------------------
# Building blocks


class RMSNorm(nn.Module):
    """Root-mean-square norm: ``x / rms(x) * weight``, no mean subtraction, no bias.

    Args:
        dim: Feature size.
        eps: Added under the square root.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(..., dim)``; returns the same shape and dtype."""
        # statistics in float32: a bf16 mean of squares loses too many digits
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * xf.type_as(x)


class SwiGLU(nn.Module):
    """Gated feed-forward network ``down(silu(gate(x)) * up(x))`` (Shazeer, 2020).

    Args:
        d_model: Input and output width.
        d_ff: Hidden width.
        bias: Whether the projections have biases.
        dropout: Dropout on the output.
    """

    def __init__(self, d_model: int, d_ff: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, T, d_model)`` to ``(B, T, d_model)``."""
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class MLP(nn.Module):
    """Classic two-layer feed-forward network ``proj(act(fc(x)))`` (GPT-2 uses GELU).

    Args:
        d_model: Input and output width.
        d_ff: Hidden width.
        activation: ``"gelu"`` or ``"relu"``.
        bias: Whether the projections have biases.
        dropout: Dropout on the output.

    Raises:
        ValueError: If the activation is unknown.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "gelu",
        bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"unknown activation {activation!r}; choose 'gelu' or 'relu'")
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, T, d_model)`` to ``(B, T, d_model)``."""
        return self.dropout(self.proj(self.act(self.fc(x))))


def _make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """One transformer layer: attention then feed-forward, each wrapped in norm + residual.

    Pre-norm (GPT-2 onwards) normalises the input of each sublayer and leaves the residual
    stream untouched, which keeps gradients flowing through deep stacks. Post-norm (the 2017
    original) normalises after adding the residual.

    Args:
        config: Model configuration.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.residual = config.residual
        self.norm1 = _make_norm(config)
        self.attn = MultiHeadAttention(
            config.d_model,
            config.n_heads,
            n_kv_heads=config.n_kv_heads,
            bias=config.bias,
            dropout=config.dropout,
            rope_theta=config.rope_theta if config.position == "rope" else None,
            use_fused=config.use_fused_attention,
            max_positions=config.context_length,
            rope_interleaved=config.rope_interleaved,
            rope_scaling=config.rope_scaling,
            rope_scaling_factor=config.rope_scaling_factor,
            alibi=config.position == "alibi",
        )
        self.norm2 = _make_norm(config)
        assert config.d_ff is not None  # set by GPTConfig.__post_init__
        if config.ffn == "swiglu":
            self.ffn: nn.Module = SwiGLU(config.d_model, config.d_ff, config.bias, config.dropout)
        else:
            self.ffn = MLP(config.d_model, config.d_ff, config.ffn, config.bias, config.dropout)

    def forward(
        self, x: Tensor, cache: KVCache | None = None, layer_idx: int = 0, start_pos: int = 0
    ) -> Tensor:
        """Map ``(B, T, d_model)`` to ``(B, T, d_model)``; see :class:`MultiHeadAttention`."""
        kw = dict(causal=True, cache=cache, layer_idx=layer_idx, start_pos=start_pos)
        if self.pre_norm:
            x = self._add(x, self.attn(self.norm1(x), **kw))
            x = self._add(x, self.ffn(self.norm2(x)))
        else:
            x = self.norm1(self._add(x, self.attn(x, **kw)))
            x = self.norm2(self._add(x, self.ffn(x)))
        return x

    def _add(self, x: Tensor, h: Tensor) -> Tensor:
        # without the residual stream each sublayer must carry all information itself
        return x + h if self.residual else h


# -----------------------------------------------------------------------------
# The model


class TinyGPT(nn.Module):
    """Decoder-only language model: embeddings, ``n_layers`` blocks, final norm, LM head.

    Args:
        config: Model configuration.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        if config.position == "learned":
            self.pos_emb = LearnedPositionalEmbedding(config.context_length, config.d_model)
        elif config.position == "sinusoidal":
            table = sinusoidal_table(config.context_length, config.d_model)
            self.register_buffer("pos_table", table, persistent=False)  # (ctx, C)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
        # post-norm blocks already end with a norm, so only pre-norm needs a final one
        self.norm_f = _make_norm(config) if config.norm_position == "pre" else nn.Identity()
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            # one matrix both reads tokens in and scores them out (Press & Wolf, 2017)
            self.lm_head.weight = self.tok_emb.weight

        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream, so its variance
        # does not grow with depth
        std = 0.02 / math.sqrt(2 * config.n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "ffn.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, LearnedPositionalEmbedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Number of unique parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())  # parameters() already deduplicates

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        loss_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Compute next-token logits and, given targets, the mean cross-entropy.

        Args:
            idx: Token ids ``(B, T)``.
            targets: Next-token ids ``(B, T)``; entries equal to -100 are ignored.
            loss_mask: Optional bool ``(B, T)``; the loss averages over True positions only.
            cache: KV cache; when given, ``idx`` continues the cached sequence, so its first
                token sits at absolute position ``cache.length``.

        Returns:
            ``(logits, loss)``: logits ``(B, T, vocab_size)``; loss is a scalar tensor or None.

        Raises:
            ValueError: If the sequence does not fit the context (see below) or ``idx`` is not
                2-D. Without a cache ``T`` must be ``<= context_length``; with learned or
                sinusoidal positions ``start + T`` must be too, since only that many position
                vectors exist. RoPE with a cache may run past the context.
        """
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        ctx = self.config.context_length
        start = 0 if cache is None else cache.length
        if cache is None and idx.shape[1] > ctx:
            raise ValueError(f"sequence length {T} exceeds context_length {ctx}")
        if self.config.position in ("learned", "sinusoidal") and start + T > ctx:
            raise ValueError(
                f"positions up to {start + T} (cache {start} + new {T}) exceed "
                f"context_length {ctx} of the {self.config.position} position table"
            )

        x = self.tok_emb(idx)  # (B, T, C)
        # slicing by Python ints instead of indexing with a tensor: no device sync, no gather
        if self.config.position == "learned":
            x = x + self.pos_emb.weight[start : start + T]  # (T, C) broadcasts over B
        elif self.config.position == "sinusoidal":
            x = x + self.pos_table[start : start + T]
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache, layer_idx=i, start_pos=start)
        x = self.norm_f(x)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            if loss_mask is not None:
                targets = targets.masked_fill(~loss_mask.bool(), -100)
            # float32 loss even under bf16 autocast; -100 entries drop out of the mean
            loss = F.cross_entropy(
                logits.float().view(B * T, -1), targets.reshape(B * T), ignore_index=-100
            )
        return logits, loss
