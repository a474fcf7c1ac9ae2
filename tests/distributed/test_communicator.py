"""The communicator interface in one process: the size-1 communicator, init() without
mpiexec, the MPI communicator's in-place buffers (over a stand-in for mpi4py), the gradient
buffers the all-reduce works on, and the rank-0-only checkpoint writes."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import mpi
from xpnn import backend
from xpnn.backend.views import supports_views
from xpnn.distributed import (
    Communicator,
    DataParallel,
    DistributedOptimizer,
    SingleProcess,
    average_gradients,
    shard_bounds,
)
from xpnn.distributed.consistency import describe, first_difference
from xpnn.distributed.host_buffers import host_view
from xpnn.distributed.mpi import MPICommunicator
from xpnn.errors import DistributedError
from xpnn.train.callbacks import ModelCheckpoint
from xpnn.train.record import TrainingRun


class FakeNode:
    def Get_size(self) -> int:
        return 1

    def Free(self) -> None:
        pass


class Done:
    """A completed non-blocking request."""

    def Test(self) -> bool:
        return True


class FakeMPI:
    """A stand-in for mpi4py's ``MPI`` module and a communicator whose other ranks all hold
    ``others`` (so a sum over ranks is ``own + others``): enough to see buffers used in place.
    Non-blocking calls complete at once."""

    IN_PLACE = object()
    SUM = "sum"
    COMM_TYPE_SHARED = "shared"

    def __init__(self, rank: int = 0, size: int = 2, others: float = 1.0) -> None:
        self.rank, self.size, self.others = rank, size, others
        self.calls: list[tuple[str, Any]] = []

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def Split_type(self, kind: Any, key: int = 0) -> FakeNode:
        return FakeNode()  # the ranks of a node: this one alone, so no shared-memory reducer

    def Dup(self) -> FakeMPI:
        return self

    def Iallreduce(self, where: Any, buffer: np.ndarray, op: str) -> Done:
        assert where is self.IN_PLACE and op == self.SUM
        self.calls.append(("Iallreduce", buffer))
        buffer += self.others * (self.size - 1)
        return Done()

    def Ibcast(self, buffer: np.ndarray, root: int = 0) -> Done:
        self.calls.append(("Ibcast", buffer))
        if self.rank != root:
            buffer[...] = self.others
        return Done()


def mlp(seed: int = 1) -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(6, 8), xpnn.ReLU(), xpnn.Dense(8, 3)], seed=seed)


def backward_once(model: xpnn.Sequential, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    dtype = model.parameters()[0].value.dtype
    x = backend.from_host(rng.standard_normal((5, 6)), backend.resolve(model.backend), dtype)
    y = backend.from_host(rng.integers(0, 3, 5), backend.resolve(model.backend))
    loss = xpnn.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())


def test_the_size_one_communicator_returns_its_input_unchanged(bk: backend.Backend, to_bk: Any) -> None:
    comm = SingleProcess()
    a = to_bk(np.arange(6.0).reshape(2, 3), "float64")
    assert isinstance(comm, Communicator)
    assert (comm.rank, comm.size) == (0, 1)
    assert comm.allreduce_sum(a) is a and comm.allreduce_mean(a) is a and comm.broadcast(a) is a
    assert comm.allreduce_mean(a, weight=1.0) is a
    comm.barrier()
    assert np.array_equal(backend.to_host(a), np.arange(6.0).reshape(2, 3))


def test_init_without_mpiexec_is_size_one_and_does_not_import_mpi4py() -> None:
    code = (
        "import sys, xpnn; comm = xpnn.distributed.init(); "
        "print(type(comm).__name__, comm.rank, comm.size, 'mpi4py' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=mpi.environment(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SingleProcess", "0", "1", "False"]


def test_fit_with_a_size_one_communicator_equals_fit_without() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 3, 40)
    results = []
    for communicator in (None, SingleProcess()):
        model = mlp()
        opt = xpnn.Adam(model.parameters(), lr=1e-2)
        history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=opt, epochs=2, batch_size=8,
                            seed=0, verbose=0, communicator=communicator)  # fmt: skip
        results.append(([backend.to_host(p.value) for p in model.parameters()], history["loss"]))
    for a, b in zip(results[0][0], results[1][0], strict=True):
        assert np.array_equal(a, b)
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize(("n", "size"), [(10, 2), (3, 2), (1, 2), (7, 3), (0, 4)])
def test_shards_cover_every_sample_once_and_differ_by_at_most_one(n: int, size: int) -> None:
    bounds = [shard_bounds(n, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.fast_paths
def test_gradient_buffers_are_one_flat_buffer_per_group_holding_every_gradient(bk: backend.Backend) -> None:
    model = mlp().to(bk.name)
    opt = xpnn.SGD(model.parameters(), lr=0.1)
    backward_once(model)
    expected = np.concatenate([backend.to_host(p.grad).ravel() for p in model.parameters()])
    buffers = opt.gradient_buffers()
    if not supports_views(model.parameters()[0].value):  # strict, JAX: the gradients themselves
        assert len(buffers) == len(model.parameters())
        return
    assert len(buffers) == 1
    assert np.array_equal(backend.to_host(buffers[0]), expected)
    opt.step()  # the flat path reads the same buffer: no copy, and the step uses it
    opt.zero_grad()
    backward_once(model, seed=1)
    assert opt.gradient_buffers()[0] is buffers[0]


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])  # the backends data-parallel supports
def test_scaling_the_gradient_buffer_in_place_changes_the_step(backend_name: str) -> None:
    steps = []
    for factor in (1.0, 0.5):
        model = mlp().to(backend_name, dtype="float64")
        opt = xpnn.SGD(model.parameters(), lr=0.1)
        backward_once(model)
        for buffer in opt.gradient_buffers():
            buffer *= factor
        before = [backend.to_host(p.value) for p in model.parameters()]
        opt.step()
        steps.append([backend.to_host(p.value) - b for p, b in zip(model.parameters(), before, strict=True)])
    for full, half in zip(*steps, strict=True):
        np.testing.assert_allclose(half, 0.5 * full, rtol=1e-12)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_mpi_communicator_reduces_numpy_and_torch_cpu_buffers_in_place(backend_name: str) -> None:
    fake = FakeMPI(rank=1, size=2, others=1.0)
    comm = MPICommunicator(fake, fake)
    a = backend.from_host(np.array([2.0, 4.0]), backend.resolve(backend_name))
    assert comm.allreduce_sum(a) is a
    assert np.array_equal(backend.to_host(a), [3.0, 5.0])
    assert comm.allreduce_mean(a, weight=0.25) is a  # 0.25 * own + the others' (already weighted)
    assert np.array_equal(backend.to_host(a), [1.75, 2.25])
    assert comm.broadcast(a) is a
    assert np.array_equal(backend.to_host(a), [1.0, 1.0])
    assert all(np.shares_memory(buffer, host_view(a)) for _, buffer in fake.calls)


def test_mpi_communicator_copies_a_read_only_array_and_returns_a_new_one() -> None:
    fake = FakeMPI(rank=0, size=2, others=1.0)
    a = np.array([2.0, 4.0])
    a.flags.writeable = False
    out = MPICommunicator(fake, fake).allreduce_sum(a)
    assert out is not a and np.array_equal(out, [3.0, 5.0]) and np.array_equal(a, [2.0, 4.0])


def test_data_parallel_refuses_an_unsupported_backend_by_name() -> None:
    fake = FakeMPI()
    model = mlp().to("array_api_strict")
    with pytest.raises(DistributedError, match=r"backend 'array_api_strict'; supported: numpy, torch"):
        DataParallel(MPICommunicator(fake, fake), model, xpnn.SGD(model.parameters(), lr=0.1))
    with pytest.raises(DistributedError, match=r"'array_api_strict' are not supported"):
        MPICommunicator(fake, fake).allreduce_sum(model.parameters()[0].value)


@pytest.mark.fast_paths
def test_average_gradients_makes_one_all_reduce_per_flat_buffer() -> None:
    fake = FakeMPI(rank=0, size=2, others=0.0)
    model = mlp().to("numpy", dtype="float64")
    opt = xpnn.SGD(model.parameters(), lr=0.1)
    backward_once(model)
    own = np.concatenate([p.grad.ravel() for p in model.parameters()])
    average_gradients(opt, MPICommunicator(fake, fake), weight=0.5)
    assert [name for name, _ in fake.calls] == ["Iallreduce"]
    np.testing.assert_array_equal(np.concatenate([p.grad.ravel() for p in model.parameters()]), 0.5 * own)


def test_distributed_optimizer_on_one_process_is_the_plain_optimizer() -> None:
    results = []
    for wrap in (False, True):
        model = mlp()
        opt: Any = xpnn.Adam(model.parameters(), lr=1e-2)
        if wrap:
            opt = DistributedOptimizer(opt, SingleProcess())
        for step in range(3):
            backward_once(model, seed=step)
            opt.step()
            opt.zero_grad()
        results.append([backend.to_host(p.value) for p in model.parameters()])
        assert opt.t == 3
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


def test_first_difference_names_the_line_and_the_ranks() -> None:
    model, wider = mlp(), xpnn.Sequential([xpnn.Dense(6, 9), xpnn.ReLU(), xpnn.Dense(9, 3)])
    text = first_difference(describe(model), describe(wider), 2)
    assert text == (
        "rank 0 has 'parameter 0.weight: shape (6, 8), dtype float32', "
        "rank 2 has 'parameter 0.weight: shape (6, 9), dtype float32'"
    )
    shorter = xpnn.Sequential([xpnn.Dense(6, 8)])
    assert first_difference(describe(model), describe(shorter), 1).startswith("rank 0 has '4 parameters'")


def test_model_checkpoint_writes_on_rank_zero_only(tmp_path: Path) -> None:
    model = mlp()
    opt = xpnn.SGD(model.parameters(), lr=0.1)
    for rank in (1, 0):
        run = TrainingRun(model, xpnn.SoftmaxCrossEntropy(), opt, seed=0, rank=rank)
        ModelCheckpoint(tmp_path / f"rank{rank}.npz").on_epoch_end(run, 0, {"val_loss": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.npz"]


def test_the_shared_memory_all_reduce_moves_sums_in_place_and_falls_back_when_ranks_disagree(
    tmp_path: Path,
) -> None:
    done = mpi.run(2, Path(__file__).with_name("shared_memory_worker.py"), [str(tmp_path)], timeout=60.0)
    assert done.returncode == 0, f"worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for r in ranks:
        np.testing.assert_array_equal(r["moved"], np.arange(7, dtype=np.float32) * 1.5)  # 0.5 * (1 + 2)
        assert r["moved"].dtype == np.float32 and bool(r["moved_is_new"])
        np.testing.assert_array_equal(r["again"], np.full(7, 0.25 * 1 + 0.75 * 2, dtype=np.float32))
        assert bool(r["again_in_place"])
        np.testing.assert_array_equal(r["mixed"], np.full(7, 12.0, dtype=np.float32))
        np.testing.assert_array_equal(r["plain"], np.full(5, 3.0))
        np.testing.assert_array_equal(r["one_off"], np.full(7, 3.0, dtype=np.float32))
        assert r["plain"].dtype == np.float64 and bool(r["plain_same"]) and int(r["windows"]) == 1
