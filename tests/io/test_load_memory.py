"""Issue 24 item 4: ``xpnn.load`` of any file under 1 MB peaks under 64 MB (tracemalloc): a
forged architecture, a compressed entry (a zip bomb), tens of thousands of layers or a header
of a million tiny JSON objects is refused (CheckpointError) or loaded within that bound."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf
from xpnn.errors import CheckpointError

FILE_LIMIT, PEAK_LIMIT = 1_000_000, 64_000_000


def _appended(layer: list[Any]) -> Callable[[dict[str, bytes], Path], None]:
    def edit(files: dict[str, bytes], path: Path) -> None:
        header = hf.header_of(files)
        header["architecture"].append(layer)
        hf.write_members(path, hf.with_header(files, header))

    return edit


def _many_layers(files: dict[str, bytes], path: Path) -> None:
    """A compact 1 MB header of 80,000 ReLU layers (~600 B of Python objects each once built)."""
    header = hf.header_of(files)
    header["architecture"] += [["ReLU", {}]] * 80_000
    raw = json.dumps(header, separators=(",", ":")).encode()
    hf.write_members(path, hf.with_header(files, raw))


def _tiny_objects(files: dict[str, bytes], path: Path) -> None:
    """A header of 300,000 empty JSON objects (~70 B each as Python dicts)."""
    header = {**hf.header_of(files), "junk": [{}] * 300_000}
    hf.write_members(path, hf.with_header(files, json.dumps(header, separators=(",", ":")).encode()))


def _zip_bomb(files: dict[str, bytes], path: Path) -> None:
    """A first Dense(4, 5_000_000) whose zero weights are deflated: 160 MB from ~160 KB."""
    header = hf.header_of(files)
    header["architecture"][0][1].update(n_out=5_000_000)
    header["architecture"][3][1].update(n_in=5_000_000)
    header["optimizer"] = None
    shapes = {
        "param/0.weight": (4, 5_000_000),
        "param/0.bias": (5_000_000,),
        "param/3.weight": (5_000_000, 3),
    }
    kept = {k: v for k, v in files.items() if k.removesuffix(".npy") not in shapes and "optimizer" not in k}
    hf.write_members(path, hf.with_header(kept, header))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        for name, shape in shapes.items():  # streamed: the test itself never holds 160 MB
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(
                    member, {"descr": "<f4", "fortran_order": False, "shape": shape}
                )
                zeros, left = bytes(1 << 20), int(np.prod(shape)) * 4
                while left:
                    member.write(zeros[: min(left, len(zeros))])
                    left -= min(left, len(zeros))


HOSTILE = {
    "BatchNorm(500_000_000) without statistics": _appended(
        ["BatchNorm", {"num_features": 500_000_000, "affine": False, "track_running_stats": False}]
    ),
    "BatchNorm(10**12) without statistics": _appended(
        ["BatchNorm", {"num_features": 10**12, "affine": False, "track_running_stats": False}]
    ),
    "BatchNorm(500_000_000) with statistics": _appended(["BatchNorm", {"num_features": 500_000_000}]),
    "LayerNorm(500_000_000)": _appended(["LayerNorm", {"dim": 500_000_000}]),
    "Embedding(500_000_000, 4)": _appended(["Embedding", {"num_embeddings": 500_000_000, "dim": 4}]),
    "80,000 ReLU layers": _many_layers,
    "300,000 empty JSON objects": _tiny_objects,
    "deflated 160 MB entries": _zip_bomb,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_load_of_a_hostile_file_under_1_mb_peaks_under_64_mb(tmp_path: Path, name: str) -> None:
    path = tmp_path / "ck.npz"
    hf.trained(path)
    HOSTILE[name](hf.members(path), path)
    assert path.stat().st_size < FILE_LIMIT
    tracemalloc.start()
    try:
        try:
            model = xpnn.load(path)
            outcome = f"loaded {len(model.layers)} layers"
        except CheckpointError as error:
            outcome = f"CheckpointError: {error}"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{name}: peak {peak / 1e6:.1f} MB ({outcome[:200]})"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("deflated 160 MB entries", r"decompress to 1600007\d\d bytes.*compression bomb"),
        ("80,000 ReLU layers", r"its 80004 layers take"),
    ],
)
def test_a_file_that_would_become_more_than_its_budget_is_refused_before_reading(
    tmp_path: Path, name: str, match: str
) -> None:
    path = tmp_path / "ck.npz"
    hf.trained(path)
    HOSTILE[name](hf.members(path), path)
    with pytest.raises(CheckpointError, match=match):
        xpnn.load(path)


def test_a_model_of_a_thousand_layers_in_a_small_file_still_loads(tmp_path: Path) -> None:
    layers: list[xpnn.Module] = [xpnn.Dense(4, 4)] + [xpnn.ReLU() for _ in range(1000)]
    model = xpnn.Sequential(layers, seed=0)
    model.save(tmp_path / "deep.npz")
    assert len(xpnn.load(tmp_path / "deep.npz").layers) == 1001
