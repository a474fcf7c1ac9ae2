"""Data on disk and on the device: the IDX format, Fashion-MNIST, and a device-resident loader.

File reading is host I/O and uses NumPy. :class:`DataLoader` keeps a data set on the
device as stored (Fashion-MNIST as uint8: 47 MB, not 188 MB of float32), gathers each
batch there with ``take`` and casts and scales it there, so a batch costs no host transfer.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.errors import DataFormatError, DataNotFoundError

Array = Any

# IDX type code -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# The MD5 checksums published in github.com/zalandoresearch/fashion-mnist's README.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist"
HOW_TO_GET = (
    "install the Debian package (apt-get install -y dataset-fashion-mnist, which puts the four files in "
    f"{SYSTEM_DATA_DIR}), or download the four .gz files from {FASHION_MNIST_URL} into a directory "
    "and set XPNN_DATA to it (or pass data_dir=)"
)


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({error})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip'd or raw) into a host NumPy array in native byte order.

    Checks the magic number (two zero bytes, a known type code, the rank) and that the
    file holds exactly the bytes its header promises; raises :class:`DataFormatError`
    naming the file and what is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{path}: {len(data)} bytes, too short for an IDX header (4 bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(
            f"{path}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFormatError(f"{path}: unknown IDX data type code 0x{code:02X}; expected one of {known}")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataFormatError(
            f"{path}: truncated header: {ndim} dimensions need {offset} bytes, got {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {kind}: header says shape {dims} of {dtype.name} ({expected} bytes in all), "
            f"the file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip'd when ``path`` ends in ``.gz`` (tests use it)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype)
    if code is None:
        raise DataFormatError(f"{path}: IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(IDX_DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(body) if str(path).endswith(".gz") else body)


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xpnn/fashion-mnist`` (``~/.cache/xpnn/fashion-mnist`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "xpnn" / "fashion-mnist"


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _has_all(directory: Path, names: Mapping[str, str]) -> bool:
    return all(_find_file(directory, name) is not None for name in names)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(base_url: str, target: Path, checksums: Mapping[str, str], timeout: float = 30.0) -> None:
    """Download each file of ``checksums`` from ``base_url`` into ``target``, verifying its MD5.

    Each file goes to a temporary name and is renamed only once its checksum matches, so
    a failed or tampered download never leaves a file that looks complete.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name, expected in checksums.items():
        if _find_file(target, name) is not None:
            continue
        url = base_url.rstrip("/") + "/" + name
        handle, temporary = tempfile.mkstemp(dir=target, prefix=f".{name}.")
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
            actual = _md5(Path(temporary))
            if actual != expected:
                raise DataFormatError(f"{url}: MD5 checksum mismatch: expected {expected}, got {actual}")
            os.replace(temporary, target / name)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def _search_path(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    candidates = [data_dir, os.environ.get("XPNN_DATA"), SYSTEM_DATA_DIR, user_cache_dir()]
    return [Path(c) for c in candidates if c]


def _load_split(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    image_path = _find_file(directory, f"{prefix}-images-idx3-ubyte.gz")
    label_path = _find_file(directory, f"{prefix}-labels-idx1-ubyte.gz")
    assert image_path is not None and label_path is not None
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(
            f"{image_path}: expected uint8 images (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFormatError(
            f"{label_path}: expected {images.shape[0]} labels (one per image of {image_path.name}), "
            f"got shape {labels.shape}"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataFormatError(f"{label_path}: labels must be in 0..9, got a maximum of {int(labels.max())}")
    return images, labels


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download_missing: bool = True,
    base_url: str = FASHION_MNIST_URL,
    checksums: Mapping[str, str] = FASHION_MNIST_MD5,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` as host uint8 arrays, images (n, 28, 28).

    Looks in ``data_dir``, ``$XPNN_DATA``, ``/usr/share/datasets/fashion-mnist`` and the user
    cache dir, in that order. Only where none holds the four files does it download them
    into the cache dir (verifying the published MD5 checksums); without a network it raises
    :class:`DataNotFoundError` saying how to get them.
    """
    for directory in _search_path(data_dir):
        if _has_all(directory, checksums):
            return _load_split(directory, "train"), _load_split(directory, "t10k")
    searched = ", ".join(str(d) for d in _search_path(data_dir))
    if not download_missing:
        raise DataNotFoundError(f"Fashion-MNIST not found in {searched}; {HOW_TO_GET}")
    cache = user_cache_dir()
    try:
        download(base_url, cache, checksums)
    except (urllib.error.URLError, OSError) as error:
        raise DataNotFoundError(
            f"Fashion-MNIST not found in {searched}, and downloading from {base_url} failed ({error}); "
            f"{HOW_TO_GET}"
        ) from None
    return _load_split(cache, "train"), _load_split(cache, "t10k")


class DataLoader:
    """Batches of ``(x, y)`` gathered on the device, in an order fixed by ``(seed, epoch)``.

    ``x`` and ``y`` (host NumPy or arrays of ``target``'s backend) are moved to the device
    once. Integer images (uint8) stay integer there; each batch is gathered with ``take``,
    cast to ``dtype`` and scaled by 1/255 on the device. Host floating data is cast to
    ``dtype`` once, when moved. The shuffle order is drawn on the host from
    ``default_rng([seed, epoch])``: the same seed gives the same order on every backend, and
    a resumed run sees exactly the batches of the uninterrupted one.
    """

    def __init__(
        self,
        x: Array,
        y: Array | None = None,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        target: str | backend.Backend = "numpy",
        dtype: str = "float32",
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if y is not None and y.shape[0] != x.shape[0]:
            raise DataFormatError(f"DataLoader: {x.shape[0]} samples in x but {y.shape[0]} in y")
        self.bk = backend.resolve(target) if isinstance(target, str) else target
        self.dtype = backend.dtype_named(self.bk.xp, dtype)
        self.x = _to_device(x, self.bk, self.dtype)
        self.y = None if y is None else _to_device(y, self.bk, self.dtype)
        self.scale = self.bk.xp.isdtype(self.x.dtype, "integral")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    def order(self, epoch: int) -> np.ndarray:
        """The host permutation of epoch ``epoch`` (identity when not shuffling)."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples).astype(np.int64)

    def batches(self, epoch: int) -> Iterator[tuple[Array, Array | None]]:
        """Yield the batches of epoch ``epoch``; the order moves to the device once per epoch."""
        xp = self.bk.xp
        index = backend.from_host(self.order(epoch), self.bk)
        n = self.num_samples
        for k in range(len(self)):  # stops clamped: out-of-range slices are outside the standard
            idx = index[k * self.batch_size : min((k + 1) * self.batch_size, n)]
            xb = xp.take(self.x, idx, axis=0)
            if self.scale:
                xb = xp.astype(xb, self.dtype) * (1.0 / 255.0)
            yield xb, (None if self.y is None else xp.take(self.y, idx, axis=0))

    def __iter__(self) -> Iterator[tuple[Array, Array | None]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.batches(epoch)


def _to_device(a: Array, bk: backend.Backend, dtype: Any) -> Array:
    """Move ``a`` onto ``bk`` once: host floats are cast to ``dtype``; integers keep their dtype."""
    if isinstance(a, np.ndarray):
        if np.issubdtype(a.dtype, np.floating):
            return backend.from_host(a, bk, dtype)
        return backend.from_host(a, bk, bk.xp.int64 if a.dtype.kind in "iu" and a.ndim == 1 else None)
    if backend.backend_name(a) != bk.name:
        return backend.from_host(backend.to_host(a), bk)
    return a
