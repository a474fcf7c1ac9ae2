"""``xpnn.save(model, path)`` beside ``xpnn.load``: the function and ``model.save`` write the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import xpnn
from xpnn import backend


def _model() -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(4, 8), xpnn.ReLU(), xpnn.Dropout(0.5), xpnn.Dense(8, 3)], seed=3)


def test_xpnn_save_round_trips_through_xpnn_load_on_the_backend_asked_for(bk, tmp_path: Path) -> None:
    model = _model().to(bk.name)
    xpnn.save(model, tmp_path / "m.npz")
    loaded = xpnn.load(tmp_path / "m.npz", backend=bk.name)
    assert loaded.backend == bk.name and repr(loaded) == repr(model)
    for (name, p), (other, q) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        assert name == other
        np.testing.assert_array_equal(backend.to_host(p.value), backend.to_host(q.value))
    assert loaded.layers[2].counters() == model.layers[2].counters()


def test_xpnn_save_and_model_save_write_the_same_arrays(tmp_path: Path) -> None:
    model = _model()
    xpnn.save(model, tmp_path / "a.npz")
    model.save(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
