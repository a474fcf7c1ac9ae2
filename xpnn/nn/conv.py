"""Conv2D: 2-D convolution over NCHW images (:func:`xpnn.functional.conv2d`), weight and bias
in torch's layout."""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.checks import (
    check_array,
    check_count,
    check_flag,
    check_floating,
    check_like,
    check_rank,
    check_seed,
)
from xpnn.errors import ArgumentError, ShapeError
from xpnn.functional import windows
from xpnn.functional.conv import Conv2d
from xpnn.nn import init as init_module
from xpnn.nn.init import initial_weights
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any
Padding = int | tuple[int, int] | str


class Conv2D(Layer):
    """``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``; weight (C_out, C_in/groups, kh, kw) and
    bias (C_out,) as torch's ``nn.Conv2d``: the cross-correlation (no kernel flip)
    ``y[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q] * x_pad[n, c, i*s + p*d, j*s + q*d]``
    with ``c`` over the input channels of ``o``'s group (``weight`` counts them from the group's
    first), stride ``s`` and dilation ``d``;
    ``H_out = (H + pad_top + pad_bottom - d * (kh - 1) - 1) // s + 1``.

    ``kernel_size``, ``stride``, ``dilation``: int or (h, w). ``padding``: int, (h, w),
    ``"valid"`` (0) or ``"same"`` (stride 1 only; an even kernel pads one more at the bottom
    and right, as torch). ``groups``: channels split into independent groups
    (``groups == in_channels``: depthwise). ``fused``: the NumPy fast path of
    :mod:`xpnn.kernels.conv` (same numbers); set ``Conv2D.fused = False`` for the plain path.
    """

    function = Conv2d

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
        name = "Conv2D"
        self.in_channels = check_count(name, "in_channels", in_channels)
        self.out_channels = check_count(name, "out_channels", out_channels)
        self.groups = check_count(name, "groups", groups)
        name = f"Conv2D({self.in_channels} -> {self.out_channels})"
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.kernel_size = windows.pair(kernel_size, name, "kernel_size")
        self.stride = windows.pair(stride, name, "stride")
        self.dilation = windows.pair(dilation, name, "dilation")
        self.padding = _padding_config(name, padding)
        self.pads = windows.padding(name, self.padding, self.kernel_size, self.stride, self.dilation)
        self.use_bias = check_flag(name, "bias", bias)
        if not isinstance(init, str) or init not in init_module.INITS:
            raise ArgumentError(f"{name}: unknown init {init!r}; expected one of {init_module.INITS}")
        self.init = init
        rng = backend.host_rng(check_seed(name, seed))
        self.weight = Parameter(None, "weight")
        self.bias = Parameter(None, "bias") if self.use_bias else None
        with init_module.named(name):
            self.reset_parameters(rng)

    def _name(self) -> str:
        return f"Conv2D({self.in_channels} -> {self.out_channels}, kernel {self.kernel_size})"

    def reset_parameters(self, rng: Any) -> None:
        old = self.weight.value
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        fan_in, fan_out = shape[1] * kh * kw, self.out_channels // self.groups * kh * kw
        values = [initial_weights(rng, self.init, shape, fan_in=fan_in, fan_out=fan_out)]
        if self.bias is not None:
            values.append(init_module.zeros((self.out_channels,)))
        if old is not None:  # keep the parameters' backend, device AND dtype
            values = [backend.move_like(v, old) for v in values]
        params = [self.weight] if self.bias is None else [self.weight, self.bias]
        for p, value in zip(params, values, strict=True):
            p.value, p.grad = value, None

    def inputs(self) -> tuple[Parameter | None, ...]:
        return (self.weight, self.bias)

    def options(self, x: Array) -> dict[str, Any]:
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
        geo = windows.geometry(name, tuple(x.shape), self.kernel_size, self.stride, self.dilation, self.pads)
        return {"geometry": geo, "groups": self.groups, "fused": self.fused}

    def eval_parts(self, x: Array, options: dict[str, Any]) -> list[slice] | None:
        """Chunks of the batch whose im2col holds at most 64 MiB (:func:`~xpnn.functional.windows.chunks`)."""
        if getattr(x, "ndim", None) != 4:
            return None
        geo = options["geometry"]
        return windows.chunks(x.shape[0], self.in_channels * len(geo.offsets) * geo.out[0] * geo.out[1])

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


def _padding_config(who: str, padding: Any) -> Padding:
    """The padding as the config keeps it, checked: ``"valid"`` / ``"same"``, an int (files
    saved with ``1`` still match), or a pair as a tuple."""
    if isinstance(padding, str):
        return padding
    pads = windows.pair(padding, who, "padding", minimum=0)
    return pads if isinstance(padding, tuple | list) else pads[0]
