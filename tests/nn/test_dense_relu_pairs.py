"""Sequential runs each Dense followed by a ReLU (and read by a Dense) as one node
(``Dense.fused_with``, :class:`xpnn.functional.linear.LinearReLU`): the numbers of the two
layers run one after the other, on every backend, with and without numba, with regularizers
and accumulated gradients; the errors of the plain pair; and the caller's arrays never written."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.errors import ForwardFirstError, ShapeError
from xpnn.kernels import compile


def _model(fused: bool, bk: Any) -> xpnn.Sequential:
    layers = [
        xpnn.Dense(6, 5, bias_regularizer_l1=0.01, weight_regularizer_l2=0.02),
        xpnn.ReLU(),
        xpnn.Dense(5, 4, bias_regularizer_l2=0.03),
        xpnn.ReLU(),
        xpnn.Dropout(0.0),  # passes the Dense's gradient on unchanged: the pair before may not write it
        xpnn.Dense(4, 4),
        xpnn.ReLU(),
        xpnn.Dense(4, 3),
    ]
    for layer in layers:
        layer.fused = fused  # type: ignore[attr-defined]
    return xpnn.Sequential(layers, seed=0).to(bk.name)


@pytest.mark.parametrize("numba", [True, False], ids=["numba", "no-numba"])
def test_pairs_give_the_numbers_of_the_layers_one_by_one(
    numba: bool, bk: Any, to_bk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if numba:
        pytest.importorskip("numba", reason="numba is optional (the fast extra)")
    monkeypatch.setattr(compile, "enabled", numba)
    rng = np.random.default_rng(3)
    x, dout = to_bk(rng.standard_normal((9, 6)), "float32"), to_bk(rng.standard_normal((9, 3)), "float32")
    x_host, dout_host = backend.to_host(x).copy(), backend.to_host(dout).copy()
    results = []
    for fused in (True, False):
        model = _model(fused, bk)
        outs = []
        for _ in range(2):  # the second backward adds into .grad
            outs.append(model.forward(x))
            outs.append(model.backward(dout, input_grad=True))
        results.append([backend.to_host(a) for a in outs + [p.grad for p in model.parameters()]])
    for a, b in zip(*results, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(backend.to_host(x), x_host) and np.array_equal(backend.to_host(dout), dout_host)


def test_a_pair_raises_the_errors_of_its_layers_before_touching_grad() -> None:
    model = _model(True, backend.resolve("numpy"))
    with pytest.raises(ForwardFirstError, match="Sequential"):
        model.backward(np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"Dense\(6 -> 5\): expected input of shape \(batch, 6\)"):
        model.forward(np.ones((2, 7), np.float32))
    model.forward(np.ones((2, 6), np.float32))
    with pytest.raises(ShapeError, match=r"Sequential.*backward: expected dout of shape \(2, 3\)"):
        model.backward(np.ones((3, 3), np.float32))
    assert all(p.grad is None for p in model.parameters())


def test_relu_forward_called_directly_never_writes_its_input() -> None:
    x = np.array([[-1.0, 2.0, -0.0]], np.float32)
    y = xpnn.ReLU().forward(x)
    assert y is not x and np.array_equal(x, [[-1.0, 2.0, -0.0]])


class _Center(xpnn.Layer):
    """A user's layer that changes its input in place (allowed: the input is not the caller's)."""

    def forward(self, x: Any) -> Any:
        x -= 0.5
        return x

    def backward(self, dout: Any) -> Any:
        return dout


@pytest.mark.parametrize("after", ["center", "flatten"])
def test_a_relu_output_that_a_later_layer_may_change_is_not_used_as_the_mask(after: str) -> None:
    # only a Dense may follow a paired ReLU: a user's layer could change the ReLU's output in
    # place, and a Flatten hands it to the caller as a view, before backward; the pair would
    # read its mask from that changed output
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    grads = []
    for fused in (True, False):
        if after == "center":
            layers: list[xpnn.Layer] = [xpnn.Dense(6, 5), xpnn.ReLU(), _Center(), xpnn.Dense(5, 3)]
        else:
            layers = [xpnn.Dense(6, 5), xpnn.ReLU(), xpnn.Flatten()]
        for layer in layers:
            layer.fused = fused  # type: ignore[attr-defined]
        model = xpnn.Sequential(layers, seed=0)
        out = model.forward(x)
        if after == "flatten":
            out -= 0.5  # the caller's own output, changed in place
        model.backward(np.ones(out.shape, dtype=np.float32))
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert np.array_equal(a, b)
