"""The GEMMs of a training step alone: the floor no framework on that BLAS goes below.

A ReLU MLP's step makes, per Dense layer ``a -> b`` at batch ``B``, the forward product
``x (B, a) @ W (a, b)``, the weight gradient ``x.T (a, B) @ dy (B, b)`` and, for every layer
but the first, the input gradient ``dy (B, b) @ W.T (b, a)``: 2*B*a*b flops each. Everything
else a step does (bias, ReLU, softmax, the optimizer) is what a framework adds to this floor.
"""

from __future__ import annotations

import itertools
import statistics
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


def _seconds_per_call(left: np.ndarray, right: np.ndarray, rounds: int = 7) -> float:
    """Median over ``rounds`` of the mean time of a block of products (~5 ms a block)."""
    out = np.empty((left.shape[0], right.shape[1]), np.float32)
    start = time.perf_counter()
    np.matmul(left, right, out=out)
    calls = max(1, int(0.005 / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            np.matmul(left, right, out=out)
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def gemm_floor(widths: list[int], batch: int, steps: int) -> tuple[float, list[str]]:
    """Epoch seconds of the step's GEMMs at the GFLOP/s NumPy's BLAS measured for each shape
    just now, and one ``name: GFLOP/s`` line per shape."""
    total, report = 0.0, []
    for name, left, right in step_gemms(widths, batch, np.random.default_rng(0)):
        seconds = _seconds_per_call(left, right)
        flops = 2.0 * left.shape[0] * left.shape[1] * right.shape[1]
        total += seconds
        report.append(f"{name}: {flops / seconds / 1e9:.0f}")
    return total * steps, report


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
