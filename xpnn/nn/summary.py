"""How a Module reads: ``repr`` (its sub-modules, indented) and ``model.summary(input_shape=...)``,
a table of a model's modules, as Keras's ``summary`` and torchinfo print one.

Each module by dotted name (nested ones indented under their parent), what it is, its output
shape and its parameter count; then the totals, split into trainable and frozen parameters
(and the buffers' numbers: BatchNorm's running statistics). Output shapes come from one probe
forward in eval mode under ``no_grad`` on zeros of ``(2, *input_shape)`` of the model's backend
and dtype: each module's ``forward`` is wrapped for that call only, and the modes are put
back, so the model is left exactly as it was (no statistics, counters or gradients change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import no_grad
from xpnn.errors import ArgumentError
from xpnn.nn.parameter import Parameter

Module = Any  # an xpnn.nn.Module (duck-typed: this file is imported by nn.module)
PROBE_BATCH = 2  # the first axis is shown as "batch" where it has this size


def _describe(shape: tuple[int, ...]) -> str:
    dims = ["batch" if i == 0 and d == PROBE_BATCH else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _shape_of(out: Any) -> str:
    if isinstance(out, tuple | list):
        return ", ".join(_shape_of(o) for o in out)
    return _describe(tuple(out.shape)) if hasattr(out, "shape") else type(out).__name__


def _recording(forward: Callable[..., Any], name: str, shapes: dict[str, str]) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        shapes[name] = _shape_of(out)
        return out

    return record


def probe(model: Module, input_shape: tuple[int, ...]) -> dict[str, str]:
    """Each called module's output shape (by dotted name; ``""``: the model) for a batch of
    zeros of ``input_shape``; the model as it was afterwards."""
    if not (isinstance(input_shape, tuple | list) and all(isinstance(d, int) and d > 0 for d in input_shape)):
        raise ArgumentError(
            f"summary: input_shape must be a tuple of sizes > 0 (no batch axis), got {input_shape!r}"
        )
    arrays = [p.value for p in model.parameters()] + list(model.buffers().values())
    like = (
        arrays[0]
        if arrays
        else backend.resolve("numpy").xp.zeros(0, dtype=backend.resolve("numpy").xp.float32)
    )
    xp = backend.namespace(like)
    x = xp.zeros((PROBE_BATCH, *input_shape), dtype=like.dtype, device=backend.device_of(like))
    shapes: dict[str, str] = {}
    modules = model.named_modules()
    saved = [(m, m.training, vars(m).get("forward")) for _, m in modules]
    try:
        for name, module in modules:
            module.forward = _recording(module.forward, name, shapes)
        model.eval()
        with no_grad():
            model(x)
    finally:
        for module, training, own in saved:
            module.training = training
            if own is None:
                del module.forward
            else:
                module.forward = own
    return shapes


def _count(module: Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())


def _depths(names: list[str]) -> dict[str, int]:
    """How deep each module sits: its parent is the nearest earlier name it extends with a dot
    (``blocks.0.conv1`` under ``blocks.0``; ``blocks.0`` under the model: a list is no module)."""
    depths = {"": -1}
    for name in names[1:]:
        parents = [p for p in depths if p == "" or name.startswith(p + ".")]
        depths[name] = depths[max(parents, key=len)] + 1
    return depths


def summary(model: Module, input_shape: tuple[int, ...] | None = None) -> str:
    """The table (see the module docstring); without ``input_shape``, no output shapes."""
    shapes = probe(model, tuple(input_shape)) if input_shape is not None else None
    modules = model.named_modules()
    depths = _depths([name for name, _ in modules])
    rows = [("name", "layer", "output shape", "parameters")]
    for name, module in modules:
        if name:
            leaf = not any(True for _ in module.named_children())
            what = repr(module) if leaf else type(module).__name__
            shape = "-" if shapes is None else shapes.get(name, "(not called)")
            rows.append(("  " * depths[name] + name, what, shape, f"{_count(module):,}"))
        rows += _own_parameter_rows(name, module, depths[name] + 1)
    columns = [0, 1, 2, 3] if shapes is not None else [0, 1, 3]
    widths = {k: max(len(row[k]) for row in rows) for k in columns}
    lines = ["  ".join(row[k].ljust(widths[k]) for k in columns).rstrip() for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    if shapes is not None and input_shape is not None:
        lines.insert(0, f"input: {_describe((PROBE_BATCH, *input_shape))}; output: {shapes.get('', '-')}")
    return "\n".join([*lines, *_totals(model)])


def _own_parameter_rows(prefix: str, module: Module, depth: int) -> list[tuple[str, str, str, str]]:
    """Rows for the Parameters a module holds itself (a user's ``self.scale``), not in a layer."""
    if not any(True for _ in module.named_children()):
        return []  # a layer: its parameters are its row
    rows = []
    for key, item in module.members():
        if not isinstance(item, Parameter) or item.value is None:
            continue
        name = f"{prefix}.{key}" if prefix else key
        rows.append(("  " * depth + name, f"Parameter{tuple(item.shape)}", "-", f"{item.size:,}"))
    return rows


def _totals(model: Module) -> list[str]:
    params = model.parameters()
    trainable = sum(math.prod(p.shape) for p in params if p.requires_grad)
    total = sum(math.prod(p.shape) for p in params)
    buffers = sum(math.prod(v.shape) for v in model.buffers().values())
    dtype = backend.dtype_name(params[0].value.dtype) if params else "-"
    lines = [
        f"total parameters: {total:,} ({dtype}, backend {model.backend})",
        f"trainable: {trainable:,}; frozen: {total - trainable:,}",
    ]
    if buffers:
        lines.append(f"buffers (not trained: running statistics): {buffers:,} numbers")
    return lines


def module_repr(module: Any) -> str:
    """``Net(\n  (inp): Dense(6 -> 8)\n  ...\n)``: the class, its ``extra_repr`` and each child's repr."""
    children = list(module.named_children())
    head = f"{type(module).__name__}({module.extra_repr()}"
    if not children:
        return head + ")"
    lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
    return head + "\n" + "\n".join(lines) + "\n)"
