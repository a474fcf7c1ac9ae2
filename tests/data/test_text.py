"""Text corpora: the vocabulary round-trips, the split is by position, folders expand without
fortune's index files, and the window loader is a pure function of (seed, step) on the device,
the same on every backend, its targets the inputs shifted by one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.data import TextLoader, Vocabulary, load_text
from xpnn.data.text import python_stdlib_files


def test_vocabulary_round_trips_text_with_any_symbols():
    text = "def f(x):\n    return 'π ≈ 3.14' # ✓\t"
    vocabulary = Vocabulary.of(text)
    ids = vocabulary.encode(text)
    assert ids.dtype == np.uint8 and len(vocabulary) == len(set(text))
    assert vocabulary.decode(ids) == text
    assert list(vocabulary.symbols) == sorted(set(text))
    with pytest.raises(xpnn.DataFormatError, match="'y' is not in the vocabulary"):
        vocabulary.encode("xyz")


def test_a_vocabulary_of_more_than_256_symbols_stores_int32():
    text = "".join(chr(0x4E00 + i) for i in range(300))
    vocabulary = Vocabulary.of(text)
    assert vocabulary.encode(text).dtype == np.int32 and vocabulary.decode(vocabulary.encode(text)) == text


def test_load_text_splits_by_position_and_folders_skip_index_files(tmp_path: Path):
    (tmp_path / "b").write_text("0123456789", encoding="utf-8")
    (tmp_path / "a").write_text("abcdefghij", encoding="utf-8")
    (tmp_path / "a.dat").write_bytes(b"\x00\xff\xfe")  # fortune's index files: not text
    (tmp_path / "a.u8").write_bytes(b"\x00\xff")
    corpus = load_text([tmp_path], validation=0.2)
    assert [os.path.basename(f) for f in corpus.files] == ["a", "b"]
    assert corpus.vocabulary.decode(corpus.train) == "abcdefghij012345"
    assert corpus.vocabulary.decode(corpus.validation) == "6789"


def test_the_default_corpus_is_the_standard_library_sorted_by_name():
    files = python_stdlib_files()
    names = [os.path.basename(f) for f in files]
    assert names == sorted(names) and "os.py" in names and all(n.endswith(".py") for n in names)


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path):
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(xpnn.DataFormatError, match=r"bad\.txt: not UTF-8"):
        load_text([tmp_path / "bad.txt"])


def test_loader_batches_are_windows_with_targets_shifted_by_one(bk):
    ids = np.arange(100, dtype=np.uint8)
    loader = TextLoader(ids, batch_size=5, context=8, seed=3, target=bk)
    x, y = loader.batch(0)
    assert tuple(x.shape) == (5, 8) and x.dtype == bk.xp.int64
    x, y = backend.to_host(x), backend.to_host(y)
    np.testing.assert_array_equal(x[:, 1:] - x[:, :1], np.tile(np.arange(1, 8), (5, 1)))
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x[:, 0], loader.offsets(0))


def test_loader_is_reproducible_from_the_seed_and_the_same_on_every_backend(bk):
    ids = np.random.default_rng(0).integers(0, 50, 1000).astype(np.uint8)
    here = TextLoader(ids, batch_size=4, context=16, seed=7, target=bk)
    again = TextLoader(ids, batch_size=4, context=16, seed=7, target=bk)
    on_numpy = TextLoader(ids, batch_size=4, context=16, seed=7)
    other_seed = TextLoader(ids, batch_size=4, context=16, seed=8, target=bk)
    for step in (0, 1, 57):
        batch = backend.to_host(here.batch(step)[0])
        np.testing.assert_array_equal(batch, backend.to_host(again.batch(step)[0]))
        np.testing.assert_array_equal(batch, on_numpy.batch(step)[0])
        assert not np.array_equal(batch, backend.to_host(other_seed.batch(step)[0]))
    assert not np.array_equal(here.offsets(0), here.offsets(1))


def test_sequential_windows_cover_the_text_once_in_order(bk):
    ids = np.arange(53, dtype=np.uint8)
    loader = TextLoader(ids, batch_size=2, context=10, target=bk)
    windows = [backend.to_host(x) for x, _ in loader.sequential(batch_size=3)]
    assert [w.shape[0] for w in windows] == [3, 2]
    np.testing.assert_array_equal(np.concatenate(windows).reshape(-1), np.arange(50))


def test_loader_rejects_bad_input():
    with pytest.raises(xpnn.ArgumentError, match="context of 10 needs at least 11 ids"):
        TextLoader(np.arange(10), batch_size=2, context=10)
    with pytest.raises(xpnn.DataFormatError, match="1-D integer array"):
        TextLoader(np.zeros((4, 4)), batch_size=2, context=2)
    with pytest.raises(xpnn.ArgumentError, match="batch_size"):
        TextLoader(np.arange(10), batch_size=0, context=2)
