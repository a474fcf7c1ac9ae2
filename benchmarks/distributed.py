"""Data-parallel scaling on one machine, timed as a user waits for it: a WHOLE ``fit``.

The 784-256-128-10 MLP, Adam, global batch 512, 2 epochs of Fashion-MNIST (60,000 images; a
synthetic set of the same shape when the data set is not found). Each run's time is rank 0's
seconds from the driver starting its command (``mpiexec -n 2 ...`` for the ranks) to ``fit``
returning: Python start-up, imports, MPI's start, loading the data and the fit itself. Each of
these runs ``--repeats`` times, interleaved (a shared host drifts), and the median is reported:

- 1 process, pinned to core 0;
- 2 ranks, pinned to cores 0 and 1, each 256 samples of every global batch, gradient buckets
  all-reduced while backward runs (the default);
- the same 2 ranks with ``comm.overlap = False`` (one all-reduce after backward), for A/B;
- the machine's 2-process ceiling for this work: two independent processes at once on cores 0
  and 1, each doing one rank's share alone (its 30,000 images in batches of 256, 2 epochs, no
  communication); the slower one's time. Ceiling = t(1 process) / t(independent halves).

Every process has one BLAS thread. Efficiency = speedup / ceiling (issue 27: >= 0.9). Also
printed: the GEMM ceiling (GEMM throughput of cores 0 and 1 together against core 0 alone,
before and after), and each rank's exposed all-reduce time: the seconds its steps waited for
the gradient average after backward ended (what overlap did not hide, including waiting for the
slower rank), in total and per step.

``--busy``: a third, CPU-bound process (a Python loop) runs throughout and nothing is pinned,
as a user starts it on a laptop; reports 2 ranks against 1 process (median of repeats), the
ranks placed by the OS and bound to a core each by the launcher (``mpiexec -bind-to core``),
and the ceiling under that load: the 2 independent halves, unpinned, beside the busy process.
On a 2-core machine three CPU-bound processes get at most 2/3 of a core each: 2 ranks can beat 1
process only where a rank's share of the work (its half batch, plus the whole optimizer step
and the per-layer Python) is under 2/3 of one process's. The OS-placed row assumes MPICH's
Hydra, which binds nothing unless asked (Open MPI binds 2 ranks to cores by default).
``--model cnn`` fits the CNN of ``examples/fashion_mnist.py --model cnn`` instead of the MLP;
``--samples N`` takes the first N training images (a shorter CNN run).
``--per-step``: seconds per step against PyTorch DDP (``_distributed_steps.py``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py --busy
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _distributed_steps import role_torch, role_xpnn, run_steps
from _processes import (
    GLOBAL_BATCH,
    blas_kernel,
    launch,
    measure_ceiling,
    pin,
    report,
    role_command,
    role_gemm,
    since_launch,
    start,
)


def model_layers(model: str) -> list[Any]:
    """The MLP (784-256-128-10), or the CNN of ``examples/fashion_mnist.py --model cnn`` (its
    own ``cnn_layers``: two conv 3x3 + BatchNorm + ReLU + max pool blocks, dropout, 3136-128-10)."""
    import xpnn

    if model == "mlp":
        return [xpnn.Dense(784, 256), xpnn.ReLU(), xpnn.Dense(256, 128), xpnn.ReLU(), xpnn.Dense(128, 10)]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from fashion_mnist import cnn_layers

    return cnn_layers()


def role_fit(epochs: int, part: int | None, pinned: bool, overlap: bool, model: str, samples: int) -> None:
    """A whole fit, timed from the launch; ``part``: one process fitting that half alone."""
    import numpy as np

    import xpnn

    comm = xpnn.distributed.init()
    ready = since_launch()  # Python, imports, MPI's start
    if not overlap:
        comm.overlap = False  # type: ignore[attr-defined]
    pin((comm.rank if part is None else part) if pinned else None)
    try:
        (x, y), _ = xpnn.load_fashion_mnist()
    except xpnn.errors.DataNotFoundError:  # no data set here: the same shapes, synthetic
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60_000)
    loaded = since_launch()
    x, y, batch = x[:samples], y[:samples], GLOBAL_BATCH
    x = x.reshape(len(x), -1) if model == "mlp" else x.reshape(len(x), 1, 28, 28)
    if part is not None:  # one rank's share of the work, with no rank to talk to
        half = len(x) // 2
        x, y, batch = x[part * half : (part + 1) * half], y[part * half : (part + 1) * half], batch // 2
    net = xpnn.Sequential(model_layers(model), seed=0)
    history = net.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.Adam(net.parameters()),
                      epochs=epochs, batch_size=batch, seed=0, verbose=0, communicator=comm)  # fmt: skip
    wall = since_launch()
    stats = getattr(comm, "stats", {})
    report(role="fit", rank=comm.rank, size=comm.size, wall=wall, ready=ready, loaded=loaded,
           fit=sum(history["seconds"]),
           exposed=stats.get("exposed_allreduce_s", 0.0), steps=stats.get("steps", 0),
           path=stats.get("bucket_path", -1), loss=history["loss"][-1])  # fmt: skip


def timed(commands: Sequence[list[str]]) -> dict:
    """Run ``commands`` at once; the result of rank 0 (of the slower one where they are several
    independent processes)."""
    results = launch(list(commands), 900)
    if len(commands) > 1:
        return max(results, key=lambda r: r["wall"])
    return next(r for r in results if r["rank"] == 0) | {"ranks": results}


def fit_runs(args: argparse.Namespace, pinned: bool) -> dict[str, list[dict]]:
    """Each configuration ``args.repeats`` times, interleaved."""
    fit = ["--role", "fit", "--epochs", str(args.epochs), "--model", args.model]
    fit += ["--samples", str(args.samples)] + ([] if pinned else ["--no-pin"])
    configs: dict[str, list[list[str]]] = {
        "1 process": [role_command(*fit)],
        "2 ranks": [role_command(*fit, ranks=2)],
    }
    if not pinned:  # a user's choice on a shared machine: let the launcher bind each rank to a core
        configs["2 ranks, -bind-to core"] = [role_command(*fit, ranks=2, bind=True)]
    if pinned:
        configs["2 ranks, no overlap"] = [role_command(*fit, "--no-overlap", ranks=2)]
    configs["ceiling: 2 independent halves"] = [role_command(*fit, "--part", str(p)) for p in (0, 1)]
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for repeat in range(args.repeats):
        for name, commands in configs.items():
            runs[name].append(timed(commands))
            print(f"  repeat {repeat + 1}, {name}: {runs[name][-1]['wall']:.2f} s", flush=True)
    return runs


def median(results: list[dict], key: str = "wall") -> float:
    return statistics.median(r[key] for r in results)


def exposed(results: list[dict]) -> str:
    """Each rank's exposed all-reduce: total s (ms per step), median over repeats."""
    if "ranks" not in results[0] or len(results[0]["ranks"]) < 2:
        return ""
    parts = []
    for rank in range(len(results[0]["ranks"])):
        mine = [next(r for r in run["ranks"] if r["rank"] == rank) for run in results]
        total, steps = median(mine, "exposed"), median(mine, "steps")
        parts.append(f"r{rank} {total:.2f} s ({total / max(steps, 1) * 1e3:.2f} ms/step)")
    return ", ".join(parts)


def run_fit(args: argparse.Namespace) -> None:
    print(f"BLAS: {blas_kernel()}; {os.cpu_count()} CPUs; whole fit: {args.epochs} epochs of the "
          f"{args.model}, {args.samples} images, Adam, global batch {GLOBAL_BATCH}; "
          f"median of {args.repeats}")  # fmt: skip
    before, _ = measure_ceiling()
    runs = fit_runs(args, pinned=True)
    after, _ = measure_ceiling()
    one = median(runs["1 process"])
    ceiling = one / median(runs["ceiling: 2 independent halves"])
    print(f"measured 2-process ceiling of this fit (independent halves): {ceiling:.2f}x; "
          f"GEMM ceiling (cores 0+1 vs 0): {before:.2f}x before, {after:.2f}x after")  # fmt: skip
    print("| run | s, start-up included (median) | each repeat | imports + MPI s | + data s | epochs s "
          "| speedup | speedup / ceiling | speedup / GEMM ceiling | exposed all-reduce |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    gemm = (before + after) / 2
    for name, results in runs.items():
        wall, each = median(results), " / ".join(f"{r['wall']:.2f}" for r in results)
        speed = one / wall
        ratios = "| | |" if name == "1 process" else f"| {speed / ceiling:.2f} | {speed / gemm:.2f} |"
        ready, loaded, epochs = (median(results, key) for key in ("ready", "loaded", "fit"))
        print(f"| {name} | {wall:.2f} | {each} | {ready:.2f} | {loaded - ready:.2f} | {epochs:.2f} "
              f"| {speed:.2f}x {ratios} {exposed(results)} |")  # fmt: skip


def run_busy(args: argparse.Namespace) -> None:
    print(f"BLAS: {blas_kernel()}; {os.cpu_count()} CPUs; a third CPU-bound process running, nothing "
          f"pinned; whole fit: {args.epochs} epochs of the {args.model}, {args.samples} images, global "
          f"batch {GLOBAL_BATCH}; median of {args.repeats}")  # fmt: skip
    hog = start([sys.executable, "-c", "while True: pass"])
    try:
        runs = fit_runs(args, pinned=False)
    finally:
        hog.kill()
        hog.wait()
    one, two = median(runs["1 process"]), min(median(runs["2 ranks"]), median(runs["2 ranks, -bind-to core"]))
    for name, results in runs.items():
        each = " / ".join(f"{r['wall']:.2f}" for r in results)
        ready, loaded, epochs = (median(results, key) for key in ("ready", "loaded", "fit"))
        print(f"{name}: {median(results):.2f} s (each: {each}; imports + MPI {ready:.2f}, data "
              f"{loaded - ready:.2f}, epochs {epochs:.2f}) {exposed(results)}")  # fmt: skip
    ceiling = one / median(runs["ceiling: 2 independent halves"])
    verdict = "faster" if two <= one else "SLOWER"
    print(f"2 ranks (the faster placement) vs 1 process, a busy third process: {one / two:.2f}x ({verdict}); "
          f"the ceiling with the busy process (2 independent halves, no communication): {ceiling:.2f}x, "
          f"so 2 ranks reach {one / two / ceiling:.2f} of it")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the whole fit")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="the model the fit trains")
    parser.add_argument("--samples", type=int, default=60_000, help="the first this many training images")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--busy", action="store_true", help="a third CPU-bound process, nothing pinned")
    parser.add_argument("--per-step", action="store_true", help="seconds per step, with PyTorch DDP")
    parser.add_argument("--steps", type=int, default=40, help="--per-step: steps per timed epoch")
    parser.add_argument("--role", choices=["gemm", "fit", "xpnn", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--library", default="numpy", help=argparse.SUPPRESS)
    parser.add_argument("--no-pin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-overlap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-shared-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=29517, help="--per-step: DDP's port on 127.0.0.1")
    args = parser.parse_args()
    if args.role == "gemm":
        return role_gemm(args.rank, 2.0, args.library)
    if args.role == "fit":
        overlap = not args.no_overlap
        return role_fit(args.epochs, args.part, not args.no_pin, overlap, args.model, args.samples)
    if args.role == "xpnn":
        return role_xpnn(args.steps, args.repeats, not args.no_shared_memory)
    if args.role == "torch":
        return role_torch(args.rank, args.size, args.steps, args.repeats, args.port)
    overrides = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if overrides:
        print(f"warning: {', '.join(overrides)} set: GEMMs run a slower kernel; unset them in the command")
    if args.per_step:
        return run_steps(args)
    return run_busy(args) if args.busy else run_fit(args)


if __name__ == "__main__":
    main()
