"""Sliding windows over NCHW images, shared by convolution and pooling: sizes, padding,
im2col and col2im in plain Array API code.

The standard has no ``pad``, no ``as_strided`` and no scatter-add, so:
padding builds a filled array and writes the image into its middle; im2col takes the
``kh * kw`` strided slices ``x[:, :, i*d : ... : s, j*d : ... : s]`` (one per kernel offset,
each of shape (N, C, H_out, W_out)); col2im adds each offset's gradient back into the same
slice. Sizes round as torch's: ``H_out = floor((H + pads - d*(k-1) - 1) / s) + 1``.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

from xpnn.backend import namespace
from xpnn.backend.slices import add_slice
from xpnn.errors import ArgumentError, ArgumentTypeError, ShapeError

Array = Any
Pair = tuple[int, int]


def pair(value: Any, who: str, what: str, minimum: int = 1) -> Pair:
    """``3 -> (3, 3)``; ``(3, 1)`` stays; each entry an integer (any ``numbers.Integral`` but
    bool: ``np.int64(3)`` too) >= ``minimum``. Anything else is a named error here, not a
    ``TypeError`` from deep inside: :class:`ArgumentTypeError` for a float, None, a string or an
    array (a pair is a tuple or list), :class:`ArgumentError` for a size below ``minimum``."""
    items = (value, value) if _is_integer(value) else tuple(value) if isinstance(value, tuple | list) else ()
    if len(items) != 2 or not all(_is_integer(v) for v in items):
        raise ArgumentTypeError(
            f"{who}: expected {what} an int or a pair (h, w) of ints, got {type(value).__name__} {value!r}"
        )
    if any(v < minimum for v in items):
        raise ArgumentError(f"{who}: expected {what} >= {minimum} (each entry), got {value!r}")
    return (int(items[0]), int(items[1]))


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Geometry(NamedTuple):
    """Where the windows of one input size lie: kernel, stride, dilation, the four pads
    (top, bottom, left, right) and the output size."""

    kernel: Pair
    stride: Pair
    dilation: Pair
    pads: tuple[int, int, int, int]
    out: Pair

    @property
    def offsets(self) -> list[Pair]:
        """The kernel offsets ``(i, j)`` in row-major order (the weight's (kh, kw) order)."""
        return [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]

    def window(self, i: int, j: int) -> tuple[slice, slice, slice, slice]:
        """The index of offset ``(i, j)`` into the padded image: (N, C, H_out, W_out) elements."""
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        columns = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
        return (slice(None), slice(None), rows, columns)


def out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int, ceil: bool) -> int:
    """torch's output size along one axis (``ceil_mode``: the last window must start inside
    the image or its left padding)."""
    span = size + pad_total - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad_total // 2:
        out -= 1
    return out


def same_pads(kernel: Pair, dilation: Pair) -> tuple[int, int, int, int]:
    """torch's ``padding="same"``: total ``d*(k-1)`` per axis, the odd one extra at the end."""
    (kh, kw), (dh, dw) = kernel, dilation
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return (th // 2, th - th // 2, tw // 2, tw - tw // 2)


def geometry(who: str, shape: tuple[int, ...], kernel: Pair, stride: Pair, dilation: Pair,
             pads: tuple[int, int, int, int], ceil: bool = False) -> Geometry:  # fmt: skip
    """The windows over an (N, C, H, W) input; ``ShapeError`` when the (padded) image is
    smaller than the (dilated) kernel. ``ceil`` adds the bottom/right padding the last
    ceil-mode window needs (pooling fills it so it never wins or counts)."""
    h, w = shape[2], shape[3]
    top, bottom, left, right = pads
    reach = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    if h + top + bottom < reach[0] or w + left + right < reach[1]:
        raise ShapeError(
            f"{who}: expected an image of at least {reach[0]}x{reach[1]} after padding "
            f"{pads[0]}+{pads[1]}, {pads[2]}+{pads[3]} (the kernel's reach), got {h}x{w} "
            f"in input of shape {tuple(shape)}"
        )
    ho = out_size(h, kernel[0], stride[0], top + bottom, dilation[0], ceil)
    wo = out_size(w, kernel[1], stride[1], left + right, dilation[1], ceil)
    extra_h = max(0, (ho - 1) * stride[0] + reach[0] - (h + top + bottom))
    extra_w = max(0, (wo - 1) * stride[1] + reach[1] - (w + left + right))
    return Geometry(kernel, stride, dilation, (top, bottom + extra_h, left, right + extra_w), (ho, wo))


def padded_shape(shape: tuple[int, ...], pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    n, c, h, w = shape
    return (n, c, h + pads[0] + pads[1], w + pads[2] + pads[3])


def interior(shape: tuple[int, ...], pads: tuple[int, int, int, int]) -> tuple[slice, ...]:
    """The index of the unpadded image inside the padded one."""
    h, w = shape[2], shape[3]
    return (slice(None), slice(None), slice(pads[0], pads[0] + h), slice(pads[2], pads[2] + w))


def pad(x: Array, pads: tuple[int, int, int, int], fill: float = 0.0) -> Array:
    """``x`` (N, C, H, W) surrounded by ``fill`` (0 for convolution, -inf for max pooling).

    Filled blocks joined to ``x`` by ``concat``, above and below, then left and right: on a
    Tensor, ``concat`` records (writing ``x`` into a slice of a filled array would not: the
    array took the Tensor's numbers without its graph on NumPy, and refused it on torch)."""
    if not any(pads):
        return x
    xp = namespace(x)
    n, c, h, w = x.shape
    top, bottom, left, right = pads

    def filled(rows: int, columns: int) -> Array:
        return xp.full((n, c, rows, columns), fill, dtype=x.dtype, device=x.device)

    rows = xp.concat([filled(top, w), x, filled(bottom, w)], axis=2)
    return xp.concat([filled(h + top + bottom, left), rows, filled(h + top + bottom, right)], axis=3)


def window_slices(padded: Array, geo: Geometry) -> list[Array]:
    """The ``kh * kw`` strided slices of the padded image, each (N, C, H_out, W_out)."""
    return [padded[geo.window(i, j)] for i, j in geo.offsets]


def im2col(padded: Array, geo: Geometry) -> Array:
    """(N, C, kh*kw, H_out, W_out): every window's pixels, channel-major as the weight."""
    return namespace(padded).stack(window_slices(padded, geo), axis=2)


def col2im(pieces: Array, geo: Geometry, shape: tuple[int, ...]) -> Array:
    """The adjoint of im2col: adds ``pieces`` (N, C, kh*kw, H_out, W_out) back into an
    (N, C, H, W) image (overlapping windows add up), dropping the padding."""
    xp = namespace(pieces)
    out = xp.zeros(padded_shape(shape, geo.pads), dtype=pieces.dtype, device=pieces.device)
    for k, (i, j) in enumerate(geo.offsets):
        out = add_slice(out, geo.window(i, j), pieces[:, :, k, ...])
    return out[interior(shape, geo.pads)]


def chunks(n: int, per_sample: int, budget: int = 2**24) -> list[slice]:
    """Batch slices whose im2col holds at most ``budget`` elements (64 MiB of float32), so
    predicting on a large array does not build one huge buffer."""
    step = max(1, budget // max(per_sample, 1))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)] if n > step else [slice(0, n)]


def padding(who: str, value: int | tuple[int, int] | str, kernel: Pair, stride: Pair, dilation: Pair
            ) -> tuple[int, int, int, int]:  # fmt: skip
    """A convolution's padding (int, pair, ``"valid"`` or ``"same"``) as (top, bottom, left, right)."""
    if isinstance(value, str) and value == "valid":
        return (0, 0, 0, 0)
    if isinstance(value, str) and value == "same":
        if stride != (1, 1):
            raise ShapeError(f"{who}: padding='same' needs stride 1, got stride {stride}")
        return same_pads(kernel, dilation)
    if isinstance(value, str):
        raise ArgumentError(f"{who}: padding must be an int, a pair, 'valid' or 'same', got {value!r}")
    ph, pw = pair(value, who, "padding", minimum=0)
    return (ph, ph, pw, pw)


def check_pool_padding(who: str, pads: Pair, kernel: Pair) -> None:
    """Pooling pads at most half the kernel on each side (torch's rule)."""
    if any(p > k // 2 for p, k in zip(pads, kernel, strict=True)):
        raise ShapeError(f"{who}: padding must be at most half the kernel size {kernel}, got {pads}")
