"""Optimizer corner cases found in review: 0-d parameters, moved parameters, late hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backend


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize(
    "make", [lambda ps: xpnn.Adam(ps, lr=0.1), lambda ps: xpnn.SGD(ps, lr=0.1, momentum=0.9)]
)
def test_zero_dimensional_parameters_are_updated_on_every_path(make, flat, bk, to_bk):
    p = xpnn.Parameter(to_bk(np.array(1.0), "float32"), "scale")
    opt = make([p])
    opt.flat = flat
    for _ in range(3):
        p.grad = to_bk(np.array(0.5), "float32")
        opt.step()
    assert p.value.ndim == 0 and backend.to_host(p.value) < 1.0


def test_a_read_only_zero_dimensional_parameter_stays_an_array():
    value = np.array(1.0, dtype=np.float32)
    value.flags.writeable = False
    p = xpnn.Parameter(value, "scale")
    opt = xpnn.SGD([p], lr=0.1)
    for _ in range(2):
        p.grad = np.array(0.5, dtype=np.float32)
        opt.step()
    assert isinstance(p.value, np.ndarray) and float(p.value) == pytest.approx(0.9)


def test_state_follows_parameters_moved_after_the_first_step(bk, to_bk):
    model = xpnn.Sequential([xpnn.Dense(3, 2)], seed=0)
    opt = xpnn.Adam(model.parameters(), lr=0.01)
    loss_fn = xpnn.MSE()
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    for _ in range(2):
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    model.to(bk.name)
    loss_fn.forward(model.forward(to_bk(x)), to_bk(y))
    model.backward(loss_fn.backward())
    opt.step()
    for p in model.parameters():
        assert backend.backend_name(p.value) == bk.name
    for entry in opt.state.values():
        for name in ("exp_avg", "exp_avg_sq"):
            assert backend.backend_name(entry[name]) == bk.name


def test_state_follows_a_change_of_dtype():
    p = xpnn.Parameter(np.zeros(3, np.float32), "w")
    opt = xpnn.Adam([p], lr=0.1)
    p.grad = np.ones(3, np.float32)
    opt.step()
    p.value, p.grad = p.value.astype(np.float64), np.ones(3)
    opt.step()
    assert opt.state[0]["exp_avg"].dtype == np.float64 and p.value.dtype == np.float64


def test_momentum_turned_on_after_some_steps_creates_its_buffer():
    p = xpnn.Parameter(np.zeros(3), "w")
    opt = xpnn.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    opt.param_groups[0]["momentum"] = 0.9
    p.grad = np.ones(3)
    opt.step()
    assert np.allclose(p.value, -0.2)


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_labels_of_any_integer_dtype_work(dtype, bk, to_bk):
    logits = to_bk(np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]), "float32")
    loss = xpnn.SoftmaxCrossEntropy().forward(logits, to_bk(np.array([0, 1]), dtype))
    reference = xpnn.SoftmaxCrossEntropy().forward(logits, to_bk(np.array([0, 1]), "int64"))
    assert float(loss) == float(reference)


def test_evaluate_reports_the_loss_of_the_last_fit():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 3, 64)
    model = xpnn.Sequential([xpnn.Dense(4, 3)], seed=0)
    model.fit(
        x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), lr=0.1), verbose=0
    )
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}
