"""The shared-memory all-reduce's paths, under ``mpiexec -n 2``: ``python shared_memory_worker.py OUT``.
Each rank writes ``OUT/rank{r}.npz`` with what every call returned, for the test to check."""

from __future__ import annotations

import os
import sys

import numpy as np

import xpnn


def main() -> None:
    out = sys.argv[1]
    comm = xpnn.distributed.init()
    node = comm.node  # type: ignore[attr-defined]  # an MPICommunicator on one machine
    rank, results = comm.rank, {}
    # 1. a fresh buffer that may move: the sum comes back in a new shared buffer
    fresh = np.arange(7, dtype=np.float32) * (rank + 1)
    moved = comm.allreduce_mean(fresh, 0.5, adopt=True)
    results["moved"] = moved.copy()
    results["moved_is_new"] = moved is not fresh and len(node.windows) == 1
    # 2. that shared buffer again: summed in place (uneven weights, as a short last batch)
    moved[...] = rank + 1.0
    again = comm.allreduce_mean(moved, 0.25 if rank == 0 else 0.75)
    results["again"] = again.copy()
    results["again_in_place"] = again is moved
    # 3. ranks disagree (rank 0 passes its shared buffer, rank 1 a private one): MPI's Allreduce
    mixed = moved if rank == 0 else np.full(7, 10.0, dtype=np.float32)
    if rank == 0:
        mixed[...] = 2.0
    results["mixed"] = comm.allreduce_mean(mixed, 1.0).copy()
    # 4. a buffer that may not move, and float64: MPI's Allreduce, no new window
    plain = np.full(5, rank + 1.0)
    results["plain"] = comm.allreduce_mean(plain, 1.0).copy()
    results["plain_same"] = comm.allreduce_mean(plain, 1.0) is plain
    # 5. the shared buffer again, but rank 1 has turned shared memory off: MPI's Allreduce for all
    comm.shared_memory = rank == 0  # type: ignore[attr-defined]
    moved[...] = rank + 1.0
    results["one_off"] = comm.allreduce_mean(moved, 1.0).copy()
    comm.shared_memory = True  # type: ignore[attr-defined]
    results["windows"] = len(node.windows)
    np.savez(os.path.join(out, f"rank{rank}.npz"), **{k: np.asarray(v) for k, v in results.items()})


if __name__ == "__main__":
    main()
