"""What an optimizer checks before anything changes: new parameters, gradients, state shapes.

Kept apart from :mod:`xpnn.optim.base` so the loop reads on one screen; each function raises
the specific :class:`~xpnn.XpnnError` naming the optimizer, the parameter (by position and
name), the expected and the actual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xpnn.checks import check_like, is_floating
from xpnn.errors import DTypeError, NotAParameterError, OptimizerError, ShapeError
from xpnn.nn.parameter import Parameter


def check_new_parameters(who: str, params: list[Any], known: set[int]) -> None:
    """Each of ``params`` is an xpnn Parameter of a floating dtype not already in ``known`` (ids)."""
    known, first = set(known), len(known)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise NotAParameterError(
                f"{who}: parameter {first + i} is a {type(p).__name__}, expected an xpnn.Parameter "
                "(pass model.parameters() or layer.parameters())"
            )
        if not is_floating(p.value):
            raise DTypeError(
                f"{who}: parameter {first + i} {p.name!r}: expected a floating dtype, got {p.dtype}"
            )
        if id(p) in known:
            raise OptimizerError(f"{who}: parameter {first + i} {p.name!r} appears twice")
        known.add(id(p))


def reject_gradient(who: str, position: int, p: Parameter) -> None:
    """Raise the specific error for a gradient the optimizer's fast check refused."""
    culprit = f"{who}: parameter {position} {p.name!r}"
    grad = p.grad
    check_like(culprit, grad, p.value, what="gradient")
    raise ShapeError(
        f"{culprit}: expected a gradient of shape {tuple(p.value.shape)} "
        f"(the parameter's), got {tuple(grad.shape)}"  # type: ignore[union-attr]
    )


def check_state_shapes(
    who: str, pending: Iterable[tuple[int, Parameter, int]], state: dict[int, dict[str, Any]]
) -> None:
    """A value swapped for one of another shape cannot keep its state: say so before any change
    (an in-place kernel would otherwise have moved a moment before the shapes clash)."""
    for position, p, _ in pending:
        for name, array in state.get(position, {}).items():
            if name != "step" and tuple(array.shape) != tuple(p.value.shape):
                raise ShapeError(
                    f"{who}: parameter {position} {p.name!r} has shape {tuple(p.value.shape)}, but its "
                    f"state {name!r} has {tuple(array.shape)} (its value was replaced by one of another "
                    "shape: clear opt.state to restart it)"
                )
