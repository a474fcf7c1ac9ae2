"""Parameter groups built from a Module: weight decay on the matrices only, as nanoGPT does.

Decoupled weight decay (AdamW) shrinks every weight it is given towards zero; a bias or a
LayerNorm gain pulled to zero only hurts (a gain of 0 switches its feature off), so GPT-2 and
nanoGPT decay the matrices (Dense and Embedding weights: 2-D and up) and leave the vectors
alone. ``decay_groups`` returns the two torch-style groups for any optimizer:
``xpnn.AdamW(xpnn.optim.decay_groups(model, 0.1), lr=3e-4)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from xpnn.errors import OptimizerError
from xpnn.nn.parameter import Parameter


def decays_by_dimension(name: str, parameter: Parameter) -> bool:
    """nanoGPT's rule: a parameter of 2 or more dimensions (a matrix) decays."""
    return parameter.ndim >= 2


def decay_groups(
    module: Any,
    weight_decay: float,
    *,
    decays: Callable[[str, Parameter], bool] = decays_by_dimension,
    exclude: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """``[{"params": matrices, "weight_decay": weight_decay}, {"params": the rest,
    "weight_decay": 0.0}]`` over ``module.named_parameters()`` (a tied parameter once), the
    parameters of each in the module's order; an empty group is left out.

    ``decays(name, parameter)`` picks the decayed ones (default: 2-D and up); names in
    ``exclude`` (exact dotted names, e.g. ``"pos.weight"``) never decay. Frozen parameters
    (``requires_grad = False``) are left out, as optimizers skip them anyway.

    >>> import xpnn
    >>> model = xpnn.Sequential([xpnn.Embedding(10, 4), xpnn.LayerNorm(4), xpnn.Dense(4, 2)])
    >>> groups = xpnn.optim.decay_groups(model, 0.1)
    >>> [([p.name for p in group["params"]], group["weight_decay"]) for group in groups]
    [(['weight', 'weight'], 0.1), (['weight', 'bias', 'bias'], 0.0)]
    >>> optimizer = xpnn.AdamW(groups, lr=3e-4)
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float) or weight_decay < 0:
        raise OptimizerError(f"decay_groups: expected weight_decay a number >= 0, got {weight_decay!r}")
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    excluded = set(exclude)
    unknown = sorted(excluded - {n for n, _ in named})
    if unknown:
        raise OptimizerError(f"decay_groups: exclude names {unknown}, which are not parameters of the module")
    decay = [p for n, p in named if n not in excluded and decays(n, p)]
    chosen = {id(p) for p in decay}
    rest = [p for _, p in named if id(p) not in chosen]
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": rest, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
