"""The loader's fast data path: ``copy=False`` keeps data already stored as the loader would
store it (fit's loaders, so fit copies no data set), and ``DataLoader.fused`` gathers, casts and
scales uint8 batches in one numba pass with the plain path's numbers, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.data import loader as loader_module
from xpnn.data.loader import DataLoader
from xpnn.kernels import compile
from xpnn.kernels import data as data_kernels

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}")


def _batches(loader: DataLoader) -> list[np.ndarray]:
    return [xb.copy() for epoch in range(2) for xb, _ in loader.batches(epoch)]


@pytest.mark.parametrize("shape", [(203, 28, 28), (203, 784)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_uint8_batches_equal_the_plain_gather_cast_and_scale(
    shape: tuple[int, ...], dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numba", reason="numba is optional (the fast extra); its gather is not tested")
    calls: list[int] = []
    real = data_kernels.gather_scaled
    monkeypatch.setattr(data_kernels, "gather_scaled", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    y = np.arange(shape[0]) % 10
    fused = _batches(DataLoader(x, y, batch_size=32, seed=3, dtype=dtype))
    assert len(calls) == len(fused) == 2 * 7
    monkeypatch.setattr(DataLoader, "fused", False)
    plain = _batches(DataLoader(x, y, batch_size=32, seed=3, dtype=dtype))
    assert len(calls) == len(fused)  # fused = False: the plain take, astype and multiply
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape and np.array_equal(_bits(a), _bits(b))


def test_gather_scaled_declines_what_it_does_not_cover() -> None:
    pytest.importorskip("numba", reason="numba is optional (the fast extra); its gather is not tested")
    x = np.zeros((10, 4), np.uint8)
    index = np.array([0, 9], np.int64)
    assert data_kernels.gather_scaled(x, index, np.float32, 0.5) is not None
    assert data_kernels.gather_scaled(x, np.array([0, 10]), np.float32, 0.5) is None  # out of range
    assert data_kernels.gather_scaled(x, np.array([3, -11]), np.float32, 0.5) is None
    counted = np.arange(40, dtype=np.uint8).reshape(10, 4)  # negative indices count from the end, as take's
    from_end = data_kernels.gather_scaled(counted, np.array([-1, -10, 2]), np.float32, 0.5)
    assert np.array_equal(from_end, counted[[9, 0, 2]].astype(np.float32) * np.float32(0.5))
    assert data_kernels.gather_scaled(x[:, ::2], index, np.float32, 0.5) is None  # strided
    assert data_kernels.gather_scaled(x.astype(np.int16), index, np.float32, 0.5) is None
    assert data_kernels.gather_scaled(x, index.astype(np.int32), np.float32, 0.5) is None
    assert data_kernels.gather_scaled(x, index, np.float16, 0.5) is None


def test_without_numba_the_plain_gather_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile, "enabled", False)
    x = np.random.default_rng(1).integers(0, 256, (50, 6), dtype=np.uint8)
    batches = _batches(DataLoader(x, batch_size=16, shuffle=False))
    assert np.array_equal(np.concatenate(batches[:4]), x.astype(np.float32) * np.float32(1 / 255))


@pytest.mark.parametrize(
    ("x", "kept"),
    [
        (np.zeros((8, 3), np.uint8), True),
        (np.zeros((8, 3), np.float32), True),
        (np.zeros((8, 3), np.float64), False),  # cast to the model's float32
        (np.zeros((8, 3), np.float32)[:, ::2], True),  # any layout: take reads it
    ],
)
def test_copy_false_keeps_data_already_stored_as_the_loader_stores_it(x: np.ndarray, kept: bool) -> None:
    y = np.arange(8, dtype=np.int64)
    loader = DataLoader(x, y, copy=False)
    assert (loader.x is x) == kept and loader.y is y
    assert loader.x.dtype == (np.uint8 if x.dtype == np.uint8 else np.float32)
    copied = DataLoader(x, y)
    assert not np.shares_memory(copied.x, x) and not np.shares_memory(copied.y, y)


def test_copy_false_still_casts_labels_and_refuses_other_integer_images() -> None:
    loader = DataLoader(np.zeros((4, 2), np.float32), np.array([0, 1, 2, 1], np.uint8), copy=False)
    assert loader.y.dtype == np.int64
    with pytest.raises(xpnn.DTypeError, match="uint8"):
        DataLoader(np.zeros((4, 2), np.int16), copy=False)


def test_fit_trains_on_the_callers_array_without_copying_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = loader_module._to_device

    def spy(a: Any, bk: Any, dtype: Any, copy: bool = True) -> Any:
        out = real(a, bk, dtype, copy)
        seen.append((a, out))
        return out

    monkeypatch.setattr(loader_module, "_to_device", spy)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 12), dtype=np.uint8), rng.integers(0, 3, 64)
    model = xpnn.Sequential([xpnn.Dense(12, 3)], seed=0)
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), 0.1),
              batch_size=16, verbose=0)  # fmt: skip
    # the data set, not a 47 MB copy per call (fit's one-sample rehearsal moves x[:1] first)
    whole = [(a, out) for a, out in seen if a is x or a is y]
    assert len(whole) == 2 and all(out is a for a, out in whole)
