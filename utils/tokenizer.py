"""A byte-level BPE tokenizer a practitioner would use: GPT-2 pre-tokenisation, special tokens,
save and load, and Hugging Face ``tokenizer.json`` files.

>>> tok = BPETokenizer.train(text, vocab_size=1024, special_tokens=["<|endoftext|>"])
>>> tok.encode("hello<|endoftext|>")          # the special token is one id, never split
>>> tok.save("tokenizer.json")                 # a file the `tokenizers` library also reads
>>> BPETokenizer.load("minimind/tokenizer.json")  # any byte-level BPE in that format

Token ids of a tokenizer trained here: 0-255 are the raw bytes of the UTF-8 encoding, each
merge ``(a, b) -> 256 + k`` adds one token, and special tokens come last. A loaded file keeps
its own ids. Any string can be encoded and ``decode(encode(s)) == s`` always holds.

Nothing here depends on a third-party package: the ``\\p{L}``/``\\p{N}`` classes of the GPT-2
pattern (which Python's ``re`` lacks) are built from :mod:`unicodedata` when the module loads.
"""

from __future__ import annotations

import heapq
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

import torch

# ----------------------------------------------------------------------------------------------
# Pre-tokenisation: GPT-2's regex, which the `tokenizers` library's ByteLevel pre-tokenizer uses
#
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#
# Merges never cross the boundaries of these chunks, so a word gets the same tokens wherever it
# appears and training only counts *distinct* chunks.

GPT2_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
)

# Unicode White_Space (what \s means in the Rust regex engine of `tokenizers`; Python's \s also
# matches U+001C..U+001F, which are not white space there)
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _category_class(prefix: str) -> str:
    """A regex character class body of every code point whose category starts with prefix."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] == prefix:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


_L, _N = _category_class("L"), _category_class("N")
_SPLIT_PATTERN = re.compile(
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{_L}]+| ?[{_N}]+| ?[^{_WHITE_SPACE}{_L}{_N}]+"
    rf"|[{_WHITE_SPACE}]+(?![^{_WHITE_SPACE}])|[{_WHITE_SPACE}]+|[\s\S]"
)  # the last alternative (never reached by GPT-2's pattern) keeps the chunks lossless


def pre_tokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 chunks; ``"".join(pre_tokenize(s)) == s``."""
    return _SPLIT_PATTERN.findall(text)


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right)."""
    out = []
    i = 0
    n = len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (used in tokenizer.json).

    Printable Latin-1 bytes map to themselves; the others (control characters, space, ...) to
    the code points 256, 257, ... in order, so every token can be written as a visible string.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _as_id_list(ids: list[int] | torch.Tensor) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
        return ids.tolist()
    return [int(i) for i in ids]  # also accepts 0-d tensors and numpy integers


# ----------------------------------------------------------------------------------------------
# The tokenizer


class BPETokenizer:
    """Byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2's byte-level variant).

    Args:
        merges: Learnt merges in order, ``{(a, b): new_id}`` with ``new_id = 256, 257, ...``;
            ids 0-255 are the bytes.
        special_tokens: Strings that are always one token and never split, e.g.
            ``["<|endoftext|>"]``; they get the ids after the last merge.

    Raises:
        ValueError: If the merge ids are not consecutive from 256 or refer to unknown ids, or a
            special token is empty or repeated.
    """

    def __init__(
        self,
        merges: dict[tuple[int, int], int] | None = None,
        special_tokens: Iterable[str] | None = None,
    ) -> None:
        merges = dict(merges or {})
        vocab = {i: bytes([i]) for i in range(256)}
        for expected, ((a, b), new_id) in enumerate(merges.items(), start=256):
            if new_id != expected or a >= new_id or b >= new_id:
                raise ValueError(
                    f"merge {(a, b)} -> {new_id}: merge ids must be 256, 257, ... in order and "
                    "only refer to earlier tokens"
                )
            vocab[new_id] = vocab[a] + vocab[b]
        names = list(special_tokens or [])
        specials = {name: len(vocab) + i for i, name in enumerate(names)}
        if len(specials) != len(names):
            raise ValueError(f"special tokens must be distinct, got {names!r}")
        self._setup(vocab, merges, specials)

    def _setup(
        self,
        vocab: dict[int, bytes],
        merges: dict[tuple[int, int], int],
        specials: dict[str, int],
        ignore_merges: bool = False,
    ) -> None:
        """Store a tokenizer given as ids -> bytes, merges in rank order, specials -> ids."""
        byte_ids = {v[0]: i for i, v in vocab.items() if len(v) == 1}
        missing = [b for b in range(256) if b not in byte_ids]
        if missing:
            raise ValueError(f"the vocabulary has no token for the bytes {missing[:5]}: every "
                             "byte needs one, or some strings could not be encoded")
        if any(not name for name in specials):
            raise ValueError("a special token cannot be the empty string")
        clash = set(specials.values()) & set(vocab)
        if clash:
            raise ValueError(f"special token ids {sorted(clash)[:5]} are also ordinary tokens")
        self.vocab: dict[int, bytes] = vocab
        self.merges: dict[tuple[int, int], int] = merges
        self.special_tokens: dict[str, int] = dict(specials)
        self._special_names = {i: name for name, i in specials.items()}
        self._byte_ids = [byte_ids[b] for b in range(256)]
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._ignore_merges = ignore_merges
        self._bytes_to_id = {v: i for i, v in vocab.items()} if ignore_merges else {}
        # longest first, so that "<|im_start|>" wins over a special token that is its prefix
        ordered = sorted(specials, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids in use: ordinary tokens plus special tokens."""
        return len(self.vocab) + len(self.special_tokens)

    # ------------------------------------------------------------------------------------------
    # training

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Iterable[str] | None = None,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Each step merges the most frequent adjacent pair of tokens within a chunk; ties go to
        the smallest pair ``(a, b)``. Special tokens in the text are cut out first, so no merge
        crosses or enters them. Only distinct chunks are stored, with their counts; pair counts
        are updated incrementally (a merge revisits only the chunks that contain the pair) and
        the best pair comes from a heap with lazy deletion, so a merge costs
        ``O(affected chunks + log P)`` instead of a scan of all ``P`` pairs.

        Args:
            text: Training text (any Unicode).
            vocab_size: Final vocabulary size, including the 256 bytes and the special tokens.
            special_tokens: Strings to reserve as single tokens (ids after the merges).
            verbose: Print each merge.

        Returns:
            The trained tokenizer. It may have fewer than ``vocab_size`` tokens if the text
            runs out of pairs.

        Raises:
            ValueError: If ``vocab_size`` is too small for the bytes and the special tokens, or
                ``text`` is empty.
        """
        names = list(special_tokens or [])
        if vocab_size < 256 + len(names):
            raise ValueError(f"vocab_size must be >= 256 (the byte alphabet) + {len(names)} "
                             f"special tokens, got {vocab_size}")
        if not text:
            raise ValueError("cannot train a BPETokenizer on an empty text")

        pieces = re.split("|".join(map(re.escape, names)), text) if names else [text]
        chunk_counts: Counter[str] = Counter()
        for piece in pieces:
            chunk_counts.update(_SPLIT_PATTERN.findall(piece))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values())

        # pair -> weighted count, and pair -> indices of the words that contain it
        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (ids, count) in enumerate(zip(words, counts, strict=True)):
            for pair in zip(ids, ids[1:], strict=False):
                pair_counts[pair] += count
                where[pair].add(w)
        # max-heap of (count, pair) as (-count, pair): ties pop the smallest pair first.
        # Entries go stale when a count changes; a popped entry is used only if still current.
        heap = [(-c, pair) for pair, c in pair_counts.items()]
        heapq.heapify(heap)

        merges: dict[tuple[int, int], int] = {}
        vocab = {i: bytes([i]) for i in range(256)}
        for new_id in range(256, vocab_size - len(names)):
            best = None
            while heap:
                neg_count, pair = heapq.heappop(heap)
                if pair_counts.get(pair, 0) == -neg_count > 0:
                    best = pair
                    break
            if best is None:
                break
            merges[best] = new_id
            vocab[new_id] = vocab[best[0]] + vocab[best[1]]
            if verbose:
                print(f"merge {new_id - 255}/{vocab_size - 256 - len(names)}: {best} -> {new_id}"
                      f" {vocab[new_id]!r} ({pair_counts[best]} occurrences)")
            touched: set[tuple[int, int]] = set()
            for w in where.pop(best, ()):
                ids, count = words[w], counts[w]
                # remove the word's old pairs, merge, add its new pairs
                for pair in zip(ids, ids[1:], strict=False):
                    pair_counts[pair] -= count
                    touched.add(pair)
                    if pair != best and pair in where:
                        where[pair].discard(w)
                ids = _merge(ids, best, new_id)
                words[w] = ids
                for pair in zip(ids, ids[1:], strict=False):
                    pair_counts[pair] += count
                    where[pair].add(w)
                    touched.add(pair)
            for pair in touched:
                c = pair_counts[pair]
                if c > 0:
                    heapq.heappush(heap, (-c, pair))
                else:
                    del pair_counts[pair]  # every occurrence of best ends here, too
        return cls(merges, special_tokens=names)

    # ------------------------------------------------------------------------------------------
    # encoding and decoding

    def _encode_chunk(self, chunk: str) -> list[int]:
        data = chunk.encode("utf-8")
        if self._ignore_merges and data in self._bytes_to_id:
            return [self._bytes_to_id[data]]  # a Hugging Face option: whole words first
        byte_ids = self._byte_ids
        ids = [byte_ids[b] for b in data]
        ranks = self._ranks
        while len(ids) >= 2:
            # apply the earliest-learnt merge present, exactly as in training
            pair = min(zip(ids, ids[1:], strict=False), key=lambda p: ranks.get(p, 1 << 62))
            if pair not in ranks:
                break
            ids = _merge(ids, pair, self.merges[pair])
        return ids

    def _encode_ordinary(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for chunk in _SPLIT_PATTERN.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(cache) < 100_000:  # frequent words repeat; bound the memory anyway
                    cache[chunk] = ids
            out.extend(ids)

    def encode(
        self, text: str, allowed_special: Literal["all", "none"] | Collection[str] = "all"
    ) -> list[int]:
        """Encode any string.

        Args:
            text: Any Unicode string.
            allowed_special: Which special tokens written in ``text`` become their single id:
                ``"all"`` (as the `tokenizers` library does), ``"none"`` (encode them as plain
                text, e.g. for untrusted input), or a collection of their names.

        Returns:
            Token ids.

        Raises:
            ValueError: If ``allowed_special`` names a token that is not a special token.
        """
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special == "none":
            allowed = set()
        elif isinstance(allowed_special, str):
            raise ValueError(f"allowed_special must be 'all', 'none' or a collection of special "
                             f"tokens, got the string {allowed_special!r}")
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(f"unknown special token(s) {sorted(unknown)}; this tokenizer "
                                 f"has {sorted(self.special_tokens)}")
        out: list[int] = []
        if not allowed or self._special_re is None:
            self._encode_ordinary(text, out)
            return out
        start = 0
        for match in self._special_re.finditer(text):
            if match.group() not in allowed:
                continue
            self._encode_ordinary(text[start : match.start()], out)
            out.append(self.special_tokens[match.group()])
            start = match.end()
        self._encode_ordinary(text[start:], out)
        return out

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Decode ids to a string (special tokens become their text).

        Args:
            ids: Token ids (a list or a 1-D tensor). A sequence that cuts a multi-byte
                character in half decodes that character as U+FFFD.

        Returns:
            The text.

        Raises:
            ValueError: If an id is out of range.
        """
        ids = _as_id_list(ids)
        parts = []
        for i in ids:
            if i in self.vocab:
                parts.append(self.vocab[i])
            elif i in self._special_names:
                parts.append(self._special_names[i].encode("utf-8"))
            else:
                raise ValueError(f"token id {i} out of range: this tokenizer has "
                                 f"{self.vocab_size} ids")
        return b"".join(parts).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """Return the bytes that token ``token_id`` stands for.

        Raises:
            ValueError: If the id is out of range.
        """
        if token_id in self.vocab:
            return self.vocab[token_id]
        if token_id in self._special_names:
            return self._special_names[token_id].encode("utf-8")
        raise ValueError(f"token id {token_id} out of range: this tokenizer has "
                         f"{self.vocab_size} ids")

    def special_id(self, name: str) -> int:
        """The id of special token ``name``.

        Raises:
            ValueError: If ``name`` is not a special token of this tokenizer.
        """
        if name not in self.special_tokens:
            raise ValueError(f"unknown special token {name!r}; this tokenizer has "
                             f"{sorted(self.special_tokens)}")
        return self.special_tokens[name]

    # ------------------------------------------------------------------------------------------
    # files

    def to_huggingface(self) -> dict:
        """This tokenizer as the dict of a Hugging Face ``tokenizer.json`` (byte-level BPE)."""
        b2u = bytes_to_unicode()

        def text(data: bytes) -> str:
            return "".join(b2u[b] for b in data)

        added = [{"id": i, "content": name, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True}
                 for name, i in sorted(self.special_tokens.items(), key=lambda kv: kv[1])]
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True}
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": None,
            "decoder": byte_level,
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None,
                "continuing_subword_prefix": None, "end_of_word_suffix": None,
                "fuse_unk": False, "byte_fallback": False, "ignore_merges": self._ignore_merges,
                "vocab": {text(v): i for i, v in sorted(self.vocab.items())},
                "merges": [[text(self.vocab[a]), text(self.vocab[b])] for a, b in self.merges],
            },
        }

    def save(self, path: str | Path) -> None:
        """Write a ``tokenizer.json`` that :meth:`load` and the `tokenizers` library read."""
        Path(path).write_text(json.dumps(self.to_huggingface(), ensure_ascii=False, indent=1),
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a byte-level BPE ``tokenizer.json`` (saved here, by `tokenizers`, or MiniMind's).

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If it is not valid JSON or not a byte-level BPE this class can run.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {str(path)!r} not found")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{str(path)!r} is not a valid tokenizer.json: {err}") from None
        return cls.from_huggingface(spec, source=str(path))

    @classmethod
    def from_huggingface(cls, spec: dict, source: str = "tokenizer.json") -> BPETokenizer:
        """Build a tokenizer from the dict of a Hugging Face ``tokenizer.json``.

        Supported: model ``BPE`` with a ``ByteLevel`` pre-tokenizer (alone or in a
        ``Sequence``, ``add_prefix_space`` false, regex on), no normalizer, special tokens from
        ``added_tokens``. Anything else raises, rather than encoding differently in silence.

        Raises:
            ValueError: If the file uses a feature listed above as unsupported, or its merges
                refer to tokens missing from its vocabulary.
        """
        def bad(why: str) -> ValueError:
            return ValueError(f"{source}: {why}")

        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise bad("no 'model' section; is this a Hugging Face tokenizer.json?")
        model = spec["model"]
        if model.get("type", "BPE") != "BPE" or "merges" not in model or "vocab" not in model:
            raise bad(f"model type {model.get('type')!r} is not a BPE with vocab and merges")
        for option in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(option):
                raise bad(f"the BPE option {option}={model[option]!r} is not supported")
        if model.get("byte_fallback"):
            raise bad("byte_fallback BPE (SentencePiece style) is not a byte-level BPE")
        if spec.get("normalizer") is not None:
            raise bad(f"normalizer {spec['normalizer'].get('type')!r} is not supported")
        pre = spec.get("pre_tokenizer") or {}
        steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
        if [s.get("type") for s in steps] != ["ByteLevel"]:
            raise bad(f"pre-tokenizer {pre.get('type')!r} is not a single ByteLevel step")
        if steps[0].get("add_prefix_space") or not steps[0].get("use_regex", True):
            raise bad("only ByteLevel(add_prefix_space=False, use_regex=True) is supported")

        u2b = {u: b for b, u in bytes_to_unicode().items()}
        added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        vocab: dict[int, bytes] = {}
        by_text: dict[str, int] = {}
        for token, i in model["vocab"].items():
            if token in added and added[token] == i:
                continue  # special tokens are listed in the vocab too
            try:
                vocab[i] = bytes(u2b[c] for c in token)
            except KeyError:
                raise bad(f"vocabulary entry {token!r} is not byte-level text") from None
            by_text[token] = i
        merges: dict[tuple[int, int], int] = {}
        for merge in model["merges"]:
            a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
            if a not in by_text or b not in by_text or a + b not in by_text:
                raise bad(f"merge {a!r} + {b!r} refers to a token missing from the vocabulary")
            merges[(by_text[a], by_text[b])] = by_text[a + b]
        tok = cls.__new__(cls)
        tok._setup(vocab, merges, added, ignore_merges=bool(model.get("ignore_merges")))
        return tok

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, "
                f"special_tokens={sorted(self.special_tokens)})")
