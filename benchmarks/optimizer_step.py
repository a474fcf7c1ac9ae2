"""Time one optimizer step over a ~1M-parameter model: xpnn on NumPy vs torch.optim (foreach=True).

Both run on the same machine with one thread (threadpoolctl for NumPy's BLAS, torch.set_num_threads(1)),
float32, the median of ``--repeats`` timed steps after a warm-up. Prints a table; ratio > 1 means
xpnn is slower than torch.

    python benchmarks/optimizer_step.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import xpnn

SHAPES = [(784, 1024), (1024,), (1024, 256), (256,), (256, 10), (10,)]  # 1,068,810 parameters
CONFIGS: dict[str, tuple[type, type, dict, dict]] = {
    "SGD": (xpnn.SGD, torch.optim.SGD, dict(lr=0.01), dict(lr=0.01)),
    "SGD momentum": (xpnn.SGD, torch.optim.SGD, dict(lr=0.01, momentum=0.9), dict(lr=0.01, momentum=0.9)),
    "AdaGrad": (xpnn.AdaGrad, torch.optim.Adagrad, dict(lr=0.01), dict(lr=0.01, eps=1e-7)),
    "RMSProp": (xpnn.RMSProp, torch.optim.RMSprop, dict(lr=0.01), dict(lr=0.01, alpha=0.9, eps=1e-7)),
    "Adam": (xpnn.Adam, torch.optim.Adam, dict(lr=0.001), dict(lr=0.001)),
    "AdamW": (xpnn.AdamW, torch.optim.AdamW, dict(lr=0.001), dict(lr=0.001)),
    "Adam + clip_global_norm": (xpnn.Adam, torch.optim.Adam, dict(lr=0.001, clip_global_norm=1.0), None),
}


def median_seconds(step: Callable[[], None], repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def xpnn_step(kind: type, hp: dict, rng: np.random.Generator) -> Callable[[], None]:
    params = [xpnn.Parameter(rng.standard_normal(s, dtype=np.float32)) for s in SHAPES]
    for p in params:
        p.grad = rng.standard_normal(p.shape, dtype=np.float32)
    return kind(params, **hp).step


def torch_step(kind: type, hp: dict, clip: bool, rng: np.random.Generator) -> Callable[[], None]:
    tensors = [torch.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for s in SHAPES]
    for x in tensors:
        x.grad = torch.tensor(rng.standard_normal(tuple(x.shape), dtype=np.float32))
    opt = kind(tensors, foreach=True, **hp)
    if not clip:
        return opt.step

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(tensors, 1.0, foreach=True)
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = sum(int(np.prod(s)) for s in SHAPES)
    print(
        f"one step over {n:,} float32 parameters ({len(SHAPES)} tensors), 1 thread, median of {args.repeats}"
    )
    print(f"numpy {np.__version__}, torch {torch.__version__}")
    print(f"{'optimizer':<26}{'xpnn-numpy ms':>15}{'torch ms':>12}{'ratio':>9}")
    with threadpool_limits(limits=1):
        for name, (ours, theirs, hp, torch_hp) in CONFIGS.items():
            mine = median_seconds(xpnn_step(ours, hp, rng), args.repeats)
            clip = torch_hp is None
            ref = median_seconds(torch_step(theirs, torch_hp or {"lr": hp["lr"]}, clip, rng), args.repeats)
            print(f"{name:<26}{mine * 1e3:>15.2f}{ref * 1e3:>12.2f}{mine / ref:>9.2f}")


if __name__ == "__main__":
    main()
