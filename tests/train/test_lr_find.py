"""xpnn.lr_find: the learning-rate range test, its suggestion, and that it leaves no trace."""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend

# the module (xpnn.train.lr_find, the attribute, is the function it exports)
finder = importlib.import_module("xpnn.train.lr_find")


def regression(n: int = 512, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """y = x @ w + noise with x ~ N(0, I): MSE's Hessian is ~2 I, so plain SGD converges fastest
    at lr = 1/2 (one step to the minimum) and diverges above lr = 1."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = x @ rng.standard_normal((d, 1)).astype(np.float32) + 0.1 * rng.standard_normal((n, 1))
    return x, y.astype(np.float32)


def dropout_model(bk: backend.Backend) -> xpnn.Sequential:
    layers = [xpnn.Dense(8, 16), xpnn.ReLU(), xpnn.Dropout(0.2), xpnn.Dense(16, 1)]
    return xpnn.Sequential(layers, seed=0).to(bk.name)


def schedule(t: int) -> float:
    return 0.01 / (1.0 + t)


def trained_setup(bk: backend.Backend) -> tuple[xpnn.Sequential, xpnn.Optimizer]:
    """A model and an Adam with two groups (a schedule; a float rate with decay) that has
    already taken steps, so it has state, a step count and moved dropout counters."""
    x, y = regression(n=64)
    model = dropout_model(bk)
    params = model.parameters()
    opt = xpnn.Adam(
        [{"params": params[:2], "lr": schedule}, {"params": params[2:], "lr": 0.003, "decay": 0.1}]
    )
    model.fit(x, y, loss=xpnn.MSE(), optimizer=opt, epochs=1, batch_size=16, seed=1, verbose=0)
    return model, opt


def host_state(model: xpnn.Sequential, opt: xpnn.Optimizer) -> dict[str, Any]:
    """Everything lr_find must restore, as host data."""
    saved = opt.state_dict()
    return {
        "values": [backend.to_host(p.value) for p in model.parameters()],
        "grads": [None if p.grad is None else backend.to_host(p.grad) for p in model.parameters()],
        "state": {i: {k: np.asarray(v) for k, v in e.items()} for i, e in saved["state"].items()},
        "t": opt.t,
        "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        "modes": [model.training, *(layer.training for layer in model.layers)],
        "counters": [layer.counters() for layer in model.layers],
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for a, b in zip(before["values"], after["values"], strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit for bit, not approximately
    assert before["grads"] == after["grads"] or all(
        np.array_equal(a, b) for a, b in zip(before["grads"], after["grads"], strict=True)
    )
    assert before["state"].keys() == after["state"].keys()
    for i, entry in before["state"].items():
        for key, value in entry.items():
            assert np.array_equal(value, after["state"][i][key]), (i, key)
    assert before["t"] == after["t"]
    assert before["modes"] == after["modes"] and before["counters"] == after["counters"]
    for old, new in zip(before["groups"], after["groups"], strict=True):
        assert old.keys() == new.keys()
        for key in old:
            assert new[key] is old[key] or new[key] == old[key], key


def test_lr_find_restores_weights_state_step_count_rates_modes_and_counters(bk: backend.Backend) -> None:
    model, opt = trained_setup(bk)
    model.eval()
    model.layers[2].train()  # a mixed mode must come back as it was, layer by layer
    before = host_state(model, opt)
    x, y = regression()
    result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1e-5, end=10.0, steps=40)
    assert len(result.losses) >= 10  # it really trained: the weights moved and were put back
    after = host_state(model, opt)
    assert_same(before, after)
    assert opt.param_groups[0]["lr"] is schedule  # the original callable, not a copy or its repr


class RunningMean(xpnn.Layer):
    """The identity, keeping a running mean of its inputs as a buffer (as BatchNorm does)."""

    buffer_names = ("running_mean",)

    def __init__(self, width: int) -> None:
        self.running_mean = np.zeros(width, dtype=np.float32)

    def forward(self, x: Any) -> Any:
        if self.training:
            xp = backend.namespace(x)
            self.running_mean = 0.9 * self.running_mean + 0.1 * xp.mean(x, axis=0)
        return x

    def backward(self, dout: Any) -> Any:
        return dout


def test_lr_find_restores_layer_buffers(bk: backend.Backend) -> None:
    model = xpnn.Sequential([RunningMean(8), xpnn.Dense(8, 1)], seed=0).to(bk.name)
    x, y = regression()
    before = backend.to_host(model.layers[0].running_mean)
    xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=xpnn.SGD(model.parameters(), lr=0.1), steps=20)
    after = backend.to_host(model.layers[0].running_mean)
    assert np.array_equal(before, after) and before.dtype == after.dtype
    assert backend.backend_name(model.layers[0].running_mean) == bk.name


def test_training_after_lr_find_equals_training_without_it(bk: backend.Backend) -> None:
    x, y = regression(n=96)
    runs = []
    for use_finder in (False, True):
        model, opt = trained_setup(bk)
        if use_finder:
            xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1e-4, end=1.0, steps=30)
        model.fit(x, y, loss=xpnn.MSE(), optimizer=opt, epochs=2, batch_size=16, seed=3, verbose=0)
        runs.append([backend.to_host(p.value) for p in model.parameters()])
    for plain, after_finder in zip(*runs, strict=True):
        assert np.array_equal(plain, after_finder)


def test_lr_find_restores_everything_when_a_step_raises(bk: backend.Backend, monkeypatch: Any) -> None:
    model, opt = trained_setup(bk)
    before = host_state(model, opt)
    reads = []

    def failing_read(value: Any) -> float:
        reads.append(value)
        if len(reads) == 5:
            raise RuntimeError("interrupted")
        return float(backend.to_host(value))

    monkeypatch.setattr(finder, "_read", failing_read)
    x, y = regression()
    with pytest.raises(RuntimeError, match="interrupted"):
        xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, steps=20)
    assert_same(before, host_state(model, opt))


def test_suggestion_is_within_a_factor_of_ten_of_the_best_sgd_rate(bk: backend.Backend) -> None:
    x, y = regression()
    model = xpnn.Sequential([xpnn.Dense(8, 1)], seed=0).to(bk.name)
    opt = xpnn.SGD(model.parameters(), lr=0.01)
    result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1e-4, end=10.0, steps=100)
    best = 0.5  # 1 / (largest Hessian eigenvalue ~2): the fastest stable constant rate
    assert best / 10 <= result.suggestion <= best * 2  # and below the divergence edge lr = 1
    assert len(result.losses) < 100  # the loss diverged past lr ~1 and the test stopped there
    assert result.rates[-1] > 1.0


def test_rates_grow_geometrically_with_one_loss_per_step() -> None:
    x, y = regression(n=32)
    model = xpnn.Sequential([xpnn.Dense(8, 1)], seed=0)
    opt = xpnn.SGD(model.parameters(), lr=0.01)
    # 32 samples in batches of 8 are 4 steps an epoch: 25 steps cycle through the data 7 times
    result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1e-6, end=1e-3, steps=25,
                          batch_size=8)  # fmt: skip
    assert len(result.rates) == len(result.losses) == len(result.smoothed) == 25
    ratios = np.array(result.rates[1:]) / np.array(result.rates[:-1])
    np.testing.assert_allclose(ratios, (1e-3 / 1e-6) ** (1 / 24), rtol=1e-12)
    assert result.rates[0] == 1e-6 and math.isclose(result.rates[-1], 1e-3, rel_tol=1e-12)
    assert all(math.isfinite(v) for v in result.losses)


def test_smoothed_loss_is_the_bias_corrected_moving_average() -> None:
    x, y = regression(n=64)
    model = xpnn.Sequential([xpnn.Dense(8, 1)], seed=0)
    result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
                          start=1e-5, end=1e-2, steps=12)  # fmt: skip
    average = 0.0
    for i, (raw, smooth) in enumerate(zip(result.losses, result.smoothed, strict=True)):
        average = 0.98 * average + 0.02 * raw
        assert smooth == pytest.approx(average / (1 - 0.98 ** (i + 1)), rel=1e-12)


def test_steepest_picks_the_fastest_fall_before_the_minimum() -> None:
    rates = [10.0**k for k in range(-5, 1)]
    smoothed = [5.0, 4.8, 3.0, 2.5, 2.4, 9.0]  # falls fastest from 1e-4 to 1e-3, then diverges
    assert finder.steepest(rates, smoothed) == 1e-4
    assert finder.steepest(rates, smoothed, skip=2) == 1e-3
    assert math.isnan(finder.steepest(rates, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))  # never fell


def test_a_wider_window_is_not_fooled_by_one_noisy_dip() -> None:
    rates = [10.0 ** (k / 4) for k in range(-20, 1)]  # 21 rates, 1e-5 .. 1
    smoothed = [3.0] * 21
    smoothed[3] = 2.7  # a one-step dip of 0.3 on the plateau, steeper than any one step below
    for i, value in enumerate([2.95, 2.8, 2.6, 2.4, 2.2, 2.0], start=12):  # the real descent
        smoothed[i] = value
    smoothed[18:] = [2.1, 2.5, 3.5]
    assert finder.steepest(rates, smoothed) == rates[2]  # step by step, the dip looks steepest
    assert finder.steepest(rates, smoothed, window=4) == rates[13 + 2]  # mid-descent


def test_only_the_loss_is_read_from_the_device_per_step(
    bk: backend.Backend, no_host_sync: Any, monkeypatch: Any
) -> None:
    reads = []

    def counted_read(value: Any) -> float:
        reads.append(1)  # the one read allowed per step, done without a host conversion
        raw = value._array if bk.name == "array_api_strict" else value
        return float(backend.to_host(raw) if bk.name != "array_api_strict" else raw)

    monkeypatch.setattr(finder, "_read", counted_read)
    model, opt = dropout_model(bk), None
    opt = xpnn.Adam(model.parameters(), lr=0.001)
    x, y = regression(n=64)
    with no_host_sync():
        result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1e-5, end=1e-2, steps=15,
                              batch_size=16)  # fmt: skip
    assert len(reads) == len(result.losses) == 15


def test_bad_arguments_raise_before_anything_changes() -> None:
    x, y = regression(n=16)
    model = xpnn.Sequential([xpnn.Dense(8, 1)], seed=0)
    opt = xpnn.SGD(model.parameters(), lr=0.1)
    with pytest.raises(xpnn.OptimizerError, match="start < end"):
        xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, start=1.0, end=0.1)
    with pytest.raises(xpnn.OptimizerError, match="steps >= 2"):
        xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=opt, steps=1)
    assert opt.t == 0 and not opt.state


def test_lr_find_checks_labels_against_the_model_up_front() -> None:
    model = xpnn.Sequential([xpnn.Dense(2, 3)], seed=0)
    x, y = np.zeros((8, 2), np.float32), np.full(8, 3)
    with pytest.raises(xpnn.LabelError, match=r"\[0, 3\)"):
        xpnn.lr_find(
            model, x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), 0.1)
        )


def test_plot_saves_a_png(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    x, y = regression(n=128)
    model = xpnn.Sequential([xpnn.Dense(8, 1)], seed=0)
    result = xpnn.lr_find(model, x, y, loss=xpnn.MSE(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
                          start=1e-4, end=10.0, steps=60)  # fmt: skip
    path = tmp_path / "lr.png"
    figure = result.plot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.axes[0].get_xscale() == "log"


def test_plot_without_matplotlib_names_the_examples_extra(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = finder.LRFinderResult([1e-3, 1e-2], [1.0, 0.5], [1.0, 0.75], 1e-3)
    with pytest.raises(xpnn.MissingDependencyError, match=r"xpnn\[examples\]") as caught:
        result.plot()
    assert isinstance(caught.value, ImportError)
