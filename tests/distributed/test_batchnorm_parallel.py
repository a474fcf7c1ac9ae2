"""BatchNorm under data-parallel training: statistics of the GLOBAL batch (ChainerMN's
MultiNodeBatchNormalization), so 2 ranks reproduce the one-process run, running statistics
included, and both ranks end bit-equal. Needs ``xpnn.BatchNorm`` (the convolution issue's
layer, which all-reduces its per-channel sums through ``communicator.allreduce_sum``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.distributed.test_data_parallel import assert_ranks_bit_equal, assert_same_run, launch


def buffers(result: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in result.items() if k.startswith("buffer ")}


def assert_statistics_reproduced(single: dict[str, np.ndarray], ranks: list[dict[str, np.ndarray]]) -> None:
    """Rank 0's run is the one-process run, running statistics included; both ranks bit-equal."""
    assert_same_run(single, ranks[0])
    for name, value in buffers(single).items():
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-12, atol=1e-14)
        assert np.array_equal(ranks[0][name], ranks[1][name])
    assert_ranks_bit_equal(ranks)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_batchnorm_on_two_ranks_reproduces_one_process_with_identical_running_statistics(
    backend_name: str, tmp_path: Path
) -> None:
    # 103 samples in batches of 10: shares of 5 / 5, and 1 / 2 of the last batch of 3. SGD, not
    # Adam: the bias of the Dense layer before BatchNorm has a gradient that is exactly 0 but
    # for rounding noise, which Adam's g / sqrt(v) would blow up to full-size steps
    options = ("--backend", backend_name, "--batchnorm", "--sgd")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert sorted(buffers(single)) == ["buffer 1.running_mean", "buffer 1.running_var"]
    assert_statistics_reproduced(single, ranks)
