"""Sequential's plain-array path keeps its calls as a chain (``xpnn.nn.sequential._Chain``)
instead of a graph of Tensors: the same bits as the tape running the same model on a Tensor,
for every kind of member (Dense + ReLU pairs, convolutions, BatchNorm, Dropout and a Module
of your own run through the tape as segments, a layer used twice, frozen parameters), for
the input gradient and without it, and with the fast paths off (the tape itself)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.nn.sequential import _Chain

pytestmark = pytest.mark.fast_paths  # the chain is Sequential's fast path: on, under XPNN_KERNELS=off too


class Scaled(xpnn.Module):
    """A Module of your own (forward only): ``tanh(d(x)) * 0.5``."""

    def __init__(self, n: int) -> None:
        self.d = xpnn.Dense(n, n)

    def forward(self, x: Any) -> Any:
        return F.tanh(self.d(x)) * 0.5


def _mlp() -> tuple[list[Any], tuple[int, ...]]:
    shared = xpnn.Dense(5, 5)
    layers = [xpnn.Dense(6, 5, weight_regularizer_l2=0.01), xpnn.ReLU(), shared, xpnn.ReLU(),
              xpnn.Dropout(0.3), Scaled(5), shared, xpnn.Tanh(), xpnn.Dense(5, 5), xpnn.ReLU(),
              xpnn.Dense(5, 3)]  # fmt: skip
    return layers, (8, 6)


def _cnn() -> tuple[list[Any], tuple[int, ...]]:
    layers = [xpnn.Conv2D(2, 4, 3, padding=1), xpnn.BatchNorm(4), xpnn.ReLU(), xpnn.MaxPool2D(2),
              xpnn.Flatten(), xpnn.Dense(4 * 3 * 3, 8), xpnn.ReLU(), xpnn.Dense(8, 3)]  # fmt: skip
    return layers, (5, 2, 6, 6)


MODELS: dict[str, Callable[[], tuple[list[Any], tuple[int, ...]]]] = {"mlp": _mlp, "cnn": _cnn}


def _run(model: xpnn.Sequential, x: Any, dy: Any, on_tensor: bool) -> list[np.ndarray]:
    """The output, dL/dx and every parameter's gradient, from the plain-array path (the chain)
    or from the tape on a Tensor; Dropout's counters reset so both draw the same masks."""
    for layer in model.layers:
        if isinstance(layer, xpnn.Dropout):
            layer.step = 0
    model.zero_grad()
    if on_tensor:
        inp = xpnn.Tensor(x, requires_grad=True)
        out = model(inp)
        out.backward(dy)
        penalty = model.regularization_loss()
        if isinstance(penalty, xpnn.Tensor):
            penalty.backward()
        y, dx = out.value, inp.grad
    else:
        y = model.forward(x)
        assert isinstance(vars(model)["_graph"], _Chain)
        dx = model.backward(dy, input_grad=True)
    grads = [np.zeros(1) if p.grad is None else backend.to_host(p.grad).copy() for p in model.parameters()]
    return [backend.to_host(y).copy(), backend.to_host(dx).copy(), *grads]


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_chain_gives_the_bits_of_the_tape(kind: str, dtype: str) -> None:
    layers, shape = MODELS[kind]()
    model = xpnn.Sequential(layers, seed=3).to("numpy", dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((shape[0], 3)).astype(dtype)
    chain = _run(model, x, dy, on_tensor=False)
    calls = vars(model)["_graph"].calls
    kinds = ["segment" if out is not None else node.name for node, _, out in calls]
    if kind == "mlp":  # the pairs as one node, Dropout and the Module of your own as one segment
        assert kinds.count("linear_relu") == 2 and kinds.count("segment") == 1, kinds
    else:  # Flatten rewrites forward: a segment
        assert kinds[:3] == ["conv2d", "batch_norm", "relu"] and "segment" in kinds, kinds
    tape = _run(model, x, dy, on_tensor=True)
    assert len(chain) == len(tape) > 4
    for a, b in zip(chain, tape, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_the_chain_gives_the_bits_of_the_tape_on_every_backend(bk: Any, to_bk: Any) -> None:
    layers, shape = _mlp()
    model = xpnn.Sequential(layers, seed=3).to(bk.name)
    rng = np.random.default_rng(0)
    x = to_bk(rng.standard_normal(shape).astype(np.float32))
    dy = to_bk(rng.standard_normal((shape[0], 3)).astype(np.float32))
    chain, tape = _run(model, x, dy, on_tensor=False), _run(model, x, dy, on_tensor=True)
    for a, b in zip(chain, tape, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_frozen_parameters_and_no_input_gradient_compute_only_what_is_wanted() -> None:
    first, last = xpnn.Dense(4, 3), xpnn.Dense(3, 2)
    model = xpnn.Sequential([first, xpnn.ReLU(), last], seed=0)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    last.weight.requires_grad = False
    model.forward(x)
    assert model.backward(np.ones((5, 2), np.float32)) is None
    assert last.weight.grad is None and last.bias.grad is not None and first.weight.grad is not None
    for p in first.parameters():  # frozen after the forward: as the tape, backward asks at its call
        p.requires_grad = False
    model.zero_grad()
    model.forward(x)
    model.backward(np.ones((5, 2), np.float32))
    assert first.weight.grad is None and first.bias.grad is None and last.bias.grad is not None


def test_backward_twice_adds_the_same_gradient_again() -> None:
    model = xpnn.Sequential([xpnn.Dense(4, 3), xpnn.ReLU(), xpnn.Dense(3, 2)], seed=0)
    x = np.random.default_rng(2).standard_normal((5, 4))
    model = model.to("numpy", dtype="float64")
    model.forward(x)
    dy = np.ones((5, 2))
    model.backward(dy)
    once = model.layers[0].weight.grad.copy()
    model.backward(dy)
    np.testing.assert_allclose(model.layers[0].weight.grad, 2 * once, rtol=1e-15)


def test_with_the_fast_paths_off_the_tape_runs_and_gives_the_same_numbers() -> None:
    layers, shape = _mlp()
    model = xpnn.Sequential(layers, seed=3).to("numpy", dtype="float64")
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape), rng.standard_normal((shape[0], 3))
    chain = _run(model, x, dy, on_tensor=False)
    with xpnn.kernels.disabled():
        for layer in model.layers:
            if isinstance(layer, xpnn.Dropout):
                layer.step = 0
        model.zero_grad()
        model.forward(x)
        assert isinstance(vars(model)["_graph"], tuple)  # the graph of Tensors
        dx = model.backward(dy, input_grad=True)
        plain = [p.grad for p in model.parameters()]
    np.testing.assert_allclose(dx, chain[1], rtol=1e-12)
    for a, b in zip(plain, chain[2:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
