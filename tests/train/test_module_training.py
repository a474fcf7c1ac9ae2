"""fit / evaluate / predict / lr_find / checkpoints for a Module of the user's own: the same
numbers as the same Sequential, float32 and float64 kept, no host sync in a step, frozen
parameters left alone, exact resume, everything lr_find touches put back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.autograd.tensor import Tensor
from xpnn.train.loop import train_step

RNG = np.random.default_rng(17)
X = RNG.standard_normal((48, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 48)


class Net(xpnn.Module):
    """Sequential([Dense(6, 8), BatchNorm(8), ReLU(), Dropout(0.2), Dense(8, 3)]) as a Module."""

    def __init__(self) -> None:
        self.inp = xpnn.Dense(6, 8)
        self.norm = xpnn.BatchNorm(8)
        self.drop = xpnn.Dropout(0.2)
        self.out = xpnn.Dense(8, 3)

    def forward(self, x: Any) -> Any:
        return self.out(self.drop(F.relu(self.norm(self.inp(x)))))


class Residual(xpnn.Module):
    """A residual MLP: what a Sequential cannot express."""

    def __init__(self, seed: int = 0) -> None:
        self.inp = xpnn.Dense(6, 8, seed=seed)
        self.blocks = [xpnn.Dense(8, 8, seed=seed + 1), xpnn.Dense(8, 8, seed=seed + 2)]
        self.out = xpnn.Dense(8, 3, seed=seed + 3)

    def forward(self, x: Any) -> Any:
        h = F.relu(self.inp(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.out(h)


def _pair(bk: Any, dtype: str = "float32") -> tuple[xpnn.Sequential, Net]:
    """A Sequential and a Net holding the same weights, buffers and dropout seed."""
    seq = xpnn.Sequential(
        [xpnn.Dense(6, 8), xpnn.BatchNorm(8), xpnn.ReLU(), xpnn.Dropout(0.2), xpnn.Dense(8, 3)], seed=0
    ).to(bk.name, dtype=dtype)
    net = Net().to(bk.name, dtype=dtype)
    renamed = {"0": "inp", "1": "norm", "4": "out"}
    net.load_state_dict({renamed[k.split(".")[0]] + k[1:]: v for k, v in seq.state_dict().items()})
    net.drop.load_counters(seq[3].counters())
    return seq, net


def _fit(model: Any, epochs: int = 2, **keywords: Any) -> Any:
    optimizer = xpnn.Adam(model.parameters(), lr=0.02)
    return model.fit(X, Y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=epochs,
                     batch_size=8, seed=1, verbose=0, **keywords)  # fmt: skip


def test_a_module_and_the_same_sequential_give_the_same_fit_losses(bk: Any) -> None:
    seq, net = _pair(bk)
    expected, got = _fit(seq)["loss"], _fit(net)["loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(
        backend.to_host(net.out.weight.value), backend.to_host(seq[4].weight.value), rtol=1e-5, atol=1e-7
    )


def test_a_float32_module_trains_in_float32_and_a_float64_one_in_float64(bk: Any) -> None:
    for dtype in ("float32", "float64"):
        _, net = _pair(bk, dtype)
        _fit(net, epochs=1)
        assert {backend.dtype_name(a.dtype) for a in net.state_dict().values()} == {dtype}
        assert backend.dtype_name(net.predict(X).dtype) == dtype


def test_a_module_training_step_never_syncs_with_the_host(bk: Any, to_bk: Any, no_host_sync: Any) -> None:
    net = Residual().to(bk.name)
    optimizer = xpnn.Adam(net.parameters(), lr=0.01)

    def penalized(pred: Tensor, y: Any) -> Tensor:
        return F.cross_entropy(pred, y) + 1e-3 * (net.out.weight**2).sum()

    x, y = to_bk(X), to_bk(Y, "int64")
    with no_host_sync():
        for loss in (xpnn.SoftmaxCrossEntropy(), penalized):
            for start in (0, 8):
                train_step(net, loss, optimizer, x[start : start + 8, ...], y[start : start + 8])
    assert optimizer.t == 4


def test_a_module_defining_only_forward_fits_evaluates_and_predicts_a_plain_array() -> None:
    net = Residual()
    history = _fit(net, epochs=3)
    assert history["loss"][-1] < history["loss"][0]
    assert set(net.evaluate(X, Y)) == {"loss", "accuracy"}
    out = net.predict(X)
    assert isinstance(out, np.ndarray) and out.shape == (48, 3)


def test_a_two_branch_module_fits_and_predicts() -> None:
    class TwoBranch(xpnn.Module):  # two inputs cut from one x: fit feeds a model one array
        def __init__(self) -> None:
            self.left, self.right = xpnn.Dense(2, 4, seed=0), xpnn.Dense(4, 4, seed=1)
            self.head = xpnn.Dense(4, 3, seed=2)

        def forward(self, x: Any) -> Any:
            return self.head(F.tanh(self.left(x[:, :2])) * F.tanh(self.right(x[:, 2:])))

    net = TwoBranch()
    history = _fit(net, epochs=3)
    assert history["loss"][-1] < history["loss"][0] and net.predict(X).shape == (48, 3)


def test_fit_leaves_a_frozen_parameter_alone_and_trains_the_rest() -> None:
    net = Residual()
    net.blocks[0].weight.requires_grad = False
    frozen, moving = net.blocks[0].weight.value.copy(), net.blocks[1].weight.value.copy()
    _fit(net)
    np.testing.assert_array_equal(net.blocks[0].weight.value, frozen)
    assert net.blocks[0].weight.grad is None
    assert not np.array_equal(net.blocks[1].weight.value, moving)


def test_a_module_resumed_from_a_checkpoint_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    _, whole = _pair(backend.resolve("numpy"))
    uninterrupted = _fit(whole, epochs=3)
    _, first = _pair(backend.resolve("numpy"))
    _fit(first, epochs=1, callbacks=[xpnn.ModelCheckpoint(tmp_path / "epoch{epoch}.npz")])
    resumed = Net()  # other initial weights and dropout seed: all of it comes from the file
    history = _fit(resumed, epochs=3, resume=tmp_path / "epoch1.npz")
    assert history["loss"] == uninterrupted["loss"]
    for key, value in whole.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[key], value)
    assert resumed.drop.counters() == whole.drop.counters()


def test_lr_find_puts_back_a_modules_weights_buffers_counters_and_modes() -> None:
    _, net = _pair(backend.resolve("numpy"))
    net.norm.eval()  # a sub-module in eval mode while the model trains: kept as it was
    before = {k: np.array(v, copy=True) for k, v in net.state_dict().items()}
    counters = net.drop.counters()
    result = net.lr_find(X, Y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(net.parameters(), lr=0.1),
                         steps=12, batch_size=8)  # fmt: skip
    assert len(result.losses) > 1
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert net.drop.counters() == counters and net.training and not net.norm.training


def test_early_stopping_restores_the_best_epochs_running_statistics_too() -> None:
    _, net = _pair(backend.resolve("numpy"))
    kept: dict[str, np.ndarray] = {}

    def keep(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 0:
            kept.update({k: np.array(v, copy=True) for k, v in net.state_dict().items()})

    stop = xpnn.EarlyStopping("loss", mode="max", patience=2, restore_best_weights=True)  # best: epoch 0
    _fit(net, epochs=3, callbacks=[keep, stop])
    for key in ("norm.running_mean", "norm.running_var", "out.weight"):
        np.testing.assert_array_equal(net.state_dict()[key], kept[key])


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_evaluate_and_predict_leave_each_modules_mode_as_it_was(method: str) -> None:
    _, net = _pair(backend.resolve("numpy"))
    net.norm.eval()
    getattr(net, method)(X, *([Y] if method == "evaluate" else []))
    assert net.training and net.drop.training and not net.norm.training
