"""Text, tokenizers and batches: everything between a text file and ``(x, y)`` tensors.

The default corpus ships with every Python installation (the English help texts of the
``pydoc_data.topics`` module, about 465 kB), so the course never downloads anything. Any
UTF-8 text file can be used instead through :func:`load_text`.
"""

from __future__ import annotations

from pathlib import Path

import torch

# the byte-level BPE moved to utils.tokenizer; these names stay importable from utils.data
from .tokenizer import _SPLIT_PATTERN, BPETokenizer, _as_id_list, _merge  # noqa: F401

# ----------------------------------------------------------------------------------------------
# Corpus


def default_corpus() -> str:
    """Return the course's default corpus: the help texts of ``pydoc_data.topics``.

    The values of the ``topics`` dict are joined in key order (so the text is the same on every
    run) with a blank line between them. The text is about 465,000 characters of English prose
    with some Python code.

    Returns:
        The corpus as one string.
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics))


def load_text(path: str | Path | None = None) -> str:
    """Read a UTF-8 text file, or return :func:`default_corpus` when ``path`` is None.

    Args:
        path: A text file, or None for the default corpus.

    Returns:
        The text.

    Raises:
        FileNotFoundError: If ``path`` does not exist or is not a file.
        ValueError: If the file is empty.
    """
    if path is None:
        return default_corpus()
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"text file {str(path)!r} not found (resolved to {str(path.resolve())!r}); "
            "pass the path of a UTF-8 text file, or None for the default corpus"
        )
    text = path.read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"text file {str(path)!r} is empty")
    return text


# ----------------------------------------------------------------------------------------------
# Character tokenizer


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters of a text.

    Args:
        chars: The vocabulary, one character per token id.

    Raises:
        ValueError: If ``chars`` is empty or contains duplicates or multi-character strings.
    """

    def __init__(self, chars: list[str]) -> None:
        if not chars:
            raise ValueError("CharTokenizer needs at least one character")
        if any(len(c) != 1 for c in chars):
            raise ValueError(f"every vocabulary entry must be one character, got {chars!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary of a CharTokenizer contains duplicate characters")
        self.itos = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the characters of ``text``.

        Args:
            text: Any non-empty string.

        Returns:
            A tokenizer whose ids follow the sorted order of the characters.

        Raises:
            ValueError: If ``text`` is empty.
        """
        if not text:
            raise ValueError("cannot build a CharTokenizer from an empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Map each character to its id.

        Args:
            text: A string made of vocabulary characters.

        Returns:
            One id per character.

        Raises:
            ValueError: If a character is not in the vocabulary.
        """
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            char = err.args[0]
            raise ValueError(
                f"character {char!r} (U+{ord(char):04X}) at position {text.index(char)} is not "
                f"in the vocabulary of {self.vocab_size} characters"
            ) from None

    def decode(self, ids: list[int]) -> str:
        """Map ids back to characters.

        Args:
            ids: Token ids in ``[0, vocab_size)`` (a list or a 1-D tensor).

        Returns:
            The text.

        Raises:
            ValueError: If an id is out of range.
        """
        ids = _as_id_list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} out of range [0, {self.vocab_size})")
        return "".join(self.itos[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ----------------------------------------------------------------------------------------------
# Byte-level BPE: lives in utils.tokenizer (pre-tokenisation, special tokens, files); the names
# stay importable from here (see the imports at the top).

# ----------------------------------------------------------------------------------------------
# Batches


def train_val_split(
    ids: torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token stream into a training head and a validation tail (no shuffling).

    Args:
        ids: Token ids, shape ``(N,)``.
        val_fraction: Fraction of the tokens kept for validation, in ``(0, 1)``.

    Returns:
        ``(train, val)`` views of ``ids`` with ``N - n_val`` and ``n_val`` tokens.

    Raises:
        ValueError: If ``ids`` is not 1-D, ``val_fraction`` is outside ``(0, 1)``, or a part
            would be empty.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (N,), got shape {tuple(ids.shape)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = int(round(len(ids) * val_fraction))
    if n_val == 0 or n_val == len(ids):
        raise ValueError(
            f"splitting {len(ids)} tokens with val_fraction={val_fraction} leaves an empty part"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample random windows of a token stream as inputs and next-token targets.

    Args:
        data: Token ids, shape ``(N,)``, with ``N > block_size``.
        batch_size: Number of windows ``B``.
        block_size: Window length ``T``.
        generator: A CPU generator for reproducible sampling (default: the global RNG).
        device: Where the batch goes (default: ``data.device``).

    Returns:
        ``(x, y)``, both ``(B, T)`` long, with ``y[b, t] == x[b, t + 1]`` in the stream, i.e.
        ``x = data[i : i + T]`` and ``y = data[i + 1 : i + T + 1]`` for a random start ``i``.

    Raises:
        ValueError: If ``data`` is not 1-D, is too short, or a size is not positive.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be 1-D (N,), got shape {tuple(data.shape)}")
    if batch_size < 1 or block_size < 1:
        raise ValueError(
            f"batch_size and block_size must be >= 1, got {batch_size} and {block_size}"
        )
    if len(data) <= block_size:
        raise ValueError(
            f"data has {len(data)} tokens, need more than block_size={block_size} to make a batch"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    idx = (starts[:, None] + torch.arange(block_size)).to(data.device)  # (B, T)
    x, y = data[idx].long(), data[idx + 1].long()
    if device is not None and torch.device(device) != data.device:
        device = torch.device(device)
        if device.type == "cuda":
            # pinned memory lets the copy overlap with the GPU's work on the previous step
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


def pad_batch(
    sequences: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad sequences of different lengths into one batch for next-token training.

    Args:
        sequences: ``B`` non-empty lists of token ids; ``L`` is the longest length.
        pad_id: Id written into the padding of ``input_ids``.

    Returns:
        ``(input_ids, targets, loss_mask)``, each ``(B, L)``. ``targets[b, t]`` is
        ``input_ids[b, t + 1]`` where ``loss_mask`` is True and -100 (ignored by the loss)
        elsewhere. ``loss_mask[b, t]`` is True for ``t < len(sequences[b]) - 1``: False on the
        padding and on the last real token, which has no next token.

    Raises:
        ValueError: If ``sequences`` or one of its sequences is empty.
    """
    if not sequences:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty")
    B, L = len(sequences), max(lengths)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    for b, seq in enumerate(sequences):
        input_ids[b, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    lengths_t = torch.tensor(lengths)
    loss_mask = torch.arange(L)[None, :] < (lengths_t[:, None] - 1)
    targets = torch.full((B, L), -100, dtype=torch.long)
    targets[:, :-1] = input_ids[:, 1:]
    targets[~loss_mask] = -100
    return input_ids, targets, loss_mask
