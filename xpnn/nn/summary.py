"""How a Module reads: ``repr`` (its sub-modules, indented) and ``summary()`` (its members and
their parameter counts, as a table)."""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.nn.parameter import Parameter


def module_repr(module: Any) -> str:
    """``Net(\n  (inp): Dense(6 -> 8)\n  ...\n)``: the class, its ``extra_repr`` and each child's repr."""
    children = list(module.named_children())
    head = f"{type(module).__name__}({module.extra_repr()}"
    if not children:
        return head + ")"
    lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
    return head + "\n" + "\n".join(lines) + "\n)"


def _member_row(key: str, item: Any) -> tuple[str, str, str]:
    if isinstance(item, Parameter):
        return key, f"Parameter{tuple(item.shape)}", f"{item.size:,}"
    text = repr(item)  # a Module: its repr where that fits on one line
    return key, text if "\n" not in text else item.who(), f"{sum(p.size for p in item.parameters()):,}"


def summary_table(module: Any) -> str:
    """One row per direct member of ``module`` (a sub-module, or a Parameter of its own), then
    the total over ``module.parameters()``: a parameter shared by two rows is counted once."""
    rows = [("name", "module", "parameters")]
    members = [(k, m) for k, m in module.members() if not (isinstance(m, Parameter) and m.value is None)]
    rows += [_member_row(key, item) for key, item in members]
    widths = [max(len(row[k]) for row in rows) for k in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    params = module.parameters()
    total = sum(p.size for p in params)
    dtype = backend.dtype_name(params[0].value.dtype) if params else "-"
    lines.append(f"total parameters: {total:,} ({dtype}, backend {module.backend})")
    return "\n".join(lines)
