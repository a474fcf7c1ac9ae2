"""Optimizer hyperparameters and saved state: validation, conversion and restoring.

Kept apart from :mod:`xpnn.optim.base` so the optimizer loop reads on one screen: this
module turns user and saved values into plain Python numbers, and checks a state dict
against an optimizer before anything is changed.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from xpnn.backend import move_like, to_host
from xpnn.errors import OptimizerError


def plain(value: Any) -> Any:
    """A saved hyperparameter as plain Python data (an ``np.savez`` round trip gives 0-d and
    1-d arrays: ``tolist`` turns them back into numbers, booleans, tuples and strings)."""
    tolist = getattr(value, "tolist", None)
    value = tolist() if callable(tolist) else value
    return tuple(value) if isinstance(value, list) else value


def _count(who: str, what: str, value: Any) -> int:
    """A saved step count: an integer >= 0."""
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise OptimizerError(f"{who}: expected {what} an integer >= 0, got {value!r}")
    return int(value)


def _check_layout(who: str, saved: Any) -> None:
    """The state dict's shape: a mapping with ``optimizer``, ``t``, ``param_groups``, ``state``."""
    if not isinstance(saved, Mapping):
        raise OptimizerError(f"{who}: expected a state dict (a mapping from state_dict()), got {saved!r}")
    missing = [key for key in ("optimizer", "t", "param_groups", "state") if key not in saved]
    if missing:
        raise OptimizerError(f"{who}: the state dict lacks {missing}; it has {sorted(map(str, saved))}")
    groups = saved["param_groups"]
    if isinstance(groups, (str, Mapping)) or not isinstance(groups, Iterable):
        raise OptimizerError(f"{who}: expected param_groups a list of dicts, got {type(groups).__name__}")
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or "params" not in group:
            raise OptimizerError(f"{who}: param_groups[{i}]: expected a dict with 'params', got {group!r}")
    if not isinstance(saved["state"], Mapping):
        raise OptimizerError(f"{who}: expected state a dict by position, got {type(saved['state']).__name__}")
    for key, entry in saved["state"].items():
        if not isinstance(entry, Mapping) or "step" not in entry:
            raise OptimizerError(f"{who}: state {key!r}: expected a dict with 'step', got {entry!r}")


def to_host_state(entry: dict[str, Any]) -> dict[str, Any]:
    """A parameter's state as plain data: host copies of its arrays, the step count as is."""
    return {k: (v if k == "step" else to_host(v)) for k, v in entry.items()}


def restore(opt: Any, saved: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[int, Any], int]:
    """Check ``saved`` against ``opt`` and build its hyperparameters, state and step count."""
    who = f"{type(opt).__name__}.load_state_dict"
    _check_layout(who, saved)
    t = _count(who, "t", saved["t"])
    kind = str(plain(saved["optimizer"]))
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
        values = {
            key: plain(old[key])
            for key in opt.defaults
            if key in old
            and not (key == "lr" and (callable(group["lr"]) or isinstance(plain(old[key]), str)))
        }  # a saved schedule is its repr: the loading optimizer keeps its own
        hyper = opt.checked(values)
        opt.check_group({**group, **hyper})
        hypers.append(hyper)
        owner += [{**group, **hyper}] * len(group["params"])
    state = {}
    for key, entry in dict(saved["state"]).items():
        position = _count(
            who, "a parameter position", key if not isinstance(key, str) or not key.isdigit() else int(key)
        )
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
        step = _count(f"{culprit}: state", "step", entry["step"])
        state[position] = {"step": step, **{n: move_like(entry[n], p.value) for n in names}}
    return hypers, state, t
