"""Data-parallel training under ``mpiexec -n 2``: the same numbers as one process, both ranks
bit-equal, uneven batches weighted right, faults end the job, mismatched models refused,
checkpoints portable across rank counts. Each test launches tests/distributed/worker.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import mpi

WORKER = Path(__file__).with_name("worker.py")
TIMEOUT = 90.0  # a deadlock fails the test instead of hanging the suite


def launch(ranks: int, out: Path, *options: str) -> list[dict[str, np.ndarray]]:
    """Run the worker on ``ranks`` ranks (0: one plain process); each rank's saved results."""
    out.mkdir(parents=True, exist_ok=True)
    done = mpi.run(ranks, WORKER, [str(out), *options], timeout=TIMEOUT)
    assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    size = max(ranks, 1)
    return [dict(np.load(out / f"rank{r}-of-{size}.npz")) for r in range(size)]


def params(result: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [result[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in result))]


def assert_same_run(one: dict[str, np.ndarray], other: dict[str, np.ndarray], rtol: float = 1e-12) -> None:
    for a, b in zip(params(one), params(other), strict=True):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-13)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "evaluation", "predict"):
        if key in one:
            np.testing.assert_allclose(other[key], one[key], rtol=rtol, atol=1e-12)
    assert int(one["t"]) == int(other["t"])


def assert_ranks_bit_equal(results: list[dict[str, np.ndarray]]) -> None:
    for other in results[1:]:
        for a, b in zip(params(results[0]), params(other), strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(results[0]["evaluation"], other["evaluation"])
        assert np.array_equal(results[0]["predict"], other["predict"])


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_two_ranks_reproduce_the_one_process_run_and_end_bit_equal(backend_name: str, tmp_path: Path) -> None:
    # 103 samples in batches of 10: the last batch of 3 splits 1 / 2; clipping by global norm
    # and an L2 penalty must see the global gradient
    options = ("--backend", backend_name, "--clip", "0.5", "--l2", "1e-3")
    (single,) = launch(0, tmp_path / "one", *options)
    ranks = launch(2, tmp_path / "two", *options)
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)
    # predict is split like evaluate: each rank ran its 3 or 4 of every batch of 7 through the model
    # (44 or 59 of the 103 samples, and a rehearsal's row), one process all of them
    assert int(single["predict_rows"]) >= 103
    assert all(int(r["predict_rows"]) <= 0.6 * int(single["predict_rows"]) for r in ranks)
    assert sum(int(r["predict_rows"]) for r in ranks) >= 103


@pytest.mark.parametrize("hand_loop", [False, True], ids=["fit", "hand-loop"])
def test_gradients_averaged_in_shared_memory_give_mpi_allreduce_bits(hand_loop: bool, tmp_path: Path) -> None:
    # both ranks on this machine: the flat gradient buffer moves into an MPI-3 shared window
    # once and is averaged there; the same run with MPI's Allreduce gives the same bits
    options = ("--clip", "0.5", "--l2", "1e-3", *(["--hand-loop"] if hand_loop else []))
    shared = launch(2, tmp_path / "shared", *options)
    plain = launch(2, tmp_path / "plain", *options, "--no-shared-memory")
    for rank in range(2):
        assert bool(shared[rank]["gradients_in_shared_memory"]) and int(shared[rank]["shared_windows"]) == 1
        assert not bool(plain[rank]["gradients_in_shared_memory"]) and int(plain[rank]["shared_windows"]) == 0
        for a, b in zip(params(shared[rank]), params(plain[rank]), strict=True):
            assert np.array_equal(a, b)
    assert_ranks_bit_equal(shared)


def test_a_last_batch_smaller_than_the_ranks_is_weighted_right(tmp_path: Path) -> None:
    # 101 samples: the last batch holds 1 sample, so rank 0's share of it is empty
    (single,) = launch(0, tmp_path / "one", "--samples", "101")
    ranks = launch(2, tmp_path / "two", "--samples", "101")
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)


def test_hand_written_loop_with_distributed_optimizer_reproduces_one_process(tmp_path: Path) -> None:
    # rank 1 builds its model from another seed: broadcast_parameters must replace it
    (single,) = launch(0, tmp_path / "one", "--hand-loop", "--samples", "53")
    ranks = launch(2, tmp_path / "two", "--hand-loop", "--samples", "53")
    assert_same_run(single, ranks[0])
    assert_ranks_bit_equal(ranks)


def test_a_checkpoint_written_on_two_ranks_resumes_on_one(tmp_path: Path) -> None:
    checkpoint = tmp_path / "after-epoch-1.npz"
    (uninterrupted,) = launch(0, tmp_path / "one", "--epochs", "3")
    launch(2, tmp_path / "two", "--epochs", "1", "--checkpoint", str(checkpoint))
    (resumed,) = launch(0, tmp_path / "resumed", "--epochs", "3", "--resume", str(checkpoint))
    assert_same_run(uninterrupted, resumed)


def test_a_checkpoint_written_on_one_process_resumes_on_two_ranks(tmp_path: Path) -> None:
    checkpoint = tmp_path / "after-epoch-2.npz"
    (uninterrupted,) = launch(0, tmp_path / "one", "--epochs", "3")
    launch(0, tmp_path / "first", "--epochs", "2", "--checkpoint", str(checkpoint))
    ranks = launch(2, tmp_path / "resumed", "--epochs", "3", "--resume", str(checkpoint))
    assert_same_run(uninterrupted, ranks[0])
    assert_ranks_bit_equal(ranks)


@pytest.mark.parametrize("where", ["--raise-in-fit", "--raise-outside"])
def test_a_raising_rank_ends_every_rank_promptly(where: str, tmp_path: Path) -> None:
    # rank 0 goes on into a collective that rank 1 never joins: without the abort hook the
    # job would hang until the timeout
    done = mpi.run(2, WORKER, [str(tmp_path), where], timeout=TIMEOUT)
    assert done.returncode != 0
    assert "rank 1 fails" in done.stderr
    assert not list(tmp_path.glob("rank*.npz"))


def test_ranks_with_different_models_are_refused_naming_the_first_difference(tmp_path: Path) -> None:
    done = mpi.run(2, WORKER, [str(tmp_path), "--mismatch"], timeout=TIMEOUT)
    assert done.returncode != 0
    assert "ModelMismatchError" in done.stderr
    assert "rank 1 differs from rank 0" in done.stderr
    assert "rank 0 has 'module 0: Dense {init='glorot_uniform', n_in=12, n_out=16}'" in done.stderr
    assert "rank 1 has 'module 0: Dense {init='glorot_uniform', n_in=12, n_out=17}'" in done.stderr


def test_ranks_with_different_data_sizes_are_refused_before_training(tmp_path: Path) -> None:
    # a different sample count means a different number of steps: a deadlock, were it not checked
    done = mpi.run(2, WORKER, [str(tmp_path), "--mismatch-data"], timeout=TIMEOUT)
    assert done.returncode != 0
    assert "rank 0 has 'training data: 103 samples of shape (12,), dtype float64'" in done.stderr
    assert "rank 1 has 'training data: 104 samples of shape (12,), dtype float64'" in done.stderr


@pytest.mark.parametrize("model", ["sequential", "module"])
def test_bucketed_all_reduces_during_backward_give_the_single_all_reduces_bits(
    model: str, tmp_path: Path
) -> None:
    # from the second step on, each bucket's all-reduce starts as backward finalises it: in
    # node-shared memory (path 2) or by MPI_Iallreduce (path 1); the single all-reduce after
    # backward (path 0) must give the same parameters, bit for bit
    module = ["--module"] if model == "module" else []
    options = ("--clip", "0.5", "--l2", "1e-3", "--samples", "101", "--bucket-elements", "40", *module)
    runs = {
        2: launch(2, tmp_path / "shared", *options),
        1: launch(2, tmp_path / "mpi", *options, "--no-shared-memory"),
        0: launch(2, tmp_path / "single", *options, "--no-overlap"),
    }
    for path, ranks in runs.items():
        assert [int(r["bucket_path"]) for r in ranks] == [path, path]
        buckets = 6 if module else 4  # a bucket per parameter: each holds more than 40 gradients
        assert [int(r["buckets"]) for r in ranks] == [buckets if path else 0] * 2
        assert_ranks_bit_equal(ranks)
        for a, b in zip(params(runs[0][0]), params(ranks[0]), strict=True):
            assert np.array_equal(a, b)
