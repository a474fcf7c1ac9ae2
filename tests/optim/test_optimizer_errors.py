"""Bad optimizer input: each raises a specific error naming the culprit, and a failed step()
leaves every parameter and every state as it was."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import gradient_sequence, initial_values, make, step_with
from xpnn import backend
from xpnn.errors import BackendMismatchError, DTypeError, NotAParameterError, OptimizerError, ShapeError


def params_on(to_bk: Any) -> list[xpnn.Parameter]:
    return [xpnn.Parameter(to_bk(w), name=f"p{i}") for i, w in enumerate(initial_values())]


def snapshot(params: list[xpnn.Parameter], opt: Any) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]]:
    values = [backend.to_host(p.value) for p in params]
    state = {
        i: {k: (v if k == "step" else backend.to_host(v)) for k, v in s.items()} for i, s in opt.state.items()
    }
    return values, state


def assert_unchanged(before: tuple[list, dict], after: tuple[list, dict]) -> None:
    for a, b in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert before[1].keys() == after[1].keys()
    for i in before[1]:
        for key in before[1][i]:
            np.testing.assert_array_equal(before[1][i][key], after[1][i][key])


def test_non_parameter_in_params_is_named_by_position(to_bk: Any) -> None:
    params = params_on(to_bk)
    with pytest.raises(NotAParameterError, match=r"parameter 1 is a .*expected an xpnn.Parameter"):
        xpnn.Adam([params[0], params[1].value])
    assert issubclass(NotAParameterError, TypeError) and issubclass(NotAParameterError, OptimizerError)


def test_empty_parameter_list_is_rejected() -> None:
    with pytest.raises(OptimizerError, match="empty parameter list"):
        xpnn.SGD([], 0.1)


def test_same_parameter_twice_is_rejected(to_bk: Any) -> None:
    p = params_on(to_bk)[0]
    with pytest.raises(OptimizerError, match="parameter 1 'p0' appears twice"):
        xpnn.SGD([p, p], 0.1)


@pytest.mark.parametrize("lr", [-0.1, math.nan, "0.1"])
def test_negative_nan_or_non_number_lr_is_rejected(lr: Any, to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match="SGD: expected a learning rate"):
        xpnn.SGD(params_on(to_bk), lr)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9,)])
def test_betas_outside_zero_one_are_rejected(betas: tuple[float, ...], to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match=r"Adam: expected betas \(beta1, beta2\) in \[0, 1\), got"):
        xpnn.Adam(params_on(to_bk), betas=betas)


def test_negative_momentum_is_rejected(to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match=r"SGD: expected momentum >= 0, got -0.5"):
        xpnn.SGD(params_on(to_bk), 0.1, momentum=-0.5)


def test_nesterov_without_momentum_is_rejected(to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match="nesterov needs momentum > 0 and dampening = 0"):
        xpnn.SGD(params_on(to_bk), 0.1, nesterov=True)


def test_unknown_momentum_style_is_rejected(to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match="momentum_style must be 'torch' or 'nnfs', got 'keras'"):
        xpnn.SGD(params_on(to_bk), 0.1, momentum=0.9, momentum_style="keras")


def test_unknown_hyperparameter_in_a_group_is_rejected(to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match=r"unknown hyperparameter\(s\) \['alpha'\]"):
        xpnn.RMSProp([{"params": params_on(to_bk), "alpha": 0.9}], 0.1)


@pytest.mark.parametrize("clip", ["clip_value", "clip_norm", "clip_global_norm"])
def test_non_positive_clip_limit_is_rejected(clip: str, to_bk: Any) -> None:
    with pytest.raises(OptimizerError, match=f"{clip}: expected a positive"):
        xpnn.Adam(params_on(to_bk), **{clip: 0.0})


def _fail_second_step(opt: Any, params: list[xpnn.Parameter], to_bk: Any, bad: Any, error: type) -> str:
    """Step once (creating state), then step with one bad gradient: returns the error message
    after asserting no parameter and no state moved."""
    grads = gradient_sequence(2)
    step_with(opt, params, grads[0], to_bk)
    for p, g in zip(params, grads[1], strict=True):
        p.grad = to_bk(g)
    params[2].grad = bad
    before = snapshot(params, opt)
    with pytest.raises(error) as caught:
        opt.step()
    assert_unchanged(before, snapshot(params, opt))
    assert opt.t == 1
    return str(caught.value)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam_amsgrad"])
def test_gradient_of_wrong_shape_fails_naming_the_parameter_and_updates_nothing(
    name: str, to_bk: Any
) -> None:
    params, opt = make(name, to_bk)
    message = _fail_second_step(opt, params, to_bk, to_bk(np.ones((2, 3))), ShapeError)
    assert "parameter 2 'p2'" in message and "(2, 3, 2)" in message and "got (2, 3)" in message


def test_gradient_of_wrong_dtype_fails_naming_the_parameter_and_updates_nothing(to_bk: Any) -> None:
    params, opt = make("adam", to_bk)
    message = _fail_second_step(opt, params, to_bk, to_bk(np.ones((2, 3, 2)), "float32"), DTypeError)
    assert "parameter 2 'p2'" in message and "float64" in message and "float32" in message


def test_gradient_of_another_namespace_fails_naming_the_parameter_and_updates_nothing(
    bk: Any, to_bk: Any
) -> None:
    other = backend.resolve("array_api_strict" if bk.name == "numpy" else "numpy")
    bad = backend.from_host(np.ones((2, 3, 2)), other)
    params, opt = make("rmsprop_momentum", to_bk)
    message = _fail_second_step(opt, params, to_bk, bad, BackendMismatchError)
    assert "parameter 2 'p2'" in message and repr(bk.name) in message and repr(other.name) in message


def test_schedule_giving_a_negative_rate_fails_before_updating(to_bk: Any) -> None:
    params = params_on(to_bk)
    opt = xpnn.SGD(params, lambda t: 0.1 - 0.2 * t, momentum=0.9)
    message = _fail_second_step(opt, params, to_bk, to_bk(gradient_sequence(1)[0][2]), OptimizerError)
    assert "at t=1: expected a learning rate >= 0, got -0.1" in message


def test_loading_a_state_dict_of_another_optimizer_is_rejected(to_bk: Any) -> None:
    params, opt = make("sgd_momentum", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    with pytest.raises(OptimizerError, match="state dict is of optimizer 'SGD', expected 'Adam'"):
        xpnn.Adam(params_on(to_bk)).load_state_dict(opt.state_dict())


def test_loading_a_state_dict_of_another_parameter_count_is_rejected(to_bk: Any) -> None:
    params, opt = make("adam", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    with pytest.raises(OptimizerError, match=r"holds 3 parameters in 1 group.*this optimizer has 2 in 1"):
        xpnn.Adam(params_on(to_bk)[:2]).load_state_dict(opt.state_dict())


def test_loading_state_of_another_shape_is_rejected_and_changes_nothing(to_bk: Any) -> None:
    params, opt = make("adam", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    other = [
        xpnn.Parameter(to_bk(np.zeros(w.shape[::-1])), name=f"q{i}") for i, w in enumerate(initial_values())
    ]
    fresh = xpnn.Adam(other)
    with pytest.raises(OptimizerError, match=r"parameter 0 'q0'.*has shape \(4, 3\), expected \(3, 4\)"):
        fresh.load_state_dict(opt.state_dict())
    assert fresh.state == {} and fresh.t == 0


def test_loading_state_with_a_missing_array_is_rejected(to_bk: Any) -> None:
    params, opt = make("adam", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    saved = opt.state_dict()
    del saved["state"][1]["exp_avg_sq"]
    with pytest.raises(
        OptimizerError, match=r"parameter 1 'p1': expected state \['exp_avg', 'exp_avg_sq', 'step'\]"
    ):
        xpnn.Adam(params_on(to_bk)).load_state_dict(saved)


def _saved_after_one_step(to_bk: Any) -> tuple[Any, dict[str, Any]]:
    params, opt = make("adam", to_bk)
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    return opt, opt.state_dict()


@pytest.mark.parametrize("saved", [None, [], "state", 3])
def test_loading_something_that_is_not_a_state_dict_is_a_named_error(saved: Any, to_bk: Any) -> None:
    fresh = xpnn.Adam(params_on(to_bk))
    with pytest.raises(OptimizerError, match=r"Adam.load_state_dict: expected a state dict"):
        fresh.load_state_dict(saved)
    assert fresh.state == {} and fresh.t == 0


@pytest.mark.parametrize("key", ["t", "state", "param_groups", "optimizer"])
def test_a_state_dict_missing_a_key_is_a_named_error_naming_it(key: str, to_bk: Any) -> None:
    _, saved = _saved_after_one_step(to_bk)
    del saved[key]
    fresh = xpnn.Adam(params_on(to_bk))
    with pytest.raises(OptimizerError, match=rf"Adam.load_state_dict: the state dict lacks \['{key}'\]"):
        fresh.load_state_dict(saved)
    assert fresh.state == {} and fresh.t == 0


@pytest.mark.parametrize("t", [-1, 1.5, "3", None])
def test_a_negative_or_non_integer_step_count_t_is_a_named_error(t: Any, to_bk: Any) -> None:
    _, saved = _saved_after_one_step(to_bk)
    saved["t"] = t
    with pytest.raises(OptimizerError, match=r"Adam.load_state_dict: expected t an integer >= 0, got"):
        xpnn.Adam(params_on(to_bk)).load_state_dict(saved)


def test_a_negative_parameter_step_is_a_named_error_and_changes_nothing(to_bk: Any) -> None:
    _, saved = _saved_after_one_step(to_bk)
    saved["state"][2]["step"] = -1
    fresh = xpnn.Adam(params_on(to_bk))
    with pytest.raises(
        OptimizerError, match=r"parameter 2 'p2': state: expected step an integer >= 0, got -1"
    ):
        fresh.load_state_dict(saved)
    assert fresh.state == {} and fresh.t == 0


@pytest.mark.parametrize("group", [None, {"lr": 0.1}, 7])
def test_a_malformed_parameter_group_is_a_named_error(group: Any, to_bk: Any) -> None:
    _, saved = _saved_after_one_step(to_bk)
    saved["param_groups"] = [group]
    with pytest.raises(OptimizerError, match=r"param_groups\[0\]: expected a dict with 'params'"):
        xpnn.Adam(params_on(to_bk)).load_state_dict(saved)


def test_a_saved_hyperparameter_out_of_range_is_refused_and_changes_nothing(to_bk: Any) -> None:
    _, saved = _saved_after_one_step(to_bk)
    saved["param_groups"][0]["eps"] = 0.0
    fresh = xpnn.Adam(params_on(to_bk))
    with pytest.raises(OptimizerError, match=r"Adam: expected eps > 0, got 0.0 \(range \(0, inf\)\)"):
        fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["eps"] == 1e-8 and fresh.state == {}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("flat", [True, False])
def test_a_value_swapped_for_another_shape_raises_before_any_state_changes(
    fused: bool, flat: bool, to_bk: Any
) -> None:
    params, opt = make("adam", to_bk)
    opt.fused, opt.flat = fused, flat
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    params[0].value = to_bk(np.zeros((3, 4)))  # was (4, 3): same size, another shape
    params[0].grad = to_bk(np.ones((3, 4)))
    for p, g in zip(params[1:], gradient_sequence(2)[1][1:], strict=True):
        p.grad = to_bk(g)
    before = snapshot(params, opt)
    with pytest.raises(
        ShapeError, match=r"Adam: parameter 0 'p0' has shape \(3, 4\), but its state 'exp_avg'"
    ):
        opt.step()
    assert_unchanged(before, snapshot(params, opt))
    assert opt.t == 1
