"""Optimizer hyperparameters and saved state: validation, conversion and restoring.

Kept apart from :mod:`xpnn.optim.base` so the optimizer loop reads on one screen: this
module turns user and saved values into plain Python numbers, and checks a state dict
against an optimizer before anything is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn.backend import move_like, to_host
from xpnn.errors import OptimizerError


def check_rate(who: str, value: float) -> None:
    """A learning rate must be a non-negative, non-NaN Python number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptimizerError(f"{who}: expected a learning rate (Python float), got {type(value).__name__}")
    if not value >= 0.0:  # also catches NaN
        raise OptimizerError(f"{who}: expected a learning rate >= 0, got {value!r}")


def as_hyperparameter(key: str, value: Any, default: Any) -> Any:
    """Convert to the default's Python type so no NumPy scalar ever enters an array expression."""
    if key == "lr" and (callable(value) or isinstance(value, (bool, str))):
        return value  # a schedule; or a bad rate that check_rate names
    try:
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, str):
            return str(value)
        if isinstance(default, tuple):
            return tuple(float(v) for v in value)
        return float(value)
    except (TypeError, ValueError) as error:
        raise OptimizerError(
            f"hyperparameter {key}: expected a value like {default!r}, got {value!r}"
        ) from error


def to_host_state(entry: dict[str, Any]) -> dict[str, Any]:
    """A parameter's state as plain data: host copies of its arrays, the step count as is."""
    return {k: (v if k == "step" else to_host(v)) for k, v in entry.items()}


def restore(opt: Any, saved: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[int, Any], int]:
    """Check ``saved`` against ``opt`` and build its hyperparameters, state and step count."""
    who = f"{type(opt).__name__}.load_state_dict"
    kind = str(saved.get("optimizer"))
    if kind != type(opt).__name__:
        expected = type(opt).__name__
        raise OptimizerError(f"{who}: the state dict is of optimizer {kind!r}, expected {expected!r}")
    params, saved_groups = opt.parameters(), list(saved["param_groups"])
    count = sum(len(g["params"]) for g in saved_groups)
    if count != len(params) or len(saved_groups) != len(opt.param_groups):
        raise OptimizerError(
            f"{who}: the state dict holds {count} parameters in {len(saved_groups)} group(s), "
            f"this optimizer has {len(params)} in {len(opt.param_groups)}"
        )
    hypers, owner = [], []
    for i, (group, old) in enumerate(zip(opt.param_groups, saved_groups, strict=True)):
        if len(old["params"]) != len(group["params"]):
            raise OptimizerError(
                f"{who}: group {i} holds {len(old['params'])} parameters in the state dict, "
                f"{len(group['params'])} here"
            )
        hyper = {
            key: as_hyperparameter(key, old[key], default)
            for key, default in opt.defaults.items()
            if key in old and not (key == "lr" and (callable(group["lr"]) or isinstance(old[key], str)))
        }
        opt.check_group({**group, **hyper})
        hypers.append(hyper)
        owner += [{**group, **hyper}] * len(group["params"])
    state = {}
    for key, entry in dict(saved["state"]).items():
        position = int(key)
        if not 0 <= position < len(params):
            raise OptimizerError(f"{who}: state for parameter {position}, but there are {len(params)}")
        p, names = params[position], opt.state_names(owner[position])
        culprit = f"{who}: parameter {position} {p.name!r}"
        if set(entry) != {"step", *names}:
            raise OptimizerError(f"{culprit}: expected state {sorted(['step', *names])}, got {sorted(entry)}")
        for name in names:
            shape = tuple(getattr(entry[name], "shape", ()))
            if shape != tuple(p.value.shape):
                raise OptimizerError(
                    f"{culprit}: state {name!r} has shape {shape}, expected {tuple(p.value.shape)} "
                    "(the parameter's)"
                )
        state[position] = {"step": int(entry["step"]), **{n: move_like(entry[n], p.value) for n in names}}
    return hypers, state, int(saved["t"])
