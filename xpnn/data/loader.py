"""The device-resident loader: a data set kept on the device as stored, batches gathered there.

:class:`DataLoader` keeps a data set on the device as stored (Fashion-MNIST as uint8: 47 MB,
not 188 MB of float32), gathers each batch there with ``take`` and casts and scales it there,
so a batch costs no host transfer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.errors import ArgumentError, DataFormatError, DTypeError
from xpnn.kernels import data as data_kernels

Array = Any


class DataLoader:
    """Batches of ``(x, y)`` gathered on the device, in an order fixed by ``(seed, epoch)``.

    ``x`` and ``y`` (host NumPy or arrays of ``target``'s backend) are moved to the device
    once. Integer images (uint8) stay integer there; each batch is gathered with ``take``,
    cast to ``dtype`` and scaled by 1/255 on the device. Other integer inputs
    are refused with a :class:`DTypeError`: their scale is not known (int16 images may be
    12-bit), so the caller casts them. Host floating data is cast to
    ``dtype`` once, when moved. The shuffle order is drawn on the host from
    ``default_rng([seed, epoch])``: the same seed gives the same order on every backend, and
    a resumed run sees exactly the batches of the uninterrupted one.

    ``copy=False`` uses ``x`` and ``y`` as they are where they already are arrays of the target
    backend in the stored dtype (uint8 images, or floats of ``dtype``), instead of copying the
    whole data set (47 MB for Fashion-MNIST); change them only after the loader is done
    (``fit`` does so: its loaders live for the call). ``fused`` (on by default): where numba is
    installed, a uint8 batch is gathered, cast and scaled in one pass
    (:func:`xpnn.backend.data_kernels.gather_scaled`, the same numbers).
    """

    fused: bool = True

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
        copy: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ArgumentError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if y is not None and y.shape[0] != x.shape[0]:
            raise DataFormatError(f"DataLoader: {x.shape[0]} samples in x but {y.shape[0]} in y")
        self.bk = backend.resolve(target) if isinstance(target, str) else target
        self.dtype = backend.dtype_named(self.bk.xp, dtype)
        self.x = _to_device(x, self.bk, self.dtype, copy)
        self.y = None if y is None else _to_device(y, self.bk, self.dtype, copy)
        self.scale = self.bk.xp.isdtype(self.x.dtype, "integral")
        if self.scale and backend.dtype_name(self.x.dtype) != "uint8":
            raise DTypeError(
                f"DataLoader: integer inputs x must be uint8 images (scaled by 1/255), got "
                f"{backend.dtype_name(self.x.dtype)}; cast and scale other integer data to float yourself"
            )
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        """The number of samples (rows of ``x``)."""
        return int(self.x.shape[0])

    def order(self, epoch: int) -> np.ndarray:
        """The host permutation of epoch ``epoch`` (identity when not shuffling)."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples).astype(np.int64)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Array, Array | None]]:
        """Yield the batches of epoch ``epoch`` from batch ``start`` on; the order moves to the
        device once per epoch."""
        xp = self.bk.xp
        index = backend.from_host(self.order(epoch), self.bk)
        n = self.num_samples
        for k in range(start, len(self)):  # stops clamped: out-of-range slices are outside the standard
            idx = index[k * self.batch_size : min((k + 1) * self.batch_size, n)]
            yield self.images(idx), (None if self.y is None else xp.take(self.y, idx, axis=0))

    def images(self, idx: Array) -> Array:
        """The batch ``x[idx]`` (``idx``: device indices), uint8 images cast to ``dtype`` and
        scaled by 1/255; the data-parallel shards gather their part through it too."""
        fast = (
            data_kernels.gather_scaled(self.x, idx, self.dtype, 1.0 / 255.0)
            if self.scale and self.fused
            else None
        )
        if fast is not None:
            return fast
        xp = self.bk.xp
        xb = xp.take(self.x, idx, axis=0)
        return xp.astype(xb, self.dtype) * (1.0 / 255.0) if self.scale else xb

    def __iter__(self) -> Iterator[tuple[Array, Array | None]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self.batches(epoch)


def _to_device(a: Array, bk: backend.Backend, dtype: Any, copy: bool = True) -> Array:
    """Move ``a`` onto ``bk`` once: host floats are cast to ``dtype``; integers keep their dtype
    (1-D integer labels become int64). ``copy=False``: NumPy data already in that dtype is kept."""
    if not copy and bk.name == "numpy" and type(a) is np.ndarray and a.size:
        if a.dtype == dtype or (a.dtype.kind in "iu" and a.ndim > 1) or a.dtype == np.int64:
            return a  # already as it would be stored: no copy of the whole data set
    if isinstance(a, np.ndarray):
        if np.issubdtype(a.dtype, np.floating):
            return backend.from_host(a, bk, dtype)
        return backend.from_host(a, bk, bk.xp.int64 if a.dtype.kind in "iu" and a.ndim == 1 else None)
    if backend.backend_name(a) != bk.name:
        return backend.from_host(backend.to_host(a), bk)
    return a
