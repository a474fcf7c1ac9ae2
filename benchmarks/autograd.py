"""The tape's cost: xpnn.Tensor vs PyTorch eager, and Modules vs the same Sequential, same run.

Four comparisons, each with its target (issue 22), runners alternating within each round:
  (a) chain  a chain of 200 elementwise operations on a (64, 64) float32 array, forward and
             backward: xpnn.Tensor vs PyTorch eager (target: xpnn <= 0.70x torch's time)
  (b) mlp    the showcase MLP 784-256-128-10 (ReLU, Adam 1e-3, batch 128) written as an
             xpnn.Module, with F.linear / F.relu and with Dense / ReLU modules, vs the same
             xpnn.Sequential (target: <= 1.05x)
  (c) cnn    the CNN of benchmarks/conv.py written as an xpnn.Module vs as a Sequential
             (target: <= 1.05x)
  (d) torch  the Sequential MLP step of (b) vs PyTorch's (target: <= 0.70x)
Every model pair starts from the same initial weights and trains on the same Fashion-MNIST
batches (random data of that shape when the data set is absent); before timing, the script
checks that Module and Sequential give the same losses. Each round times a block of steps per
runner (who goes first rotates); the table gives the median and the min over the rounds, and
the paired ratio: the median over the rounds of each round's own ratio. The target is judged on
the paired ratio: on a shared machine whose speed drifts (a slow minute makes whole rounds 30%
slower), the two runners of one round ran moments apart, while the medians of two separate
lists can fall in different periods.

One thread, pinned, OpenBLAS's overrides unset (DESIGN.md, "Benchmarks"):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 python benchmarks/autograd.py
    ... benchmarks/autograd.py --cases chain --rounds 21     # one comparison, more rounds
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.train.loop import train_step

Step = Callable[[int], Any]  # step(i): one unit of work on batch i
WIDTHS = [784, 256, 128, 10]
BATCH = 128
TARGETS = {"chain": 0.70, "mlp": 1.05, "cnn": 1.05, "torch": 0.70}


# -- (a) the elementwise chain ----------------------------------------------------------------
def chain_ops(x: Any, c: Any) -> list[Callable[[Any], Any]]:
    """One cycle of five elementwise operations: by a Python number, with a constant array, a
    unary function, with the leaf itself (a tensor-tensor product), and by a number again."""
    return [lambda h: h * 0.9, lambda h: h + c, lambda h: h.tanh(), lambda h: h * x, lambda h: h - 0.1]


def xpnn_chain(a: np.ndarray, c: np.ndarray, length: int) -> Step:
    def run(_: int) -> Any:
        x = xpnn.Tensor(a, requires_grad=True)
        h = x
        for op in itertools.islice(itertools.cycle(chain_ops(x, c)), length):
            h = op(h)
        h.sum().backward()
        return x.grad

    return run


def torch_chain(a: np.ndarray, c: np.ndarray, length: int) -> Step:
    ct = torch.from_numpy(c)

    def run(_: int) -> Any:
        x = torch.from_numpy(a).requires_grad_()
        h = x
        for op in itertools.islice(itertools.cycle(chain_ops(x, ct)), length):
            h = op(h)
        h.sum().backward()
        return x.grad

    return run


# -- (b) and (d): the MLP -----------------------------------------------------------------------
def sequential_mlp() -> xpnn.Sequential:
    layers: list[xpnn.Layer] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(WIDTHS)):
        layers += [xpnn.Dense(n_in, n_out)] + ([xpnn.ReLU()] if i < len(WIDTHS) - 2 else [])
    return xpnn.Sequential(layers, seed=0)


class FunctionalMLP(xpnn.Module):
    """The MLP as a course writes it: Parameters and ``F.linear`` / ``F.relu``."""

    def __init__(self, reference: xpnn.Sequential) -> None:
        super().__init__()
        dense = [layer for layer in reference if isinstance(layer, xpnn.Dense)]
        self.weights = [xpnn.Parameter(d.weight.value.copy(), "weight") for d in dense]
        self.biases = [xpnn.Parameter(d.bias.value.copy(), "bias") for d in dense]

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = F.linear(x, w, b)
            x = F.relu(x) if i < last else x
        return x


class LayerMLP(xpnn.Module):
    """The MLP as a PyTorch user writes it: Dense layers and one ReLU module, called in forward."""

    def __init__(self, reference: xpnn.Sequential) -> None:
        super().__init__()
        self.dense = [xpnn.Dense(d.n_in, d.n_out) for d in reference if isinstance(d, xpnn.Dense)]
        for mine, theirs in zip(self.dense, [d for d in reference if isinstance(d, xpnn.Dense)], strict=True):
            mine.weight.value, mine.bias.value = theirs.weight.value.copy(), theirs.bias.value.copy()
        self.relu = xpnn.ReLU()

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        for layer in self.dense[:-1]:
            x = self.relu(layer(x))
        return self.dense[-1](x)


def xpnn_trainer(model: xpnn.Module, batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Step, list[Any]]:
    """``step(i)``: one ``fit`` step (forward, loss, backward, Adam) on batch ``i``; the losses."""
    loss, optimizer = xpnn.SoftmaxCrossEntropy(validate=False), xpnn.Adam(model.parameters(), lr=1e-3)
    losses: list[Any] = []

    def step(i: int) -> Any:
        xb, yb = batches[i % len(batches)]
        value, _ = train_step(model, loss, optimizer, xb, yb)
        losses.append(value)
        return value

    return step, losses


def torch_mlp(
    reference: xpnn.Sequential, batches: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[Step, list[Any]]:
    """PyTorch's own loop (nn.Sequential, cross_entropy, torch.optim.Adam) from the same weights."""
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(WIDTHS)):
        layers += [torch.nn.Linear(n_in, n_out)] + ([torch.nn.ReLU()] if i < len(WIDTHS) - 2 else [])
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
        for linear, dense in zip(linears, [d for d in reference if isinstance(d, xpnn.Dense)], strict=True):
            linear.weight.copy_(torch.from_numpy(backend.to_host(dense.weight.value).T))
            linear.bias.copy_(torch.from_numpy(backend.to_host(dense.bias.value)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in batches]
    losses: list[Any] = []

    def step(i: int) -> Any:
        xb, yb = data[i % len(data)]
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        return loss

    return step, losses


# -- (c) the CNN of benchmarks/conv.py -----------------------------------------------------------
class ModuleCNN(xpnn.Module):
    """The same CNN as a Module: layers as attributes, ReLU and the flattening in ``forward``
    (one MaxPool2D called twice), initial weights copied from ``reference``."""

    def __init__(self, reference: xpnn.Sequential) -> None:
        super().__init__()
        self.conv1, self.conv2 = xpnn.Conv2D(1, 32, 3, padding=1), xpnn.Conv2D(32, 64, 3, padding=1)
        self.pool = xpnn.MaxPool2D(2)
        self.dense1, self.dense2 = xpnn.Dense(3136, 128), xpnn.Dense(128, 10)
        for mine, theirs in zip(self.parameters(), reference.parameters(), strict=True):
            mine.value = theirs.value.copy()

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        h = self.pool(F.relu(self.conv1(x)))
        h = self.pool(F.relu(self.conv2(h)))
        h = F.relu(self.dense1(h.reshape(h.shape[0], -1)))
        return self.dense2(h)


# -- timing -----------------------------------------------------------------------------------
def load_batches(count: int, images: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """``count`` batches of 128 Fashion-MNIST training images (float32 in [0, 1]) and labels."""
    try:
        (x, y), _ = xpnn.load_fashion_mnist()
        source = "Fashion-MNIST"
    except Exception as error:  # the benchmark still runs where the data set is absent
        print(f"(Fashion-MNIST not loaded: {error}; using random data of the same shape)")
        rng = np.random.default_rng(0)
        x, y, source = (
            rng.integers(0, 256, (60000, 784), dtype=np.uint8),
            rng.integers(0, 10, 60000),
            "random",
        )
    order = np.random.default_rng(0).permutation(len(x))[: count * BATCH].reshape(count, BATCH)
    shape = (BATCH, 1, 28, 28) if images else (BATCH, 784)
    return [
        ((np.asarray(x[idx], np.float32) / 255.0).reshape(shape), np.asarray(y[idx], np.int64))
        for idx in order
    ], source


@dataclass
class Timing:
    """Seconds per step of one runner, one entry per round: wall clock and process CPU time
    (on a shared machine, where other processes take turns on the core, CPU time stays near
    the uncontended time while wall time does not)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def time_rounds(runners: dict[str, Step], rounds: int, steps: int) -> dict[str, Timing]:
    """Each runner's seconds per step in each round (a block of ``steps`` steps per runner and
    round, after one warm-up block; who goes first rotates)."""
    for run in runners.values():
        for i in range(steps):
            run(i)
    times = {name: Timing() for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = runners[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for i in range(steps):
                run(i)
            times[name].wall.append((time.perf_counter() - start) / steps)
            times[name].cpu.append((time.process_time() - start_cpu) / steps)
    return times


def same_losses(a: list[Any], b: list[Any]) -> float:
    """The largest relative difference between two runs' loss sequences."""
    x, y = (np.array([float(backend.to_host(v)) for v in losses]) for losses in (a, b))
    return float(np.max(np.abs(x - y) / np.abs(y)))


def check_same_work(make: Callable[[], dict[str, tuple[Step, list[Any]]]], reference: str, steps: int) -> str:
    """Fresh runners from the same weights, ``steps`` steps each on the same batches: the worst
    relative loss difference of each against ``reference`` (float32 rounding only)."""
    runners = make()
    for step, _ in runners.values():
        for i in range(steps):
            step(i)
    ref = runners[reference][1]
    return ", ".join(
        f"{name} {same_losses(losses, ref):.1e}" for name, (_, losses) in runners.items() if name != reference
    )


def ratio_row(
    case: str, name: str, times: Timing, ref: Timing, unit: float, label: str, target: float
) -> str:
    """A runner's row: its time over ``ref``'s (median over median, min over min, CPU median over
    CPU median, and the paired ratio: the median of the rounds' own ratios); the verdict is the
    paired ratio's against ``target``."""
    median, low, cpu = statistics.median(times.wall), min(times.wall), statistics.median(times.cpu)
    paired = statistics.median(t / r for t, r in zip(times.wall, ref.wall, strict=True))
    ratios = (median / statistics.median(ref.wall), low / min(ref.wall), cpu / statistics.median(ref.cpu))
    verdict = f"<= {target:.2f}: {'met' if paired <= target else 'NOT met'}"
    return (f"| {case} | {name} | {median * unit:.2f} | {low * unit:.2f} | {cpu * unit:.2f} | {label} | "
            f"{ratios[0]:.2f} | {ratios[1]:.2f} | {ratios[2]:.2f} | {paired:.2f} | {verdict} |")  # fmt: skip


def plain_row(case: str, name: str, times: Timing, unit: float, label: str) -> str:
    median, low, cpu = statistics.median(times.wall), min(times.wall), statistics.median(times.cpu)
    return (f"| {case} | {name} | {median * unit:.2f} | {low * unit:.2f} | {cpu * unit:.2f} | {label} | "
            "1.00 | 1.00 | 1.00 | 1.00 | reference |")  # fmt: skip


# -- the cases ----------------------------------------------------------------------------------
def case_chain(args: argparse.Namespace) -> list[str]:
    rng = np.random.default_rng(0)
    a, c = rng.random((64, 64), dtype=np.float32), rng.random((64, 64), dtype=np.float32)
    xg = backend.to_host(xpnn_chain(a, c, args.chain_length)(0))
    tg = torch_chain(a, c, args.chain_length)(0).numpy()
    worst = np.max(np.abs(xg - tg) / (np.abs(tg) + 1e-30))
    print(f"(a) chain of {args.chain_length} ops: xpnn's gradient and torch's agree to {worst:.1e}")
    runners = {"torch": torch_chain(a, c, args.chain_length), "xpnn": xpnn_chain(a, c, args.chain_length)}
    times = time_rounds(runners, args.rounds, args.chain_repeats)
    unit, label = 1e6 / args.chain_length, "us / op"
    return [
        plain_row("(a) chain", "PyTorch eager", times["torch"], unit, label),
        ratio_row("(a) chain", "xpnn.Tensor", times["xpnn"], times["torch"], unit, label, TARGETS["chain"]),
    ]


def case_mlp(args: argparse.Namespace, with_torch: bool, ratios_vs_torch: bool) -> list[str]:
    batches, source = load_batches(args.batches, images=False)

    def make() -> dict[str, tuple[Step, list[Any]]]:
        reference = sequential_mlp()
        runners = {"Sequential": xpnn_trainer(reference, batches)}
        runners["Module (F.linear, F.relu)"] = xpnn_trainer(FunctionalMLP(reference), batches)
        runners["Module (Dense, ReLU modules)"] = xpnn_trainer(LayerMLP(reference), batches)
        if with_torch:
            runners["PyTorch"] = torch_mlp(reference, batches)
        return runners

    print(f"(b/d) MLP {'-'.join(map(str, WIDTHS))} on {source}: worst relative loss difference to the "
          f"Sequential over 20 steps: {check_same_work(make, 'Sequential', 20)}")  # fmt: skip
    runners = {name: step for name, (step, _) in make().items()}
    times = time_rounds(runners, args.rounds, args.mlp_steps)
    unit, label, seq = 1e3, "ms / step", times["Sequential"]
    lines = [plain_row("(b) mlp", "xpnn.Sequential", seq, unit, label)]
    for name in ("Module (F.linear, F.relu)", "Module (Dense, ReLU modules)"):
        lines.append(ratio_row("(b) mlp", name, times[name], seq, unit, label, TARGETS["mlp"]))
    if with_torch:
        lines.append(
            plain_row("(d) torch", "PyTorch (nn.Sequential, torch.optim.Adam)", times["PyTorch"], unit, label)
        )
        if ratios_vs_torch:
            lines.append(
                ratio_row(
                    "(d) torch", "xpnn.Sequential", seq, times["PyTorch"], unit, label, TARGETS["torch"]
                )
            )
        else:
            lines.append(
                "| (d) torch | xpnn.Sequential | - | - | - | - | - | - | - | - "
                "| no ratio: OPENBLAS_CORETYPE is set |"
            )
    return lines


def case_cnn(args: argparse.Namespace) -> list[str]:
    batches, source = load_batches(args.batches, images=True)

    def make() -> dict[str, tuple[Step, list[Any]]]:
        from _cnn_peers import xpnn_model  # beside this script: the CNN of benchmarks/conv.py

        reference = xpnn_model()
        return {
            "Sequential": xpnn_trainer(reference, batches),
            "Module": xpnn_trainer(ModuleCNN(reference), batches),
        }

    print(f"(c) CNN of benchmarks/conv.py on {source}: worst relative loss difference to the Sequential "
          f"over 5 steps: {check_same_work(make, 'Sequential', 5)}")  # fmt: skip
    runners = {name: step for name, (step, _) in make().items()}
    times = time_rounds(runners, args.rounds, args.cnn_steps)
    unit, label, seq = 1e3, "ms / step", times["Sequential"]
    module = ratio_row(
        "(c) cnn", "Module (layers, F.relu)", times["Module"], seq, unit, label, TARGETS["cnn"]
    )
    return [plain_row("(c) cnn", "xpnn.Sequential", seq, unit, label), module]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    cases = ["chain", "mlp", "cnn", "torch"]
    parser.add_argument("--cases", nargs="+", choices=cases, default=cases, help="(d) torch runs with (b)")
    parser.add_argument("--rounds", type=int, default=9, help="timed blocks per runner (median, min)")
    parser.add_argument("--chain-length", type=int, default=200, help="elementwise operations in the chain")
    parser.add_argument("--chain-repeats", type=int, default=20, help="chains per timed block")
    parser.add_argument("--mlp-steps", type=int, default=50, help="MLP training steps per timed block")
    parser.add_argument("--cnn-steps", type=int, default=4, help="CNN training steps per timed block")
    parser.add_argument("--batches", type=int, default=16, help="distinct batches the steps cycle through")
    args = parser.parse_args()
    overridden = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ]
    cores = sorted(os.sched_getaffinity(0))
    torch.set_num_threads(1)
    with threadpool_limits(1):
        for pool in threadpool_info():
            kernel, threads = pool.get("architecture"), pool.get("num_threads")
            print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} kernel {kernel}, "
                  f"{threads} thread(s) ({pool.get('filepath')})")  # fmt: skip
        print(f"xpnn {xpnn.__version__}, numpy {np.__version__}, torch {torch.__version__}; cores {cores}"
              + ("" if len(cores) == 1 else " (not pinned: run under `taskset -c 0`)"))  # fmt: skip
        if overridden:
            print(f"{', '.join(overridden)} set: NumPy's GEMMs run a slower kernel, so (d) prints no ratio; "
                  "rerun as `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...`")  # fmt: skip
        lines: list[str] = []
        if "chain" in args.cases:
            lines += case_chain(args)
        if "mlp" in args.cases or "torch" in args.cases:
            lines += case_mlp(args, with_torch="torch" in args.cases, ratios_vs_torch=not overridden)
        if "cnn" in args.cases:
            lines += case_cnn(args)
    print(f"\none thread, median and min of {args.rounds} alternating rounds; ratio = this row's time over "
          "the reference row's above it (< 1: faster)\n")  # fmt: skip
    print("| case | runner | median | min | CPU median | unit | ratio (median) | ratio (min) | ratio (CPU) "
          "| ratio (paired) | target (on the paired ratio) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
