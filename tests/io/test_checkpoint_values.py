"""Issue 24 item 9: a saved file's values are checked before anything is loaded. A negative
running variance (every prediction NaN), a NaN running mean (evaluate NaN), a non-finite
weight, a NaN or negative Adam second moment: a CheckpointError naming the entry, the model
and optimizer unchanged; an optimizer's ``load_state_dict`` refuses the same state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf
from xpnn.errors import CheckpointError, OptimizerError
from xpnn.io import serialization
from xpnn.train.checkpoint import save_training
from xpnn.train.record import TrainingRun


def _trained(path: Path) -> tuple[xpnn.Sequential, xpnn.Adam]:
    model = xpnn.Sequential([xpnn.Dense(4, 6), xpnn.BatchNorm(6), xpnn.ReLU(), xpnn.Dense(6, 3)], seed=2)
    optimizer = xpnn.Adam(model.parameters(), lr=1e-2)
    x = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
    model.fit(
        x, np.arange(24) % 3, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, batch_size=8, verbose=0
    )
    run = TrainingRun(model, xpnn.SoftmaxCrossEntropy(), optimizer, 0, batch_size=8)
    run.epoch = 1
    save_training(path, run)
    return model, optimizer


def _state(model: xpnn.Sequential, optimizer: xpnn.Adam) -> list[Any]:
    return hf.state(model, optimizer) + [np.asarray(v) for _, v in model.named_buffers()]


def _edited(tmp_path: Path, entry: str, edit: Any) -> Path:
    path = tmp_path / "ck.npz"
    _trained(path)
    files = hf.members(path)
    value = np.load(path)[entry].copy()
    edit(value)
    hf.write_members(path, {**files, f"{entry}.npy": hf.npy(value)})
    return path


def _set(index: int, number: float) -> Any:
    def edit(value: np.ndarray) -> None:
        value.reshape(-1)[index] = number

    return edit


CASES = {
    "negative running variance": (
        "buffer/1.running_var",
        _set(2, -0.5),
        r"running variance\) holds negative",
    ),
    "NaN running mean": ("buffer/1.running_mean", _set(0, math.nan), r"1 non-finite values"),
    "infinite weight": ("param/0.weight", _set(5, math.inf), r"first at flat index 5: inf"),
    "NaN bias": ("param/3.bias", _set(1, math.nan), r"non-finite"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_file_with_bad_values_is_refused_by_load_and_by_resume_with_nothing_changed(
    tmp_path: Path, case: str
) -> None:
    entry, edit, match = CASES[case]
    path = _edited(tmp_path, entry, edit)
    with pytest.raises(CheckpointError, match=rf"{entry}.*{match}|{match}"):
        xpnn.load(path)
    model, optimizer = _trained(tmp_path / "other.npz")
    before = _state(model, optimizer)
    with pytest.raises(CheckpointError, match=match):
        serialization.load_into(path, model, optimizer)
    assert hf.same(_state(model, optimizer), before)


@pytest.mark.parametrize(("number", "match"), [(-1e-3, "negative"), (math.nan, "non-finite")])
def test_a_bad_adam_second_moment_in_a_checkpoint_is_refused_with_nothing_changed(
    tmp_path: Path, number: float, match: str
) -> None:
    path = _edited(tmp_path, "optimizer/state/0/exp_avg_sq", _set(3, number))
    model, optimizer = _trained(tmp_path / "other.npz")
    before = _state(model, optimizer)
    with pytest.raises(CheckpointError, match=rf"'exp_avg_sq' holds {match} values"):
        serialization.load_into(path, model, optimizer)
    assert hf.same(_state(model, optimizer), before)


@pytest.mark.parametrize("name", ["exp_avg", "exp_avg_sq"])
def test_adam_load_state_dict_refuses_non_finite_state(tmp_path: Path, name: str) -> None:
    _, optimizer = _trained(tmp_path / "ck.npz")
    saved = optimizer.state_dict()
    saved["state"][0][name] = np.full_like(np.asarray(saved["state"][0][name]), np.inf)
    with pytest.raises(OptimizerError, match=rf"parameter 0.*{name}' holds non-finite"):
        optimizer.load_state_dict(saved)


def test_a_safetensors_file_with_a_negative_running_variance_is_refused(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors", reason="safetensors is not installed")
    from safetensors import numpy as st_numpy

    model, _ = _trained(tmp_path / "ck.npz")
    path = tmp_path / "m.safetensors"
    xpnn.save(model, path)
    with safetensors.safe_open(path, "np") as file:
        metadata = file.metadata()
    tensors = st_numpy.load_file(path)
    tensors["1.running_var"][0] = -1.0
    st_numpy.save_file(tensors, path, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"'1.running_var' \(a running variance\) holds negative"):
        xpnn.load(path)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"affine": "no"}, r"expected affine True or False, got str 'no'"),
        ({"eps": 1e400}, r"expected eps a finite number"),
        ({"num_features": 6.0}, r"num_features to be an integer, got float"),
    ],
)
def test_a_header_batchnorm_config_of_the_wrong_kind_is_a_checkpoint_error(
    tmp_path: Path, config: dict[str, Any], match: str
) -> None:
    path = tmp_path / "ck.npz"
    _trained(path)
    files = hf.members(path)
    header = hf.header_of(files)
    header["architecture"][1][1].update(config)
    hf.write_members(path, hf.with_header(files, header))
    with pytest.raises(CheckpointError, match=rf"layer 1 cannot be built as BatchNorm.*{match}"):
        xpnn.load(path)
