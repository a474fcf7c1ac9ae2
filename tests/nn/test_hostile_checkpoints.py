"""Issue 13 items 4-6: a saved file is checked against the architecture, whole, before anything
is allocated for it or changed; a bad file is a CheckpointError and the model stays as it was."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf
from xpnn.errors import CheckpointError
from xpnn.io import serialization


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "ck.npz"
    hf.trained(path)
    return path, hf.members(path)


def _refused_and_unchanged(path: Path, match: str, plain_load: bool = True) -> None:
    """Loading ``path`` into a trained model and its optimizer raises and changes neither;
    ``xpnn.load`` (which reads no optimizer state) refuses it too where ``plain_load``."""
    model, optimizer = hf.trained(path.with_name("other.npz"))
    before = hf.state(model, optimizer)
    with pytest.raises(CheckpointError, match=match):
        serialization.load_into(path, model, optimizer)
    assert hf.same(hf.state(model, optimizer), before)
    if plain_load:
        with pytest.raises(CheckpointError, match=match):
            xpnn.load(path)


def _edit_array(files: dict[str, bytes], name: str, value: np.ndarray) -> dict[str, bytes]:
    return {**files, f"{name}.npy": hf.npy(value)}


@pytest.mark.parametrize("shape", [(1, 8), (5, 7), (8, 4), (4, 8, 1)])
def test_a_weight_of_another_shape_is_refused(saved: Any, tmp_path: Path, shape: tuple[int, ...]) -> None:
    path, files = saved
    hf.write_members(path, _edit_array(files, "param/0.weight", np.ones(shape, np.float32)))
    _refused_and_unchanged(path, r"param/0\.weight|architecture differs at layer 0|the file holds 16")


@pytest.mark.parametrize("dtype", ["int8", "int64", "bool", "complex64", "<U3", "float16"])
def test_a_parameter_of_a_non_float_dtype_is_refused(saved: Any, dtype: str) -> None:
    path, files = saved
    hf.write_members(path, _edit_array(files, "param/3.bias", np.zeros(3, dtype)))
    _refused_and_unchanged(path, r"param/3\.bias.*dtype|dtype .*not a plain number")


def test_an_object_array_is_refused_without_unpickling(saved: Any) -> None:
    path, files = saved
    hf.write_members(path, _edit_array(files, "param/3.bias", np.array([print, 1, 2], dtype=object)))
    _refused_and_unchanged(path, r"param/3\.bias.*not a plain number type")


def test_a_missing_parameter_leaves_weights_and_optimizer_step_count_alone(saved: Any) -> None:
    path, files = saved
    hf.write_members(path, {k: v for k, v in files.items() if k != "param/3.weight.npy"})
    _refused_and_unchanged(
        path, r"'param/3\.weight'\)$|parameter shapes \[\(3,\)\], the model|the file holds 3$"
    )


def test_a_stray_parameter_entry_is_refused(saved: Any) -> None:
    path, files = saved
    hf.write_members(path, _edit_array(files, "param/1.weight", np.zeros((2, 2), np.float32)))
    _refused_and_unchanged(
        path, r"belong to no parameter or buffer|ReLU\(\) with parameter shapes \[\(2, 2\)\]"
    )


@pytest.mark.parametrize(
    "counters", [{"2": {"training": 0}}, {"0": {"n_in": 7}}, {"9": {"seed": 1}}, {"2": {"seed": True}}]
)
def test_counters_other_than_the_layers_own_are_refused(saved: Any, counters: dict[str, Any]) -> None:
    path, files = saved
    header = hf.header_of(files)
    header["counters"] = counters
    hf.write_members(path, hf.with_header(files, header))
    _refused_and_unchanged(path, r"counters")


def test_a_mis_shaped_optimizer_state_is_refused_before_any_weight_changes(saved: Any) -> None:
    path, files = saved
    name = next(k for k in files if k.startswith("optimizer/") and k.endswith("exp_avg.npy"))
    hf.write_members(path, {**files, name: hf.npy(np.zeros((2, 2), np.float32))})
    _refused_and_unchanged(path, r"optimizer state does not fit", plain_load=False)


def test_a_huge_architecture_in_a_tiny_file_fails_before_allocating(saved: Any) -> None:
    path, files = saved
    header = hf.header_of(files)
    header["architecture"][0][1].update(n_in=100000, n_out=100000)
    hf.write_members(path, hf.with_header(files, header))
    tracemalloc.start()
    try:
        with pytest.raises(
            CheckpointError, match=r"layer 0 cannot be built .*\(100000, 100000\).*file holds 40"
        ):
            xpnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6


def test_an_npy_header_claiming_10_to_the_12_elements_is_a_checkpoint_error(saved: Any) -> None:
    path, files = saved
    forged = hf.npy(np.zeros(3, np.float32)).replace(b"(3,)", b"(1000000000000,)")
    hf.write_members(path, {**files, "param/3.bias.npy": forged})
    _refused_and_unchanged(path, r"param/3\.bias' claims shape \(1000000000000,\)")


def test_an_unused_large_entry_is_never_read(saved: Any) -> None:
    path, files = saved
    files = {**files, "junk.npy": hf.npy(np.zeros(20_000_000, np.float32))}
    hf.write_members(path, files, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        xpnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6  # the 80 MB entry was not decompressed into memory


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"[1, 2]", r"the JSON header is a list, expected an object"),
        (b"null", r"the JSON header is a NoneType"),
        (b"{}", r"header format None, expected 'xpnn-checkpoint'"),
        (b'{"format": "xpnn-checkpoint", "version": "1"}', r"header version '1', expected an integer"),
        (b'{"format": "xpnn-checkpoint", "version": 1}', r"'architecture' must be a list"),
        (b"[" * 100000 + b"]" * 100000, r"corrupt JSON header"),
        (b"\xff\xfe", r"corrupt JSON header"),
    ],
)
def test_malformed_headers_are_named_checkpoint_errors(saved: Any, header: bytes, match: str) -> None:
    path, files = saved
    hf.write_members(path, hf.with_header(files, header))
    _refused_and_unchanged(path, match)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h["architecture"][0][1].update(activation="relu"), r"config keys \['activation'\]"),
        (lambda h: h["architecture"][0].__setitem__(0, "Conv9D"), r"Conv9D, which is not a known"),
        (lambda h: h["architecture"][0][1].update(n_in="4"), r"layer 0 cannot be built"),
        (lambda h: h.update(parameters={"a": 1}), r"'parameters' must be a list"),
        (lambda h: h.update(model_seed="x"), r"'model_seed' must be an integer >= 0 or null"),
        (lambda h: h.update(model_seed=-1), r"'model_seed' must be an integer >= 0 or null"),
        (lambda h: h.update(optimizer=[1]), r"'optimizer' must be a dict or null"),
        (lambda h: h.update(training={"epoch": -1, "seed": 0, "history": {}}), r"epoch and seed"),
        (lambda h: h.update(training={"epoch": 1, "seed": 0, "history": []}), r"history is malformed"),
    ],
)
def test_header_entries_of_the_wrong_kind_are_named(saved: Any, edit: Any, match: str) -> None:
    path, files = saved
    header = hf.header_of(files)
    edit(header)
    hf.write_members(path, hf.with_header(files, header))
    model, optimizer = hf.trained(path.with_name("other.npz"))
    run = xpnn.train.record.TrainingRun(model, xpnn.SoftmaxCrossEntropy(), optimizer, 0, batch_size=10)
    before = hf.state(model, optimizer)
    with pytest.raises(CheckpointError, match=rf"{match}|architecture differs at layer 0"):
        xpnn.train.checkpoint.load_training(path, run)
    assert hf.same(hf.state(model, optimizer), before)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda c: c.update(activation="relu"),
            r"layer 0 \(Dense\) has config keys \['activation'\] it does not take",
        ),
        (lambda c: c.update(n_in="4"), r"layer 0 cannot be built as Dense.*expected n_in to be an integer"),
        (lambda c: c.update(n_in=0), r"layer 0 cannot be built as Dense.*expected n_in >= 1"),
    ],
)
def test_a_saved_config_the_layer_does_not_take_is_named_when_building(
    saved: Any, edit: Any, match: str
) -> None:
    path, files = saved
    header = hf.header_of(files)
    edit(header["architecture"][0][1])
    hf.write_members(path, hf.with_header(files, header))
    with pytest.raises(CheckpointError, match=match):
        xpnn.load(path)


def test_an_unknown_layer_class_is_named(saved: Any) -> None:
    path, files = saved
    header = hf.header_of(files)
    header["architecture"][0][0] = "Conv9D"
    hf.write_members(path, hf.with_header(files, header))
    with pytest.raises(CheckpointError, match=r"layer 0 is a Conv9D, which is not a known xpnn Layer"):
        xpnn.load(path)


def test_deeply_nested_optimizer_state_is_a_checkpoint_error(saved: Any) -> None:
    path, files = saved
    header = hf.header_of(files)
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    header["optimizer"]["state"]["0"]["deep"] = nested
    hf.write_members(path, hf.with_header(files, header))
    _refused_and_unchanged(path, r"nests deeper than 64|optimizer state does not fit", plain_load=False)


def test_loading_an_npy_file_says_it_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(CheckpointError, match=r"w\.npy: is a single \.npy array, not an xpnn checkpoint"):
        xpnn.load(path)


def test_a_valid_file_still_round_trips_after_the_checks(saved: Any) -> None:
    path, _ = saved
    model, optimizer = hf.trained(path.with_name("other.npz"))
    serialization.load_into(path, model, optimizer)
    loaded = xpnn.load(path)
    assert hf.same(hf.state(loaded), hf.state(model))
    assert json.loads(json.dumps(loaded.layers[2].counters())) == model.layers[2].counters()
