"""Fuzzing the safetensors loader with seeded mutations of a real file, as tests/test_fuzz.py
fuzzes the npz loader: truncations, bit flips, overwritten spans, a lying header length, and
edits of the JSON header (offsets shifted or pointing into another entry, shapes and dtypes
changed, 100-GB claims, random nodes replaced). Every case either loads a model whose every
array keeps its shape and dtype, or raises CheckpointError with the model unchanged; the
tracemalloc peak stays bounded in both."""

from __future__ import annotations

import random
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import xpnn
from tests.helpers import hostile_safetensors as hs
from tests.helpers import mutations
from xpnn.errors import CheckpointError

pytest.importorskip("safetensors.numpy", reason="safetensors is not installed (pip install 'xpnn[io]')")

CASES = 300
PEAK = 16e6  # bytes: the file is ~1 KB; a forged size must not turn into an allocation
DTYPES = ["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E5M2", "", 7, None]
JUNK = [*mutations.REPLACEMENTS, 2**64]


def _entry_edit(header: dict[str, Any], rng: random.Random) -> str:
    """Change one entry's offsets, shape or dtype, or add an entry claiming 100 GB."""
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    entry = header[name]
    kind = rng.choice(["offsets", "shape", "dtype", "overlap", "huge"])
    begin, end = entry["data_offsets"]
    if kind == "offsets":
        shift = rng.choice([-8, -4, -1, 1, 4, 8, 10**11])
        entry["data_offsets"] = rng.choice([[begin + shift, end + shift], [begin, end + shift], [end, begin]])
    elif kind == "shape":
        entry["shape"] = rng.choice(
            [[*entry["shape"], 1], [*entry["shape"], 2], [0], [10**10], entry["shape"][::-1]]
        )
    elif kind == "dtype":
        entry["dtype"] = rng.choice(DTYPES)
    elif kind == "overlap":
        other = header[rng.choice(names)]
        entry["data_offsets"] = list(other["data_offsets"])
    else:
        header[f"junk{rng.randrange(9)}"] = {
            "dtype": "F32",
            "shape": [25 * 10**9],
            "data_offsets": [end, end + 10**11],
        }
    return kind


def _mutate(raw: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, data = hs.split(raw)
    kind = rng.choice(["truncate", "flip", "overwrite", "length", "entry", "json"])
    if kind == "truncate":
        return kind, raw[: rng.randrange(len(raw))]
    if kind == "flip":
        return kind, mutations.flip(raw, rng)
    if kind == "overwrite":
        return kind, mutations.overwrite(raw, rng)
    if kind == "length":
        return kind, hs.join(header, data, length=rng.choice([0, 1, 2**63, 10**11, len(raw), len(raw) - 9]))
    if kind == "entry":
        return f"entry-{_entry_edit(header, rng)}", hs.join(header, data)
    return kind, hs.join(mutations.json_edit(header, rng, JUNK), data)


def _shapes(model: Any) -> list[Any]:
    return [(tuple(v.shape), str(v.dtype)) for v in model.state_dict().values()]


def test_mutated_safetensors_load_or_raise_checkpoint_error_with_bounded_memory_and_nothing_changed(
    tmp_path: Path,
) -> None:
    original = tmp_path / "m.safetensors"
    raw = hs.saved(original)[0]
    model = hs.small_model(seed=2)
    shapes = _shapes(model)
    rng = random.Random(26)
    outcomes: Counter[str] = Counter()
    for case in range(CASES):
        kind, mutated = _mutate(raw, rng)
        where = tmp_path / f"m{case}.safetensors"
        where.write_bytes(mutated)
        before = hs.state(model)
        tracemalloc.start()
        try:
            xpnn.load(where, into=model)
            outcomes[f"{kind}: loaded"] += 1
            assert _shapes(model) == shapes, f"case {case} ({kind}) loaded arrays of other shapes"
            model = hs.small_model(seed=2)  # a load changes it: start over
        except CheckpointError:
            outcomes[f"{kind}: CheckpointError"] += 1
            assert hs.same(hs.state(model), before), f"case {case} ({kind}) changed the model"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < PEAK, f"case {case} ({kind}) allocated {peak} bytes"
        where.unlink()
    refused = sum(v for k, v in outcomes.items() if k.endswith("CheckpointError"))
    print(f"\nsafetensors fuzz: {CASES} cases, {refused} CheckpointError: {dict(sorted(outcomes.items()))}")
    assert refused >= CASES * 0.6  # flips in the data are benign: a model with other numbers
