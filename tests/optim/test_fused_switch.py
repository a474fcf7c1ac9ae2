"""``optimizer.fused``: the class's ``update_fast`` (its fast form in xpnn.kernels.optimizers) is
tried only while the switch is on, the plain ``update`` is the definition, and a fast form that
does not apply falls back to it; ``xpnn.kernels.enabled(False)`` turns them all off."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import CASES, gradient_sequence, make, step_with
from xpnn import backend, kernels


def _spy(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[int]:
    """Count the calls of ``cls.update_fast`` (still running the real fast form)."""
    calls: list[int] = []
    real = cls.update_fast

    def spy(self: Any, *args: Any) -> bool:
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(cls, "update_fast", spy)
    return calls


def _numpy(a: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(a, dtype=dtype or np.float32)


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_fused_false_never_calls_the_kernel(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    params, opt = make(name, _numpy, "float32")
    calls = _spy(monkeypatch, type(opt))
    opt.fused = False
    for grads in gradient_sequence(3):
        step_with(opt, params, grads, _numpy)
    assert calls == []


@pytest.mark.fast_paths
@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_fused_true_calls_the_class_fast_form(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    params, opt = make(name, _numpy, "float32")
    calls = _spy(monkeypatch, type(opt))
    assert opt.fused is True
    for grads in gradient_sequence(3):
        step_with(opt, params, grads, _numpy)
    assert calls  # tried at every step (the torch-momentum kernel declines step 1)


@pytest.mark.fast_paths
@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_the_one_switch_turns_every_fast_form_off(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    params, opt = make(name, _numpy, "float32")
    calls = _spy(monkeypatch, type(opt))
    with kernels.disabled():
        for grads in gradient_sequence(3):
            step_with(opt, params, grads, _numpy)
        assert not kernels.enabled()
    assert calls == [] and kernels.enabled()


def test_the_switch_can_be_turned_off_for_a_whole_class(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch, xpnn.Adam)
    monkeypatch.setattr(xpnn.Adam, "fused", False)
    params, opt = make("adam", _numpy, "float32")
    step_with(opt, params, gradient_sequence(1)[0], _numpy)
    assert calls == [] and xpnn.AdamW.fused is False  # AdamW inherits Adam's class switch


@pytest.mark.parametrize("name", ["adam_amsgrad", "rmsprop_centered", "rmsprop_momentum", "sgd_nesterov"])
def test_a_variant_the_kernel_does_not_cover_falls_back_to_the_plain_equation(name: str) -> None:
    fused_values, plain_values = [], []
    for fused, out in ((True, fused_values), (False, plain_values)):
        params, opt = make(name, _numpy, "float32")
        opt.fused = fused
        for grads in gradient_sequence(5):
            step_with(opt, params, grads, _numpy)
        out.extend(backend.to_host(p.value) for p in params)
    for a, b in zip(fused_values, plain_values, strict=True):
        assert np.array_equal(a, b)


def test_the_adam_fast_form_declines_amsgrad_and_changes_nothing() -> None:
    value, grad = np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    state = {"step": 1, "exp_avg": np.zeros(4, np.float32), "exp_avg_sq": np.zeros(4, np.float32)}
    opt = xpnn.Adam([xpnn.Parameter(value.copy(), "w")], amsgrad=True)
    assert opt.update_fast(value, grad, state, dict(opt.param_groups[0]), 0.1) is False
    assert np.array_equal(value, np.ones(4)) and not state["exp_avg"].any()


def test_a_subclass_with_its_own_equation_does_not_inherit_the_kernel() -> None:
    class Halving(xpnn.SGD):
        def update(self, value: Any, grad: Any, state: Any, group: Any, lr: float) -> Any:
            return value * 0.5

    class Renamed(xpnn.Adam):
        pass

    assert Halving.update_fast is xpnn.Optimizer.update_fast and Renamed.update_fast is xpnn.Adam.update_fast
    p = xpnn.Parameter(np.ones(3, np.float32), "w")
    opt = Halving([p], 0.1)
    p.grad = np.ones(3, np.float32)
    opt.step()
    assert np.array_equal(p.value, np.full(3, 0.5))


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_and_plain_agree_on_every_backend(name: str, bk: Any, to_bk: Any) -> None:
    results = []
    for fused in (True, False):
        params, opt = make(name, to_bk, "float32")
        opt.fused = fused
        for grads in gradient_sequence(8):
            step_with(opt, params, grads, to_bk)
        results.append([backend.to_host(p.value) for p in params])
    for a, b in zip(*results, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
