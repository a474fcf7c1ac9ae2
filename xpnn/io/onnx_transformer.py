"""ONNX converters of the transformer pieces and of basic slicing, by tape node name.

``gelu`` (exact: ``0.5 x (1 + erf(x / sqrt 2))``; tanh form: ``0.5 x (1 + tanh(sqrt(2/pi)
(x + 0.044715 x**3)))``: opset 17 has no Gelu), ``layer_norm`` (LayerNormalization over the last
axis), ``embedding`` (Gather of the weight's rows; token ids that are the model's input read the
graph's input), ``scaled_dot_product_attention`` and ``multi_head_attention`` (MatMul, scale,
mask, Softmax, MatMul; the packed qkv split into heads by Reshape and Transpose), and
``getitem`` with slices and integers (Slice, then Squeeze). A causal mask is a constant of the
traced time length: the exported file keeps that length (only the batch axis is free).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.errors import ExportError
from xpnn.io.onnx_graph import Call, OnnxGraph

Converter = Callable[[OnnxGraph, Call], str]


def gelu(g: OnnxGraph, call: Call) -> str:
    x = call.input(0)
    if call.options.get("approximate", "none") == "tanh":
        cube = g.add("Mul", [g.add("Mul", [x, x]), x])
        inner = g.add("Add", [x, g.add("Mul", [cube, g.constant(0.044715)])])
        core = g.add("Tanh", [g.add("Mul", [inner, g.constant(math.sqrt(2.0 / math.pi))])])
    else:
        core = g.add("Erf", [g.add("Mul", [x, g.constant(1.0 / math.sqrt(2.0))])])
    half = g.add("Mul", [x, g.constant(0.5)])
    return g.add("Mul", [half, g.add("Add", [core, g.constant(1.0)])], "gelu")


def layer_norm(g: OnnxGraph, call: Call) -> str:
    dim = call.shape(0)[-1]
    weight = call.inputs[1] if len(call.inputs) > 1 and call.inputs[1] else g.constant(np.ones(dim), "ones")
    bias = call.inputs[2] if len(call.inputs) > 2 and call.inputs[2] else g.constant(np.zeros(dim), "zeros")
    return g.add("LayerNormalization", [call.input(0), weight, bias], "layer_norm", axis=-1,
                 epsilon=float(call.options.get("eps", 1e-5)))  # fmt: skip


def embedding(g: OnnxGraph, call: Call) -> str:
    """Row ``ids`` of the weight; the ids as the call read them (the model's input, or a constant)."""
    ids = call.node.saved[0]
    return g.add("Gather", [call.input(1, "weight"), g.array(ids, "ids")], "embedding", axis=0)


def _mask(g: OnnxGraph, mask: Any, causal: bool, time_q: int, time_k: int) -> str | None:
    """The boolean mask as a constant: the given one, the causal one, or both; None without."""
    allowed = None if mask is None else backend.to_host(mask).astype(bool)
    if causal:
        lower = np.tril(np.ones((time_q, time_k), dtype=bool))
        allowed = lower if allowed is None else allowed & lower
    return None if allowed is None else g.constant(allowed, "mask", dtype=np.bool_)


def _attend(g: OnnxGraph, q: str, k: str, v: str, scale: float, mask: str | None) -> str:
    """``softmax(scale * q @ k^T, masked) @ v`` for (..., time, d) operands."""
    k_t = g.add("Transpose", [k], perm=_swap_last(4))
    scores = g.add("Mul", [g.add("MatMul", [q, k_t]), g.constant(scale)])
    if mask is not None:
        scores = g.add("Where", [mask, scores, g.constant(-np.inf)])
    return g.add("MatMul", [g.add("Softmax", [scores], axis=-1), v], "attention")


def _swap_last(ndim: int) -> list[int]:
    return [*range(ndim - 2), ndim - 1, ndim - 2]


def scaled_dot_product_attention(g: OnnxGraph, call: Call) -> str:
    q, k, v = (call.input(i) for i in range(3))
    shape_q, shape_k = call.shape(0), call.shape(1)
    if len(shape_q) != 4:
        raise ExportError(
            f"export_onnx: attention over {len(shape_q)}-D operands; (batch, heads, time, d) only"
        )
    scale = call.node.saved[4]
    mask = _mask(g, call.options.get("mask"), bool(call.options.get("causal")), shape_q[-2], shape_k[-2])
    return _attend(g, q, k, v, float(scale), mask)


def multi_head_attention(g: OnnxGraph, call: Call) -> str:
    """The packed qkv (batch, time, 3 * dim) split into q, k, v heads, attended, merged back."""
    _, time, width = call.shape(0)
    heads = int(call.options["heads"])
    dim = width // 3
    shape = g.constant(np.array([0, time, 3, heads, dim // heads], np.int64), "shape")
    split = g.add("Transpose", [g.add("Reshape", [call.input(0), shape])], perm=[2, 0, 3, 1, 4])
    q, k, v = (g.add("Gather", [split, g.constant(np.array(i, np.int64), "index")], axis=0) for i in range(3))
    mask = _mask(g, call.options.get("mask"), bool(call.options.get("causal")), time, time)
    out = _attend(g, q, k, v, (dim // heads) ** -0.5, mask)
    merged = g.add("Transpose", [out], perm=[0, 2, 1, 3])
    return g.add("Reshape", [merged, g.constant(np.array([0, time, dim], np.int64), "shape")], "merge")


def getitem(g: OnnxGraph, call: Call) -> str:
    """``t[index]`` for an index of slices (with steps) and integers: Slice, then Squeeze."""
    index = call.options["index"]
    items = index if isinstance(index, tuple) else (index,)
    shape = call.shape(0)
    if any(item is None or item is Ellipsis for item in items) or len(items) > len(shape):
        raise ExportError(f"export_onnx: an index {index!r:.60} other than slices and integers")
    starts, ends, axes, steps, drop = [], [], [], [], []
    for axis, item in enumerate(items):
        if isinstance(item, slice):
            start, stop, step = item.indices(shape[axis])
            if item == slice(None):
                continue
        elif isinstance(item, int):
            start, stop, step = item % shape[axis], item % shape[axis] + 1, 1
            drop.append(axis)
        else:
            raise ExportError(f"export_onnx: an index {index!r:.60} other than slices and integers")
        starts.append(start)
        ends.append(stop if stop >= 0 else -(2**62))  # a backward slice to the front: past it
        axes.append(axis)
        steps.append(step)
    out = call.input(0)
    if axes:
        arrays = [np.array(values, np.int64) for values in (starts, ends, axes, steps)]
        out = g.add("Slice", [out, *(g.constant(a, "slice") for a in arrays)], "slice")
    if drop:
        out = g.add("Squeeze", [out, g.constant(np.array(drop, np.int64), "axes")])
    return out


TRANSFORMER_OPS: dict[str, Converter] = {
    "gelu": gelu,
    "layer_norm": layer_norm,
    "embedding": embedding,
    "scaled_dot_product_attention": scaled_dot_product_attention,
    "multi_head_attention": multi_head_attention,
    "getitem": getitem,
}
