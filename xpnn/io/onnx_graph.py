"""The ONNX graph an export writes: nodes, initializers and unique value names.

:mod:`xpnn.io.onnx_export` walks the tape and hands each recorded node, as a :class:`Call`,
to its converter in :mod:`xpnn.io.onnx_ops`, which adds ONNX nodes through
:class:`OnnxGraph` and returns the name of the value it computed. A model's own arrays
(parameters, BatchNorm's running statistics) become initializers named as the model names
them (``"0.weight"``, ``"blocks.1.bn1.running_mean"``), each stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.autograd.graph import Node
from xpnn.errors import ExportError

Array = Any


class OnnxGraph:
    """Nodes and initializers being written for one model, in ``dtype`` at ``opset``.

    ``known``: names of the model's arrays by identity (``id(array)`` -> dotted name).
    """

    def __init__(self, onnx: Any, dtype: np.dtype[Any], opset: int, known: dict[int, str]) -> None:
        self.onnx, self.dtype, self.opset, self.known = onnx, dtype, opset, known
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = set()
        self.stored: dict[int, str] = {}  # id(array) -> its initializer

    def fresh(self, hint: str) -> str:
        """A value name not used yet: ``hint``, else ``hint_1``, ``hint_2``, ..."""
        name, k = hint, 0
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def add(self, op: str, inputs: list[str], hint: str | None = None, **attributes: Any) -> str:
        """Append node ``op`` (ONNX operator) reading ``inputs``; returns its output's name."""
        out = self.fresh(hint or op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def constant(self, value: Any, hint: str = "constant", dtype: Any = None) -> str:
        """A new initializer holding ``value`` (a Python number or an array of any backend);
        floating values, and plain Python numbers, take the graph's dtype."""
        host = (
            backend.to_host(value)
            if hasattr(value, "dtype") and hasattr(value, "shape")
            else np.asarray(value)
        )
        if dtype is None and (host.dtype.kind == "f" or not hasattr(value, "dtype")):
            dtype = self.dtype
        host = np.array(host, dtype=dtype, order="C")  # a 0-d array stays 0-d (ascontiguousarray: 1-d)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(host.reshape(np.shape(host)), name))
        return name

    def array(self, value: Array, hint: str) -> str:
        """The initializer of one of the model's arrays (stored once, under the model's name
        for it where known)."""
        key = id(value)
        if key not in self.stored:
            self.stored[key] = self.constant(value, self.known.get(key, hint))
        return self.stored[key]


@dataclass
class Call:
    """One recorded node as its converter sees it: the node (``name``, ``options``,
    ``saved``), the ONNX names of its inputs (None where the tape kept no tensor: an absent
    bias, a constant) and the shapes of the tensors it read."""

    node: Node
    inputs: list[str | None]
    shapes: list[tuple[int, ...] | None]

    @property
    def options(self) -> dict[str, Any]:
        return self.node.options or {}

    def input(self, index: int, what: str = "input") -> str:
        """Input ``index``'s name, or :class:`ExportError` where the tape kept no tensor for it."""
        name = self.inputs[index] if index < len(self.inputs) else None
        if name is None:
            raise ExportError(
                f"export_onnx: the {what} (operand {index}) of a {self.node.name!r} node is a constant the "
                "tape did not keep; compute it from the model's input or make it a Parameter or buffer"
            )
        return name

    def shape(self, index: int) -> tuple[int, ...]:
        shape = self.shapes[index]
        assert shape is not None, "a present input has a shape"
        return shape
