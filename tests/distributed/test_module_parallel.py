"""Data-parallel fit of a Module of the user's own (a residual MLP; one holding BatchNorm)
under ``mpiexec -n 2``: the one-process numbers to float rounding, both ranks bit-equal, every
rank started from rank 0's parameters AND buffers, an empty share of a last batch stepped."""

from __future__ import annotations

from pathlib import Path

import xpnn
from tests.distributed.test_batchnorm_parallel import assert_statistics_reproduced, buffers
from tests.distributed.test_data_parallel import assert_ranks_bit_equal, assert_same_run, launch
from xpnn.distributed.consistency import describe, first_difference


def test_a_residual_module_on_two_ranks_reproduces_one_process_and_ends_bit_equal(tmp_path: Path) -> None:
    # rank 1 starts from other weights (broadcast from rank 0 must replace them); 101 samples in
    # batches of 10 leave a last batch of 1, so rank 0's share of it is empty (a step anyway);
    # clipping and an L2 penalty must see the global gradient
    options = ("--module", "--perturb", "--samples", "101", "--clip", "0.5", "--l2", "1e-3")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)


def test_a_module_holding_batchnorm_reproduces_one_process_with_identical_running_statistics(
    tmp_path: Path,
) -> None:
    # rank 1 also starts from other running statistics: a Module's buffers are broadcast too
    options = ("--module", "--perturb", "--batchnorm", "--sgd")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert sorted(buffers(single)) == ["buffer norm.running_mean", "buffer norm.running_var"]
    assert_statistics_reproduced(single, ranks)


def test_ranks_that_freeze_different_parameters_are_told_apart() -> None:
    # they would average a gradient on one rank with none on the other: refused like other models
    model, frozen = xpnn.Sequential([xpnn.Dense(4, 2)]), xpnn.Sequential([xpnn.Dense(4, 2)])
    frozen[0].weight.requires_grad = False
    assert first_difference(describe(model), describe(frozen), 1) == (
        "rank 0 has 'parameter 0.weight: shape (4, 2), dtype float32', "
        "rank 1 has 'parameter 0.weight: shape (4, 2), dtype float32, frozen'"
    )
