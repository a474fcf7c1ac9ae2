"""The DL-from-scratch course's autodiff programs on xpnn's tape, on any backend, with a plot.

The course builds everything on ``loss.backward()``: a ``Parameter`` is a ``Tensor``, a
``Linear`` layer is ``X @ W + b``, sigmoid is ``1 / (1 + exp(-x))`` and the mean squared error
is ``((pred - y) ** 2).sum() / n``, all written with Tensor operators and differentiated by
the tape (no backward written anywhere in this file). Each problem is trained from the same
initial weights with four update rules: the course's first loop written by hand under
``xpnn.no_grad()``, then xpnn's SGD with momentum, SGD with Nesterov momentum, and Adam.

    python examples/autodiff_from_scratch.py                       # NumPy, float32
    python examples/autodiff_from_scratch.py --backend torch --plot autodiff.png
    python examples/autodiff_from_scratch.py --backend array_api_strict --every 500

The problems: XOR (4 points, 2-4-1 sigmoid network) and the course's noisy sine regression
(``y = sin(2 pi x) + U[0, 1)`` on 100 points, 1-10-1 with a sigmoid hidden layer). The loss
is printed every ``--every`` steps; the last line says whether XOR is solved and how far the
sine loss fell. ``--seed`` fixes the data and the initial weights (drawn on the host, so every
backend starts from the same numbers).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import xpnn
from xpnn import backend

Array = Any


# -- the course's building blocks, written with Tensor operators ------------------------------------
class Linear(xpnn.Module):
    """The fully connected layer ``X @ W + b``; ``W`` (n_in, n_out) drawn from ``rng`` with
    scale ``sqrt(1 / n_in)`` (the course's), ``b`` zeros. Created on the host in float32: move
    the model with ``.to(backend)``."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator) -> None:
        super().__init__()
        weight = rng.standard_normal((n_in, n_out)) * math.sqrt(1.0 / n_in)
        self.W = xpnn.Parameter(weight.astype(np.float32), "W")
        self.b = xpnn.Parameter(np.zeros(n_out, np.float32), "b")

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        return x @ self.W + self.b


def sigmoid(x: xpnn.Tensor) -> xpnn.Tensor:
    """``1 / (1 + exp(-x))`` as the course writes it: four recorded operations. ``F.sigmoid`` is
    the same function as one node that stays finite for any ``x``; here ``exp(-x)`` overflows
    in float32 for ``x`` below about -88 (then the gradient is NaN), far from what these small
    networks see."""
    return 1 / (1 + (-x).exp())


class MLP(xpnn.Module):
    """``Linear`` layers with sigmoid between them (and after the last when ``squash``)."""

    def __init__(self, sizes: list[int], rng: np.random.Generator, *, squash: bool = False) -> None:
        super().__init__()
        self.layers = [Linear(n_in, n_out, rng) for n_in, n_out in itertools.pairwise(sizes)]
        self.squash = squash

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        for layer in self.layers[:-1]:
            x = sigmoid(layer(x))
        x = self.layers[-1](x)
        return sigmoid(x) if self.squash else x


def mean_squared_error(pred: xpnn.Tensor, y: Array) -> xpnn.Tensor:
    """``sum((pred - y)**2) / n``, n the number of samples (the course's definition)."""
    return ((pred - y) ** 2).sum() / pred.shape[0]


# -- update rules ---------------------------------------------------------------------------------
def sgd_by_hand(params: list[xpnn.Parameter], lr: float) -> Callable[[], None]:
    """The course's first update loop, without an optimizer object: ``p <- p - lr * dL/dp``.
    The update is computed under ``no_grad`` (it must not become part of any graph)."""

    def step() -> None:
        with xpnn.no_grad():
            for p in params:
                p.value = (p - lr * p.grad).value
                p.grad = None

    return step


def with_optimizer(optimizer: xpnn.Optimizer) -> Callable[[], None]:
    """One of xpnn's optimizers as an update: ``step`` then ``zero_grad``."""

    def step() -> None:
        optimizer.step()
        optimizer.zero_grad()

    return step


UPDATES: dict[str, Callable[[list[xpnn.Parameter], float], Callable[[], None]]] = {
    "SGD by hand (no_grad)": sgd_by_hand,
    "SGD, momentum 0.9": lambda params, lr: with_optimizer(xpnn.SGD(params, lr, momentum=0.9)),
    "SGD, Nesterov 0.9": lambda params, lr: with_optimizer(xpnn.SGD(params, lr, momentum=0.9, nesterov=True)),
    "Adam": lambda params, lr: with_optimizer(xpnn.Adam(params, lr)),
}


# -- the two problems -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A data set, the network for it and one learning rate per update rule."""

    name: str
    sizes: list[int]
    squash: bool  # sigmoid on the output (XOR's targets are 0 and 1)
    rates: dict[str, float]

    def data(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.name == "xor":
            x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
            return x, np.array([[0], [1], [1], [0]], np.float32)
        x = rng.random((100, 1))  # the course's: rand(100, 1), sin(2 pi x) + rand(100, 1)
        return x.astype(np.float32), (np.sin(2 * np.pi * x) + rng.random((100, 1))).astype(np.float32)


# learning rates chosen so that every rule solves XOR from seed 0 within 600 steps, and stays
# stable on the sine (plain SGD at the course's 0.2 spikes once near the minimum)
XOR_RATES = {"SGD by hand (no_grad)": 2.0, "SGD, momentum 0.9": 0.5, "SGD, Nesterov 0.9": 0.5, "Adam": 0.05}
SINE_RATES = {
    "SGD by hand (no_grad)": 0.1,
    "SGD, momentum 0.9": 0.05,
    "SGD, Nesterov 0.9": 0.05,
    "Adam": 0.02,
}
PROBLEMS = {
    "xor": Problem("xor", [2, 4, 1], squash=True, rates=XOR_RATES),
    "sine": Problem("sine", [1, 10, 1], squash=False, rates=SINE_RATES),
}


@dataclass
class Run:
    """One problem trained with one update rule: the loss at every step (host float64), the
    trained model and the data (on the backend)."""

    problem: Problem
    update: str
    losses: np.ndarray
    model: MLP
    x: Array
    y: Array
    seconds: float


def train(problem: Problem, update: str, target: backend.Backend, steps: int, seed: int,
          every: int = 0) -> Run:  # fmt: skip
    """Full-batch training, the course's loop: forward, loss, ``backward``, update. Prints the
    loss every ``every`` steps (0: never; each print reads the loss back, a synchronisation)."""
    rng = np.random.default_rng(seed)
    x_host, y_host = problem.data(rng)
    model = MLP(problem.sizes, np.random.default_rng(seed + 1), squash=problem.squash).to(target)
    x, y = backend.from_host(x_host, target), backend.from_host(y_host, target)
    step = UPDATES[update](model.parameters(), problem.rates[update])
    losses, start = [], time.perf_counter()
    for i in range(steps):
        loss = mean_squared_error(model(x), y)
        loss.backward()
        step()
        losses.append(loss.value)  # stays on the device: one transfer at the end
        if every and (i % every == 0 or i == steps - 1):
            print(f"{problem.name:<4}  {update:<22} step {i:>6}  loss {loss.item():.6f}")
    seconds = time.perf_counter() - start
    host = backend.to_host(target.xp.stack(losses)).astype(np.float64) if losses else np.zeros(0)
    return Run(problem, update, host, model, x, y, seconds)


def predict(run: Run, x: Array) -> np.ndarray:
    """The model's outputs for ``x`` as a host array; nothing recorded."""
    with xpnn.no_grad():
        return backend.to_host(run.model(x).value)


def xor_solved(run: Run) -> bool:
    """Every XOR output on the right side of 0.5."""
    return bool(np.all((predict(run, run.x) > 0.5) == (backend.to_host(run.y) > 0.5)))


def verdict(run: Run) -> str:
    """The summary line's end: XOR solved or not (with its outputs), or how far the sine loss fell."""
    if run.problem.name == "xor":
        outputs = ", ".join(f"{v:.3f}" for v in predict(run, run.x).ravel())
        return f"{'solved' if xor_solved(run) else 'NOT solved'} (outputs {outputs})"
    return f"loss {run.losses[0]:.4f} -> {run.losses[-1]:.4f} ({run.losses[-1] / run.losses[0]:.3f}x)"


# -- the picture ----------------------------------------------------------------------------------
def plot(runs: list[Run], path: str, backend_name: str) -> None:
    """Loss curves of the update rules side by side, one panel per problem, and the sine fits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(run.problem.name for run in runs))
    sines = [run for run in runs if run.problem.name == "sine"]
    figure = plt.figure(figsize=(6 * (len(names) + bool(sines)), 4.8), layout="constrained")
    axes = figure.subplots(1, len(names) + bool(sines), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=False):
        for run in (r for r in runs if r.problem.name == name):
            lr = run.problem.rates[run.update]
            ax.plot(np.arange(1, len(run.losses) + 1), run.losses, label=f"{run.update}, lr {lr:g}", lw=1.2)
        ax.set(yscale="log", xscale="log", xlabel="step", ylabel="mean squared error",
               title=f"{name}: {'-'.join(map(str, PROBLEMS[name].sizes))} sigmoid network")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    if sines:
        ax = axes[-1]
        ax.scatter(backend.to_host(sines[0].x).ravel(), backend.to_host(sines[0].y).ravel(), s=10, c="gray",
                   label="data: sin(2 pi x) + U[0, 1)")  # fmt: skip
        grid = np.linspace(0, 1, 200, dtype=np.float32).reshape(-1, 1)
        for run in sines:
            target = backend.resolve(backend_name)
            ax.plot(grid.ravel(), predict(run, backend.from_host(grid, target)).ravel(), label=run.update)
        ax.set(title="sine: the fitted curves", xlabel="x", ylabel="y")
        ax.legend(fontsize=8)
    figure.suptitle(f"autodiff from scratch on xpnn's tape (backend {backend_name})")
    figure.savefig(path, dpi=90)


# -- command line ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--backend", default="numpy", choices=backend.BACKENDS, help="array library")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    rules = ", ".join(map(repr, UPDATES))
    parser.add_argument("--updates", nargs="+", default=list(UPDATES), choices=list(UPDATES),
                        metavar="UPDATE", help=f"update rules, of: {rules}")  # fmt: skip
    parser.add_argument("--xor-steps", type=int, default=2000, help="full-batch steps on XOR")
    parser.add_argument("--sine-steps", type=int, default=10000, help="full-batch steps on the sine")
    parser.add_argument("--every", type=int, default=1000, help="print the loss every N steps (0: never)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the sine data and the initial weights")
    parser.add_argument("--plot", metavar="FILE.png", default=None, help="write the loss curves there")
    args = parser.parse_args(argv)
    for flag in ("xor_steps", "sine_steps", "every"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    return args


def main(argv: list[str] | None = None) -> list[Run]:
    args = parse_args(argv)
    target = backend.resolve(args.backend)
    steps = {"xor": args.xor_steps, "sine": args.sine_steps}
    runs = []
    for name in args.problems:
        for update in args.updates:
            runs.append(train(PROBLEMS[name], update, target, steps[name], args.seed, args.every))
    print(f"\nbackend {target.name}, seed {args.seed}:")
    for run in runs:
        per_step = 1e3 * run.seconds / max(len(run.losses), 1)
        print(f"  {run.problem.name:<4}  {run.update:<22} {verdict(run)}  [{per_step:.2f} ms/step]")
    if args.plot:
        plot(runs, args.plot, target.name)
        print(f"plot written to {args.plot}")
    return runs


if __name__ == "__main__":
    main()
