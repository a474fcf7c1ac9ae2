"""Every backend gives NumPy's numbers: same seed, 20 training steps, dropout off."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backend


def _train(name: str, move, optimizer: str) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    model = xpnn.Sequential(
        [
            xpnn.Dense(12, 16, init="he_normal"),
            xpnn.ReLU(),
            xpnn.Dropout(0.0),
            xpnn.Dense(16, 8),
            xpnn.Tanh(),
            xpnn.Dense(8, 4),
        ],
        seed=3,
    ).to(name)
    params = model.parameters()
    opt = {
        "sgd": lambda: xpnn.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
        "adam": lambda: xpnn.Adam(params, lr=0.01),
        "rmsprop": lambda: xpnn.RMSProp(params, lr=0.01, centered=True),
    }[optimizer]()
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    rng = np.random.default_rng(11)
    losses = []
    for _ in range(20):
        x = move(rng.standard_normal((16, 12)).astype(np.float32))
        y = move(rng.integers(0, 4, 16), "int64")
        losses.append(loss_fn.forward(model.forward(x), y))
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    return [backend.to_host(a) for a in losses + [p.value for p in params]]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_twenty_training_steps_agree_with_numpy(optimizer, bk, to_bk):
    reference = _train("numpy", lambda a, dtype=None: np.asarray(a, dtype=dtype), optimizer)
    for got, want in zip(_train(bk.name, to_bk, optimizer), reference, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
