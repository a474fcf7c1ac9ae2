"""Fuzzing ``xpnn.load`` / ``load_into`` and the IDX reader with mutated files (seeded).

Truncations, bit flips, overwritten spans, and edits inside a still-valid zip (an entry's
.npy bytes or the JSON header changed, the CRCs recomputed): every case either loads or
raises ``CheckpointError`` / ``DataFormatError`` (never another exception), allocates at most
a bounded amount (tracemalloc peak), and a refused load leaves the model and optimizer as
they were.
"""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import hostile_files as hf
from tests.helpers import mutations
from xpnn.data import idx
from xpnn.errors import CheckpointError, DataFormatError
from xpnn.io import serialization

CASES = 240
PEAK = 32e6  # bytes: the files are a few KB; a forged size must not turn into an allocation


def _mutate_checkpoint(raw: bytes, files: dict[str, bytes], rng: random.Random, where: Path) -> str:
    kind = rng.choice(["truncate", "flip", "overwrite", "member", "member-shape", "header"])
    if kind == "truncate":
        where.write_bytes(raw[: rng.randrange(len(raw))])
    elif kind == "flip":
        where.write_bytes(mutations.flip(raw, rng))
    elif kind == "overwrite":
        where.write_bytes(mutations.overwrite(raw, rng))
    elif kind in ("member", "member-shape"):
        name = rng.choice([n for n in files if n != "__header__.npy"])
        data = files[name]
        if kind == "member":  # anywhere in the .npy, header included, CRC recomputed
            data = mutations.flip(data, rng) if rng.random() < 0.5 else data[: rng.randrange(len(data))]
        else:  # a plausible header edit: another shape or dtype text
            data = data.replace(
                b"'shape': (", rng.choice([b"'shape': (1, ", b"'shape': (999999999, ", b"'shape': (0, "])
            )
            data = data.replace(b"<f4", rng.choice([b"<f4", b"<i1", b"|O", b">f8", b"<c8"]))
        hf.write_members(where, {**files, name: data})
    else:
        header = mutations.json_edit(hf.header_of(files), rng)
        hf.write_members(where, hf.with_header(files, json.dumps(header).encode()))
    return kind


def test_mutated_checkpoints_load_or_raise_checkpoint_error_with_bounded_memory_and_nothing_changed(
    tmp_path: Path,
) -> None:
    original = tmp_path / "ck.npz"
    hf.trained(original)
    raw, files = original.read_bytes(), hf.members(original)
    model, optimizer = hf.trained(tmp_path / "other.npz")
    rng = random.Random(13)
    outcomes: Counter[str] = Counter()
    for case in range(CASES):
        where = tmp_path / f"m{case}.npz"
        kind = _mutate_checkpoint(raw, files, rng, where)
        before = hf.state(model, optimizer)
        tracemalloc.start()
        try:
            serialization.load_into(where, model, optimizer)
            outcomes[f"{kind}: loaded"] += 1
            model, optimizer = hf.trained(tmp_path / "other.npz")  # a load may change it: start over
        except CheckpointError:
            outcomes[f"{kind}: CheckpointError"] += 1
            assert hf.same(hf.state(model, optimizer), before), f"case {case} ({kind}) changed the model"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < PEAK, f"case {case} ({kind}) allocated {peak} bytes"
        where.unlink()
    refused = sum(v for k, v in outcomes.items() if k.endswith("CheckpointError"))
    print(
        f"\ncheckpoint fuzz: {CASES} cases, {refused} CheckpointError, {CASES - refused} loaded: "
        f"{dict(outcomes)}"
    )
    assert refused >= CASES * 0.8  # almost every mutation breaks something; the rest are benign


@pytest.mark.parametrize("gz", [False, True])
def test_mutated_idx_files_read_or_raise_data_format_error(tmp_path: Path, gz: bool) -> None:
    rng = random.Random(7 + gz)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    idx.write_idx(path, np.arange(6 * 7 * 5, dtype=np.uint8).reshape(6, 7, 5))
    raw = path.read_bytes()
    body = gzip.decompress(raw) if gz else raw
    outcomes: Counter[str] = Counter()
    for case in range(CASES // 2):
        kind = rng.choice(["truncate", "flip", "overwrite", "header"])
        if kind == "truncate":
            data = raw[: rng.randrange(len(raw))]
        elif kind == "flip":
            data = mutations.flip(raw, rng)
        elif kind == "overwrite":
            data = mutations.overwrite(raw, rng)
        else:  # the header edited inside an intact (re-)compressed stream
            edited = mutations.overwrite(body[:16], rng) + body[16:]
            data = gzip.compress(edited) if gz else edited
        path.write_bytes(data)
        tracemalloc.start()
        try:
            idx.read_idx(path)
            outcomes[f"{kind}: read"] += 1
        except DataFormatError:
            outcomes[f"{kind}: DataFormatError"] += 1
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < PEAK, f"case {case} ({kind}) allocated {peak} bytes"
    refused = sum(v for k, v in outcomes.items() if k.endswith("Error"))
    print(
        f"\nidx fuzz ({'gz' if gz else 'raw'}): {CASES // 2} cases, {refused} DataFormatError: "
        f"{dict(outcomes)}"
    )
    assert refused >= CASES // 4
