"""Load MiniMind2's published weights into the course's :class:`~utils.model.TinyGPT`.

MiniMind ships its trained models in two forms that use the same key names, those of Hugging
Face's Llama: a PyTorch ``.pth`` state dict (what its training scripts save) and a Hugging Face
folder (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``). Both describe
exactly the architecture of ``TinyGPT``'s default configuration: pre-norm RMSNorm, half-split
RoPE, SwiGLU, grouped-query attention, no biases, an output head tied to the embedding. So
loading is only renaming, plus checking every shape. (MiniMind's later releases add a norm
on each head's queries and keys, as Qwen3 does; ``TinyGPT`` has none, so they are refused with a
message that says so.)

>>> from utils.tokenizer import BPETokenizer
>>> model = load_minimind("MiniMind2-small")            # a Hugging Face folder, or a .pth file
>>> tok = BPETokenizer.load("MiniMind2-small/tokenizer.json")

Everything is read from local files; nothing is ever downloaded. Files are read without
unpickling code (``torch.load(..., weights_only=True)`` and a plain reader of the
safetensors format).

References:
1) MiniMind: https://github.com/jingyaogong/minimind (``model/model_minimind.py``)
2) The safetensors format: https://github.com/huggingface/safetensors
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .model import GPTConfig, TinyGPT

ENV_VAR = "MINIMIND_WEIGHTS"

# MiniMindConfig's defaults, shared by every MiniMind2 release (MiniMind2-small, MiniMind2,
# MiniMind2-MoE: 8 query heads each). A bare .pth file carries no config, so these fill in what
# tensor shapes cannot tell.
MINIMIND2_N_HEADS = 8
MINIMIND2_ROPE_THETA = 1e6
MINIMIND2_NORM_EPS = 1e-5
# MiniMind's YaRN settings take 2048 as the original context: the default window here
DEFAULT_CONTEXT = 2048

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
# tensors derived from the config (old Hugging Face checkpoints store RoPE frequencies)
_DERIVED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


# -----------------------------------------------------------------------------
# Finding and reading files


def find_minimind_weights() -> Path | None:
    """The MiniMind weights named by the environment variable ``MINIMIND_WEIGHTS``, if any.

    Returns:
        The path (a ``.pth`` file or a Hugging Face folder) or None when the variable is unset
        or empty.

    Raises:
        FileNotFoundError: If the variable names a path that does not exist.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{ENV_VAR}={value!r} names no file or folder; point it at a MiniMind .pth file "
            "or a Hugging Face folder, or unset it"
        )
    return path


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """Read every tensor of a ``.safetensors`` file into CPU memory.

    The format is an 8-byte little-endian header length ``n``, then ``n`` bytes of JSON that
    give each tensor's dtype, shape and byte range, then the raw little-endian bytes.

    Args:
        path: The file.

    Returns:
        ``{name: tensor}`` (the optional ``__metadata__`` entry is skipped).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not valid safetensors or holds an unknown dtype.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"safetensors file {str(path)!r} not found")
    if sys.byteorder != "little":
        raise ValueError("reading safetensors needs a little-endian machine")
    data = bytearray(path.stat().st_size)  # writable, so tensors may view it
    with path.open("rb") as f:
        f.readinto(data)
    if len(data) < 8:
        raise ValueError(f"{str(path)!r} is too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} has no valid safetensors header: {err}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{str(path)!r} has no valid safetensors header")
    body = memoryview(data)[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{str(path)!r}: tensor {name!r} has unsupported dtype {info!r}")
        start, end = info["data_offsets"]
        shape = info["shape"]
        count = 1
        for s in shape:
            count *= s
        if not 0 <= start <= end <= len(body) or end - start != count * dtype.itemsize:
            raise ValueError(f"{str(path)!r}: byte range of tensor {name!r} is invalid")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            # frombuffer views the bytes; clone so each tensor owns aligned memory of its own
            flat = torch.frombuffer(body[start:end], dtype=dtype, count=count)
            tensors[name] = flat.clone().reshape(shape)
    return tensors


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    # checkpoints saved from a DDP-wrapped or compiled model prefix every key
    changed = True
    while changed and state:
        changed = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read the tensors of a MiniMind checkpoint: a file, or a Hugging Face folder.

    A ``.safetensors`` file is read with :func:`read_safetensors`; anything else with
    ``torch.load(weights_only=True)``. A folder is read from ``model.safetensors``, the shards
    listed in ``model.safetensors.index.json``, or ``pytorch_model.bin``. A resume checkpoint
    ``{"model": state_dict, ...}`` yields its state dict, and a ``module.`` or ``_orig_mod.``
    prefix on every key is removed.

    Args:
        path: The file or folder.

    Returns:
        ``{name: tensor}`` on the CPU, in the stored dtypes.

    Raises:
        FileNotFoundError: If the path, or the folder's weight file, does not exist.
        ValueError: If the file cannot be read or does not hold a state dict.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MiniMind weights {str(path)!r} not found")
    if path.is_dir():
        present = [name for name in _WEIGHT_FILES if (path / name).is_file()]
        if not present:
            raise FileNotFoundError(
                f"folder {str(path)!r} holds none of the weight files {list(_WEIGHT_FILES)}"
            )
        file = path / present[0]
        if file.name.endswith(".index.json"):
            weight_map = json.loads(file.read_text(encoding="utf-8")).get("weight_map", {})
            state: dict[str, Any] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(read_safetensors(path / shard))
        else:
            state = read_state_dict(file)
    elif path.suffix == ".safetensors":
        state = read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
            raise ValueError(
                f"{str(path)!r} is not a PyTorch weights file (read with weights_only=True): "
                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]  # a training checkpoint: weights plus optimiser state
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{str(path)!r} does not hold a state dict (names -> tensors)")
    return _strip_prefixes(state)


# -----------------------------------------------------------------------------
# Configuration: from config.json when there is one, else from the tensor shapes


def _unsupported_features(names: list[str]) -> list[str]:
    hints = []
    if any(".q_norm." in k or ".k_norm." in k for k in names):
        hints.append(
            "per-head q_norm/k_norm weights (MiniMind-3 / Qwen3 layout): TinyGPT has no "
            "query-key norm, only MiniMind2 checkpoints load"
        )
    if any(".mlp.experts." in k or ".mlp.gate.weight" in k for k in names):
        hints.append("mixture-of-experts layers (MiniMind2-MoE): TinyGPT has one SwiGLU per block")
    if any(k.endswith(".bias") for k in names):
        hints.append("bias vectors: MiniMind2 and TinyGPT's MiniMind configuration have none")
    return hints


def config_from_hf(
    spec: dict[str, Any], context_length: int | None = None
) -> tuple[GPTConfig, bool | None]:
    """Translate a Hugging Face Llama/MiniMind ``config.json`` into a :class:`GPTConfig`.

    Args:
        spec: The parsed ``config.json``.
        context_length: The model's window (default: ``max_position_embeddings``, at most
            ``DEFAULT_CONTEXT``).

    Returns:
        ``(config, tied)``: ``tied`` is the file's ``tie_word_embeddings``, or None when the
        file does not say (the weights then decide).

    Raises:
        ValueError: If a field is missing or asks for something TinyGPT does not implement
            (biases, an activation other than SiLU, RoPE scaling, experts, a head size other
            than ``hidden_size / num_attention_heads``).
    """
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"config.json lacks {missing}")
    problems = []
    if spec.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act={spec['hidden_act']!r} (TinyGPT's SwiGLU uses 'silu')")
    for key in ("attention_bias", "mlp_bias"):
        if spec.get(key):
            problems.append(f"{key}=true (TinyGPT's MiniMind configuration has no biases)")
    if spec.get("use_moe") or spec.get("num_experts") or spec.get("num_local_experts"):
        problems.append("mixture-of-experts layers (TinyGPT has one SwiGLU per block)")
    rope = spec.get("rope_parameters") or {}
    scaling = spec.get("rope_scaling") or {}
    for table in (rope, scaling):
        kind = table.get("rope_type", table.get("type", "default"))
        if kind != "default":
            problems.append(f"RoPE scaling {kind!r} (load the unscaled model)")
    d, n_heads = spec["hidden_size"], spec["num_attention_heads"]
    head_dim = spec.get("head_dim") or d // n_heads
    if head_dim * n_heads != d:
        problems.append(
            f"head_dim={head_dim} with {n_heads} heads != hidden_size={d} "
            "(TinyGPT uses head_dim = d_model / n_heads)"
        )
    if problems:
        raise ValueError("config.json asks for what TinyGPT does not implement: "
                         + "; ".join(problems))
    theta = rope.get("rope_theta", spec.get("rope_theta", MINIMIND2_ROPE_THETA))
    if context_length is None:
        context_length = min(spec.get("max_position_embeddings", DEFAULT_CONTEXT), DEFAULT_CONTEXT)
    config = GPTConfig(
        vocab_size=spec["vocab_size"],
        context_length=context_length,
        d_model=d,
        n_layers=spec["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=spec.get("num_key_value_heads") or n_heads,
        d_ff=spec["intermediate_size"],
        rope_theta=float(theta),
        norm_eps=float(spec.get("rms_norm_eps", MINIMIND2_NORM_EPS)),
    )
    return config, spec.get("tie_word_embeddings")


def config_from_state_dict(
    state: dict[str, Tensor], n_heads: int | None = None, context_length: int | None = None
) -> GPTConfig:
    """Infer a :class:`GPTConfig` from the tensor shapes of a MiniMind state dict.

    Shapes give the vocabulary, width, depth, feed-forward width and the total key width, but
    not how that width is split into heads: ``n_heads`` defaults to MiniMind2's 8
    (``MINIMIND2_N_HEADS``), and ``n_kv_heads`` follows from the key projection's width.
    RoPE's base and the norm's epsilon are not stored either: MiniMind2's ``1e6`` and ``1e-5``.

    Args:
        state: The state dict, with Hugging Face Llama key names.
        n_heads: Number of query heads, if not MiniMind2's.
        context_length: The window (default ``DEFAULT_CONTEXT``).

    Returns:
        The configuration; :func:`load_minimind` then checks every tensor against it.

    Raises:
        ValueError: If a tensor needed for the inference is missing, or the head count does
            not divide the widths.
    """
    needed = ("model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight",
              "model.layers.0.mlp.gate_proj.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        hints = _unsupported_features(list(state))
        raise ValueError(
            f"cannot infer the model's shape: missing {missing}"
            + ("; the checkpoint has " + "; ".join(hints) if hints else "")
        )
    vocab, d = state["model.embed_tokens.weight"].shape
    layers = {int(m.group(1)) for k in state if (m := re.match(r"model\.layers\.(\d+)\.", k))}
    n_heads = MINIMIND2_N_HEADS if n_heads is None else n_heads
    if n_heads < 1 or d % n_heads:
        raise ValueError(f"n_heads={n_heads} does not divide the width d_model={d}")
    head_dim = d // n_heads
    kv_width = state["model.layers.0.self_attn.k_proj.weight"].shape[0]
    n_kv_heads = kv_width // head_dim
    if kv_width % head_dim or n_kv_heads == 0 or n_heads % n_kv_heads:
        raise ValueError(
            f"with n_heads={n_heads} (head size {head_dim}) the key width {kv_width} is not a "
            "number of key/value heads dividing n_heads; pass the checkpoint's n_heads"
        )
    return GPTConfig(
        vocab_size=vocab,
        context_length=DEFAULT_CONTEXT if context_length is None else context_length,
        d_model=d,
        n_layers=max(layers) + 1,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_ff=state["model.layers.0.mlp.gate_proj.weight"].shape[0],
        rope_theta=MINIMIND2_ROPE_THETA,
        norm_eps=MINIMIND2_NORM_EPS,
    )


# -----------------------------------------------------------------------------
# Renaming and checking


def tinygpt_to_hf_names(config: GPTConfig) -> dict[str, str]:
    """Map each of TinyGPT's parameter names to its Hugging Face Llama / MiniMind name.

    Args:
        config: The configuration (its ``n_layers`` and ``tie_embeddings`` matter).

    Returns:
        ``{tinygpt_name: hf_name}``; ``lm_head.weight`` appears only when it is not tied.
    """
    names = {"tok_emb.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight"}
    for i in range(config.n_layers):
        ours, theirs = f"blocks.{i}", f"model.layers.{i}"
        names[f"{ours}.norm1.weight"] = f"{theirs}.input_layernorm.weight"
        names[f"{ours}.norm2.weight"] = f"{theirs}.post_attention_layernorm.weight"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            names[f"{ours}.attn.{proj}.weight"] = f"{theirs}.self_attn.{proj}.weight"
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names[f"{ours}.ffn.{proj}.weight"] = f"{theirs}.mlp.{proj}.weight"
    if not config.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    return names


def convert_state_dict(
    state: dict[str, Tensor], model: TinyGPT, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Rename a MiniMind state dict to ``model``'s names, checking every name and shape.

    Args:
        state: Tensors under Hugging Face Llama names.
        model: The :class:`TinyGPT` they are meant for.
        source: How to name the checkpoint in errors.

    Returns:
        A state dict for ``model.load_state_dict`` (tensors unchanged).

    Raises:
        ValueError: Naming, in one message, every missing tensor, every shape that differs
            from the model's and every tensor the model has no place for.
    """
    expected = model.state_dict()
    mapping = tinygpt_to_hf_names(model.config)
    out, missing, wrong = {}, [], []
    for ours, theirs in mapping.items():
        if theirs not in state:
            missing.append(theirs)
            continue
        got, want = tuple(state[theirs].shape), tuple(expected[ours].shape)
        if got != want:
            wrong.append(f"{theirs}: checkpoint {got}, model expects {want}")
        out[ours] = state[theirs]
    used = set(mapping.values())
    if model.config.tie_embeddings:
        used.add("lm_head.weight")  # a copy of the embedding: load_minimind checked it
    unexpected = sorted(k for k in state if k not in used and not _DERIVED.fullmatch(k))
    if missing or wrong or unexpected:
        lines = [f"{source} does not fit TinyGPT({_describe(model.config)}):"]
        lines += [f"  missing: {k}" for k in missing]
        lines += [f"  wrong shape: {w}" for w in wrong]
        lines += [f"  unexpected: {k}" for k in unexpected]
        lines += [f"  note: the checkpoint has {h}" for h in _unsupported_features(unexpected)]
        raise ValueError("\n".join(lines))
    return out


def _describe(config: GPTConfig) -> str:
    return (f"vocab={config.vocab_size}, d_model={config.d_model}, n_layers={config.n_layers}, "
            f"n_heads={config.n_heads}, n_kv_heads={config.n_kv_heads}, d_ff={config.d_ff}")


def load_minimind(
    path: str | Path,
    *,
    n_heads: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    context_length: int | None = None,
) -> TinyGPT:
    """Build a :class:`TinyGPT` holding MiniMind weights from a local file or folder.

    The configuration comes from ``config.json`` when ``path`` is a Hugging Face folder that
    has one, else from the tensor shapes (:func:`config_from_state_dict`). The output head is
    tied to the embedding when the config says so, or, without a config, when the file has no
    ``lm_head.weight`` or one equal to the embedding (MiniMind's ``.pth`` files store both).

    Args:
        path: A MiniMind ``.pth`` (or any ``torch.save``-d) state dict, a ``.safetensors``
            file, or a folder with ``model.safetensors`` / ``pytorch_model.bin`` and
            optionally ``config.json``.
        n_heads: Query heads, for a checkpoint without ``config.json`` that is not MiniMind2's
            8; with a ``config.json`` it must agree with it.
        device: Where the model goes (default ``"cpu"``).
        dtype: Floating-point dtype of the weights (MiniMind stores float16).
        context_length: The model's window (see :func:`config_from_hf`); RoPE has no learned
            positions, so any value works and generation with a cache may run past it.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: If ``path`` (or a folder's weight file) does not exist.
        ValueError: If the config asks for something TinyGPT lacks, or any tensor is missing,
            unexpected or of the wrong shape (all named in one message).
    """
    path = Path(path)
    state = read_state_dict(path)
    config_file = path / "config.json" if path.is_dir() else None
    tied: bool | None = None
    if config_file is not None and config_file.is_file():
        spec = json.loads(config_file.read_text(encoding="utf-8"))
        config, tied = config_from_hf(spec, context_length)
        if n_heads is not None and n_heads != config.n_heads:
            raise ValueError(f"n_heads={n_heads} contradicts config.json's {config.n_heads}")
    else:
        config = config_from_state_dict(state, n_heads, context_length)

    emb, head = state.get("model.embed_tokens.weight"), state.get("lm_head.weight")
    same = head is None or (
        emb is not None and head.shape == emb.shape and torch.equal(head, emb)
    )
    if tied is None:
        tied = same
    elif tied and not same:
        raise ValueError(
            f"{str(path)!r}: config.json ties lm_head to the embedding, but lm_head.weight "
            "differs from model.embed_tokens.weight"
        )
    config.tie_embeddings = tied

    model = TinyGPT(config)
    weights = convert_state_dict(state, model, source=repr(str(path)))
    if tied:  # one tensor under both names, as in model.state_dict()
        weights["lm_head.weight"] = weights["tok_emb.weight"]
    model.load_state_dict(weights)
    return model.to(device="cpu" if device is None else device, dtype=dtype).eval()
