"""Pooling layers over NCHW images (:mod:`xpnn.functional.pooling`): MaxPool2D, AvgPool2D and
GlobalAvgPool2D, as torch's."""

from __future__ import annotations

from typing import Any

from xpnn.checks import check_array, check_flag, check_floating, check_rank
from xpnn.functional import pooling, windows
from xpnn.nn.layers import Layer

Array = Any


class _Pool2D(Layer):
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
        windows.check_pool_padding(who, self.padding, self.kernel_size)
        self.ceil_mode = check_flag(who, "ceil_mode", ceil_mode)

    def _name(self) -> str:
        return f"{type(self).__name__}(kernel {self.kernel_size}, stride {self.stride})"

    def _geometry(self, x: Array) -> windows.Geometry:
        """Check ``x``; its windows."""
        name = self._name()
        check_array(name, x)
        check_rank(name, x, 4, "(batch, channels, height, width)")
        check_floating(name, x)
        ph, pw = self.padding
        return windows.geometry(name, tuple(x.shape), self.kernel_size, self.stride, (1, 1),
                                (ph, ph, pw, pw), self.ceil_mode)  # fmt: skip

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
    is -inf. The gradient goes to the first maximal element of each window (as torch).
    ``fused``: the in-place NumPy passes (numba's one-pass loops where installed)."""

    function = pooling.MaxPool2d

    def options(self, x: Array) -> dict[str, Any]:
        return {"geometry": self._geometry(x), "fused": self.fused}


class AvgPool2D(_Pool2D):
    """``y = sum over the window / (kh * kw)``: zero padding counts (torch's
    ``count_include_pad=True``); the extra cells a ``ceil_mode`` window reaches past the
    padding do not (torch's divisor)."""

    function = pooling.AvgPool2d

    def options(self, x: Array) -> dict[str, Any]:
        return {"geometry": self._geometry(x), "padding": self.padding}


class GlobalAvgPool2D(Layer):
    """``(N, C, H, W) -> (N, C)``: the mean over each channel's H x W pixels."""

    function = pooling.GlobalAvgPool2d

    def options(self, x: Array) -> dict[str, Any]:
        check_array("GlobalAvgPool2D", x)
        check_rank("GlobalAvgPool2D", x, 4, "(batch, channels, height, width)")
        check_floating("GlobalAvgPool2D", x)
        pooling.check_pixels("GlobalAvgPool2D", x)
        return {}
