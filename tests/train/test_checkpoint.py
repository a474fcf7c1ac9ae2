"""Checkpoints: round trips across backends, atomic saves, architecture checks, exact resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import CheckpointError
from xpnn.io import archive, serialization
from xpnn.optim.optimizers import Adam
from xpnn.train import callbacks, checkpoint


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 90)
    x = (np.eye(3, 4)[y] * 3 + 0.5 * rng.standard_normal((90, 4))).astype(np.float32)
    return x, y


def mlp(hidden: int = 8, dropout: float = 0.25) -> xpnn.Sequential:
    return xpnn.Sequential(
        [xpnn.Dense(4, hidden), xpnn.ReLU(), xpnn.Dropout(dropout), xpnn.Dense(hidden, 3)], seed=1
    )


def weights(model: xpnn.Sequential) -> list[np.ndarray]:
    return [backend.to_host(p.value) for p in model.parameters()]


def test_save_and_load_round_trip_gives_the_same_predictions(bk: backend.Backend, tmp_path: Path) -> None:
    x, _ = blobs()
    model = mlp().to(bk.name)
    model.save(tmp_path / "m.npz")
    loaded = xpnn.load(tmp_path / "m.npz", backend=bk.name)
    assert [type(layer).__name__ for layer in loaded] == ["Dense", "ReLU", "Dropout", "Dense"]
    assert loaded.backend == bk.name
    np.testing.assert_array_equal(backend.to_host(loaded.predict(x)), backend.to_host(model.predict(x)))


@pytest.mark.parametrize("source", ["torch", "array_api_strict"])
def test_a_checkpoint_saved_on_another_backend_loads_on_numpy(source: str, tmp_path: Path) -> None:
    if source == "torch":
        require_torch("this test saves a checkpoint from the torch backend")
    model = mlp().to(source)
    model.save(tmp_path / "m.npz")
    loaded = xpnn.load(tmp_path / "m.npz")
    assert loaded.backend == "numpy"
    for a, b in zip(weights(loaded), weights(model), strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_checkpoint_is_plain_npz_without_pickle_and_with_a_versioned_header(tmp_path: Path) -> None:
    model = mlp()
    model.save(tmp_path / "m.npz", optimizer=Adam(model.parameters(), lr=1e-3))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        header = json.loads(archive["__header__"].tobytes())
        assert all(archive[key].dtype != object for key in archive.files)
    assert header["format"] == "xpnn-checkpoint" and header["version"] == 1
    assert header["architecture"][0] == ["Dense", {"n_in": 4, "n_out": 8, "init": "glorot_uniform"}]


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    model = mlp()
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays["__header__"].tobytes())
    header["version"] = 99
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(CheckpointError, match="format version 99, this xpnn reads up to 1"):
        xpnn.load(tmp_path / "m.npz")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match=r"junk\.npz: not a readable xpnn checkpoint"):
        xpnn.load(tmp_path / "junk.npz")


def test_an_interrupted_save_leaves_the_old_checkpoint_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.npz"
    old = mlp()
    old.save(path)

    def write_half_then_fail(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(archive, "_write_npz", write_half_then_fail)
    new = mlp(hidden=8)
    new.reset_parameters(seed=99)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()
    for a, b in zip(weights(xpnn.load(path)), weights(old), strict=True):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["m.npz"]  # the temporary file is gone too


def test_loading_another_architecture_names_the_first_differing_layer_and_shapes(tmp_path: Path) -> None:
    mlp(hidden=8).save(tmp_path / "m.npz")
    other = mlp(hidden=16)
    expected = (
        r"differs at layer 0: the checkpoint has Dense\(n_in=4, n_out=8.*\[\(4, 8\), \(8,\)\], "
        r"the model has Dense\(n_in=4, n_out=16.*\[\(4, 16\), \(16,\)\]"
    )
    with pytest.raises(CheckpointError, match=expected):
        serialization.load_into(tmp_path / "m.npz", other)


def test_loading_a_model_with_another_layer_type_names_that_layer(tmp_path: Path) -> None:
    mlp().save(tmp_path / "m.npz")
    other = xpnn.Sequential([xpnn.Dense(4, 8), xpnn.Tanh(), xpnn.Dropout(0.25), xpnn.Dense(8, 3)])
    with pytest.raises(
        CheckpointError, match=r"differs at layer 1: the checkpoint has ReLU\(\), the model has Tanh"
    ):
        serialization.load_into(tmp_path / "m.npz", other)


def _fit(model: xpnn.Sequential, epochs: int, callbacks: Any = (), resume: Any = None) -> xpnn.History:
    x, y = blobs()
    optimizer = Adam(model.parameters(), lr=0.02)
    return model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=epochs, batch_size=16,
                     validation_split=0.2, callbacks=callbacks, seed=3, verbose=0, resume=resume)  # fmt: skip


def test_resume_from_epoch_k_equals_the_uninterrupted_run(bk: backend.Backend, tmp_path: Path) -> None:
    whole = mlp().to(bk.name)
    full = _fit(whole, epochs=5)
    first = mlp().to(bk.name)
    _fit(first, epochs=2, callbacks=[xpnn.ModelCheckpoint(tmp_path / "e{epoch}.npz")])
    resumed = mlp().to(bk.name)
    resumed.reset_parameters(seed=1234)  # whatever it starts from, the checkpoint decides
    history = _fit(resumed, epochs=5, resume=tmp_path / "e2.npz")
    for a, b in zip(weights(resumed), weights(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.epochs == [0, 1, 2, 3, 4]
    assert history["loss"] == full["loss"] and history["val_accuracy"] == full["val_accuracy"]


def test_model_checkpoint_save_best_only_writes_only_on_improvement(tmp_path: Path) -> None:
    written: list[int] = []
    original = checkpoint.save_training

    def spy(path: Any, run: Any) -> None:
        written.append(run.epoch)
        original(path, run)

    best = xpnn.ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "save_training", spy)
        history = _fit(mlp(), epochs=4, callbacks=[best])
    losses = history["loss"]
    expected = [k + 1 for k in range(4) if losses[k] == min(losses[: k + 1])]
    assert written == expected and (tmp_path / "best.npz").exists()
