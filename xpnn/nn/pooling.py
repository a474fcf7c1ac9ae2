"""Pooling over NCHW images: MaxPool2D, AvgPool2D and GlobalAvgPool2D, as torch's.

Each pools the ``kh * kw`` strided window slices of :mod:`xpnn.nn.windows` element-wise
(no Python loop over pixels): max pooling keeps a running maximum and the index of the
first maximal offset (torch's tie rule), average pooling their sum over the window size.
"""

from __future__ import annotations

from typing import Any

from xpnn.backend import namespace, numpy_conv
from xpnn.errors import ShapeError
from xpnn.nn import windows
from xpnn.nn.checks import check_array, check_floating, check_rank
from xpnn.nn.layers import Layer

Array = Any


class _Pool2D(Layer):
    fill = 0.0  # what padding holds: -inf for max pooling, so padding never wins

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        who = type(self).__name__
        self.kernel_size = windows.pair(kernel_size, who, "kernel_size")
        self.stride = self.kernel_size if stride is None else windows.pair(stride, who, "stride")
        self.padding = windows.pair(padding, who, "padding", minimum=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ShapeError(
                f"{who}: padding must be at most half the kernel size {self.kernel_size}, got {self.padding}"
            )
        self.ceil_mode = bool(ceil_mode)

    def _name(self) -> str:
        return f"{type(self).__name__}(kernel {self.kernel_size}, stride {self.stride})"

    def _windows(self, x: Array) -> list[Array]:
        """Check ``x``, remember its geometry, return the window slices of the padded input."""
        self._geometry(x)
        self.padded = windows.pad(x, self.geo.pads, self.fill)
        return windows.window_slices(self.padded, self.geo)

    def _geometry(self, x: Array) -> None:
        """Check ``x`` and remember its shape and windows."""
        name = self._name()
        check_array(name, x)
        check_rank(name, x, 4, "(batch, channels, height, width)")
        check_floating(name, x)
        ph, pw = self.padding
        self.x_shape = tuple(x.shape)
        self.geo = windows.geometry(name, self.x_shape, self.kernel_size, self.stride, (1, 1),
                                    (ph, ph, pw, pw), self.ceil_mode)  # fmt: skip

    def _check_dout(self, dout: Array) -> None:
        """Raise before anything runs unless ``dout`` has the last output's shape (the fused
        loops index by it: a wrong shape must never reach them)."""
        geo = self._cached("geo")
        name = f"{self._name()}.backward"
        check_array(name, dout, "dout")
        expected = (*self.x_shape[:2], *geo.out)
        if tuple(dout.shape) != expected:
            raise ShapeError(
                f"{name}: expected dout of shape {expected} (the last output's), got {tuple(dout.shape)}"
            )

    def _scatter(self, pieces: list[Array]) -> Array:
        """Add each offset's (N, C, H_out, W_out) gradient back into its window of dL/dx."""
        xp = namespace(pieces[0])
        return windows.col2im(xp.stack(pieces, axis=2), self.geo, self.x_shape)

    def config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
        }

    def __repr__(self) -> str:
        return self._name()


class MaxPool2D(_Pool2D):
    """``y[n, c, h, w] = max`` over the window (stride defaults to the kernel size); padding
    is -inf. The gradient goes to the first maximal element of each window (as torch)."""

    fill = -float("inf")
    fused: bool = True  # in-place NumPy kernels of xpnn.backend.numpy_conv (same numbers)

    def forward(self, x: Array) -> Array:
        fast = self.fused and numpy_conv.applies(x)
        if fast:
            self._geometry(x)
            self.fast = True
            best, self.saved = numpy_conv.max_pool_forward(x, self.geo)
            return best
        slices = self._windows(x)
        self.fast = False
        xp = namespace(x)
        best = slices[0]
        index = xp.zeros(tuple(best.shape), dtype=xp.int16, device=x.device)
        for k, candidate in enumerate(slices[1:], start=1):
            better = candidate > best
            best = xp.where(better, candidate, best)
            index = xp.where(better, xp.asarray(k, dtype=xp.int16, device=x.device), index)
        self.index = index
        return best

    def backward(self, dout: Array) -> Array:
        self._check_dout(dout)
        if self.fast:
            return numpy_conv.max_pool_backward(dout, self.saved, self.geo)
        xp = namespace(dout)
        picks = [dout * xp.astype(self.index == k, dout.dtype) for k in range(len(self.geo.offsets))]
        return self._scatter(picks)


class AvgPool2D(_Pool2D):
    """``y = sum over the window / (kh * kw)``: zero padding counts (torch's
    ``count_include_pad=True``); the extra cells a ``ceil_mode`` window reaches past the
    padding do not (torch's divisor)."""

    def forward(self, x: Array) -> Array:
        total = _sum(self._windows(x))
        self.divisor = self._divisor(x)
        return total / self.divisor

    def _divisor(self, x: Array) -> Any:
        """``kh * kw`` (a Python float), or per output cell where ceil-mode windows overhang
        the padding: the count of each window's cells inside the padded image."""
        (ph, pw), (_, bottom, _, right) = self.padding, self.geo.pads
        if (bottom, right) == (ph, pw):
            return float(len(self.geo.offsets))
        xp = namespace(x)
        padded = xp.ones(
            (1, 1, self.x_shape[2] + 2 * ph, self.x_shape[3] + 2 * pw), dtype=x.dtype, device=x.device
        )
        inside = windows.pad(padded, (0, bottom - ph, 0, right - pw))
        return _sum(windows.window_slices(inside, self.geo))

    def backward(self, dout: Array) -> Array:
        self._check_dout(dout)
        share = dout / self.divisor
        return self._scatter([share] * len(self.geo.offsets))


def _sum(pieces: list[Array]) -> Array:
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    return total


class GlobalAvgPool2D(Layer):
    """``(N, C, H, W) -> (N, C)``: the mean over each channel's H x W pixels."""

    def forward(self, x: Array) -> Array:
        check_array("GlobalAvgPool2D", x)
        check_rank("GlobalAvgPool2D", x, 4, "(batch, channels, height, width)")
        check_floating("GlobalAvgPool2D", x)
        self.x_shape = tuple(x.shape)
        return namespace(x).mean(x, axis=(2, 3))

    def backward(self, dout: Array) -> Array:
        xp = namespace(dout)
        n, c, h, w = self.x_shape
        share = xp.reshape(dout * (1.0 / (h * w)), (n, c, 1, 1))
        return share * xp.ones((1, 1, h, w), dtype=dout.dtype, device=dout.device)
