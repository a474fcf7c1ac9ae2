"""The flat step's steady state (``FlatBuffers.step_unchanged``): when gradients were written into
the flat gradient buffer and nothing was swapped, the step skips the checks and packing that
cannot have changed; anything that did change takes the full step. The numbers are the
per-parameter path's, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import gradient_sequence, make
from xpnn import backend
from xpnn.errors import ShapeError
from xpnn.optim.base import Optimizer

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

STEPS = 50
EVENTS = ("none", "swap_value", "foreign_grad", "load_state", "amsgrad_on", "add_group")


def _write_grads(params: list[xpnn.Parameter], grads: list[np.ndarray], to_bk: Any) -> None:
    """As a layer's backward does: into the flat gradient buffer where one is offered."""
    for p, g in zip(params, grads, strict=True):
        value = to_bk(g, backend.dtype_name(p.dtype))
        home = p.gradient_out()
        p.accumulate(value if home is None else backend.assign(home, value))


def _event(event: str, step: int, params: list[xpnn.Parameter], opt: Any, saved: Any, to_bk: Any) -> None:
    if event == "swap_value" and step == 20:
        params[0].value = to_bk(np.full(params[0].shape, 0.5), "float32")
    if event == "foreign_grad" and step in (20, 21):
        params[1].grad = to_bk(backend.to_host(params[1].grad).copy(), "float32")
    if event == "load_state" and step == 30:
        opt.load_state_dict(saved)
    if event == "amsgrad_on" and step == 25 and "amsgrad" in opt.param_groups[0]:
        opt.param_groups[0]["amsgrad"] = True


def _train(name: str, to_bk: Any, flat: bool, event: str) -> list[np.ndarray]:
    params, opt = make(name, to_bk, "float32")
    opt.flat, saved = flat, None
    extra = [
        xpnn.Parameter(to_bk(np.ones((3, 2)), "float32"), "extra"),
        xpnn.Parameter(to_bk(np.ones(2), "float32"), "b"),
    ]
    for step, grads in enumerate(gradient_sequence(STEPS)):
        _write_grads(params, grads, to_bk)
        if event == "add_group" and step == 10:
            opt.add_param_group({"params": extra})
        if event == "add_group" and step >= 10:
            _write_grads(extra, [grads[0][:3, :2], grads[1][:2]], to_bk)
        _event(event, step, params, opt, saved, to_bk)
        opt.step()
        opt.zero_grad()
        saved = opt.state_dict() if step == 15 else saved
    return [backend.to_host(p.value) for p in [*params, *extra]]


@pytest.fixture
def full_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the steps that ran the full path (its first act is ``_pending``)."""
    calls: list[int] = []
    real = Optimizer._pending

    def spy(self: Any) -> Any:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Optimizer, "_pending", spy)
    return calls


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize(
    "name", ["sgd", "sgd_momentum", "adagrad", "rmsprop_centered", "adam", "adamw_amsgrad_decay"]
)
def test_the_steady_flat_step_gives_the_per_parameter_numbers(
    name: str, event: str, bk: Any, to_bk: Any, full_steps: list[int]
) -> None:
    flat = _train(name, to_bk, True, event)
    full = sum(full_steps)
    plain = _train(name, to_bk, False, event)
    for a, b in zip(flat, plain, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    if bk.name in ("numpy", "torch"):  # backends with views: the steady state is reached
        assert full < STEPS // 2, f"{full} of {STEPS} steps ran the full path"
        changed = event in ("swap_value", "foreign_grad", "add_group")
        changed |= (event == "load_state" and name != "sgd") or (event == "amsgrad_on" and name == "adam")
        assert full >= 1 + changed, "the change did not take the full step"  # (stateless SGD: no change)


def test_a_bad_gradient_after_steady_steps_is_refused_before_anything_changes() -> None:
    params, opt = make("adam", np.asarray, "float32")
    for grads in gradient_sequence(5):
        _write_grads(params, grads, np.asarray)
        opt.step()
        opt.zero_grad()
    before = [p.value.copy() for p in params]
    steps = [s["step"] for s in opt.state.values()]
    _write_grads(params, gradient_sequence(1)[0], np.asarray)
    params[2].grad = np.ones((5, 5), np.float32)
    with pytest.raises(ShapeError, match="expected a gradient of shape"):
        opt.step()
    assert all(np.array_equal(p.value, b) for p, b in zip(params, before, strict=True))
    assert [s["step"] for s in opt.state.values()] == steps
