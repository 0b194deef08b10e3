"""utils.minimind against an independent implementation: Hugging Face `transformers`' Llama.

A `LlamaForCausalLM` with MiniMind2-small's shapes and random weights is saved the two ways
MiniMind publishes its models (a Hugging Face folder, a float16 `.pth` state dict); the
course's TinyGPT loads each and must give the same logits and the same greedy tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from utils.generation import generate
from utils.minimind import (
    ENV_VAR,
    find_minimind_weights,
    load_minimind,
    read_safetensors,
    read_state_dict,
)
from utils.model import GPTConfig

SMALL = GPTConfig.minimind2_small()
ATOL = 1e-4  # float32: measured differences are ~1e-6 on logits of size ~1


def _llama(config: GPTConfig, seed: int, tied: bool = True) -> Any:
    """A transformers Llama with ``config``'s shapes and random, float16-exact weights."""
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        max_position_embeddings=32768,
        rope_theta=config.rope_theta,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                # norm weights away from 1, so swapping two norms cannot go unnoticed
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            # values a float16 .pth file stores exactly: both formats hold the same model
            p.copy_(p.half().float())
    model.generation_config.eos_token_id = None  # never stop early: always 20 new tokens
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="module")
def hf_model() -> Any:
    return _llama(SMALL, seed=0)


@pytest.fixture(scope="module")
def hf_folder(hf_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("minimind2_small_hf")
    hf_model.save_pretrained(folder)
    return folder


def _minimind_pth(model: Any, path: Path, prefix: str = "") -> Path:
    """Save ``model`` as MiniMind's trainer does: every state-dict entry in float16."""
    state = model.state_dict()
    assert "lm_head.weight" in state and "model.embed_tokens.weight" in state  # both, as theirs
    state = {prefix + k: v.half() for k, v in state.items()}
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def pth_file(hf_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _minimind_pth(hf_model, tmp_path_factory.mktemp("pth") / "pretrain_512.pth")


def _tokens(batch: int, length: int, vocab: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=g)


def _assert_same_logits(model: Any, hf: Any, idx: torch.Tensor) -> float:
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    assert ours.shape == theirs.shape
    diff = (ours - theirs).abs().max().item()
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    return diff


# -----------------------------------------------------------------------------
# safetensors reader


def test_safetensors_reader_matches_the_package(hf_folder: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    tensors = {
        "f32": torch.randn(3, 5),
        "bf16": torch.randn(4, 2).bfloat16(),
        "f16": torch.randn(7).half(),
        "i64": torch.arange(-3, 9).reshape(3, 4),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    small = tmp_path / "mixed.safetensors"
    st.save_file(tensors, small, metadata={"note": "test"})
    for file in (small, hf_folder / "model.safetensors"):
        ours, theirs = read_safetensors(file), st.load_file(file)
        assert ours.keys() == theirs.keys()
        for name, t in theirs.items():
            assert ours[name].dtype == t.dtype and ours[name].shape == t.shape, name
            assert torch.equal(ours[name], t), name


def test_safetensors_reader_rejects_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((5).to_bytes(8, "little") + b"{nope")
    with pytest.raises(ValueError, match="header"):
        read_safetensors(bad)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        read_safetensors(tmp_path / "nowhere.safetensors")


# -----------------------------------------------------------------------------
# The Hugging Face folder and the .pth file give transformers' logits and tokens


def test_hf_folder_config_and_logits(hf_model: Any, hf_folder: Path) -> None:
    model = load_minimind(hf_folder, context_length=64)
    c = model.config
    for field in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
                  "rope_theta", "norm_eps", "rope_interleaved", "bias"):
        assert getattr(c, field) == getattr(SMALL, field), field
    assert c.tie_embeddings and model.lm_head.weight is model.tok_emb.weight
    assert c.context_length == 64 and not model.training
    assert model.num_parameters() == sum(p.numel() for p in hf_model.parameters())
    _assert_same_logits(model, hf_model, _tokens(2, 48, SMALL.vocab_size))


def test_greedy_generation_matches_transformers(hf_model: Any, hf_folder: Path) -> None:
    model = load_minimind(hf_folder)
    prompt = _tokens(2, 8, SMALL.vocab_size, seed=2)
    expected = hf_model.generate(prompt, do_sample=False, max_new_tokens=20)
    assert expected.shape == (2, 28)
    # greedy tokens are only comparable where the top two logits are further apart than the
    # two implementations' logits: otherwise rounding alone could pick either token
    with torch.no_grad():
        theirs = hf_model(expected).logits[:, 7:-1]
        diff = (model(expected)[0][:, 7:-1] - theirs).abs().max()
    top2 = theirs.topk(2, dim=-1).values
    assert (top2[..., 0] - top2[..., 1]).min() > 10 * diff
    for use_cache in (True, False):
        ours = generate(model, prompt, 20, temperature=0.0, use_cache=use_cache)
        assert torch.equal(ours, expected), f"use_cache={use_cache}"


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod."])
def test_minimind_pth_file(hf_model: Any, tmp_path: Path, prefix: str) -> None:
    path = _minimind_pth(hf_model, tmp_path / "full_sft_512.pth", prefix)
    model = load_minimind(path)  # no config: shapes plus MiniMind2's 8 heads
    assert model.config.n_heads == 8 and model.config.n_kv_heads == SMALL.n_kv_heads
    assert model.config.tie_embeddings  # lm_head.weight in the file equals the embedding
    assert all(p.dtype == torch.float32 for p in model.parameters())
    _assert_same_logits(model, hf_model, _tokens(1, 40, SMALL.vocab_size))


def test_resume_checkpoint_and_pytorch_model_bin(hf_model: Any, tmp_path: Path) -> None:
    state = {k: v.half() for k, v in hf_model.state_dict().items()}
    torch.save({"model": state, "step": 10}, tmp_path / "resume.pth")
    folder = tmp_path / "bin"
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(hf_model.config.to_json_string())
    idx = _tokens(1, 16, SMALL.vocab_size)
    for path in (tmp_path / "resume.pth", folder):
        _assert_same_logits(load_minimind(path), hf_model, idx)


def test_untied_head_and_explicit_heads(tmp_path: Path) -> None:
    # a 4-head model: a .pth file cannot tell its head count, so it has to be passed
    config = GPTConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                       d_ff=160)
    hf = _llama(config, seed=3, tied=False)
    path = _minimind_pth(hf, tmp_path / "untied.pth")
    model = load_minimind(path, n_heads=4)
    assert not model.config.tie_embeddings
    assert model.lm_head.weight is not model.tok_emb.weight
    _assert_same_logits(model, hf, _tokens(2, 24, 300))
    # MiniMind2's default of 8 heads still fits these shapes (kv width 32 = 4 heads of 8)
    # but computes something else: why the head count is an argument
    wrong = load_minimind(path)
    with torch.no_grad():
        idx = _tokens(1, 24, 300)
        assert not torch.allclose(wrong(idx)[0], hf(idx).logits, atol=ATOL)
    with pytest.raises(ValueError, match="n_heads=5"):
        load_minimind(path, n_heads=5)


# -----------------------------------------------------------------------------
# Errors name what is wrong


def _edited_pth(hf_model: Any, path: Path, edit: Any) -> Path:
    state = {k: v.half() for k, v in hf_model.state_dict().items()}
    edit(state)
    torch.save(state, path)
    return path


def test_wrong_missing_and_unexpected_tensors_are_named(hf_model: Any, tmp_path: Path) -> None:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state["model.layers.3.mlp.up_proj.weight"] = torch.zeros(1400, 512)
        del state["model.layers.5.self_attn.v_proj.weight"]
        state["model.layers.1.self_attn.q_norm.weight"] = torch.ones(64)

    path = _edited_pth(hf_model, tmp_path / "broken.pth", edit)
    with pytest.raises(ValueError) as err:
        load_minimind(path)
    message = str(err.value)
    assert "model.layers.3.mlp.up_proj.weight" in message
    assert "(1400, 512)" in message and "(1408, 512)" in message
    assert "missing: model.layers.5.self_attn.v_proj.weight" in message
    assert "unexpected: model.layers.1.self_attn.q_norm.weight" in message
    assert "query-key norm" in message
    assert "model.layers.4" not in message  # only the broken tensors are named


def test_untied_head_contradicting_config_json(hf_model: Any, tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(hf_model.config.to_json_string())
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        load_minimind(tmp_path)


def test_unsupported_config_json(hf_folder: Path, tmp_path: Path) -> None:
    spec = json.loads((hf_folder / "config.json").read_text())
    (tmp_path / "model.safetensors").symlink_to(hf_folder / "model.safetensors")
    for change, words in (
        ({"rope_scaling": {"type": "yarn", "factor": 16}}, "yarn"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"attention_bias": True}, "attention_bias"),
    ):
        (tmp_path / "config.json").write_text(json.dumps({**spec, **change}))
        with pytest.raises(ValueError, match=words):
            load_minimind(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="contradicts config.json"):
        load_minimind(tmp_path, n_heads=4)


def test_paths_that_do_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_minimind(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match="none of the weight files"):
        load_minimind(tmp_path)  # an empty folder
    (tmp_path / "notes.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="notes.pth' is not a PyTorch weights file"):
        read_state_dict(tmp_path / "notes.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        read_state_dict(tmp_path / "list.pth")


def test_find_minimind_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_minimind_weights() is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        find_minimind_weights()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert find_minimind_weights() == tmp_path
