"""The GEMMs of a training step alone: the floor no framework on that BLAS goes below.

A ReLU MLP's step makes, per Dense layer ``a -> b`` at batch ``B``, the forward product
``x (B, a) @ W (a, b)``, the weight gradient ``x.T (a, B) @ dy (B, b)`` and, for every layer
but the first, the input gradient ``dy (B, b) @ W.T (b, a)``: 2*B*a*b flops each. Everything
else a step does (bias, ReLU, softmax, the optimizer) is what a framework adds to this floor.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np

Epoch = Callable[[np.ndarray], tuple[float, float]]


def step_gemms(
    widths: list[int], batch: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, left, right)`` of every GEMM of one step, float32, with the step's layouts
    (the transposes are views of C-contiguous arrays, as in a framework's backward)."""
    acts = [rng.random((batch, width), dtype=np.float32) for width in widths]
    weights = [rng.random(shape, dtype=np.float32) for shape in itertools.pairwise(widths)]
    gemms = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        gemms.append((f"fwd {batch}x{a} @ {a}x{b}", acts[i], weights[i]))
        gemms.append((f"dW {a}x{batch} @ {batch}x{b}", acts[i].T, acts[i + 1]))
        if i > 0:
            gemms.append((f"dx {batch}x{b} @ {b}x{a}", acts[i + 1], weights[i].T))
    return gemms


def _seconds_per_call(left: np.ndarray, right: np.ndarray, rounds: int = 9) -> tuple[float, float]:
    """Wall and this thread's CPU seconds of one product: the least over ``rounds`` of the mean
    over a block (~5 ms). A floor, so the round least disturbed by other processes counts; the
    calling thread's CPU time excludes the time another process held the core (BLAS's own
    threads work alongside it, so it stays near the wall time of an undisturbed product)."""
    out = np.empty((left.shape[0], right.shape[1]), np.float32)
    start = time.perf_counter()
    np.matmul(left, right, out=out)
    calls = max(1, int(0.005 / max(time.perf_counter() - start, 1e-7)))
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            np.matmul(left, right, out=out)
        wall.append((time.perf_counter() - start) / calls)
        cpu.append((time.thread_time() - start_cpu) / calls)
    return min(wall), min(cpu)


def gemm_floor(widths: list[int], batch: int, steps: int) -> tuple[float, float, list[str]]:
    """Epoch seconds of the step's GEMMs at the speed NumPy's BLAS measured for each shape just
    now (wall, and the calling thread's CPU time), and one ``name: GFLOP/s`` per shape (from
    the CPU time: on a shared machine the wall time measures the other processes too)."""
    wall_total, cpu_total, report = 0.0, 0.0, []
    for name, left, right in step_gemms(widths, batch, np.random.default_rng(0)):
        wall, cpu = _seconds_per_call(left, right)
        flops = 2.0 * left.shape[0] * left.shape[1] * right.shape[1]
        wall_total, cpu_total = wall_total + wall, cpu_total + cpu
        report.append(f"{name}: {flops / cpu / 1e9:.0f}")
    return wall_total * steps, cpu_total * steps, report


def gemm_epoch(framework: str, widths: list[int], batch: int) -> Epoch:
    """Only the GEMMs of one epoch on fixed arrays of the model's shapes, in NumPy (its BLAS)
    or torch (its BLAS): the floor as a timed loop, beside the other frameworks' epochs."""
    pairs = [(left, right) for _, left, right in step_gemms(widths, batch, np.random.default_rng(0))]
    if framework == "torch":
        import torch

        pairs = [(torch.from_numpy(left), torch.from_numpy(right)) for left, right in pairs]

    def epoch(order: np.ndarray) -> tuple[float, float]:
        for _ in range(len(order) // batch):
            for left, right in pairs:
                left @ right
        return float("nan"), float("nan")

    return epoch
