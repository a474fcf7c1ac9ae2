"""torch state dicts in and out, as functions: ``xpnn.io.from_torch(model, state_dict)`` and
``xpnn.io.to_torch(model)``, the same as ``model.load_state_dict(d, from_torch=True)`` and
``model.state_dict(to_torch=True)`` (:mod:`xpnn.nn.torch_layout` holds the mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn.nn.torch_layout import load_torch_state, torch_state

Model = Any


def from_torch(
    model: Model, state_dict: Mapping[str, Any], *, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load a torch module's state dict (torch tensors or arrays) of the same architecture into
    ``model``: checked whole first (names, shapes, dtypes; the first mismatch named), so a
    refused dict changes nothing. Returns torch's ``(missing, unexpected)`` keys."""
    return load_torch_state(model, state_dict, strict=strict)


def to_torch(model: Model) -> dict[str, Any]:
    """``model``'s state in torch's names and layouts, on the model's backend; on NumPy, give
    torch ``{k: torch.as_tensor(v) for k, v in to_torch(model).items()}``."""
    return torch_state(model)
