"""``export_onnx``: a model as an ONNX file, traced from the tape.

The model runs once in eval mode on the example input made a Tensor that requires grad (every
parameter made to require one too, for the trace only), so the tape records every call from
input to output: one node per layer call (its options: kernel, padding, eps, the running
statistics) and one per elementary Tensor operation (residual adds, reshapes, ...). The nodes,
oldest first, are written as ONNX operators by :data:`xpnn.io.onnx_ops.ONNX_OPS`; parameters
become initializers under the model's names for them. The first axis is the batch and stays
free (``"batch"``), so the file runs on any batch size; the opset is recorded in the file.
``onnx.checker`` checks the model (shape inference included) before it is written, atomically.

Why the tape and not ndonnx (xpnn's plain equations on ONNX-backed arrays): a layer refuses
an input of another namespace than its parameters, and the equations of convolution, pooling
and batch normalization need concrete sizes (im2col slices, counts), so with a free batch
axis they do not trace; where sizes are fixed they write convolution as dozens of slices
instead of one ``Conv``. The tape holds what each layer is, which maps one-to-one onto ONNX.
"""

from __future__ import annotations

import os
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import Node, enable_grad
from xpnn.autograd.tensor import Tensor
from xpnn.checks import is_floating
from xpnn.errors import ExportError
from xpnn.io import archive
from xpnn.io.onnx_graph import Call, OnnxGraph
from xpnn.io.onnx_ops import ONNX_OPS
from xpnn.optional import require

Model = Any
OPSETS = range(17, 22)  # 17: LayerNormalization's; up to what current runtimes read


def _trace(model: Model, example: Any) -> tuple[Tensor, Tensor]:
    """(input, output) of one eval-mode call recorded on the tape; modes, ``requires_grad``
    flags and everything else of the model as they were afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    params = model.parameters()
    flags = [p.requires_grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad = True
        x = Tensor(example, requires_grad=is_floating(example))  # token ids: a constant
        with enable_grad():
            out = model(x)
    finally:
        for module, mode in modes:
            module.training = mode
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad = flag
    if not isinstance(out, Tensor) or out.node is None:
        raise ExportError(
            f"export_onnx: {type(model).__name__} returned {type(out).__name__}, not a computed Tensor"
        )
    return x, out


def _nodes(root: Node) -> list[Node]:
    """Every node the output depends on, oldest first (a topological order)."""
    found, seen, i = [root], {id(root)}, 0
    while i < len(found):
        for tensor in found[i].inputs:
            parent = None if tensor is None else tensor.node
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                found.append(parent)
        i += 1
    return sorted(found, key=lambda node: node.seq)


def _write_nodes(graph: OnnxGraph, x: Tensor, out: Tensor, names: dict[str, str], model: Model) -> str:
    """Convert every node; returns the name of the output's value."""
    params = {id(p): name for name, p in model.named_parameters()}
    values: dict[int, str] = {}

    def name_of(t: Tensor) -> str:
        if t.node is not None:
            return values[id(t.node)]
        if t is x:
            return names["x"]
        if id(t) in params:
            return graph.array(t.value, params[id(t)])
        raise ExportError(
            "export_onnx: the model read a tensor that requires grad but is neither its input nor one "
            "of its parameters"
        )

    assert out.node is not None
    for node in _nodes(out.node):
        convert = ONNX_OPS.get(node.name)
        if convert is None:
            raise ExportError(
                f"export_onnx: the tape node {node.name or node!r} has no ONNX form; known: "
                f"{', '.join(sorted(ONNX_OPS))} (a layer adds its own to xpnn.io.onnx_ops.ONNX_OPS)"
            )
        inputs = [None if t is None else name_of(t) for t in node.inputs]
        shapes = [None if t is None else tuple(t.shape) for t in node.inputs]
        values[id(node)] = convert(graph, Call(node, inputs, shapes))
    return values[id(out.node)]


def _model_proto(
    onnx: Any, graph: OnnxGraph, x: Tensor, out: Tensor, names: dict[str, str], example: Any
) -> Any:
    helper = onnx.helper
    kind = helper.np_dtype_to_tensor_dtype(graph.dtype)
    input_kind = helper.np_dtype_to_tensor_dtype(backend.to_host(example[:0, ...]).dtype)
    batch = x.shape[0]
    out_dims: list[Any] = list(out.shape)
    if out_dims and out_dims[0] == batch:
        out_dims[0] = "batch"
    inputs = [helper.make_tensor_value_info(names["input"], input_kind, ["batch", *x.shape[1:]])]
    outputs = [helper.make_tensor_value_info(names["output"], kind, out_dims)]
    body = helper.make_graph(graph.nodes, "xpnn", inputs, outputs, initializer=graph.initializers)
    opsets = [helper.make_opsetid("", graph.opset)]
    return helper.make_model(
        body, opset_imports=opsets, producer_name="xpnn", ir_version=helper.find_min_ir_version_for(opsets)
    )


def export_onnx(
    model: Model,
    example_input: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    input_name: str = "input",
    output_name: str = "output",
) -> Any:
    """Write ``model`` (a Sequential or any Module of built-in layers and Tensor operations) as
    an ONNX file at ``path``, traced on ``example_input`` (an array of the model's backend and
    dtype, uint8 images, or integer token ids; batch first: at most two of its samples are run);
    returns the ``onnx.ModelProto``.

    uint8 images are what ``fit`` and ``predict`` take: the file then takes uint8 too, and its
    first two nodes are those methods' scaling, ``Cast`` to the model's dtype and ``Mul`` by
    1/255 (x / 255 rounded as on the device), so ``predict(images)`` and the file agree.

    The batch axis is free; the model is left as it was. Raises :class:`ExportError` naming an
    operation without an ONNX form, a BatchNorm without running statistics, or a constant the
    tape did not keep; :class:`~xpnn.MissingDependencyError` where ``onnx`` is not installed.
    """
    onnx = require("onnx", extra="io", who="xpnn.io.export_onnx")
    if opset not in OPSETS:
        raise ExportError(f"export_onnx: opset {opset!r}, expected {OPSETS.start} to {OPSETS.stop - 1}")
    example = example_input.value if isinstance(example_input, Tensor) else example_input
    floats = [p.value for p in model.parameters()] + [example]
    dtype = next((backend.to_host(v[:0, ...]).dtype for v in floats if is_floating(v)), None)
    if dtype is None:
        raise ExportError("export_onnx: neither the model's parameters nor the input are floating-point")
    images = backend.dtype_name(example.dtype) == "uint8"
    traced = example[:2, ...]
    if images:
        xp = backend.namespace(example)
        traced = xp.astype(traced, backend.dtype_named(xp, str(dtype))) * (1.0 / 255.0)
    x, out = _trace(model, traced)
    known = {id(value): name for name, value in model.named_buffers()}
    graph = OnnxGraph(onnx, dtype, opset, known)
    names = {"input": graph.fresh(input_name)}
    names["x"] = names["input"]
    if images:  # fit's and predict's scaling of uint8 images, as the file's first nodes
        cast = graph.add("Cast", [names["input"]], "images", to=onnx.helper.np_dtype_to_tensor_dtype(dtype))
        names["x"] = graph.add("Mul", [cast, graph.constant(1.0 / 255.0, "inverse_255")], "scaled")
    graph.stored[id(x.value)] = names["x"]  # read as a constant (token ids): the input
    result = _write_nodes(graph, x, out, names, model)
    names["output"] = graph.add("Identity", [result], output_name)
    proto = _model_proto(onnx, graph, x, out, names, example)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"export_onnx: the written graph fails onnx.checker: {error}") from None
    archive.write_atomically(path, lambda file: file.write(proto.SerializeToString()))
    return proto
