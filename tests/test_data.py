"""Tests of utils.data: corpus, tokenizers, batches."""

from __future__ import annotations

import pytest
import torch

from utils.data import (
    BPETokenizer,
    CharTokenizer,
    _merge,
    default_corpus,
    get_batch,
    load_text,
    pad_batch,
    train_val_split,
)

UNICODE_TEXT = "Héllo wörld! 👋🏽 你好，世界。 naïve café — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 __init__ 42 ½\n\t  end"


@pytest.fixture(scope="module")
def corpus() -> str:
    return default_corpus()


@pytest.fixture(scope="module")
def bpe(corpus: str) -> BPETokenizer:
    return BPETokenizer.train(corpus[:50_000], vocab_size=400)


# ---------------------------------------------------------------------------------------------
# corpus


def test_default_corpus_is_large_and_deterministic(corpus: str) -> None:
    assert len(corpus) > 400_000
    assert "the" in corpus and "def " in corpus
    assert default_corpus() == corpus
    assert load_text() == corpus
    assert load_text(None) == corpus


def test_load_text_reads_a_file(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("to be or not to be 🐍", encoding="utf-8")
    assert load_text(path) == "to be or not to be 🐍"
    assert load_text(str(path)) == "to be or not to be 🐍"


def test_load_text_bad_paths(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_text(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError):
        load_text(tmp_path)  # a folder
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")


# ---------------------------------------------------------------------------------------------
# character tokenizer


def test_char_tokenizer_round_trip() -> None:
    tok = CharTokenizer.from_text(UNICODE_TEXT)
    assert tok.vocab_size == len(set(UNICODE_TEXT))
    ids = tok.encode(UNICODE_TEXT)
    assert len(ids) == len(UNICODE_TEXT)
    assert tok.decode(ids) == UNICODE_TEXT
    assert tok.decode(torch.tensor(ids)) == UNICODE_TEXT
    # ids follow the sorted characters
    assert tok.encode("".join(sorted(set(UNICODE_TEXT)))) == list(range(tok.vocab_size))


def test_char_tokenizer_bad_inputs() -> None:
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([0, 3])
    with pytest.raises(ValueError):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError):
        CharTokenizer(["ab"])


# ---------------------------------------------------------------------------------------------
# BPE


def test_bpe_round_trip_unicode(bpe: BPETokenizer) -> None:
    for text in (UNICODE_TEXT, "", " ", "🙂" * 5, "日本語のテキスト", "\x00\x7f\u200b"):
        ids = bpe.encode(text)
        assert all(0 <= i < bpe.vocab_size for i in ids)
        assert bpe.decode(ids) == text


def test_bpe_merges_reduce_length(bpe: BPETokenizer, corpus: str) -> None:
    assert bpe.vocab_size == 400 and len(bpe.merges) == 144
    held_out = corpus[-20_000:]
    n_bytes = len(held_out.encode("utf-8"))
    n_tokens = len(bpe.encode(held_out))
    assert n_tokens < 0.7 * n_bytes  # English compresses well even with 144 merges
    assert bpe.decode(bpe.encode(held_out)) == held_out
    # each token is the concatenation of the two tokens it merges
    for (a, b), new in bpe.merges.items():
        assert bpe.token_bytes(new) == bpe.token_bytes(a) + bpe.token_bytes(b)


def test_bpe_learns_multibyte_characters() -> None:
    text = "你好世界 " * 50 + "😀😀 " * 50
    tok = BPETokenizer.train(text, vocab_size=300)
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) < len(text.encode("utf-8")) / 4
    assert "你好世界".encode() in tok.vocab.values()  # 12 bytes became one token
    assert "😀".encode() in tok.vocab.values()


def test_bpe_first_merge_is_most_frequent_pair() -> None:
    text = "aaab aab ab ab"
    tok = BPETokenizer.train(text, vocab_size=257)
    assert list(tok.merges) == [(ord("a"), ord("b"))]


def test_bpe_encode_applies_merges_in_training_order(bpe: BPETokenizer, corpus: str) -> None:
    # reference: apply every merge in the order it was learnt, chunk by chunk
    from utils.data import _SPLIT_PATTERN

    text = corpus[100_000:103_000] + UNICODE_TEXT
    expected: list[int] = []
    for chunk in _SPLIT_PATTERN.findall(text):
        ids = list(chunk.encode("utf-8"))
        for pair, new in bpe.merges.items():
            ids = _merge(ids, pair, new)
        expected.extend(ids)
    assert bpe.encode(text) == expected


def test_bpe_training_is_fast(corpus: str) -> None:
    import time

    start = time.perf_counter()
    tok = BPETokenizer.train(corpus[:100_000], vocab_size=512)
    assert tok.vocab_size == 512
    assert time.perf_counter() - start < 10.0  # about 0.3 s on a laptop core


def test_bpe_bad_inputs(bpe: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("hello", vocab_size=100)
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("", vocab_size=300)
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([bpe.vocab_size])
    with pytest.raises(ValueError):
        BPETokenizer({(1, 2): 300})  # ids must start at 256


# ---------------------------------------------------------------------------------------------
# splits and batches


def test_train_val_split() -> None:
    ids = torch.arange(1000)
    train, val = train_val_split(ids, 0.1)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)
    with pytest.raises(ValueError):
        train_val_split(ids, 0.0)
    with pytest.raises(ValueError):
        train_val_split(ids, 1.0)
    with pytest.raises(ValueError):
        train_val_split(ids.view(10, 100))
    with pytest.raises(ValueError):
        train_val_split(torch.arange(3), 0.1)  # rounds to an empty validation part


def test_get_batch_targets_are_shifted_inputs() -> None:
    data = torch.arange(500)  # token value == its position in the stream
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, batch_size=8, block_size=16, generator=g)
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(y, x + 1)  # y[:, t] is the token after x[:, t] in the stream
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # windows are contiguous
    assert int(y.max()) <= 499
    # the same generator seed gives the same batch
    x2, _ = get_batch(data, 8, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_get_batch_on_every_start() -> None:
    # the last window ends exactly at the last token
    data = torch.arange(17)
    x, y = get_batch(data, batch_size=64, block_size=16, generator=torch.Generator())
    assert torch.equal(x[:, 0], torch.zeros(64, dtype=torch.long))
    assert int(y[0, -1]) == 16


def test_get_batch_bad_inputs() -> None:
    with pytest.raises(ValueError, match="block_size=16"):
        get_batch(torch.arange(16), 2, 16)
    with pytest.raises(ValueError, match="1-D"):
        get_batch(torch.arange(100).view(10, 10), 2, 4)
    with pytest.raises(ValueError):
        get_batch(torch.arange(100), 0, 4)


def test_pad_batch() -> None:
    ids, targets, mask = pad_batch([[5, 6, 7], [8], [1, 2, 3, 4, 9]], pad_id=0)
    assert torch.equal(ids, torch.tensor([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [1, 2, 3, 4, 9]]))
    assert torch.equal(mask, torch.tensor([
        [True, True, False, False, False],
        [False, False, False, False, False],
        [True, True, True, True, False],
    ]))
    assert torch.equal(targets[mask], ids[:, 1:][mask[:, :-1]])
    assert torch.equal(targets, torch.tensor([
        [6, 7, -100, -100, -100],
        [-100, -100, -100, -100, -100],
        [2, 3, 4, 9, -100],
    ]))
    with pytest.raises(ValueError):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="sequence 1"):
        pad_batch([[1], []], 0)
