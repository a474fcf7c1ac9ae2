"""``xpnn.save(model, path)`` and ``xpnn.load(path, into=model)`` for any Module; only xpnn's
own Sequential of built-in layers is rebuilt from a file, and nothing named in a file is ever
imported or called; a refused load changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F

X = np.random.default_rng(3).standard_normal((6, 6)).astype(np.float32)


class Net(xpnn.Module):
    """A residual MLP holding BatchNorm and Dropout, a buffer of its own and a tied weight."""

    def __init__(self, seed: int = 0, width: int = 8) -> None:
        self.inp = xpnn.Dense(6, width, seed=seed)
        self.norm = xpnn.BatchNorm(width)
        self.blocks = [xpnn.Dense(width, width, seed=seed + 1), xpnn.Dense(width, width, seed=seed + 2)]
        self.blocks[1].weight = self.blocks[0].weight
        self.drop = xpnn.Dropout(0.25, seed=seed)
        self.head = xpnn.Dense(width, 3, seed=seed + 3)
        self.register_buffer("calls", np.zeros((), np.int64))

    def forward(self, x: Any) -> Any:
        h = F.relu(self.norm(self.inp(x)))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(self.drop(h))


def _trained(seed: int = 0) -> Net:
    net = Net(seed)
    y = np.arange(6) % 3
    net.fit(X, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.Adam(net.parameters(), lr=0.05),
            epochs=2, batch_size=2, verbose=0)  # fmt: skip
    net.calls = np.asarray(7, np.int64)
    return net


def _state(model: Any) -> dict[str, np.ndarray]:
    return {k: backend.to_host(v) for k, v in model.state_dict().items()}


def test_a_module_loads_into_a_fresh_instance_with_weights_buffers_and_counters(tmp_path: Path) -> None:
    net = _trained()
    xpnn.save(net, tmp_path / "net.npz")
    fresh = xpnn.load(tmp_path / "net.npz", into=Net(seed=9))
    for key, value in _state(net).items():
        np.testing.assert_array_equal(_state(fresh)[key], value)
    assert fresh.drop.counters() == net.drop.counters() and fresh.norm.counters() == net.norm.counters()
    np.testing.assert_array_equal(fresh.predict(X), net.predict(X))


def test_a_tied_weight_stays_tied_after_loading(tmp_path: Path) -> None:
    xpnn.save(_trained(), tmp_path / "net.npz")
    fresh = xpnn.load(tmp_path / "net.npz", into=Net(seed=9))
    assert fresh.blocks[0].weight is fresh.blocks[1].weight


def test_an_integer_buffer_round_trips_with_its_dtype(tmp_path: Path) -> None:
    xpnn.save(_trained(), tmp_path / "net.npz")
    fresh = xpnn.load(tmp_path / "net.npz", into=Net(seed=9))
    assert fresh.calls.dtype == np.int64 and int(fresh.calls) == 7


def test_a_float64_module_loads_into_a_float64_instance_on_any_backend(bk: Any, tmp_path: Path) -> None:
    net = _trained().to("numpy", dtype="float64")
    xpnn.save(net, tmp_path / "net.npz")
    fresh = xpnn.load(tmp_path / "net.npz", into=Net(seed=9).to(bk.name, dtype="float64"))
    assert {backend.dtype_name(p.dtype) for p in fresh.parameters()} == {"float64"}
    np.testing.assert_array_equal(backend.to_host(fresh.head.weight.value), net.head.weight.value)


def test_load_without_into_refuses_a_module_and_says_to_use_into(tmp_path: Path) -> None:
    xpnn.save(_trained(), tmp_path / "net.npz")
    with pytest.raises(
        xpnn.CheckpointError, match=r"holds the weights of a Net.*xpnn.load\(path, into=model\)"
    ):
        xpnn.load(tmp_path / "net.npz")


def test_a_refused_load_changes_nothing(tmp_path: Path) -> None:
    xpnn.save(_trained(), tmp_path / "net.npz")
    other = Net(seed=4, width=9)
    before, counters = _state(other), other.drop.counters()
    with pytest.raises(xpnn.CheckpointError, match=r"module inp \(Dense\(6 -> 9\)\): parameter 'weight'"):
        xpnn.load(tmp_path / "net.npz", into=other)
    for key, value in _state(other).items():
        np.testing.assert_array_equal(value, before[key])
    assert other.drop.counters() == counters


class Scale(xpnn.Layer):
    """A layer of the user's own: a file naming it must never construct it."""

    built = 0

    def __init__(self, n: int = 4) -> None:
        Scale.built += 1
        self.s = xpnn.Parameter(np.ones((n,), np.float32), "s")

    def forward(self, x: Any) -> Any:
        return x * self.s


def _with_user_layer(seed: int) -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(6, 4), Scale(), xpnn.Dense(4, 2)], seed=seed)


def test_a_sequential_holding_a_user_layer_loads_into_an_instance(tmp_path: Path) -> None:
    model = _with_user_layer(seed=0)
    model[1].s.value = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    xpnn.save(model, tmp_path / "m.npz")
    fresh = xpnn.load(tmp_path / "m.npz", into=_with_user_layer(seed=1))
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_load_without_into_never_constructs_a_user_layer_named_in_the_file(tmp_path: Path) -> None:
    xpnn.save(_with_user_layer(seed=0), tmp_path / "m.npz")
    built = Scale.built
    with pytest.raises(xpnn.CheckpointError, match=r"layer 1 is a Scale, a class of your own.*into=model"):
        xpnn.load(tmp_path / "m.npz")
    assert Scale.built == built


def test_a_user_subclass_named_like_a_built_in_layer_is_not_rebuilt_as_the_built_in(tmp_path: Path) -> None:
    class Dense(xpnn.Dense):  # the user's own Dense: its forward doubles the built-in's
        def forward(self, x: Any) -> Any:
            return super().forward(x) * 2.0

    xpnn.save(xpnn.Sequential([Dense(6, 2)], seed=0), tmp_path / "m.npz")
    with pytest.raises(xpnn.CheckpointError, match=r"layer 0 is a Dense, a class of your own"):
        xpnn.load(tmp_path / "m.npz")


def test_a_user_subclass_of_sequential_is_not_rebuilt_as_a_plain_sequential(tmp_path: Path) -> None:
    class Doubled(xpnn.Sequential):
        def forward(self, x: Any) -> Any:
            return super().forward(x) * 2.0

    xpnn.save(Doubled([xpnn.Dense(6, 2)], seed=0), tmp_path / "m.npz")
    with pytest.raises(xpnn.CheckpointError, match=r"holds the weights of a Doubled"):
        xpnn.load(tmp_path / "m.npz")


def test_a_module_with_a_layers_attribute_is_not_mistaken_for_a_sequential(tmp_path: Path) -> None:
    class Residual(xpnn.Module):
        def __init__(self) -> None:
            self.layers = [xpnn.Dense(6, 6, seed=0), xpnn.Dense(6, 6, seed=1)]

        def forward(self, x: Any) -> Any:
            for layer in self.layers:
                x = x + F.relu(layer(x))
            return x

    xpnn.save(Residual(), tmp_path / "m.npz")
    with pytest.raises(xpnn.CheckpointError, match=r"holds the weights of a Residual"):
        xpnn.load(tmp_path / "m.npz")
    assert xpnn.load(tmp_path / "m.npz", into=Residual()).predict(X).shape == (6, 6)


def test_a_sequential_of_built_in_layers_is_still_rebuilt_from_its_file(tmp_path: Path) -> None:
    model = xpnn.Sequential([xpnn.Dense(6, 4), xpnn.BatchNorm(4), xpnn.ReLU(), xpnn.Dense(4, 2)], seed=2)
    xpnn.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(xpnn.load(tmp_path / "m.npz").predict(X), model.predict(X))


def test_a_module_whose_seed_attribute_is_no_integer_saves_and_trains(tmp_path: Path) -> None:
    net = Net()
    net.seed = np.int64(4)  # a user's attribute: not the seed of a Sequential, not written as one
    xpnn.save(net, tmp_path / "net.npz")
    np.testing.assert_array_equal(
        xpnn.load(tmp_path / "net.npz", into=Net(seed=9)).predict(X), net.predict(X)
    )
    y = np.arange(6) % 3
    history = net.fit(X, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(net.parameters(), lr=0.1),
                      batch_size=2, verbose=0)  # fmt: skip
    assert len(history["loss"]) == 1
