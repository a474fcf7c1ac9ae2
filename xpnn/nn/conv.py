"""Conv2D: 2-D convolution (cross-correlation, as torch's) over NCHW images, by im2col and
one matmul.

Forward, for each of the ``groups`` groups ``g`` (``Cg = C_in / groups`` input channels,
``Og = C_out / groups`` outputs): ``y[n, g] = W[g] @ cols[n, g] + b`` where ``cols[n, g]``
(Cg*kh*kw, H_out*W_out) holds every window's pixels (:func:`xpnn.nn.windows.im2col`).
Backward: ``dW[g] = sum_n dy[n, g] @ cols[n, g].T``, ``db = sum dy`` over (n, h, w),
``dcols = W[g].T @ dy[n, g]`` and ``dx = col2im(dcols)``.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.backend import numpy_conv
from xpnn.errors import ShapeError
from xpnn.nn import windows
from xpnn.nn.checks import check_array, check_floating, check_like, check_rank
from xpnn.nn.init import initial_weights
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any
Padding = int | tuple[int, int] | str


class Conv2D(Layer):
    """``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``; weight (C_out, C_in/groups, kh, kw) and
    bias (C_out,) as torch's ``nn.Conv2d``.

    ``kernel_size``, ``stride``, ``dilation``: int or (h, w). ``padding``: int, (h, w),
    ``"valid"`` (0) or ``"same"`` (stride 1 only; an even kernel pads one more at the bottom
    and right, as torch). ``groups``: channels split into independent groups
    (``groups == in_channels``: depthwise). ``fused``: the NumPy fast path of
    :mod:`xpnn.backend.numpy_conv` (same numbers); set ``Conv2D.fused = False`` for the plain path.
    """

    fused: bool = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: Padding = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        init: str = "glorot_uniform",
        seed: int | None = None,
    ) -> None:
        name = f"Conv2D({in_channels} -> {out_channels})"
        if in_channels < 1 or out_channels < 1 or groups < 1:
            raise ShapeError(
                f"{name}: channels and groups must be >= 1, got {in_channels}, {out_channels}, {groups}"
            )
        if in_channels % groups or out_channels % groups:
            raise ShapeError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = windows.pair(kernel_size, name, "kernel_size")
        self.stride = windows.pair(stride, name, "stride")
        self.dilation = windows.pair(dilation, name, "dilation")
        self.padding = padding
        self.pads = self._pads(name, padding)
        self.use_bias, self.init = bool(bias), init
        self.weight = Parameter(None, "weight")
        self.bias = Parameter(None, "bias") if bias else None
        self.reset_parameters(backend.host_rng(seed))

    def _pads(self, name: str, padding: Padding) -> tuple[int, int, int, int]:
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ShapeError(f"{name}: padding='same' needs stride 1, got stride {self.stride}")
            return windows.same_pads(self.kernel_size, self.dilation)
        if isinstance(padding, str):
            raise ShapeError(f"{name}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        ph, pw = windows.pair(padding, name, "padding", minimum=0)
        return (ph, ph, pw, pw)

    def _name(self) -> str:
        return f"Conv2D({self.in_channels} -> {self.out_channels}, kernel {self.kernel_size})"

    def reset_parameters(self, rng: Any) -> None:
        old = self.weight.value
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        fan_in, fan_out = shape[1] * kh * kw, self.out_channels // self.groups * kh * kw
        values = [initial_weights(rng, self.init, shape, fan_in=fan_in, fan_out=fan_out)]
        if self.bias is not None:
            values.append(backend.host_zeros((self.out_channels,)))
        if old is not None and backend.backend_name(old) != "numpy":
            target = backend.resolve(backend.backend_name(old))
            values = [backend.from_host(v, target, old.dtype) for v in values]
        elif old is not None:
            values = [v.astype(old.dtype) for v in values]
        for p, value in zip(self.parameters(), values, strict=True):
            p.value, p.grad = value, None

    def parameters(self) -> list[Parameter]:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def _check(self, x: Array) -> windows.Geometry:
        name, w = self._name(), self.weight.value
        check_array(name, x)
        check_rank(name, x, 4, f"(batch, {self.in_channels}, height, width)")
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{name}: expected input of shape (batch, {self.in_channels}, height, width), "
                f"got {tuple(x.shape)}"
            )
        check_floating(name, x)
        check_like(name, x, w)
        return windows.geometry(name, tuple(x.shape), self.kernel_size, self.stride, self.dilation, self.pads)

    def forward(self, x: Array) -> Array:
        geo = self._check(x)
        self.x_shape, self.geo = tuple(x.shape), geo
        per_sample = self.in_channels * len(geo.offsets) * geo.out[0] * geo.out[1]
        parts = windows.chunks(x.shape[0], per_sample) if not self.training else [slice(0, x.shape[0])]
        outputs = [self._forward_batch(x[part, ...], geo) for part in parts]
        return outputs[0] if len(outputs) == 1 else backend.namespace(x).concat(outputs, axis=0)

    def _forward_batch(self, x: Array, geo: windows.Geometry) -> Array:
        if self.fused and numpy_conv.applies(x, self.groups):
            y, self.cols = numpy_conv.conv_forward(x, self.weight.value, self._bias(), geo)
            return y
        y = self._forward_plain(x, geo)
        xp = backend.namespace(x)
        return y if self.bias is None else y + xp.reshape(self.bias.value, (1, -1, 1, 1))

    def _bias(self) -> Array | None:
        return None if self.bias is None else self.bias.value

    def _grouped_weight(self) -> Array:
        """(groups, C_out/groups, C_in/groups * kh * kw): the weight as the GEMM sees it."""
        xp = backend.namespace(self.weight.value)
        return xp.reshape(self.weight.value, (self.groups, self.out_channels // self.groups, -1))

    def _forward_plain(self, x: Array, geo: windows.Geometry) -> Array:
        xp = backend.namespace(x)
        n, (ho, wo) = x.shape[0], geo.out
        cols = xp.reshape(windows.im2col(windows.pad(x, geo.pads), geo), (n, self.groups, -1, ho * wo))
        self.cols = cols
        y = xp.matmul(self._grouped_weight(), cols)  # (N, groups, C_out/groups, H_out*W_out)
        return xp.reshape(y, (n, self.out_channels, ho, wo))

    def backward(self, dout: Array) -> Array | None:
        if self.fused and numpy_conv.applies(dout, self.groups):
            dw, db, dx = numpy_conv.conv_backward(
                dout, self.weight.value, self.cols, self.geo, self.x_shape, self.input_grad
            )
        else:
            dw, db, dx = self._backward_plain(dout)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def _backward_plain(self, dout: Array) -> tuple[Array, Array, Array | None]:
        xp = backend.namespace(dout)
        n, g = dout.shape[0], self.groups
        dy = xp.reshape(dout, (n, g, self.out_channels // g, -1))
        db = xp.sum(dout, axis=(0, 2, 3))
        dw = xp.sum(xp.matmul(dy, xp.matrix_transpose(self.cols)), axis=0)
        dw = xp.reshape(dw, tuple(self.weight.value.shape))
        if not self.input_grad:
            return dw, db, None
        dcols = xp.matmul(xp.matrix_transpose(self._grouped_weight()), dy)  # (N, g, Cg*kh*kw, P)
        ho, wo = self.geo.out
        dcols = xp.reshape(dcols, (n, self.in_channels, len(self.geo.offsets), ho, wo))
        return dw, db, windows.col2im(dcols, self.geo, self.x_shape)

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str | int) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.use_bias,
            "init": self.init,
        }

    def __repr__(self) -> str:
        return self._name()
