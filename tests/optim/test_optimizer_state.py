"""Optimizer state: save/resume through an .npz file, copies, float32 stays float32, read-only
arrays, no host synchronisation, hooks, zero_grad and the ``lr`` property."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import CASES, gradient_sequence, initial_values, make, step_with
from xpnn import backend
from xpnn.optim.schedules import CosineDecay, InverseTimeDecay

CLIP_ALL = dict(clip_value=2.0, clip_norm=3.0, clip_global_norm=4.0)


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """A nested state dict as flat ``a/b/c`` keys, the way a checkpoint stores it in an .npz."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}{key}/").items()}
    if isinstance(tree, list) and tree and isinstance(tree[0], dict):
        return flatten(dict(enumerate(tree)), prefix)
    return {prefix[:-1]: np.asarray(tree)}


def unflatten(flat: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key in flat:
        *path, leaf = key.split("/")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    groups = tree["param_groups"]
    tree["param_groups"] = [groups[str(i)] for i in range(len(groups))]
    return tree


def host_values(params: list[xpnn.Parameter]) -> list[np.ndarray]:
    return [backend.to_host(p.value) for p in params]


@pytest.mark.parametrize("name", list(CASES))
def test_resume_from_npz_after_20_steps_equals_uninterrupted_run_bit_for_bit(
    name: str, to_bk: Any, tmp_path: Path
) -> None:
    grads = gradient_sequence()
    params, opt = make(name, to_bk, clip_global_norm=5.0)
    for g in grads[:20]:
        step_with(opt, params, g, to_bk)
    np.savez(tmp_path / "optimizer.npz", **flatten(opt.state_dict()))
    saved_values = host_values(params)
    for g in grads[20:]:
        step_with(opt, params, g, to_bk)

    kind, hp = CASES[name]
    fresh = [xpnn.Parameter(to_bk(w), name=f"p{i}") for i, w in enumerate(saved_values)]
    resumed = kind(fresh, **hp, clip_global_norm=5.0)
    with np.load(tmp_path / "optimizer.npz") as data:
        resumed.load_state_dict(unflatten(data))
    for g in grads[20:]:
        step_with(resumed, fresh, g, to_bk)
    assert resumed.t == opt.t == 50
    for mine, theirs in zip(host_values(fresh), host_values(params), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    for i in opt.state:
        for key, value in opt.state[i].items():
            if key == "step":
                assert resumed.state[i][key] == value
            else:
                np.testing.assert_array_equal(backend.to_host(resumed.state[i][key]), backend.to_host(value))


def test_resume_continues_the_schedule_and_decay_where_it_stopped(to_bk: Any) -> None:
    params = [xpnn.Parameter(to_bk(w)) for w in initial_values()]
    opt = xpnn.SGD(params, CosineDecay(0.1, 100), decay=0.01)
    for g in gradient_sequence(20):
        step_with(opt, params, g, to_bk)
    fresh = xpnn.SGD([xpnn.Parameter(to_bk(w)) for w in initial_values()], CosineDecay(0.1, 100), decay=0.01)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.t == 20 and fresh.lr == opt.lr == CosineDecay(0.1, 100)(20) * (1.0 / (1.0 + 0.01 * 20))


@pytest.mark.parametrize("name", ["sgd_momentum", "rmsprop_centered_momentum_weight_decay", "adam_amsgrad"])
def test_state_dict_returns_copies(name: str, to_bk: Any) -> None:
    params, opt = make(name, to_bk)
    grads = gradient_sequence(4)
    step_with(opt, params, grads[0], to_bk)
    saved = opt.state_dict()
    before = {i: {k: np.copy(v) for k, v in entry.items()} for i, entry in saved["state"].items()}
    for g in grads[1:]:
        step_with(opt, params, g, to_bk)
    assert saved["t"] == 1
    for i, entry in saved["state"].items():
        assert entry["step"] == 1
        for key, value in entry.items():
            assert isinstance(value, (int, np.ndarray)), f"{key} is {type(value)}, expected plain data"
            np.testing.assert_array_equal(value, before[i][key])


@pytest.mark.parametrize("name", list(CASES))
def test_float32_parameters_and_state_stay_float32(name: str, to_bk: Any, xp: Any) -> None:
    params, opt = make(name, to_bk, dtype="float32", **CLIP_ALL)
    for g in gradient_sequence(5):
        step_with(opt, params, [a.astype(np.float32) for a in g], to_bk)
    for i, p in enumerate(params):
        assert p.value.dtype == xp.float32, f"parameter {i}"
        for key, value in opt.state[i].items():
            if key != "step":
                assert value.dtype == xp.float32, f"state {key} of parameter {i} is {value.dtype}"


@pytest.mark.parametrize("name", ["sgd_momentum", "adagrad", "rmsprop_centered", "adam_amsgrad", "adamw"])
def test_read_only_numpy_parameter_is_rebound_to_the_same_numbers(name: str) -> None:
    def to_numpy(a: Any, dtype: str | None = None) -> np.ndarray:
        return np.array(a, dtype=dtype)

    def read_only(a: Any, dtype: str | None = None) -> np.ndarray:
        out = np.array(a, dtype=dtype)
        out.flags.writeable = False
        return out

    writeable, opt = make(name, to_numpy)
    frozen, frozen_opt = make(name, read_only)
    originals = [p.value for p in frozen]
    for g in gradient_sequence(10):
        step_with(opt, writeable, g, to_numpy)
        step_with(frozen_opt, frozen, g, to_numpy)
    for p, q, original, w in zip(writeable, frozen, originals, initial_values(), strict=True):
        np.testing.assert_array_equal(q.value, p.value)
        np.testing.assert_array_equal(original, w)  # the read-only array itself was not written


@pytest.mark.parametrize("name", list(CASES))
def test_step_with_clipping_never_synchronises_with_the_host(
    name: str, to_bk: Any, no_host_sync: Any
) -> None:
    params, opt = make(name, to_bk, **CLIP_ALL)
    grads = gradient_sequence(3)
    for g in grads:
        for p, a in zip(params, g, strict=True):
            p.grad = to_bk(a)
        with no_host_sync():
            opt.step()
    assert opt.t == 3


def test_zero_grad_sets_every_gradient_to_none(to_bk: Any) -> None:
    params, opt = make("adam", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_hooks_run_before_and_after_each_step_until_removed(to_bk: Any) -> None:
    params, opt = make("sgd", to_bk)
    calls: list[tuple[str, int]] = []
    remove_pre = opt.register_step_pre_hook(lambda o: calls.append(("pre", o.t)))
    opt.register_step_post_hook(lambda o: calls.append(("post", o.t)))
    grads = gradient_sequence(2)
    step_with(opt, params, grads[0], to_bk)
    remove_pre()
    step_with(opt, params, grads[1], to_bk)
    assert calls == [("pre", 0), ("post", 1), ("post", 2)]


def test_lr_is_the_rate_the_next_step_uses(to_bk: Any) -> None:
    params = [xpnn.Parameter(to_bk(w)) for w in initial_values()]
    opt = xpnn.SGD(params, 1.0, decay=0.1)
    rates = []
    for g in gradient_sequence(3):
        rates.append(opt.lr)
        step_with(opt, params, g, to_bk)
    assert rates == [1.0, 1.0 * (1.0 / 1.1), 1.0 * (1.0 / 1.2)]
    assert opt.lr == InverseTimeDecay(1.0, 0.1)(3)


def test_setting_lr_changes_every_group(to_bk: Any) -> None:
    params = [xpnn.Parameter(to_bk(w)) for w in initial_values()]
    opt = xpnn.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    opt.lr = 0.01
    assert [group["lr"] for group in opt.param_groups] == [0.01, 0.01]
