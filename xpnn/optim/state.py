"""Optimizer hyperparameters and saved state: validation, conversion and restoring.

Kept apart from :mod:`xpnn.optim.base` so the optimizer loop reads on one screen: this
module turns user and saved values into plain Python numbers, and checks a state dict
against an optimizer before anything is changed.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from xpnn.backend import device_of, move_like, namespace, to_host
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


def follow(state: dict[str, Any], value: Any, names: tuple[str, ...]) -> None:
    """Keep a parameter's state on its backend, device and dtype (after ``model.to()``), and
    create state that a changed hyperparameter (e.g. momentum turned on) now needs."""
    for name in names:
        array = state.get(name)
        if array is None:
            state[name] = namespace(value).zeros_like(value)
        elif (
            type(array) is not type(value)
            or array.dtype != value.dtype
            or device_of(array) != device_of(value)
        ):
            state[name] = move_like(to_host(array), value)


def plain_state_dict(opt: Any) -> dict[str, Any]:
    """``opt.state_dict()``: plain data keyed by parameter position; a schedule as its ``repr``."""
    groups, position = [], 0
    for group in opt.param_groups:
        entry = {k: (repr(v) if callable(v) else v) for k, v in group.items() if k != "params"}
        entry["params"] = list(range(position, position + len(group["params"])))
        position += len(group["params"])
        groups.append(entry)
    state = {i: to_host_state(entry) for i, entry in opt.state.items()}
    return {"optimizer": type(opt).__name__, "t": opt.t, "param_groups": groups, "state": state}


def restore(opt: Any, saved: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[int, Any], int]:
    """Check ``saved`` against ``opt`` and build its hyperparameters, state and step count."""
    who = f"{type(opt).__name__}.load_state_dict"
    _check_layout(who, saved)
    t = _count(who, "t", saved["t"])
    kind = str(plain(saved["optimizer"]))
    if kind != type(opt).__name__:
        expected = type(opt).__name__
        raise OptimizerError(f"{who}: the state dict is of optimizer {kind!r}, expected {expected!r}")
    hypers = _restore_groups(who, opt, list(saved["param_groups"]))
    owner = [
        {**group, **h} for group, h in zip(opt.param_groups, hypers, strict=True) for _ in group["params"]
    ]
    return hypers, _restore_state(who, opt, saved["state"], owner), t


def _restore_groups(who: str, opt: Any, saved_groups: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each saved group's hyperparameters, checked as the constructor checks them."""
    params = opt.parameters()
    count = sum(len(g["params"]) for g in saved_groups)
    if count != len(params) or len(saved_groups) != len(opt.param_groups):
        raise OptimizerError(
            f"{who}: the state dict holds {count} parameters in {len(saved_groups)} group(s), "
            f"this optimizer has {len(params)} in {len(opt.param_groups)}"
        )
    hypers = []
    for i, (group, old) in enumerate(zip(opt.param_groups, saved_groups, strict=True)):
        if len(old["params"]) != len(group["params"]):
            raise OptimizerError(
                f"{who}: group {i} holds {len(old['params'])} parameters in the state dict, "
                f"{len(group['params'])} here"
            )
        values = {key: plain(old[key]) for key in opt.defaults if key in old}
        if callable(group["lr"]) or isinstance(values.get("lr"), str):
            values.pop("lr", None)  # a saved schedule is its repr: the loading optimizer keeps its own
        hyper = opt.checked(values)
        opt.check_group({**group, **hyper})
        hypers.append(hyper)
    return hypers


def _restore_state(
    who: str, opt: Any, saved_state: Mapping[Any, Any], owner: list[dict[str, Any]]
) -> dict[int, Any]:
    """Each saved parameter state, checked against its parameter, moved onto its backend."""
    params, state = opt.parameters(), {}
    for key, entry in saved_state.items():
        position = _count(
            who, "a parameter position", int(key) if isinstance(key, str) and key.isdigit() else key
        )
        if not position < len(params):
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
        _check_values(culprit, entry, names, opt.nonnegative_state)
        step = _count(f"{culprit}: state", "step", entry["step"])
        state[position] = {"step": step, **{n: move_like(entry[n], p.value) for n in names}}
    return state


def _check_values(
    culprit: str, entry: Mapping[str, Any], names: tuple[str, ...], nonnegative: tuple[str, ...]
) -> None:
    """Saved state finite, and >= 0 where a square root of it is taken (Adam's ``exp_avg_sq``):
    a NaN or negative one would make every later step NaN. One sync per array, once per load."""
    for name in names:
        value = entry[name]
        xp = namespace(value)
        if not bool(xp.all(xp.isfinite(value))):
            raise OptimizerError(f"{culprit}: state {name!r} holds non-finite values, expected finite")
        if name in nonnegative and not bool(xp.all(value >= 0)):
            raise OptimizerError(f"{culprit}: state {name!r} holds negative values, expected >= 0")
