"""CNN training step: xpnn[numpy] vs PyTorch CPU vs JAX+optax under jax.jit, same run, 1 and 2 threads.

The CNN of issue 14 (:mod:`_cnn_peers`), batch 128. Every step trains on a FRESH batch, the
next of a shuffled Fashion-MNIST epoch (random images where the data set is absent), as a real
epoch does: nothing of the last step's input is in the cache. Each round gives every framework
the same ``--repeats`` batches, frameworks taking turns (who goes first rotates); the table
gives the median and min step time (wall clock) and the median process CPU time per step, and
xpnn's time over each peer's, and each one's page faults per step (the process's minor faults:
memory the allocator gave back to the kernel and maps again). xpnn's step first raises glibc's
thresholds as ``fit`` does (``xpnn/kernels/memory.py``), for the whole process, so the peers'
steps run under them too. Then the GEMM floor (the step's im2col GEMM shapes at NumPy's
measured GFLOP/s) and xpnn's time per layer. Each thread count runs in its own process pinned
to that many cores (XLA reads its thread flags once and ignores BLAS limits):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv.py               # 1 and 2
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = 128
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
Batch = tuple[np.ndarray, np.ndarray]


def load_images() -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST's training images (uint8, (N, 1, 28, 28)) and labels, or random ones."""
    try:
        import xpnn

        (x, y), _ = xpnn.load_fashion_mnist()
        return np.asarray(x, np.uint8).reshape(-1, 1, 28, 28), np.asarray(y, np.int64), "Fashion-MNIST"
    except Exception as error:  # the benchmark still runs where the data set is absent
        print(f"(Fashion-MNIST not loaded: {error}; using random images)")
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (60000, 1, 28, 28), np.uint8), rng.integers(0, 10, 60000), "random"


class Epoch:
    """Fresh batches in the order of shuffled epochs: float32 images in [0, 1], int64 labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y, self.rng, self.order, self.at = x, y, np.random.default_rng(0), np.empty(0, int), 0

    def take(self, count: int) -> list[Batch]:
        batches = []
        for _ in range(count):
            if self.at + BATCH > len(self.order):
                self.order, self.at = self.rng.permutation(len(self.x)), 0
            idx = self.order[self.at : self.at + BATCH]
            self.at += BATCH
            batches.append((self.x[idx].astype(np.float32) * np.float32(1 / 255), self.y[idx]))
        return batches


def time_rounds(steps: dict[str, Callable[..., Any]], epoch: Epoch, rounds: int, repeats: int
                ) -> dict[str, tuple[list[float], list[float], list[int]]]:  # fmt: skip
    """Per framework, the wall and process-CPU seconds and the minor page faults of every timed
    step (memory the allocator gave back to the kernel and takes again: a cost of its own)."""
    for step in steps.values():  # warm-up: compilation, first-touch of buffers
        for x, y in epoch.take(3):
            step(x, y)
    times: dict[str, tuple[list[float], list[float], list[int]]] = {name: ([], [], []) for name in steps}
    names = list(steps)
    for r in range(rounds):
        batches = epoch.take(repeats)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for x, y in batches:
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start, start_cpu = time.perf_counter(), time.process_time()
                steps[name](x, y)
                times[name][0].append(time.perf_counter() - start)
                times[name][1].append(time.process_time() - start_cpu)
                times[name][2].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return times


def gemm_shapes() -> list[tuple[str, int, int, int]]:
    """(what, m, k, n) of every GEMM in an im2col training step (first conv: no dL/dx)."""
    p1, p2 = BATCH * 28 * 28, BATCH * 14 * 14
    return [
        ("conv1 forward", 32, 9, p1), ("conv1 dW", 32, p1, 9),
        ("conv2 forward", 64, 288, p2), ("conv2 dW", 64, p2, 288), ("conv2 dcols", 288, 64, p2),
        ("dense1 forward", BATCH, 3136, 128), ("dense1 dW", 3136, BATCH, 128),
        ("dense1 dx", BATCH, 128, 3136),
        ("dense2 forward", BATCH, 128, 10), ("dense2 dW", 128, BATCH, 10), ("dense2 dx", BATCH, 10, 128),
    ]  # fmt: skip


def gemm_floor(repeats: int) -> tuple[float, list[tuple[str, float, float]]]:
    """Seconds of the step's GEMMs alone at NumPy's measured speed (the least of ``repeats``
    products each), and (what, ms, GFLOP/s) each."""
    rows, total = [], 0.0
    rng = np.random.default_rng(0)
    for what, m, k, n in gemm_shapes():
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        out = a @ b
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            seconds.append(time.perf_counter() - start)
        rows.append((what, min(seconds) * 1e3, 2 * m * k * n / min(seconds) / 1e9))
        total += min(seconds)
    return total, rows


def layer_times(model: Any, batches: list[Batch]) -> list[tuple[str, float, float]]:
    """(layer, forward ms, backward ms) of xpnn's step on fresh batches, median of each."""
    import xpnn

    forward: list[list[float]] = [[] for _ in model.layers]
    backward: list[list[float]] = [[] for _ in model.layers]
    loss = xpnn.SoftmaxCrossEntropy()
    for x, y in batches:
        h = x
        for i, layer in enumerate(model.layers):
            start = time.perf_counter()
            h = layer.forward(h)
            forward[i].append(time.perf_counter() - start)
        loss.forward(h, y)
        d: Any = loss.backward()
        for i in reversed(range(len(model.layers))):
            model.layers[i].input_grad = i > 0
            start = time.perf_counter()
            d = model.layers[i].backward(d)
            backward[i].append(time.perf_counter() - start)
        model.zero_grad()
    return [(repr(layer), 1e3 * statistics.median(f), 1e3 * statistics.median(b))
            for layer, f, b in zip(model.layers, forward, backward, strict=True)]  # fmt: skip


def table(times: dict[str, tuple[list[float], list[float], list[int]]], threads: int) -> list[str]:
    """Markdown rows: median / min wall ms, median CPU ms, xpnn's time over each row's, and the
    median page faults per step."""
    ref = times["xpnn[numpy]"]
    lines = []
    for name, (wall, cpu, faults) in times.items():
        med, low, cpu_med = statistics.median(wall), min(wall), statistics.median(cpu)
        ratios = (statistics.median(ref[0]) / med, min(ref[0]) / low, statistics.median(ref[1]) / cpu_med)
        shown = " | ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {threads} | {name} | {med * 1e3:.1f} | {low * 1e3:.1f} | {cpu_med * 1e3:.1f} | "
                     f"{shown} | {statistics.median(faults):.0f} |")  # fmt: skip
    return lines


def run_threads(args: argparse.Namespace, threads: int) -> None:
    """The whole measurement for one thread count, in this process pinned to ``threads`` cores."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    if threads == 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD_XLA}".strip()
    from _cnn_peers import jax_step, torch_step, xpnn_step  # beside this script; after XLA_FLAGS
    from threadpoolctl import threadpool_info, threadpool_limits

    x, y, source = load_images()
    with threadpool_limits(threads):
        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})"
                for p in threadpool_info() if p.get("user_api") == "blas"]  # fmt: skip
        print(f"\n## {threads} thread(s): cores {sorted(os.sched_getaffinity(0))}, BLAS {', '.join(blas)}, "
              f"data {source}, load average before {os.getloadavg()}")  # fmt: skip
        step, model = xpnn_step()
        steps = {"xpnn[numpy]": step, "torch": torch_step(threads)}
        if not args.no_jax:
            steps["jax.jit"] = jax_step()
        epoch = Epoch(x, y)
        times = time_rounds(steps, epoch, args.rounds, args.repeats)
        floor, gemms = gemm_floor(args.repeats)
        layers = layer_times(model, epoch.take(args.repeats))
    print(f"load average after {os.getloadavg()}; {args.rounds} rounds x {args.repeats} fresh batches")
    print(
        "\n| threads | framework | median ms | min ms | CPU ms (median) | xpnn / this (median) "
        "| xpnn / this (min) | xpnn / this (CPU) | page faults / step |"
        "\n|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(table(times, threads)))
    xpnn_median = statistics.median(times["xpnn[numpy]"][0])
    print(f"| {threads} | GEMM floor | {floor * 1e3:.1f} | | | {xpnn_median / floor:.2f} | | | |")
    if any(name in os.environ for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        print("OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set: NumPy's GEMMs run a slower kernel; unset them")
    print("\nGEMMs of the step: " + "; ".join(f"{w} {ms:.2f} ms ({g:.0f} GFLOP/s)" for w, ms, g in gemms))
    print("\nxpnn per layer (forward ms, backward ms, median):")
    for name, f, b in layers:
        print(f"  {name:<42} {f:7.2f} {b:7.2f}")
    print(f"  {'total':<42} {sum(f for _, f, _ in layers):7.2f} {sum(b for _, _, b in layers):7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="one process each")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per framework and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--no-jax", action="store_true", help="leave out the JAX peer")
    args = parser.parse_args()
    if len(args.threads) == 1:
        run_threads(args, args.threads[0])
        return
    for threads in args.threads:  # one process per thread count: XLA reads its flags once
        own = ["--threads", str(threads), "--repeats", str(args.repeats), "--rounds", str(args.rounds)]
        subprocess.run([sys.executable, __file__, *own, *["--no-jax"] * args.no_jax], check=True)


if __name__ == "__main__":
    main()
