"""xpnn.save / xpnn.load with a .safetensors path: torch's names and layouts in the file, the
architecture in its metadata, and every claim of the file checked before anything is read,
allocated or changed (issue 26, "safetensors")."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_safetensors as hs
from tests.helpers import travel_models as tm
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import CheckpointError, MissingDependencyError

st_numpy = pytest.importorskip(
    "safetensors.numpy", reason="safetensors is not installed (pip install 'xpnn[io]')"
)
PEAK = 8e6  # bytes: the files are a few KB; no claim in a header may turn into an allocation


def test_a_saved_sequential_rebuilds_with_its_outputs_and_counters(tmp_path: Path) -> None:
    model = hs.small_model()
    xpnn.save(model, tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert isinstance(loaded, xpnn.Sequential) and repr(loaded) == repr(model)
    assert hs.same(hs.state(loaded), hs.state(model))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.eval().predict(x))


def test_float64_stays_float64(tmp_path: Path) -> None:
    model = hs.small_model().to("numpy", dtype="float64")
    model.save(tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors")
    assert {v.dtype for v in loaded.state_dict().values()} == {np.dtype("float64")}


def test_the_file_is_a_torch_state_dict_with_the_architecture_in_its_metadata(tmp_path: Path) -> None:
    model = hs.small_model()
    xpnn.save(model, tmp_path / "m.safetensors")
    tensors = st_numpy.load_file(tmp_path / "m.safetensors")
    assert set(tensors) == set(model.state_dict(to_torch=True))
    np.testing.assert_array_equal(tensors["4.weight"], model[4].weight.value.T)
    assert tensors["1.num_batches_tracked"].shape == () and tensors["1.num_batches_tracked"] == 4
    metadata = hs.split((tmp_path / "m.safetensors").read_bytes())[0]["__metadata__"]
    assert metadata["format"] == "pt" and '"Dropout", {"rate": 0.25}' in metadata["xpnn.architecture"]


def test_any_module_loads_into_an_instance(tmp_path: Path) -> None:
    model = tm.build("resnet")
    xpnn.save(model, tmp_path / "r.safetensors")
    other = tm.ResNet(seed=3)
    assert xpnn.load(tmp_path / "r.safetensors", into=other) is other
    assert hs.same(hs.state(other), hs.state(model))
    with pytest.raises(CheckpointError, match=r"holds the weights of a ResNet .*into=model"):
        xpnn.load(tmp_path / "r.safetensors")


def test_save_and_load_on_each_backend(tmp_path: Path, bk: backend.Backend) -> None:
    model = hs.small_model().to(bk.name)
    xpnn.save(model, tmp_path / "m.safetensors")
    loaded = xpnn.load(tmp_path / "m.safetensors", backend=bk.name)
    assert loaded.backend == model.backend
    into = hs.small_model(seed=2).to(bk.name)
    xpnn.load(tmp_path / "m.safetensors", into=into)
    assert hs.same(hs.state(loaded), hs.state(model)) and hs.same(hs.state(into), hs.state(model))


def test_an_optimizer_state_is_refused_it_belongs_in_an_npz_checkpoint(tmp_path: Path) -> None:
    model = hs.small_model()
    with pytest.raises(CheckpointError, match=r"weights only.*\.npz"):
        model.save(tmp_path / "m.safetensors", optimizer=xpnn.Adam(model.parameters(), lr=0.1))
    assert not (tmp_path / "m.safetensors").exists()


def test_a_file_torch_wrote_loads_into_a_model_but_is_not_rebuilt(tmp_path: Path) -> None:
    require_torch("the file is written by safetensors.torch")
    from safetensors.torch import save_file

    twin = tm.torch_twin("cnn")
    save_file(twin.state_dict(), tmp_path / "t.safetensors")
    model = xpnn.load(tmp_path / "t.safetensors", into=tm.build("cnn"))
    np.testing.assert_array_equal(model[13].weight.value, twin[13].weight.detach().numpy().T)
    with pytest.raises(CheckpointError, match=r"no xpnn architecture in its metadata.*into=model"):
        xpnn.load(tmp_path / "t.safetensors")


def test_another_architecture_is_named_at_its_first_differing_layer(tmp_path: Path) -> None:
    xpnn.save(hs.small_model(), tmp_path / "m.safetensors")
    other = xpnn.Sequential(
        [xpnn.Dense(4, 8), xpnn.BatchNorm(8), xpnn.ReLU(), xpnn.Dropout(0.5), xpnn.Dense(8, 3)]
    )
    before = hs.state(other)
    with pytest.raises(
        CheckpointError, match=r"differs at layer 3: the file has \['Dropout', \{'rate': 0\.25\}\]"
    ):
        xpnn.load(tmp_path / "m.safetensors", into=other)
    assert hs.same(hs.state(other), before)


def test_without_the_safetensors_package_saving_names_the_extra(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'xpnn\[io\]'"):
        xpnn.save(hs.small_model(), tmp_path / "m.safetensors")


# -- hostile files ----------------------------------------------------------------------------------
def _edit(header: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    header[name] = {**header[name], **fields}
    return header


def _last(h: dict[str, Any]) -> str:
    return max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])


def _overlap(h: dict[str, Any]) -> dict[str, Any]:
    begin, end = h[_last(h)]["data_offsets"]
    return _edit(h, _last(h), data_offsets=[begin - 4, end - 4])


def _gap(h: dict[str, Any]) -> dict[str, Any]:
    begin, end = h[_last(h)]["data_offsets"]
    return _edit(h, _last(h), data_offsets=[begin + 4, end + 4])


def _huge(h: dict[str, Any]) -> dict[str, Any]:
    end = h[_last(h)]["data_offsets"][1]
    h["junk"] = {"dtype": "F32", "shape": [25_000_000_000], "data_offsets": [end, end + 100_000_000_000]}
    return h


def _metadata(key: str, value: Any) -> Any:
    return lambda h: {**h, "__metadata__": {**h["__metadata__"], key: value}}


HEADER_EDITS = {
    "a shape the offsets do not hold": (
        lambda h: _edit(h, "4.bias", shape=[4]),
        r"'4\.bias' claims shape \(4,\)",
    ),
    "offsets of another entry": (_overlap, r"overlaps entry"),
    "a gap between entries": (_gap, r"leaves a gap after"),
    "a 100-GB claim": (_huge, r"the entries hold 1000000\d* bytes of data, the file holds \d+"),
    "an integer weight": (
        lambda h: _edit(h, "0.weight", dtype="I32"),
        r"'0\.weight'.*of F16/BF16/F32/F64.*I32",
    ),
    "a float counter": (lambda h: _edit(h, "1.num_batches_tracked", dtype="F64"), r"integer dtype.*F64"),
    "an unknown dtype": (
        lambda h: _edit(h, "0.weight", dtype="F8_E4M3X"),
        r"dtype 'F8_E4M3X', expected one of",
    ),
    "a negative size": (lambda h: _edit(h, "4.bias", shape=[-3]), r"shape \[-3\], expected a list of sizes"),
    "a boolean size": (lambda h: _edit(h, "4.bias", shape=[True]), r"expected a list of sizes"),
    "offsets of three numbers": (
        lambda h: _edit(h, "4.bias", data_offsets=[0, 1, 2]),
        r"expected \[begin, end\]",
    ),
    "an extra key": (lambda h: _edit(h, "4.bias", strides=[1]), r"must have dtype, shape and data_offsets"),
    "a missing entry": (
        lambda h: {("4.biass" if k == "4.bias" else k): v for k, v in h.items()},
        r"'4\.bias'.*nothing",
    ),
    "metadata that is no string": (_metadata("xpnn.kind", 3), r"__metadata__ must map names to strings"),
    "a newer version": (_metadata("xpnn.version", "2"), r"xpnn\.version '2', this xpnn reads 1"),
    "metadata that is no JSON": (_metadata("xpnn.counters", "{"), r"xpnn\.counters is not JSON"),
    "counters of another module": (
        _metadata("xpnn.counters", '{"0": {"seed": 1}}'),
        r"counters \['seed'\] for module '0'",
    ),
    "a header that is a list": (lambda h: [h], r"the JSON header is a list"),
}


def _refused(path: Path, match: str) -> None:
    """``load(into=)`` and ``load`` raise CheckpointError with bounded memory; the model stays."""
    model = hs.small_model(seed=2)
    before = hs.state(model)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match):
            xpnn.load(path, into=model)
        with pytest.raises(CheckpointError, match=match):
            xpnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK
    assert hs.same(hs.state(model), before)


@pytest.mark.parametrize("case", sorted(HEADER_EDITS))
def test_a_lying_header_is_refused_before_anything_is_read_or_changed(tmp_path: Path, case: str) -> None:
    path = tmp_path / "m.safetensors"
    _, header, data = hs.saved(path)
    edit, match = HEADER_EDITS[case]
    path.write_bytes(hs.join(edit(header), data))
    _refused(path, match)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (lambda raw, header, data: raw[:-4], r"the entries hold \d+ bytes of data, the file holds \d+"),
        (lambda raw, header, data: raw[:5], r"5 bytes, too short"),
        (lambda raw, header, data: raw + b"\0" * 8, r"the file holds \d+ after its header"),
        (lambda raw, header, data: hs.join(header, data, length=10**11), r"header length 100000000000 bytes"),
        (lambda raw, header, data: hs.join(b'{"a": 1, "a": 2}', b""), r"names given twice.*\['a'\]"),
        (lambda raw, header, data: hs.join(b"\xff\xfe{}", data), r"corrupt JSON header: UnicodeDecodeError"),
        (lambda raw, header, data: hs.join(b"[" * 100000 + b"]" * 100000, b""), r"corrupt JSON header"),
    ],
)
def test_a_truncated_or_malformed_file_is_refused(tmp_path: Path, cut: Any, match: str) -> None:
    path = tmp_path / "m.safetensors"
    raw, header, data = hs.saved(path)
    path.write_bytes(cut(raw, header, data))
    _refused(path, match)


def test_a_forged_architecture_cannot_allocate_more_than_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    _, header, data = hs.saved(path)
    header["__metadata__"]["xpnn.architecture"] = header["__metadata__"]["xpnn.architecture"].replace(
        '"n_in": 4, "n_out": 8', '"n_in": 100000, "n_out": 100000'
    )
    path.write_bytes(hs.join(header, data))
    _refused(path, r"layer 0 cannot be built .*\(100000, 100000\).*file holds 40|differs at layer 0")
