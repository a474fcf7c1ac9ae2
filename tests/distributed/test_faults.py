"""Data-parallel runs whose ranks disagree or desert, under ``mpiexec -n 2``: a named error
before anything changes, or (a rank gone) the job ends within ``init(timeout=)``, non-zero,
naming the rank that timed out and what it waited in. Never a hang, never a raw MPI error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import mpi

WORKER = Path(__file__).with_name("faults_worker.py")
TIMEOUT = 60.0  # the job's own timeout is 3 s: this bound only keeps a hang from stalling the suite


def run(case: str, out: Path) -> tuple[int, str]:
    done = mpi.run(2, WORKER, [str(out), case], timeout=TIMEOUT)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("case", "difference"),
    [
        ("activation", "rank 0 has 'module 1: ReLU {}', rank 1 has 'module 1: Tanh {}'"),
        ("softmax", "rank 0 has '4 parameters', rank 1 has 'module 4: Softmax {}'"),
        (
            "dropout-rate",
            "rank 0 has 'module 2: Dropout {rate=0.1}', rank 1 has 'module 2: Dropout {rate=0.2}'",
        ),
        ("lr", "lr=0.01, weight_decay=0.0}', rank 1 has 'optimizer group 0: 4 parameters, {amsgrad=False"),
    ],
)
def test_ranks_whose_runs_differ_are_refused_naming_the_first_difference(
    case: str, difference: str, tmp_path: Path
) -> None:
    code, output = run(case, tmp_path)
    assert code != 0
    assert "ModelMismatchError: data-parallel fit: rank 1 differs from rank 0" in output
    assert difference in output
    assert not list(tmp_path.glob("*.done"))


def test_ranks_whose_forward_code_differs_are_refused_by_their_outputs(tmp_path: Path) -> None:
    # same parameters, same description: only the outputs for the same samples tell them apart
    code, output = run("forward", tmp_path)
    assert code != 0
    assert (
        "ModelMismatchError: data-parallel fit: rank 1's model computes other outputs than rank 0's" in output
    )


def test_fit_on_one_rank_and_evaluate_on_the_other_is_a_named_error(tmp_path: Path) -> None:
    code, output = run("evaluate", tmp_path)
    assert code != 0
    assert "DistributedError: data-parallel" in output
    assert "rank 0 called fit but rank 1 called evaluate" in output
    assert "Message truncated" not in output


@pytest.mark.parametrize(
    ("case", "where"),
    [("skip", "the handshake that opens fit"), ("leave", "epoch 2, batch 1 of 4")],
)
def test_a_rank_that_skips_or_leaves_fit_ends_the_job_within_the_timeout(
    case: str, where: str, tmp_path: Path
) -> None:
    # rank 1 catches its exception and goes on: rank 0 waits in a collective rank 1 never joins
    code, output = run(case, tmp_path)
    assert code != 0
    assert "caught: rank 1" in output
    assert "xpnn.distributed: rank 0 of 2 timed out after 3." in output
    assert where in output
    assert not (tmp_path / "rank0.done").exists()


def test_batchnorm_with_a_last_global_batch_of_one_sample_is_refused_before_training(tmp_path: Path) -> None:
    # 33 samples in batches of 16: the last global batch holds 1 sample, 1 value per channel
    code, output = run("batchnorm", tmp_path)
    assert code != 0
    assert (
        "ShapeError: fit: Sequential(5 layers) at '1': BatchNorm(16) would see 1 value per channel" in output
    )
