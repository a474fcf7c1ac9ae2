"""Ranks that disagree or desert, for the data-parallel fault tests:
``python faults_worker.py OUT CASE`` under ``mpiexec -n 2`` (init(timeout=3)). Each rank that
gets through writes ``OUT/rank{r}.done``; the test reads the job's exit code and stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import xpnn
from xpnn import functional as F


class Net(xpnn.Module):
    """Two Dense layers whose activation is code: rank 1 of case "forward" uses tanh."""

    def __init__(self, tanh: bool) -> None:
        self.inp, self.out, self.tanh = xpnn.Dense(12, 16, seed=1), xpnn.Dense(16, 5, seed=2), tanh

    def forward(self, x):  # type: ignore[no-untyped-def]
        h = self.inp(x)
        return self.out(F.tanh(h) if self.tanh else F.relu(h))


def build(case: str, rank: int) -> xpnn.Module:
    other = rank == 1
    if case == "forward":
        return Net(tanh=other)
    layers: list[xpnn.Layer] = [
        xpnn.Dense(12, 16),
        xpnn.Tanh() if case == "activation" and other else xpnn.ReLU(),
    ]
    layers.append(xpnn.Dropout(0.2 if case == "dropout-rate" and other else 0.1))
    if case == "batchnorm":
        layers.insert(1, xpnn.BatchNorm(16))
    layers.append(xpnn.Dense(16, 5))
    if case == "softmax" and other:
        layers.append(xpnn.Softmax())
    return xpnn.Sequential(layers, seed=1)


def main() -> None:
    out, case = Path(sys.argv[1]), sys.argv[2]
    comm = xpnn.distributed.init(timeout=3.0)
    rank = comm.rank
    rng = np.random.default_rng(0)
    n = 33 if case == "batchnorm" else 64
    x, y = rng.standard_normal((n, 12)).astype(np.float32), rng.integers(0, 5, n)
    model = build(case, rank)
    optimizer = xpnn.Adam(model.parameters(), lr=2e-2 if case == "lr" and rank == 1 else 1e-2)

    def desert(epoch: int, _: dict[str, float]) -> None:
        if case == "leave" and rank == 1:
            raise RuntimeError("rank 1 leaves fit after epoch 1")

    try:
        if case == "skip" and rank == 1:
            raise RuntimeError("rank 1 fails before fit")
        if case == "evaluate" and rank == 1:
            model.evaluate(x, y, loss=xpnn.SoftmaxCrossEntropy(), communicator=comm)
        else:
            model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=3, batch_size=16,
                      callbacks=[desert], verbose=0, communicator=comm)  # fmt: skip
    except RuntimeError as error:  # the user's own handling of its own error: the script goes on
        if type(error) is not RuntimeError:
            raise
        print(f"rank {rank} caught: {error}", flush=True)
    (out / f"rank{rank}.done").write_text("done")


if __name__ == "__main__":
    main()
