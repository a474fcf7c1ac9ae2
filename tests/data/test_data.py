"""IDX files, Fashion-MNIST discovery and download, and the device-resident DataLoader."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.data import fashion_mnist, idx
from xpnn.errors import DataFormatError, DataNotFoundError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")  # fmt: skip


def write_fake_fashion(directory: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> None:
    """Four small, valid Fashion-MNIST-shaped IDX files."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        idx.write_idx(
            directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), np.uint8)
        )
        idx.write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, np.uint8))


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $XPNN_DATA, no system directory, and a private cache dir: only what a test writes exists."""
    monkeypatch.delenv("XPNN_DATA", raising=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DATA_DIR", str(tmp_path / "system-absent"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_keeps_values_shape_and_dtype(tmp_path: Path, dtype: str, suffix: str) -> None:
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    idx.write_idx(path, array)
    back = idx.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_bad_magic_names_file_and_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataFormatError, match=r"bad\.idx: bad magic number 0x01000801"):
        idx.read_idx(path)


def test_idx_unknown_dtype_code_is_named(tmp_path: Path) -> None:
    path = tmp_path / "code.idx"
    path.write_bytes(b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataFormatError, match=r"code\.idx: unknown IDX data type code 0x07"):
        idx.read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_truncated_file_says_expected_and_actual_length(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t.idx{suffix}"
    idx.write_idx(path, np.zeros((4, 5), np.uint8))
    raw = path.read_bytes() if not suffix else gzip.decompress(path.read_bytes())
    cut = raw[:-3]
    path.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(DataFormatError, match=r"truncated: header says shape \(4, 5\).*32 bytes.*29 bytes"):
        idx.read_idx(path)


def test_idx_truncated_gzip_stream_is_a_data_format_error(tmp_path: Path) -> None:
    path = tmp_path / "t.idx.gz"
    idx.write_idx(path, np.zeros((40, 50), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataFormatError, match=r"t\.idx\.gz: corrupt or truncated gzip"):
        idx.read_idx(path)


def test_label_count_differing_from_image_count_is_rejected(isolated: Path) -> None:
    write_fake_fashion(isolated / "d")
    idx.write_idx(isolated / "d" / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataFormatError, match=r"t10k-labels.*expected 5 labels.*got shape \(4,\)"):
        fashion_mnist.load_fashion_mnist(isolated / "d")


BAD_LABELS = {
    "above 9": ("train", np.full(12, 10, np.uint8), r"labels must be in 0\.\.9, got values in \[10, 10\]"),
    "int8 -1": (
        "train",
        np.array([-1] + [0] * 11, np.int8),
        r"labels must be in 0\.\.9, got values in \[-1, 0\]",
    ),
    "float": (
        "t10k",
        np.full(5, 1.5, np.float32),
        r"expected integer class labels 0\.\.9, got dtype float32",
    ),
}


@pytest.mark.parametrize("case", BAD_LABELS)
def test_label_files_with_values_or_dtypes_outside_0_to_9_are_rejected(isolated: Path, case: str) -> None:
    split, labels, match = BAD_LABELS[case]
    write_fake_fashion(isolated / "d")
    idx.write_idx(isolated / "d" / f"{split}-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match=rf"{split}-labels.*{match}"):
        fashion_mnist.load_fashion_mnist(isolated / "d")


def test_load_fashion_mnist_reads_the_argument_directory(isolated: Path) -> None:
    write_fake_fashion(isolated / "d")
    (x, y), (xt, yt) = fashion_mnist.load_fashion_mnist(isolated / "d")
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8 and y.shape == (12,)
    assert xt.shape == (5, 28, 28) and yt.shape == (5,)


def test_a_named_folder_without_the_files_is_an_error_naming_them_not_another_copy(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_fake_fashion(isolated / "env", n_train=7)
    monkeypatch.setenv("XPNN_DATA", str(isolated / "env"))
    (isolated / "empty").mkdir()
    with pytest.raises(
        DataNotFoundError, match=r"empty \(the folder named .*lacks train-images-idx3-ubyte\.gz"
    ):
        fashion_mnist.load_fashion_mnist(isolated / "empty", download_missing=False)


def test_xpnn_data_naming_a_folder_with_some_of_the_files_names_the_missing_ones(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_fake_fashion(isolated / "cache" / "xpnn" / "fashion-mnist")  # a full copy elsewhere
    write_fake_fashion(isolated / "env")
    (isolated / "env" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("XPNN_DATA", str(isolated / "env"))
    with pytest.raises(DataNotFoundError, match=r"env .*lacks t10k-labels-idx1-ubyte\.gz;"):
        fashion_mnist.load_fashion_mnist(download_missing=False)


def test_xpnn_data_is_used_when_no_folder_is_passed(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_fashion(isolated / "env", n_train=7)
    monkeypatch.setenv("XPNN_DATA", str(isolated / "env"))
    (x, _), _ = fashion_mnist.load_fashion_mnist(download_missing=False)
    assert x.shape[0] == 7


def test_missing_files_of_a_named_folder_are_downloaded_into_it(
    isolated: Path, server: tuple[str, Path]
) -> None:
    url, root = server
    (x, _), _ = fashion_mnist.load_fashion_mnist(isolated / "mine", base_url=url, checksums=_md5s(root))
    np.testing.assert_array_equal(x, idx.read_idx(root / NAMES[0]))
    assert sorted(p.name for p in (isolated / "mine").iterdir()) == sorted(NAMES)


def test_missing_data_without_download_says_how_to_get_it(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"apt-get install -y dataset-fashion-mnist.*XPNN_DATA"):
        fashion_mnist.load_fashion_mnist(download_missing=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a directory of small fake Fashion-MNIST files."""
    root = tmp_path / "served"
    write_fake_fashion(root, seed=3)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _md5s(root: Path) -> dict[str, str]:
    return {name: hashlib.md5((root / name).read_bytes()).hexdigest() for name in NAMES}


def test_download_from_server_verifies_checksums_and_fills_cache(
    isolated: Path, server: tuple[str, Path]
) -> None:
    url, root = server
    (x, _), _ = fashion_mnist.load_fashion_mnist(base_url=url, checksums=_md5s(root))
    np.testing.assert_array_equal(x, idx.read_idx(root / NAMES[0]))
    assert sorted(p.name for p in fashion_mnist.user_cache_dir().iterdir()) == sorted(NAMES)


def test_download_with_checksum_mismatch_fails_and_keeps_nothing(
    isolated: Path, server: tuple[str, Path]
) -> None:
    url, root = server
    checksums = _md5s(root)
    checksums[NAMES[0]] = "0" * 32
    with pytest.raises(
        DataFormatError, match=r"train-images-idx3-ubyte\.gz: MD5 checksum mismatch: expected 0{32}"
    ):
        fashion_mnist.load_fashion_mnist(base_url=url, checksums=checksums)
    assert not (fashion_mnist.user_cache_dir() / NAMES[0]).exists()
    assert not [p for p in fashion_mnist.user_cache_dir().iterdir() if p.name.startswith(".")]


def test_unreachable_download_says_how_to_get_the_data(isolated: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        DataNotFoundError, match=r"downloading from .* failed.*apt-get install -y dataset-fashion"
    ):
        fashion_mnist.load_fashion_mnist(base_url=f"http://127.0.0.1:{port}/")


def _loader_order(loader: xpnn.DataLoader, epoch: int) -> np.ndarray:
    return np.concatenate([backend.to_host(yb) for _, yb in loader.batches(epoch)])


def test_shuffle_is_reproducible_for_a_seed_and_differs_between_epochs(bk: backend.Backend) -> None:
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    y = np.arange(50)
    first = xpnn.DataLoader(x, y, batch_size=8, seed=7, target=bk)
    second = xpnn.DataLoader(x, y, batch_size=8, seed=7, target=bk)
    np.testing.assert_array_equal(_loader_order(first, 0), _loader_order(second, 0))
    np.testing.assert_array_equal(_loader_order(first, 3), _loader_order(second, 3))
    assert not np.array_equal(_loader_order(first, 0), _loader_order(first, 1))
    assert sorted(_loader_order(first, 1)) == list(range(50))


def test_shuffle_order_depends_on_the_seed() -> None:
    x = np.zeros((50, 1), np.float32)
    a, b = xpnn.DataLoader(x, seed=1), xpnn.DataLoader(x, seed=2)
    assert not np.array_equal(a.order(0), b.order(0))


def test_uint8_images_stay_uint8_on_device_and_batches_are_scaled_float32(bk: backend.Backend) -> None:
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10
    loader = xpnn.DataLoader(images, np.arange(6), batch_size=4, shuffle=False, target=bk)
    assert backend.dtype_name(loader.x.dtype) == "uint8" and backend.backend_name(loader.x) == bk.name
    batches = list(loader)
    assert [int(xb.shape[0]) for xb, _ in batches] == [4, 2]
    xb, yb = batches[0]
    assert backend.dtype_name(xb.dtype) == "float32" and backend.backend_name(xb) == bk.name
    np.testing.assert_allclose(backend.to_host(xb), images[:4] / np.float32(255), rtol=1e-6)
    np.testing.assert_array_equal(backend.to_host(yb), [0, 1, 2, 3])


@pytest.mark.dataset
def test_real_fashion_mnist_has_the_published_shapes() -> None:
    try:
        (x, y), (xt, yt) = fashion_mnist.load_fashion_mnist(download_missing=False)
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)")
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint16"])
def test_integer_inputs_other_than_uint8_images_are_refused(dtype: str) -> None:
    with pytest.raises(
        xpnn.DTypeError, match=rf"DataLoader: integer inputs x must be uint8 images .*got {dtype}"
    ):
        xpnn.DataLoader(np.ones((4, 3), dtype), np.arange(4))
