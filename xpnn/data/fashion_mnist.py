"""Fashion-MNIST: where to find its four IDX files, how to download them, and loading them.

A folder the user names (``data_dir``, ``$XPNN_DATA``) is used alone; otherwise Debian's
``/usr/share/datasets/fashion-mnist`` and the user cache, in that order; downloads
(checksum-verified) only where none has them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.data.idx import read_idx
from xpnn.errors import DataFormatError, DataNotFoundError

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
"""The ten class names of Fashion-MNIST, indexed by label (``FASHION_MNIST_CLASSES[y]``)."""
SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist"
HOW_TO_GET = (
    "install the Debian package (apt-get install -y dataset-fashion-mnist, which puts the four files in "
    f"{SYSTEM_DATA_DIR}), or download the four .gz files from {FASHION_MNIST_URL} into a directory "
    "and set XPNN_DATA to it (or pass data_dir=)"
)


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
    if labels.dtype.kind not in "iu":
        raise DataFormatError(f"{label_path}: expected integer class labels 0..9, got dtype {labels.dtype}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise DataFormatError(
            f"{label_path}: labels must be in 0..9, got values in [{int(labels.min())}, {int(labels.max())}]"
        )
    return images, labels


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download_missing: bool = True,
    base_url: str = FASHION_MNIST_URL,
    checksums: Mapping[str, str] = FASHION_MNIST_MD5,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` as host uint8 arrays, images (n, 28, 28).

    A folder the user names (``data_dir``, else ``$XPNN_DATA``) is the only one used: the files
    it lacks are downloaded into it (``download_missing``) or a :class:`DataNotFoundError`
    names them; another copy elsewhere is never used silently. With no folder named, looks in
    ``/usr/share/datasets/fashion-mnist`` and the user cache dir, and only where neither holds
    the four files downloads them into the cache dir (verifying the published MD5 checksums);
    without a network it raises :class:`DataNotFoundError` saying how to get them.
    """
    named = data_dir if data_dir is not None else os.environ.get("XPNN_DATA") or None
    if named is not None:  # a folder the user names is used, never silently another copy
        return _load_named(Path(named), download_missing, base_url, checksums)
    for directory in _search_path(None):
        if _has_all(directory, checksums):
            return _load_split(directory, "train"), _load_split(directory, "t10k")
    searched = ", ".join(str(d) for d in _search_path(None))
    if not download_missing:
        raise DataNotFoundError(f"Fashion-MNIST not found in {searched}; {HOW_TO_GET}")
    return _download_and_load(user_cache_dir(), searched, base_url, checksums)


def _load_named(directory: Path, download_missing: bool, base_url: str, checksums: Mapping[str, str]) -> Any:
    """Load from the folder the user named (``data_dir=`` or ``$XPNN_DATA``), downloading the
    missing files into it when allowed; else name what is missing there."""
    missing = [name for name in checksums if _find_file(directory, name) is None]
    if not missing:
        return _load_split(directory, "train"), _load_split(directory, "t10k")
    if not download_missing:
        raise DataNotFoundError(
            f"Fashion-MNIST: {directory} (the folder named by data_dir= or XPNN_DATA) lacks "
            f"{', '.join(missing)}; {HOW_TO_GET}"
        )
    return _download_and_load(directory, str(directory), base_url, checksums)


def _download_and_load(target: Path, searched: str, base_url: str, checksums: Mapping[str, str]) -> Any:
    try:
        download(base_url, target, checksums)
    except (urllib.error.URLError, OSError) as error:
        raise DataNotFoundError(
            f"Fashion-MNIST not found in {searched}, and downloading from {base_url} failed ({error}); "
            f"{HOW_TO_GET}"
        ) from None
    return _load_split(target, "train"), _load_split(target, "t10k")
