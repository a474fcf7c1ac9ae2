"""CNN training step: xpnn[numpy] vs PyTorch CPU vs JAX+optax under jax.jit, same run.

The CNN of issue 14: conv3x3 1->32 pad 1, ReLU, maxpool 2, conv3x3 32->64 pad 1, ReLU,
maxpool 2, dense 3136->128, ReLU, dense 10; Adam 1e-3; batch 128 of 28x28 images. Prints the
median time per training step of each framework (runs interleaved), the ratios, the GEMM
floor of the step (its im2col GEMM shapes at NumPy's measured GFLOP/s) and xpnn's time per
layer. Run pinned, with the OpenBLAS overrides unset (DESIGN.md, "Benchmarks"):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 python benchmarks/conv.py --threads 1
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0,1 python benchmarks/conv.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from optimizer_step import median_seconds  # beside this script
from threadpoolctl import threadpool_info, threadpool_limits

import xpnn
from xpnn.train.loop import train_step

BATCH = 128
Step = Callable[[], Any]


def xpnn_step(x: np.ndarray, y: np.ndarray) -> tuple[Step, xpnn.Sequential]:
    model = xpnn.Sequential(
        [xpnn.Conv2D(1, 32, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Conv2D(32, 64, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2), xpnn.Flatten(),
         xpnn.Dense(3136, 128), xpnn.ReLU(), xpnn.Dense(128, 10)],
        seed=0,
    )  # fmt: skip
    loss, optimizer = xpnn.SoftmaxCrossEntropy(), xpnn.Adam(model.parameters(), lr=1e-3)
    return (lambda: train_step(model, loss, optimizer, x, y)), model


def torch_step(x: np.ndarray, y: np.ndarray, threads: int) -> Step:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> Any:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        optimizer.step()
        return loss

    return step


def jax_step(x: np.ndarray, y: np.ndarray) -> Step:
    import jax
    import jax.numpy as jnp
    import optax

    keys = jax.random.split(jax.random.key(0), 4)
    shapes = [(32, 1, 3, 3), (64, 32, 3, 3), (3136, 128), (128, 10)]
    params = [
        (0.05 * jax.random.normal(k, s), jnp.zeros(s[0] if len(s) == 4 else s[1]))
        for k, s in zip(keys, shapes, strict=True)
    ]

    def conv_block(h: Any, w: Any, b: Any) -> Any:
        h = jax.lax.conv_general_dilated(
            h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        h = jax.nn.relu(h + b[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p: Any, xb: Any, yb: Any) -> Any:
        h = conv_block(conv_block(xb, *p[0]), *p[1]).reshape(xb.shape[0], -1)
        logits = jax.nn.relu(h @ p[2][0] + p[2][1]) @ p[3][0] + p[3][1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    optimizer = optax.adam(1e-3)
    state = {"params": params, "opt": optimizer.init(params)}

    @jax.jit
    def update(p: Any, opt_state: Any, xb: Any, yb: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def step() -> Any:
        state["params"], state["opt"], loss = update(state["params"], state["opt"], xj, yj)
        return loss.block_until_ready()

    return step


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
    """Seconds of the step's GEMMs alone at NumPy's measured speed, and (what, ms, GFLOP/s) each."""
    rows, total = [], 0.0
    rng = np.random.default_rng(0)
    for what, m, k, n in gemm_shapes():
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        seconds = median_seconds(lambda a=a, b=b: a @ b, repeats)
        rows.append((what, seconds * 1e3, 2 * m * k * n / seconds / 1e9))
        total += seconds
    return total, rows


def layer_times(model: xpnn.Sequential, x: np.ndarray, repeats: int) -> list[tuple[str, float, float]]:
    """(layer, forward ms, backward ms) of xpnn's step, each the median over ``repeats``."""
    forward: list[list[float]] = [[] for _ in model.layers]
    backward: list[list[float]] = [[] for _ in model.layers]
    loss = xpnn.SoftmaxCrossEntropy()
    labels = np.arange(BATCH) % 10
    for _ in range(repeats):
        h = x
        for i, layer in enumerate(model.layers):
            start = time.perf_counter()
            h = layer.forward(h)
            forward[i].append(time.perf_counter() - start)
        loss.forward(h, labels)
        d: Any = loss.backward()
        for i in reversed(range(len(model.layers))):
            model.layers[i].input_grad = i > 0
            start = time.perf_counter()
            d = model.layers[i].backward(d)
            backward[i].append(time.perf_counter() - start)
        model.zero_grad()
    return [(repr(layer), 1e3 * statistics.median(f), 1e3 * statistics.median(b))
            for layer, f, b in zip(model.layers, forward, backward, strict=True)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per framework and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    args = parser.parse_args()
    overridden = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ]
    rng = np.random.default_rng(0)
    x, y = rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)
    with threadpool_limits(args.threads):
        for pool in threadpool_info():
            print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
                  f"kernel {pool.get('architecture')}, "
                  f"{pool.get('num_threads')} threads ({pool.get('filepath')})")  # fmt: skip
        step, model = xpnn_step(x, y)
        steps = {"xpnn[numpy]": step, "torch": torch_step(x, y, args.threads), "jax.jit": jax_step(x, y)}
        seconds: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, run in steps.items():
                seconds[name].append(median_seconds(run, args.repeats))
        floor, gemms = gemm_floor(args.repeats)
        layers = layer_times(model, x, args.repeats)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    print(
        f"\ntraining step, batch {BATCH}, {args.threads} thread(s), "
        f"median of {args.rounds} rounds x {args.repeats} steps"
    )
    for name, value in median.items():
        print(f"  {name:<12} {value * 1e3:8.1f} ms")
    print(f"  GEMM floor   {floor * 1e3:8.1f} ms  (the step's im2col GEMMs alone, NumPy BLAS)")
    if overridden:
        print(f"ratios not printed: {', '.join(overridden)} is set (it slows NumPy's BLAS); unset it")
    else:
        print(f"xpnn / torch: {median['xpnn[numpy]'] / median['torch']:.2f}x   "
              f"xpnn / jax.jit: {median['xpnn[numpy]'] / median['jax.jit']:.2f}x   "
              f"xpnn / GEMM floor: {median['xpnn[numpy]'] / floor:.2f}x")  # fmt: skip
    print("\nGEMMs of the step:")
    for what, ms, gflops in gemms:
        print(f"  {what:<15} {ms:7.2f} ms  {gflops:6.1f} GFLOP/s")
    print("\nxpnn per layer (forward ms, backward ms):")
    for name, f, b in layers:
        print(f"  {name:<42} {f:7.2f} {b:7.2f}")
    print(f"  {'total':<42} {sum(f for _, f, _ in layers):7.2f} {sum(b for _, _, b in layers):7.2f}")


if __name__ == "__main__":
    main()
