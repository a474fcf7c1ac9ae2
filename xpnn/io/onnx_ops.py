"""ONNX forms of the tape's nodes, by node name: the table :data:`ONNX_OPS`.

Each converter ``(graph, call) -> name`` writes the ONNX nodes computing one recorded call
(:class:`~xpnn.io.onnx_graph.Call`: its inputs' ONNX names, their shapes, the call's options)
and returns the name of the result. Layers record ONE node each (``"linear"``, ``"conv2d"``,
``"batch_norm"``, ...; a book-style layer by its class name: ``"Flatten"``), elementary
Tensor operations one per operation (``"add"``, ``"reshape"``, ...). A new layer joins with
one converter and one line in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xpnn.errors import ExportError
from xpnn.io.onnx_graph import Call, OnnxGraph
from xpnn.io.onnx_transformer import TRANSFORMER_OPS

Converter = Callable[[OnnxGraph, Call], str]


# -- layers -------------------------------------------------------------------------------------------
def linear(g: OnnxGraph, call: Call) -> str:
    """``x @ w + b`` with w (n_in, n_out) as Dense keeps it: Gemm for a batch of rows, MatMul
    and Add for more leading axes."""
    x, w = call.input(0), call.input(1, "weight")
    b = call.inputs[2] if len(call.inputs) > 2 else None
    if len(call.shape(0)) == 2:
        return g.add("Gemm", [x, w] + ([b] if b else []), "linear")
    y = g.add("MatMul", [x, w], "linear")
    return g.add("Add", [y, b], "linear") if b else y


def linear_relu(g: OnnxGraph, call: Call) -> str:
    return g.add("Relu", [linear(g, call)])


def conv2d(g: OnnxGraph, call: Call) -> str:
    geo = call.options["geometry"]
    top, bottom, left, right = geo.pads
    inputs = [call.input(0), call.input(1, "weight")] + ([b] if (b := call.inputs[2]) else [])
    return g.add("Conv", inputs, "conv", kernel_shape=list(geo.kernel), strides=list(geo.stride),
                 dilations=list(geo.dilation), pads=[top, left, bottom, right],
                 group=int(call.options["groups"]))  # fmt: skip


def _pool_size(size: int, kernel: int, stride: int, pads: int) -> int:
    return (size + pads - kernel) // stride + 1


def max_pool2d(g: OnnxGraph, call: Call) -> str:
    """Padding counts as -inf in both; a ceil-mode window's extra padding is explicit here."""
    geo = call.options["geometry"]
    top, bottom, left, right = geo.pads
    (kh, kw), (sh, sw), (_, _, h, w) = geo.kernel, geo.stride, call.shape(0)
    if (_pool_size(h, kh, sh, top + bottom), _pool_size(w, kw, sw, left + right)) != tuple(geo.out):
        raise ExportError(f"export_onnx: max pooling of {geo} does not fit ONNX MaxPool's output size")
    return g.add("MaxPool", [call.input(0)], "max_pool", kernel_shape=[kh, kw], strides=[sh, sw],
                 pads=[top, left, bottom, right])  # fmt: skip


def avg_pool2d(g: OnnxGraph, call: Call) -> str:
    """Zero padding counted (torch's default, ONNX's ``count_include_pad=1``); a ceil-mode
    window's overhang past the padding is not, in both (``ceil_mode=1``)."""
    geo, (ph, pw) = call.options["geometry"], call.options["padding"]
    ceil = int(tuple(geo.pads) != (ph, ph, pw, pw))
    return g.add("AveragePool", [call.input(0)], "avg_pool", kernel_shape=list(geo.kernel),
                 strides=list(geo.stride), pads=[ph, pw, ph, pw], count_include_pad=1,
                 ceil_mode=ceil)  # fmt: skip


def global_avg_pool2d(g: OnnxGraph, call: Call) -> str:
    return g.add("Flatten", [g.add("GlobalAveragePool", [call.input(0)])], "global_avg_pool", axis=1)


def batch_norm(g: OnnxGraph, call: Call) -> str:
    """Eval mode only: normalization by the running statistics, as ONNX's BatchNormalization."""
    running = call.options.get("running")
    if call.options.get("training") or running is None:
        raise ExportError(
            "export_onnx: a BatchNorm normalizing with the batch's own statistics (training mode, or "
            "track_running_stats=False) has no ONNX BatchNormalization form; export in eval mode with "
            "running statistics"
        )
    channels = call.shape(0)[1]
    scale = call.inputs[1] or g.constant(np.ones(channels), "ones")
    shift = call.inputs[2] or g.constant(np.zeros(channels), "zeros")
    mean, var = g.array(running.mean, "running_mean"), g.array(running.var, "running_var")
    return g.add("BatchNormalization", [call.input(0), scale, shift, mean, var], "batch_norm",
                 epsilon=float(call.options["eps"]))  # fmt: skip


def dropout(g: OnnxGraph, call: Call) -> str:
    raise ExportError(
        "export_onnx: a dropout in training mode (F.dropout(training=True)); eval mode is the identity"
    )


def _unary(op: str, **attributes: Callable[[Call], Any]) -> Converter:
    def convert(g: OnnxGraph, call: Call) -> str:
        values = {key: read(call) for key, read in attributes.items()}
        return g.add(op, [call.input(0)], **values)

    return convert


# -- elementary Tensor operations ---------------------------------------------------------------------
def _binary(op: str) -> Converter:
    """``a op b``; a constant operand (a number or an array) becomes an initializer."""

    def convert(g: OnnxGraph, call: Call) -> str:
        number = call.options.get("number")
        if number is not None:  # a Python number on one side: a one-input node
            left, right = number
            return g.add(
                op, [g.constant(left), call.input(0)] if right is None else [call.input(0), g.constant(right)]
            )
        constants = call.options.get("constants", (None, None))
        names = []
        for i in range(2):
            value = constants[i] if op in ("Add", "Sub") else call.node.saved[i]
            names.append(call.inputs[i] or g.constant(value))
        return g.add(op, names)

    return convert


def pow_(g: OnnxGraph, call: Call) -> str:
    return g.add("Pow", [call.input(0), g.constant(call.node.saved[1], "exponent")])


def reshape(g: OnnxGraph, call: Call) -> str:
    """The target shape with the batch axis left to the input: 0 (copy) where the first axis
    keeps its size, else -1 (the first axis absorbs the batch)."""
    before, target = call.shape(0), list(call.options["shape"])
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(before)) // max(known, 1)
    dims = [0 if target[0] == before[0] else -1, *target[1:]] if target and before else target
    return g.add("Reshape", [call.input(0), g.constant(np.array(dims, np.int64), "shape")])


def _reduce(op: str) -> Converter:
    """``x.sum / mean / max / min(axis, keepdims)``: axes an input from opset 18 (ReduceSum: 13)."""

    def convert(g: OnnxGraph, call: Call) -> str:
        axis, keep = call.options.get("axis"), int(bool(call.options.get("keepdims", False)))
        axes = None if axis is None else [axis] if isinstance(axis, int) else list(axis)
        if axes is None:
            return g.add(op, [call.input(0)], keepdims=keep)
        if op == "ReduceSum" or g.opset >= 18:
            return g.add(op, [call.input(0), g.constant(np.array(axes, np.int64), "axes")], keepdims=keep)
        return g.add(op, [call.input(0)], axes=axes, keepdims=keep)

    return convert


def take(g: OnnxGraph, call: Call) -> str:
    """``t[indices]`` along one axis (an embedding lookup ``weight[ids]``): Gather; indices that
    are the model's input (token ids) read the graph's input."""
    indices = g.array(call.options["indices"], "indices")
    return g.add("Gather", [call.input(0), indices], axis=int(call.options.get("axis", 0)))


def concat(g: OnnxGraph, call: Call) -> str:
    inputs = [call.input(i) for i in range(len(call.inputs))]
    return g.add("Concat", inputs, axis=int(call.options.get("axis", 0)))


def _elementwise_pair(op: str) -> Converter:
    def convert(g: OnnxGraph, call: Call) -> str:
        return g.add(op, [call.input(0), call.input(1)])

    return convert


ONNX_OPS: dict[str, Converter] = {
    "linear": linear,
    "linear_relu": linear_relu,
    "conv2d": conv2d,
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "global_avg_pool2d": global_avg_pool2d,
    "batch_norm": batch_norm,
    "dropout": dropout,
    "Flatten": _unary("Flatten", axis=lambda call: 1),  # a layer of the book's style: named by its class
    "relu": _unary("Relu"),
    "leaky_relu": _unary("LeakyRelu", alpha=lambda call: float(call.options["alpha"])),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "softmax": _unary("Softmax", axis=lambda call: int(call.options.get("axis", -1))),
    "log_softmax": _unary("LogSoftmax", axis=lambda call: int(call.options.get("axis", -1))),
    "add": _binary("Add"),
    "sub": _binary("Sub"),
    "mul": _binary("Mul"),
    "div": _binary("Div"),
    "matmul": _elementwise_pair("MatMul"),
    "maximum": _elementwise_pair("Max"),
    "minimum": _elementwise_pair("Min"),
    "neg": _unary("Neg"),
    "pow": pow_,
    "exp": _unary("Exp"),
    "log": _unary("Log"),
    "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"),
    "reshape": reshape,
    "permute_dims": _unary("Transpose", perm=lambda call: list(call.options["axes"])),
    "sum": _reduce("ReduceSum"),
    "mean": _reduce("ReduceMean"),
    "max": _reduce("ReduceMax"),
    "min": _reduce("ReduceMin"),
    "concat": concat,
    "take": take,
    **TRANSFORMER_OPS,
}
