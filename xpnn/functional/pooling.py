"""Pooling over NCHW images as differentiable functions, as torch's.

Each pools the ``kh * kw`` strided window slices of :mod:`xpnn.functional.windows`
element-wise (no Python loop over pixels). Max pooling keeps a running maximum and the index
of the first maximal offset (torch's tie rule; a NaN wins, the last one, as torch's), and
sends each output's gradient there; its padding is -inf and never wins. Average pooling
divides the window sum by ``kh * kw`` (zero padding counts, torch's ``count_include_pad=True``;
cells a ``ceil_mode`` window reaches past the padding do not). Global average pooling is the mean over H x W.

Fast path (``fused``, NumPy): :mod:`xpnn.kernels.conv`'s in-place max pooling (numba's
one-pass loops where installed); the same numbers.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.errors import ShapeError
from xpnn.functional import windows
from xpnn.kernels import conv as conv_kernels

Array = Any


def _scatter(pieces: list[Array], geo: windows.Geometry, x_shape: tuple[int, ...]) -> Array:
    """Add each offset's (N, C, H_out, W_out) gradient back into its window of dL/dx."""
    return windows.col2im(namespace(pieces[0]).stack(pieces, axis=2), geo, x_shape)


class MaxPool2d(Function):
    name = "max_pool2d"
    fresh_grads = True  # dL/dx is a new array (or a view of one): a ReLU before it may write into it

    @staticmethod
    def forward(ctx: Node, x: Array, *, geometry: windows.Geometry, fused: bool = True) -> Array:
        if fused and conv_kernels.applies(x):
            best, saved = conv_kernels.max_pool_forward(x, geometry)
            ctx.saved = (True, saved, geometry, tuple(x.shape))
            return best
        best, index = _window_max(x, geometry)
        ctx.saved = (False, index, geometry, tuple(x.shape))
        return best

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        fast, saved, geo, x_shape = ctx.saved
        if fast:
            return (conv_kernels.max_pool_backward(g, saved, geo),)
        xp = namespace(g)
        zero = xp.zeros((), dtype=g.dtype, device=g.device)
        picks = [xp.where(saved == k, g, zero) for k in range(len(geo.offsets))]  # not g * mask: inf * 0
        return (_scatter(picks, geo, x_shape),)


class AvgPool2d(Function):
    name = "avg_pool2d"

    @staticmethod
    def forward(ctx: Node, x: Array, *, geometry: windows.Geometry, padding: tuple[int, int]) -> Array:
        slices = windows.window_slices(windows.pad(x, geometry.pads), geometry)
        total = slices[0]
        for piece in slices[1:]:
            total = total + piece
        divisor = _divisor(x, geometry, padding)
        ctx.saved = (divisor, geometry, tuple(x.shape))
        return total / divisor

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        divisor, geo, x_shape = ctx.saved
        share = g / divisor
        return (_scatter([share] * len(geo.offsets), geo, x_shape),)


def _window_max(x: Array, geo: windows.Geometry) -> tuple[Array, Array]:
    """Each window's maximum and its offset, by torch's rule: a NaN wins (the LAST NaN, as
    torch's ``val > max || isnan(val)``), else the FIRST maximal cell (a tie keeps the earlier
    value, its sign of zero too); -inf padding never wins, so a window of -inf goes to its first
    real cell. ``real``: which offsets of each window are image cells (None: all of them)."""
    xp = namespace(x)
    slices = windows.window_slices(windows.pad(x, geo.pads, -float("inf")), geo)
    real = _real_cells(x, geo)
    kind = xp.int16 if len(slices) <= 2**15 else xp.int32
    best, found = slices[0], None if real is None else real[0]
    index = xp.zeros(tuple(best.shape), dtype=kind, device=x.device)
    for k, candidate in enumerate(slices[1:], start=1):
        take = (candidate > best) | xp.isnan(candidate)
        if real is not None and found is not None:
            take = real[k] & (take | ~found)
            found = found | real[k]
        best = xp.where(take, candidate, best)
        index = xp.where(take, xp.asarray(k, dtype=kind, device=x.device), index)
    return best, index


def _real_cells(x: Array, geo: windows.Geometry) -> list[Array] | None:
    """Per offset, a (1, 1, H_out, W_out) mask of the windows whose cell there is in the image,
    not in the padding; None without padding."""
    if not any(geo.pads):
        return None
    xp = namespace(x)
    image = xp.ones((1, 1, x.shape[2], x.shape[3]), dtype=xp.bool, device=x.device)
    return windows.window_slices(windows.pad(image, geo.pads, False), geo)


def _divisor(x: Array, geo: windows.Geometry, padding: tuple[int, int]) -> Any:
    """``kh * kw`` (a Python float), or per output cell where ceil-mode windows overhang the
    padding: the count of each window's cells inside the padded image."""
    (ph, pw), (_, bottom, _, right) = padding, geo.pads
    if (bottom, right) == (ph, pw):
        return float(len(geo.offsets))
    xp = namespace(x)
    padded = xp.ones((1, 1, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), dtype=x.dtype, device=x.device)
    inside = windows.pad(padded, (0, bottom - ph, 0, right - pw))
    pieces = windows.window_slices(inside, geo)
    count = pieces[0]
    for piece in pieces[1:]:
        count = count + piece
    return count


def check_pixels(who: str, x: Array) -> None:
    """Global pooling of an empty (0 x W or H x 0) image would be a mean of nothing: NaN."""
    if x.shape[2] * x.shape[3] == 0:
        raise ShapeError(
            f"{who}: expected an image of at least 1x1 pixels, got {x.shape[2]}x{x.shape[3]} in input "
            f"of shape {tuple(x.shape)}"
        )


class GlobalAvgPool2d(Function):
    """``(N, C, H, W) -> (N, C)``: the mean over each channel's H x W pixels."""

    name = "global_avg_pool2d"

    @staticmethod
    def forward(ctx: Node, x: Array) -> Array:
        ctx.saved = tuple(x.shape)
        return namespace(x).mean(x, axis=(2, 3))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        n, c, h, w = ctx.saved
        xp = namespace(g)
        share = xp.reshape(g * (1.0 / (h * w)), (n, c, 1, 1))
        return (share * xp.ones((1, 1, h, w), dtype=g.dtype, device=g.device),)
