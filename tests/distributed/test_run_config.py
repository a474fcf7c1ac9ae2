"""What the ranks of a data-parallel fit compare (in one process: the descriptions whose first
difference the handshake names), and BatchNorm's smallest batch checked before training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.distributed.consistency import first_difference
from xpnn.distributed.run_config import describe_fit
from xpnn.errors import ShapeError


def mlp(*middle: xpnn.Layer) -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(6, 8), *(middle or (xpnn.ReLU(),)), xpnn.Dense(8, 3)], seed=1)


def data(n: int = 40, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)).astype(dtype), rng.integers(0, 3, n)


def described(model: xpnn.Sequential | None = None, *, loss: Any = None, lr: float = 1e-2, x: Any = None,
              batch_size: int = 8) -> list[str]:  # fmt: skip
    model = model or mlp()
    xy = data() if x is None else x
    return describe_fit(model, loss or xpnn.SoftmaxCrossEntropy(), xpnn.Adam(model.parameters(), lr=lr), xy,
                        None, batch_size=batch_size, epochs=2, shuffle=True)  # fmt: skip


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ({"model": mlp(xpnn.Tanh())}, "rank 0 has 'module 1: ReLU {}', rank 1 has 'module 1: Tanh {}'"),
        ({"model": mlp(xpnn.ReLU(), xpnn.Dropout(0.5))}, "rank 1 has 'module 2: Dropout {rate=0.5}'"),
        ({"loss": xpnn.SoftmaxCrossEntropy(label_smoothing=0.1)}, "label_smoothing=0.1"),
        ({"lr": 2e-2}, "lr=0.02"),
        ({"batch_size": 16}, "rank 1 has 'batch_size 16, epochs 2, shuffle True'"),
        (
            {"x": data(dtype=np.float64)},
            "rank 1 has 'training data: 40 samples of shape (6,), dtype float64'",
        ),
        ({"x": data(41)}, "rank 1 has 'training data: 41 samples of shape (6,), dtype float32'"),
    ],
)
def test_the_description_of_a_fit_names_what_differs(other: dict[str, Any], expected: str) -> None:
    assert expected in first_difference(described(), described(**other), 1)


def test_the_same_run_is_described_alike_and_other_data_values_are_told_apart() -> None:
    assert described() == described()
    x, y = data()
    y = y.copy()
    y[-1] = (y[-1] + 1) % 3  # the last label: in the fingerprint's samples
    assert first_difference(described(), described(x=(x, y)), 1).startswith(
        "rank 0 has 'training data fingerprint"
    )


def test_batchnorm_whose_last_batch_holds_one_sample_is_refused_before_training_in_one_process() -> None:
    # 33 samples in batches of 16 leave a last batch of 1: one value per channel, no variance
    x, y = data(33)
    model = xpnn.Sequential([xpnn.Dense(6, 8), xpnn.BatchNorm(8), xpnn.ReLU(), xpnn.Dense(8, 3)], seed=1)
    before = [p.value.copy() for p in model.parameters()] + [v.copy() for v in model.buffers().values()]
    opt = xpnn.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        ShapeError, match=r"at '1': BatchNorm\(8\) would see 1 value per channel in the last batch"
    ):
        model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=opt, batch_size=16, verbose=0)
    after = [p.value for p in model.parameters()] + list(model.buffers().values())
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)) and opt.t == 0


def test_batchnorm_after_a_convolution_trains_on_a_last_batch_of_one_sample() -> None:
    # one sample of a 4x4 feature map is 16 values per channel: a variance exists
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 5)
    model = xpnn.Sequential(
        [xpnn.Conv2D(1, 2, 3), xpnn.BatchNorm(2), xpnn.Flatten(), xpnn.Dense(32, 3)], seed=1
    )
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
                        batch_size=2, verbose=0)  # fmt: skip
    assert np.isfinite(history["loss"][0]) and np.isfinite(model.buffers()["1.running_var"]).all()
