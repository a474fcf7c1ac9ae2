"""The one-sample rehearsal before fit / evaluate / predict: errors a user meets first are
named (the sub-module by its path, labels against the output width found), before anything
changes, and the rehearsal itself changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.train.preflight import rehearse

RNG = np.random.default_rng(9)
X = RNG.standard_normal((20, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 20)


class Net(xpnn.Module):
    """Two blocks of the same class: only a path tells them apart."""

    def __init__(self, second_in: int = 8) -> None:
        self.inp = xpnn.Dense(6, 8, seed=0)
        self.norm = xpnn.BatchNorm(8)
        self.blocks = [xpnn.Dense(8, 8, seed=1), xpnn.Dense(second_in, 8, seed=2)]
        self.drop = xpnn.Dropout(0.3, seed=0)
        self.head = xpnn.Dense(8, 3, seed=3)

    def forward(self, x: Any) -> Any:
        h = F.relu(self.norm(self.inp(x)))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(self.drop(h))


def _fit(model: Any, x: Any = X, y: Any = Y, **keywords: Any) -> xpnn.Optimizer:
    optimizer = xpnn.SGD(model.parameters(), lr=0.1)
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, verbose=0, **keywords)
    return optimizer


def _snapshot(model: Any) -> tuple[dict[str, np.ndarray], list[Any]]:
    state = {k: np.array(backend.to_host(v), copy=True) for k, v in model.state_dict().items()}
    return state, [(m.training, m.counters()) for m in model.modules()]


def _assert_unchanged(model: Any, before: tuple[dict[str, np.ndarray], list[Any]]) -> None:
    state, rest = _snapshot(model)
    for key, value in state.items():
        np.testing.assert_array_equal(value, before[0][key])
    assert rest == before[1]


def test_a_wrong_input_width_names_the_sub_module_by_its_path() -> None:
    net = Net(second_in=9)
    before = _snapshot(net)
    with pytest.raises(
        xpnn.ShapeError, match=r"Net at 'blocks\.1': Dense\(9 -> 8\): expected input of shape"
    ):
        _fit(net)
    _assert_unchanged(net, before)


def test_a_wrong_input_width_in_a_sequential_names_the_layer_by_position() -> None:
    model = xpnn.Sequential([xpnn.Dense(6, 4), xpnn.ReLU(), xpnn.Dense(5, 3)], seed=0)
    with pytest.raises(xpnn.ShapeError, match=r"Sequential\(3 layers\) at '2': Dense\(5 -> 3\)"):
        model.predict(X)


def test_labels_beyond_a_modules_output_width_are_refused_before_training() -> None:
    net = Net()
    assert net.output_width() is None  # a Module does not declare it: the rehearsal finds it
    before = _snapshot(net)
    optimizer = xpnn.SGD(net.parameters(), lr=0.1)
    with pytest.raises(
        xpnn.LabelError, match=r"labels must be in \[0, 3\) \(the model's output width\), got "
    ):
        net.fit(X, Y + 1, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, verbose=0)
    _assert_unchanged(net, before)
    assert optimizer.t == 0


def test_evaluate_refuses_labels_beyond_a_modules_output_width() -> None:
    with pytest.raises(xpnn.LabelError, match=r"labels must be in \[0, 3\)"):
        Net().evaluate(X, Y + 3, loss=xpnn.SoftmaxCrossEntropy())


def test_validation_data_of_the_wrong_width_is_refused_before_the_first_epoch() -> None:
    net = Net()
    before = _snapshot(net)
    with pytest.raises(xpnn.ShapeError, match=r"Net at 'inp': Dense\(6 -> 8\)"):
        _fit(net, validation_data=(X[:, :5], Y))
    _assert_unchanged(net, before)


def test_fit_of_a_module_without_forward_is_a_missing_forward_error_before_anything_changes() -> None:
    class NoForward(xpnn.Module):
        def __init__(self) -> None:
            self.dense = xpnn.Dense(6, 3, seed=0)

    model = NoForward()
    weight = model.dense.weight.value.copy()
    with pytest.raises(xpnn.MissingForwardError, match=r"NoForward\.forward is not written"):
        _fit(model)
    np.testing.assert_array_equal(model.dense.weight.value, weight)


def test_a_forward_returning_a_plain_array_is_named() -> None:
    class Detached(Net):
        def forward(self, x: Any) -> Any:
            return super().forward(x).value  # the graph is cut: nothing would train

    with pytest.raises(
        xpnn.ArgumentTypeError, match=r"Detached\.forward returned a ndarray; expected a Tensor"
    ):
        _fit(Detached())


def test_the_rehearsal_changes_no_weight_statistic_counter_or_mode() -> None:
    net = Net()
    net.norm.eval()
    before = _snapshot(net)
    assert rehearse(net, X, Y, xpnn.SoftmaxCrossEntropy()) == 3
    _assert_unchanged(net, before)


def test_fit_on_device_arrays_indexes_them_as_the_standard_allows(bk: Any, to_bk: Any) -> None:
    # array-api-strict refuses x[:1] on a 2-D array (a whole axis must be spelled `...`)
    net = Net().to(bk.name)
    optimizer = _fit(net, to_bk(X), to_bk(Y, "int64"), validation_split=0.25, batch_size=5)
    assert optimizer.t == 3  # 15 training samples in batches of 5


def test_inputs_given_as_a_tuple_of_arrays_are_refused_saying_how_to_pass_them() -> None:
    with pytest.raises(
        xpnn.ArgumentTypeError, match=r"got tuple; a model of several inputs takes them as one"
    ):
        _fit(Net(), (X[:, :3], X[:, 3:]), Y)
