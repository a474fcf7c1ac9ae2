"""Hyperparameters: each declared once with a finite, documented range, checked at construction,
in ``add_param_group``, on ``opt.lr = ...``, and for schedules at the step, before anything changes."""

from __future__ import annotations

import inspect
import math
import re
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import gradient_sequence, initial_values, make, step_with
from xpnn import backend
from xpnn.errors import OptimizerError

INF, NAN = math.inf, math.nan

# (optimizer, keyword, bad value, the range the message must state)
BAD = [
    (xpnn.SGD, "decay", INF, "[0, inf)"),
    (xpnn.SGD, "dampening", NAN, "[0, 1]"),
    (xpnn.SGD, "dampening", -1.0, "[0, 1]"),
    (xpnn.SGD, "dampening", 2.0, "[0, 1]"),
    (xpnn.SGD, "weight_decay", INF, "[0, inf)"),
    (xpnn.SGD, "momentum", INF, "[0, 1]"),
    (xpnn.RMSProp, "momentum", INF, "[0, 1]"),
    (xpnn.Adam, "weight_decay", INF, "[0, inf)"),
    (xpnn.AdamW, "decay", INF, "[0, inf)"),
    (xpnn.Adam, "eps", 0.0, "(0, inf)"),
    (xpnn.Adam, "eps", INF, "(0, inf)"),
    (xpnn.RMSProp, "eps", 0.0, "(0, inf)"),
    (xpnn.RMSProp, "eps", INF, "(0, inf)"),
    (xpnn.AdaGrad, "eps", 0.0, "(0, inf)"),
    (xpnn.AdaGrad, "eps", INF, "(0, inf)"),
    (xpnn.AdaGrad, "initial_accumulator_value", INF, "[0, inf)"),
    (xpnn.RMSProp, "rho", 1.5, "[0, 1]"),
]


def params() -> list[xpnn.Parameter]:
    return [xpnn.Parameter(np.asarray(w, np.float32), name=f"p{i}") for i, w in enumerate(initial_values())]


@pytest.mark.parametrize(("kind", "key", "value", "interval"), BAD, ids=lambda v: str(v))
def test_a_value_outside_its_range_is_refused_at_construction(
    kind: Any, key: str, value: float, interval: str
) -> None:
    with pytest.raises(OptimizerError) as caught:
        kind(params(), 0.01, **{key: value})
    message = str(caught.value)
    assert message.startswith(f"{kind.__name__}: expected") and key in message
    assert f"got {value!r}" in message and f"range {interval}" in message


@pytest.mark.parametrize(("kind", "key", "value", "interval"), BAD[:6], ids=lambda v: str(v))
def test_a_value_outside_its_range_is_refused_in_add_param_group(
    kind: Any, key: str, value: float, interval: str
) -> None:
    first, second = params()[:1], params()[1:]
    opt = kind(first, 0.01)
    with pytest.raises(
        OptimizerError, match=rf"{kind.__name__}: expected .*{key}.*range {re.escape(interval)}"
    ):
        opt.add_param_group({"params": second, key: value})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("lr", [INF, -INF, NAN, -1.0])
def test_an_infinite_or_negative_learning_rate_is_refused(lr: float) -> None:
    with pytest.raises(
        OptimizerError, match=r"SGD: expected a (finite )?learning rate.*lr: range \[0, inf\)"
    ):
        xpnn.SGD(params(), lr)


@pytest.mark.parametrize("bad", [-1.0, INF, NAN, "0.1"])
def test_setting_a_bad_lr_raises_and_keeps_the_previous_rate(bad: Any) -> None:
    opt = xpnn.SGD([{"params": params()[:1]}, {"params": params()[1:], "lr": 0.2}], 0.1)
    with pytest.raises(OptimizerError, match="SGD: expected a"):
        opt.lr = bad
    assert [group["lr"] for group in opt.param_groups] == [0.1, 0.2]


@pytest.mark.parametrize("rate", [INF, NAN, -0.5])
def test_a_schedule_returning_a_bad_rate_raises_at_the_step_before_anything_changes(rate: float) -> None:
    ps = params()
    opt = xpnn.Adam(ps, lambda t: 0.01 if t == 0 else rate)
    grads = gradient_sequence(2)
    step_with(opt, ps, grads[0], np.asarray)
    before = [p.value.copy() for p in ps], {k: v.copy() for k, v in opt.state[0].items() if k != "step"}
    for p, g in zip(ps, grads[1], strict=True):
        p.grad = np.asarray(g, np.float32)
    with pytest.raises(OptimizerError, match=r"Adam: schedule .* at t=1: expected a (finite )?learning rate"):
        opt.step()
    assert opt.t == 1 and opt.state[0]["step"] == 1
    assert all(np.array_equal(a, p.value) for a, p in zip(before[0], ps, strict=True))
    assert all(np.array_equal(v, opt.state[0][k]) for k, v in before[1].items())


@pytest.mark.parametrize(
    ("kind", "key"), [(xpnn.SGD, "nesterov"), (xpnn.Adam, "amsgrad"), (xpnn.RMSProp, "centered")]
)
@pytest.mark.parametrize("value", ["no", 1, 0, None, np.bool_(True)])
def test_booleans_must_be_real_bools(kind: Any, key: str, value: Any) -> None:
    with pytest.raises(OptimizerError, match=rf"{kind.__name__}: expected {key} True or False, got"):
        kind(params(), 0.01, momentum=0.9, **{key: value}) if kind is xpnn.SGD else kind(
            params(), 0.01, **{key: value}
        )


@pytest.mark.parametrize("betas", [0.9, "ab", None, (0.9, NAN), (0.9, 0.999, 0.5)])
def test_betas_that_are_not_a_pair_in_range_are_a_named_error(betas: Any) -> None:
    with pytest.raises(OptimizerError, match=r"Adam: expected betas \(beta1, beta2\) in \[0, 1\), got"):
        xpnn.Adam(params(), betas=betas)


@pytest.mark.parametrize("value", ["0.9", [0.9], None])
def test_a_number_given_as_another_type_is_a_named_error(value: Any) -> None:
    with pytest.raises(OptimizerError, match=r"RMSProp: expected rho a Python number, got"):
        xpnn.RMSProp(params(), 0.01, rho=value)


def test_numpy_scalars_become_python_floats() -> None:
    opt = xpnn.SGD(params(), np.float32(0.1), momentum=np.float64(0.5))
    assert type(opt.param_groups[0]["lr"]) is float and type(opt.param_groups[0]["momentum"]) is float


def test_an_unknown_keyword_is_a_type_error_showing_the_signature() -> None:
    with pytest.raises(TypeError, match=r"Adam\(\) got an unexpected keyword argument 'beta1'.*betas"):
        xpnn.Adam(params(), beta1=0.9)


def test_hyperparameters_after_lr_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        xpnn.SGD(params(), 0.1, 0.9)  # type: ignore[misc]


EXPECTED_SIGNATURES = {
    xpnn.SGD: "(params, lr, *, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, decay=0.0, "
    "momentum_style='torch', clip_value=None, clip_norm=None, clip_global_norm=None)",
    xpnn.AdaGrad: "(params, lr, *, decay=0.0, eps=1e-07, initial_accumulator_value=0.0, weight_decay=0.0, "
    "clip_value=None, clip_norm=None, clip_global_norm=None)",
    xpnn.RMSProp: "(params, lr, *, rho=0.9, eps=1e-07, momentum=0.0, centered=False, weight_decay=0.0, "
    "decay=0.0, clip_value=None, clip_norm=None, clip_global_norm=None)",
    xpnn.Adam: "(params, lr=0.001, *, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, "
    "decay=0.0, clip_value=None, clip_norm=None, clip_global_norm=None)",
    xpnn.AdamW: "(params, lr=0.001, *, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, "
    "decay=0.0, clip_value=None, clip_norm=None, clip_global_norm=None)",
}


@pytest.mark.parametrize("kind", list(EXPECTED_SIGNATURES), ids=lambda k: k.__name__)
def test_the_public_signatures_show_every_keyword_default_and_type(kind: Any) -> None:
    signature = inspect.signature(kind)
    bare = signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    )
    assert str(bare) == EXPECTED_SIGNATURES[kind]
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())


def test_adamw_differs_from_adam_only_in_decoupling_and_its_weight_decay_default() -> None:
    adam, adamw = xpnn.Adam.hyperparameters, xpnn.AdamW.hyperparameters
    differ = [(a.name, a.default, b.default) for a, b in zip(adam, adamw, strict=True) if a != b]
    assert differ == [("weight_decay", 0.0, 0.01)]
    assert (xpnn.Adam.decoupled, xpnn.AdamW.decoupled) == (False, True)
    assert xpnn.AdamW.update is xpnn.Adam.update


def test_the_defaults_of_a_fresh_optimizer_are_the_declared_ones() -> None:
    group = xpnn.RMSProp(params(), 0.01).param_groups[0]
    expected = dict(lr=0.01, rho=0.9, eps=1e-7, momentum=0.0, centered=False, weight_decay=0.0, decay=0.0)
    assert {k: v for k, v in group.items() if k != "params"} == expected


def test_a_learning_rate_is_decided_float_or_schedule_once_when_the_group_is_added(
    bk: Any, to_bk: Any
) -> None:
    ps, opt = make("sgd", to_bk, "float32")
    opt.add_param_group({"params": [xpnn.Parameter(to_bk(np.zeros(2), "float32"), "q")], "lr": lambda t: 0.5})
    assert type(opt.param_groups[0]["lr"]) is float and callable(opt.param_groups[1]["lr"])
    assert opt.lr_at(0, 1) == 0.5 and backend.to_host(ps[0].value).dtype == np.float32


@pytest.mark.parametrize("kind", list(EXPECTED_SIGNATURES), ids=lambda k: k.__name__)
def test_every_keyword_and_its_range_is_documented_in_the_docstring(kind: Any) -> None:
    for declared in kind.hyperparameters:
        assert declared.describe() in kind.__doc__
    assert "``lr``: a finite float in [0, inf)" in kind.__doc__ and "``clip_global_norm``" in kind.__doc__
