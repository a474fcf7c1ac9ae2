"""A small training run for the data-parallel tests: ``python worker.py OUT [options]``,
under ``mpiexec -n N`` or plainly. Each rank writes ``OUT/rank{r}-of-{size}.npz`` with its
final parameters, history and evaluation, so the tests compare ranks and process counts."""

from __future__ import annotations

import argparse
import os

import numpy as np

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.distributed.sharding import shard_bounds


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--samples", type=int, default=103)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clip", type=float, default=None, help="clip_global_norm")
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--mismatch", action="store_true", help="rank 1 builds a wider layer")
    parser.add_argument("--mismatch-data", action="store_true", help="rank 1 has one sample more")
    parser.add_argument("--raise-in-fit", action="store_true", help="rank 1 raises after epoch 1")
    parser.add_argument("--raise-outside", action="store_true", help="rank 1 raises before fit")
    parser.add_argument("--hand-loop", action="store_true", help="DistributedOptimizer, no fit")
    parser.add_argument("--batchnorm", action="store_true", help="BatchNorm after the first layer")
    parser.add_argument("--sgd", action="store_true", help="SGD with momentum instead of Adam")
    parser.add_argument("--no-shared-memory", action="store_true", help="MPI's Allreduce for gradients")
    parser.add_argument("--no-overlap", action="store_true", help="one all-reduce after backward")
    parser.add_argument("--bucket-elements", type=int, default=None, help="smaller gradient buckets")
    parser.add_argument("--module", action="store_true", help="a residual xpnn.Module, not a Sequential")
    parser.add_argument("--perturb", action="store_true", help="rank 1 starts from other weights and buffers")
    parser.add_argument("--dropout", type=float, default=0.0, help="a Dropout layer of this rate")
    return parser.parse_args()


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 12)), rng.integers(0, 5, n)


class ResidualNet(xpnn.Module):
    """A residual MLP as a Module (what a Sequential cannot express), BatchNorm optional."""

    def __init__(self, hidden: int, l2: float, batchnorm: bool, dropout: float) -> None:
        self.inp = xpnn.Dense(12, hidden, weight_regularizer_l2=l2, seed=1)
        self.norm = xpnn.BatchNorm(hidden) if batchnorm else None
        self.block = xpnn.Dense(hidden, hidden, seed=2)
        self.drop = xpnn.Dropout(dropout, seed=4) if dropout else None
        self.out = xpnn.Dense(hidden, 5, seed=3)

    def forward(self, x):  # type: ignore[no-untyped-def]
        h = self.inp(x) if self.norm is None else self.norm(self.inp(x))
        h = F.relu(h)
        h = h + F.relu(self.block(h))
        return self.out(h if self.drop is None else self.drop(h))


def build(comm: xpnn.distributed.Communicator, args: argparse.Namespace) -> xpnn.Module:
    model = _build(comm, args)
    if args.perturb and comm.rank == 1:  # fit must start every rank from rank 0's state
        for p in model.parameters():
            p.value = p.value + 0.5
        for module in model.modules():
            for name, value in module.own_buffers().items():
                setattr(module, name, value + 1.0)
    return model


def _build(comm: xpnn.distributed.Communicator, args: argparse.Namespace) -> xpnn.Module:
    hidden = 17 if args.mismatch and comm.rank == 1 else 16
    if args.module:
        return ResidualNet(hidden, args.l2, args.batchnorm, args.dropout).to(args.backend, dtype="float64")
    seed = 1 + (comm.rank if args.hand_loop else 0)  # hand loop: broadcast_parameters must fix it
    layers = [xpnn.Dense(12, hidden, weight_regularizer_l2=args.l2), xpnn.ReLU(), xpnn.Dense(hidden, 5)]
    if args.batchnorm:  # statistics of the global batch: the one-process numbers on N ranks
        layers.insert(1, xpnn.BatchNorm(hidden))
    if args.dropout:  # masks drawn by the sample's position in the global batch
        layers.insert(-1, xpnn.Dropout(args.dropout))
    return xpnn.Sequential(layers, seed=seed).to(args.backend, dtype="float64")


def hand_loop(model: xpnn.Sequential, optimizer: xpnn.Optimizer, comm, x, y, args) -> None:  # type: ignore[no-untyped-def]
    """The textbook loop over the global batches, each rank on its share (Horovod style)."""
    xpnn.distributed.broadcast_parameters(model, comm)
    dist = xpnn.distributed.DistributedOptimizer(optimizer, comm)
    loss_fn = xpnn.SoftmaxCrossEntropy()
    bk = backend.resolve(args.backend)
    for start in range(0, len(x), args.batch_size):
        n = min(args.batch_size, len(x) - start)
        lo, hi = shard_bounds(n, comm.rank, comm.size)
        xb = backend.from_host(x[start + lo : start + hi], bk)
        yb = backend.from_host(y[start + lo : start + hi], bk)
        loss_fn.forward(model.forward(xb), yb)
        model.backward(loss_fn.backward())
        dist.step(weight=(hi - lo) / n)
        dist.zero_grad()


def main() -> None:
    args = parse()
    comm = xpnn.distributed.init()
    if args.no_shared_memory:
        comm.shared_memory = False  # type: ignore[attr-defined]  # an MPICommunicator here
    if args.no_overlap:
        comm.overlap = False  # type: ignore[attr-defined]
    if args.bucket_elements:
        comm.bucket_elements = args.bucket_elements  # type: ignore[attr-defined]
    if args.raise_outside and comm.rank == 1:
        raise RuntimeError("rank 1 fails before training")
    x, y = data(args.samples + (1 if args.mismatch_data and comm.rank == 1 else 0))
    model = build(comm, args)
    if args.sgd:
        optimizer: xpnn.Optimizer = xpnn.SGD(
            model.parameters(), lr=0.05, momentum=0.9, clip_global_norm=args.clip
        )
    else:
        optimizer = xpnn.Adam(model.parameters(), lr=1e-2, clip_global_norm=args.clip)
    logs: dict[str, list[float]] = {}
    if args.hand_loop:
        hand_loop(model, optimizer, comm, x, y, args)
    else:

        def fail(epoch: int, _: dict[str, float]) -> None:
            if args.raise_in_fit and comm.rank == 1:
                raise RuntimeError(f"rank 1 fails at the end of epoch {epoch + 1}")

        callbacks = [fail] + ([xpnn.ModelCheckpoint(args.checkpoint)] if args.checkpoint else [])
        history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=args.epochs,
                            batch_size=args.batch_size, validation_data=(x[:37], y[:37]), seed=3,
                            callbacks=callbacks, resume=args.resume, communicator=comm,
                            verbose=0)  # fmt: skip
        logs = {key: history[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
    result = model.evaluate(x, y, loss=xpnn.SoftmaxCrossEntropy(), communicator=comm)
    rows, forward = [0], model.forward  # the samples this rank's predict runs through the model

    def counting(inputs, *rest, **options):  # type: ignore[no-untyped-def]
        rows[0] += int(inputs.shape[0])
        return forward(inputs, *rest, **options)

    model.forward = counting  # type: ignore[method-assign]
    predicted = backend.to_host(model.predict(x, batch_size=7, communicator=comm))
    del model.forward
    params = [backend.to_host(p.value) for p in model.parameters()]
    node = getattr(comm, "node", None)  # the shared-memory reducer, where all ranks share a node
    shared = [arrays[comm.rank] for _, arrays in node.windows] if node is not None else []
    homes = [p.grad_home for p in model.parameters()]  # each parameter's view of the flat gradients
    in_shared = all(h is not None and any(np.shares_memory(h, s) for s in shared) for h in homes)
    buffers = {f"buffer {name}": backend.to_host(value) for name, value in model.buffers().items()}
    np.savez(os.path.join(args.out, f"rank{comm.rank}-of-{comm.size}.npz"), *params,
             evaluation=np.array([result["loss"], result["accuracy"]]), t=optimizer.t, **buffers,
             predict=predicted, predict_rows=rows[0], buckets=getattr(comm, "stats", {}).get("buckets", 0),
             bucket_path=getattr(comm, "stats", {}).get("bucket_path", -1),
             shared_windows=len(shared), gradients_in_shared_memory=in_shared,
             **{k: np.array(v) for k, v in logs.items()})  # fmt: skip
    print(f"rank {comm.rank} of {comm.size}: done")


if __name__ == "__main__":
    main()
