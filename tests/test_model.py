"""TinyGPT: parameter counts, causality, KV-cache equivalence, loss and configuration errors."""

import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.attention import KVCache
from utils.model import MLP, GPTConfig, RMSNorm, SwiGLU, TinyGPT


def tiny_config(**overrides: object) -> GPTConfig:
    fields: dict[str, object] = dict(
        vocab_size=11, context_length=12, d_model=16, n_layers=2, n_heads=4
    )
    fields.update(overrides)
    return GPTConfig(**fields)  # type: ignore[arg-type]


def make_model(**overrides: object) -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(tiny_config(**overrides)).eval()


def tokens(B: int, T: int, vocab: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# -----------------------------------------------------------------------------
# parameter counts


def test_minimind2_small_has_25_829_888_parameters() -> None:
    config = GPTConfig.minimind2_small()
    V, d, L, h, h_kv, d_ff = 6400, 512, 8, 8, 2, 1408
    head_dim = d // h
    attention = d * d + 2 * d * (h_kv * head_dim) + d * d  # q, k, v (GQA), o; no biases
    swiglu = 3 * d * d_ff  # gate, up, down
    norms = 2 * d  # RMSNorm weights only
    hand_count = V * d + L * (attention + swiglu + norms) + d  # tied head, final norm
    assert hand_count == 25_829_888
    assert TinyGPT(config).num_parameters() == hand_count
    assert (config.n_kv_heads, config.d_ff, config.rope_theta) == (2, 1408, 1e6)


def test_default_ffn_width_follows_minimind_rule() -> None:
    assert GPTConfig(d_model=512).d_ff == 1408  # 64 * ceil(8/3 * 512 / 64)
    assert GPTConfig(d_model=128, n_heads=4).d_ff == 384
    assert GPTConfig(d_model=128, n_heads=4, ffn="gelu").d_ff == 512
    assert GPTConfig(n_heads=8).n_kv_heads == 8


def test_untied_and_gelu_layernorm_counts() -> None:
    V, d, L, d_ff = 11, 16, 2, 64
    model = make_model(ffn="gelu", norm="layernorm", tie_embeddings=False, bias=True)
    attention = 4 * (d * d + d)  # four square projections with biases
    mlp = d * d_ff + d_ff + d_ff * d + d
    norms = 2 * 2 * d  # LayerNorm has weight and bias
    expected = 2 * V * d + L * (attention + mlp + norms) + 2 * d
    assert model.num_parameters() == expected
    assert model.lm_head.weight is not model.tok_emb.weight


def test_tied_embeddings_share_one_matrix() -> None:
    model = make_model()
    assert model.lm_head.weight is model.tok_emb.weight
    untied = make_model(tie_embeddings=False)
    assert untied.num_parameters() - model.num_parameters() == 11 * 16


def test_nano_config() -> None:
    config = GPTConfig.nano(65, position="learned")
    assert (config.n_layers, config.n_heads, config.d_model, config.context_length) == (
        4,
        4,
        128,
        64,
    )
    assert config.vocab_size == 65 and config.position == "learned"


def test_residual_projections_get_smaller_init() -> None:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=64, d_model=128, n_layers=8, n_heads=4))
    o_std = model.blocks[0].attn.o_proj.weight.std().item()
    q_std = model.blocks[0].attn.q_proj.weight.std().item()
    assert o_std == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert q_std == pytest.approx(0.02, rel=0.05)


# -----------------------------------------------------------------------------
# building blocks against their formulas


def test_rmsnorm_matches_formula_and_torch() -> None:
    x = torch.randn(2, 3, 8)
    norm = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    ref = nn.RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
    torch.testing.assert_close(norm(x), ref(x))


def test_swiglu_and_mlp_formulas() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8)
    ffn = SwiGLU(8, 12)
    a, b = x @ ffn.gate_proj.weight.T, x @ ffn.up_proj.weight.T
    expected = (a * torch.sigmoid(a) * b) @ ffn.down_proj.weight.T
    torch.testing.assert_close(ffn(x), expected)
    mlp = MLP(8, 12, activation="relu")
    torch.testing.assert_close(mlp(x), torch.relu(x @ mlp.fc.weight.T) @ mlp.proj.weight.T)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        MLP(8, 12, activation="tanh")


# -----------------------------------------------------------------------------
# causality and cache


@pytest.mark.parametrize(
    "position,norm_position",
    list(itertools.product(["rope", "learned", "sinusoidal", "none"], ["pre", "post"])),
)
def test_future_tokens_do_not_change_past_outputs(position: str, norm_position: str) -> None:
    model = make_model(position=position, norm_position=norm_position)
    idx = tokens(2, 10)
    logits, _ = model(idx)
    for t in (0, 4, 8):
        changed = idx.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 1 + torch.arange(9 - t)) % 11
        new_logits, _ = model(changed)
        torch.testing.assert_close(new_logits[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=0)
        # sanity: the change is visible afterwards, so the test could fail
        assert not torch.allclose(new_logits[:, t + 1 :], logits[:, t + 1 :], atol=1e-4)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("ffn,norm", [("gelu", "layernorm"), ("relu", "rmsnorm")])
def test_switch_combinations_are_causal_and_trainable(residual: bool, ffn: str, norm: str) -> None:
    model = make_model(residual=residual, ffn=ffn, norm=norm).train()
    idx = tokens(2, 8)
    logits, loss = model(idx, targets=tokens(2, 8, seed=1))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11
    torch.testing.assert_close(model(changed)[0][:, :5], model(idx)[0][:, :5])


@pytest.mark.parametrize(
    "overrides",
    [
        dict(n_kv_heads=2),
        dict(n_kv_heads=1, norm_position="post"),
        dict(position="learned"),
        dict(position="sinusoidal", n_kv_heads=2),
        dict(position="none", use_fused_attention=False),
    ],
)
def test_kv_cache_logits_match_full_forward_step_by_step(overrides: dict) -> None:
    model = make_model(**overrides)
    idx = tokens(2, 12, seed=3)
    full_logits, _ = model(idx)
    cache = KVCache(model.config.n_layers)
    prompt_logits, _ = model(idx[:, :5], cache=cache)  # prefill 5 tokens at once
    torch.testing.assert_close(prompt_logits, full_logits[:, :5], atol=1e-5, rtol=0)
    for t in range(5, 12):  # then one token per step
        step_logits, _ = model(idx[:, t : t + 1], cache=cache)
        torch.testing.assert_close(step_logits[:, 0], full_logits[:, t], atol=1e-5, rtol=0)
    assert cache.length == 12


def test_fused_and_explicit_attention_give_same_model_outputs() -> None:
    fused = make_model(n_kv_heads=2)
    explicit = make_model(n_kv_heads=2, use_fused_attention=False)
    idx = tokens(3, 12)
    torch.testing.assert_close(fused(idx)[0], explicit(idx)[0], atol=1e-5, rtol=0)


def test_rope_with_cache_may_run_past_the_context() -> None:
    model = make_model(context_length=4)
    cache = KVCache(model.config.n_layers)
    model(tokens(1, 4), cache=cache)
    logits, _ = model(tokens(1, 2, seed=1), cache=cache)  # positions 4 and 5
    assert logits.shape == (1, 2, 11) and torch.isfinite(logits).all()


# -----------------------------------------------------------------------------
# loss


def test_loss_is_mean_cross_entropy_with_mask_and_ignore_index() -> None:
    model = make_model()
    idx, targets = tokens(2, 6), tokens(2, 6, seed=1)
    logits, loss = model(idx, targets)
    flat = logits.view(-1, 11)
    manual = -torch.log_softmax(flat, -1)[torch.arange(12), targets.view(-1)].mean()
    torch.testing.assert_close(loss, manual)

    loss_mask = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    _, masked = model(idx, targets, loss_mask=loss_mask)
    keep = loss_mask.view(-1)
    torch.testing.assert_close(masked, F.cross_entropy(flat[keep], targets.view(-1)[keep]))

    ignored = targets.masked_fill(~loss_mask, -100)
    torch.testing.assert_close(model(idx, ignored)[1], masked)
    assert model(idx)[1] is None


# -----------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(d_model=18, n_heads=4), "d_model must be divisible by n_heads, got d_model=18"),
        (dict(n_kv_heads=3), "n_heads must be divisible by n_kv_heads, got n_heads=4"),
        (dict(norm="batchnorm"), "unknown norm='batchnorm'"),
        (dict(ffn="moe"), "unknown ffn='moe'"),
        (dict(position="t5-bias"), "unknown position='t5-bias'"),
        (dict(norm_position="sandwich"), "unknown norm_position='sandwich'"),
        (dict(d_model=12, n_heads=4), "RoPE needs an even head_dim, got head_dim=3"),
    ],
)
def test_bad_config_raises(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_odd_head_dim_is_fine_without_rope() -> None:
    assert make_model(d_model=12, n_heads=4, position="learned").config.head_dim == 3


def test_sequence_longer_than_context_raises() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="sequence length 13 exceeds context_length 12"):
        model(tokens(1, 13))
    learned = make_model(position="learned")
    cache = KVCache(2)
    learned(tokens(1, 10), cache=cache)
    with pytest.raises(ValueError, match=r"positions up to 13 \(cache 10 \+ new 3\) exceed"):
        learned(tokens(1, 3), cache=cache)
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
