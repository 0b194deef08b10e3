"""Small trained models that ship inside the package and load offline in one call.

>>> model, tok = load_pretrained()          # TinyGPT in eval mode and its CharTokenizer
>>> load_pretrained().info["val_loss"]       # how it was trained and how well

Each model is one file ``utils/pretrained/<name>.pt`` written by
``python -m tools.train_pretrained``. It holds only plain data (tensors in float16, dicts,
lists, strings, numbers), so it is read with ``torch.load(..., weights_only=True)``: no
pickled objects, no network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .data import CharTokenizer
from .device import get_device
from .model import GPTConfig, TinyGPT

DEFAULT_MODEL = "tiny-pydoc-char"
FORMAT_VERSION = 1
_SUFFIX = ".pt"


def available_models() -> list[str]:
    """Names of the models shipped with the package, sorted."""
    folder = resources.files(__package__) / "pretrained"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(_SUFFIX)] for p in folder.iterdir() if p.name.endswith(_SUFFIX))


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8 (identifies a training corpus)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Pretrained:
    """A loaded model with its tokenizer and training record.

    Unpacks as ``model, tokenizer = load_pretrained()``.

    Attributes:
        model: The :class:`TinyGPT`, float32, in eval mode.
        tokenizer: Its :class:`CharTokenizer`.
        config: The model's :class:`GPTConfig`.
        info: Everything else stored with the weights (corpus and its SHA-256, split, training
            settings, final losses, steps, seed, torch version); see
            ``tools/train_pretrained.py``.
    """

    model: TinyGPT
    tokenizer: CharTokenizer
    config: GPTConfig
    info: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[TinyGPT | CharTokenizer]:
        """Yield the model, then the tokenizer."""
        return iter((self.model, self.tokenizer))


def pack_state_dict(state: dict[str, Tensor], dtype: torch.dtype = torch.float16) -> dict:
    """Cast floating tensors to ``dtype`` for storage, keeping tied tensors shared.

    Args:
        state: A ``state_dict``.
        dtype: Storage dtype of the floating-point tensors.

    Returns:
        A new dict of detached CPU tensors; tensors that shared memory still do, so
        ``torch.save`` writes tied embeddings once.
    """
    packed: dict[str, Tensor] = {}
    seen: dict[tuple[int, tuple[int, ...]], Tensor] = {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key not in seen:
            t = tensor.detach().cpu()
            seen[key] = t.to(dtype) if t.is_floating_point() else t.clone()
        packed[name] = seen[key]
    return packed


def load_pretrained_file(path: str | Path, device: torch.device | str | None = None) -> Pretrained:
    """Load a file written by ``tools.train_pretrained`` (see :func:`load_pretrained`).

    Args:
        path: The ``.pt`` file.
        device: Where the model goes (default: ``"cpu"``; ``"auto"`` picks an accelerator).

    Returns:
        The :class:`Pretrained` bundle; weights are cast back to float32.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not in a known format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained model file {str(path)!r} not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} is not a pretrained-model file of format {FORMAT_VERSION}"
        )
    config = GPTConfig(**state["model_config"])
    tokenizer = CharTokenizer(list(state["tokenizer"]["chars"]))
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"{str(path)!r}: tokenizer has {tokenizer.vocab_size} characters, model "
            f"{config.vocab_size}"
        )
    model = TinyGPT(config)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    model.load_state_dict(weights)
    model.to(get_device("cpu" if device is None else str(device))).eval()
    info = dict(state["info"])
    # GPTConfig fields added after training take their defaults, which is how the model was
    # trained: the record shows the complete configuration
    info["gpt_config"] = {**asdict(config), **info.get("gpt_config", {})}
    return Pretrained(model, tokenizer, config, info)


def load_pretrained(
    name: str = DEFAULT_MODEL, device: torch.device | str | None = None
) -> Pretrained:
    """Load a model shipped with the package, offline.

    Args:
        name: One of :func:`available_models`, e.g. ``"tiny-pydoc-char"``: a 4-layer character
            model trained on the course's default corpus (``utils.data.default_corpus``).
        device: Where the model goes (default: ``"cpu"``; ``"auto"`` picks an accelerator).

    Returns:
        A :class:`Pretrained`; ``model, tok = load_pretrained()`` unpacks the model (eval
        mode, float32) and its tokenizer, ``.info`` holds the training record.

    Raises:
        ValueError: If no model of that name ships with the package.
    """
    names = available_models()
    if name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; available: {names}")
    resource = resources.files(__package__) / "pretrained" / f"{name}{_SUFFIX}"
    with resources.as_file(resource) as path:
        return load_pretrained_file(path, device)
