"""Dropout under data-parallel training: each rank draws ITS rows of the global batch's mask (a
counter-based draw skipped ahead to the rank's first sample), so N ranks with dropout
reproduce the one-process run to float rounding; ``predict`` is split across ranks and every
rank gets the whole output, in order (the worker checks it in every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.distributed.test_data_parallel import assert_ranks_bit_equal, assert_same_run, launch
from xpnn import backend


@pytest.mark.parametrize(("offset", "count"), [(0, 40), (5, 10), (13, 7), (24, 16), (40, 0)])
def test_a_part_of_a_uniform_draw_is_that_part_of_the_whole_draw(
    bk: backend.Backend, to_bk: Any, offset: int, count: int
) -> None:
    like = to_bk(np.zeros(1), "float32")
    whole = backend.to_host(backend.uniform(like, (8, 5), (7, 1, 2)))
    part = backend.uniform(
        like, (count // 5, 5) if count % 5 == 0 else (count,), (7, 1, 2), offset=offset, total=40
    )
    np.testing.assert_array_equal(backend.to_host(part).ravel(), whole.ravel()[offset : offset + count])


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_two_ranks_with_dropout_reproduce_the_one_process_run(backend_name: str, tmp_path: Path) -> None:
    # 103 samples in batches of 10: shares of 5 / 5, and 1 / 2 of the last batch of 3
    options = ("--backend", backend_name, "--dropout", "0.3")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)


def test_a_module_with_dropout_on_two_ranks_reproduces_one_process(tmp_path: Path) -> None:
    # 101 samples: the last batch of 1 leaves rank 0 an empty share (its dropout draws nothing)
    options = ("--module", "--dropout", "0.5", "--samples", "101", "--perturb")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)
