"""Text corpora for character-level language models, and a loader of context windows.

:func:`load_text` reads UTF-8 files (by default the top-level ``.py`` files of the Python
standard library this interpreter runs on, sorted by name: 4.7 M characters of code and
prose on every machine, nothing to download), builds a :class:`Vocabulary` of the symbols
that occur, encodes the text as integer ids and splits it by position (the last 10% for
validation). :class:`TextLoader` keeps the ids on the device as stored (uint8 while the
vocabulary has at most 256 symbols) and draws ``(batch, context)`` windows of inputs and
their next-symbol targets there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.checks import check_count, check_number
from xpnn.errors import ArgumentError, DataFormatError

Array = Any
INDEX_SUFFIXES = (".dat", ".u8")  # fortune's index files beside its text files


def python_stdlib_files() -> list[str]:
    """The standard library's top-level ``.py`` files (beside ``os.py``), sorted by name."""
    folder = os.path.dirname(os.__file__)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name.endswith(".py")]


def text_files(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``paths`` with each folder replaced by its files sorted by name; hidden files and
    ``fortune``'s index files (``.dat``, ``.u8``) are skipped."""
    found: list[str] = []
    for path in (os.fspath(p) for p in paths):
        names = [os.path.join(path, n) for n in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
        for name in names:
            base = os.path.basename(name)
            if not base.startswith(".") and not base.endswith(INDEX_SUFFIXES) and not os.path.isdir(name):
                found.append(name)
    if not found:
        raise DataFormatError(f"no text files in {[os.fspath(p) for p in paths]}")
    return found


def read_text(paths: Sequence[str | os.PathLike[str]]) -> str:
    """The files' text, concatenated in order; a file that is not UTF-8 is named in the error."""
    parts = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                parts.append(file.read())
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{os.fspath(path)}: not UTF-8 text ({error})") from None
    return "".join(parts)


class Vocabulary:
    """The symbols of a text, sorted by code point; symbol ``i`` has id ``i``."""

    def __init__(self, symbols: str) -> None:
        if not symbols or len(set(symbols)) != len(symbols):
            raise ArgumentError(f"Vocabulary: expected distinct symbols, got {symbols[:40]!r}")
        self.symbols = "".join(sorted(symbols))
        self._points = _code_points(self.symbols)

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        """The vocabulary of every symbol in ``text``."""
        return cls("".join(chr(c) for c in np.unique(_code_points(text))))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def dtype(self) -> Any:
        """The smallest NumPy integer dtype holding every id (uint8 up to 256 symbols)."""
        return np.uint8 if len(self) <= 256 else np.int32

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text``'s symbols (host array of :attr:`dtype`); unknown symbols are an error."""
        points = _code_points(text)
        ids = np.searchsorted(self._points, points)
        ids = np.minimum(ids, len(self) - 1)
        unknown = self._points[ids] != points
        if unknown.any():
            symbol = text[int(unknown.argmax())]
            raise DataFormatError(f"Vocabulary.encode: symbol {symbol!r} is not in the vocabulary")
        return ids.astype(self.dtype)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (any array or list of integers)."""
        host = backend.to_host(ids) if hasattr(ids, "shape") else np.asarray(ids)
        return "".join(self.symbols[i] for i in host.reshape(-1).tolist())


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@dataclass
class TextCorpus:
    """A vocabulary and the text's ids split by position: ``train`` then ``validation``."""

    vocabulary: Vocabulary
    train: np.ndarray
    validation: np.ndarray
    files: list[str]


def load_text(
    paths: Sequence[str | os.PathLike[str]] | None = None, *, validation: float = 0.1
) -> TextCorpus:
    """Read ``paths`` (default: :func:`python_stdlib_files`; folders expand to their files), build
    the vocabulary of the whole text and split the ids by position: the last ``validation``
    fraction is the validation set."""
    files = python_stdlib_files() if paths is None else text_files(paths)
    fraction = check_number("load_text", "validation", validation, low=0.0, high=1.0)
    text = read_text(files)
    vocabulary = Vocabulary.of(text)
    ids = vocabulary.encode(text)
    cut = len(ids) - round(len(ids) * fraction)
    return TextCorpus(vocabulary, ids[:cut], ids[cut:], files)


class TextLoader:
    """``(inputs, targets)`` batches of ``(batch_size, context)`` ids on the device: windows of
    ``ids`` and the same windows shifted by one symbol (the next symbol of each position).

    The ids move to the device once, as stored (uint8 for up to 256 symbols); each batch is
    gathered with ``take`` there and cast to int64. ``batch(step)`` draws its window offsets
    from the host generator ``default_rng([seed, step])`` (a handful of integers copied to the
    device; no host sync), so step ``k``'s batch is the same on every backend, and a run
    resumed at step ``k`` sees exactly the batches of the uninterrupted one.
    """

    def __init__(self, ids: Array, *, batch_size: int, context: int, seed: int = 0,
                 target: str | backend.Backend = "numpy") -> None:  # fmt: skip
        self.batch_size = check_count("TextLoader", "batch_size", batch_size)
        self.context = check_count("TextLoader", "context", context)
        self.seed = check_count("TextLoader", "seed", seed, minimum=0)
        host = np.asarray(backend.to_host(ids) if not isinstance(ids, np.ndarray) else ids)
        if host.ndim != 1 or host.dtype.kind not in "iu":
            raise DataFormatError(
                f"TextLoader: expected a 1-D integer array of ids, got {host.dtype} of shape {host.shape}"
            )
        if host.shape[0] < self.context + 1:
            raise ArgumentError(
                f"TextLoader: a context of {self.context} needs at least {self.context + 1} ids, "
                f"got {host.shape[0]}"
            )
        self.bk = backend.resolve(target) if isinstance(target, str) else target
        self.ids = backend.from_host(host, self.bk)
        self.size = int(host.shape[0])
        xp = self.bk.xp
        self._span = xp.arange(self.context + 1, dtype=xp.int64, device=self.bk.device)

    def offsets(self, step: int) -> np.ndarray:
        """The host offsets of step ``step``'s windows (each window has ``context + 1`` ids)."""
        rng = np.random.default_rng([self.seed, int(step)])
        return rng.integers(0, self.size - self.context, self.batch_size, dtype=np.int64)

    def windows(self, offsets: Array) -> tuple[Array, Array]:
        """``(inputs, targets)`` of the windows starting at ``offsets`` (host or device ints)."""
        xp = self.bk.xp
        start = offsets if not isinstance(offsets, np.ndarray) else backend.from_host(offsets, self.bk)
        index = xp.reshape(start, (-1, 1)) + self._span
        taken = xp.astype(xp.take(self.ids, xp.reshape(index, (-1,)), axis=0), xp.int64)
        rows = xp.reshape(taken, (index.shape[0], self.context + 1))
        return rows[:, :-1], rows[:, 1:]

    def batch(self, step: int) -> tuple[Array, Array]:
        """Step ``step``'s random batch (a pure function of ``seed`` and ``step``)."""
        return self.windows(self.offsets(step))

    def sequential(self, batch_size: int | None = None) -> Iterator[tuple[Array, Array]]:
        """Every non-overlapping window in order, in batches (the last may be smaller): a whole
        split's loss, the same on every run (the windows' ``context`` positions each predict)."""
        size = self.batch_size if batch_size is None else check_count("TextLoader", "batch_size", batch_size)
        starts = np.arange(0, self.size - self.context, self.context, dtype=np.int64)
        for first in range(0, len(starts), size):
            yield self.windows(starts[first : first + size])
