"""Chapter 10 of "Neural Networks from Scratch in Python", on any backend, with pictures.

Trains the chapter's 2-64-3 network on ``spiral_data(samples=100, classes=3)`` with each of
the chapter's optimizer settings, using the book's own loop and class names (``xpnn.nnfs``),
prints the book's ``epoch, acc, loss, lr`` lines every 100 epochs, and saves one PNG: a
decision-boundary panel per optimizer and their loss curves together.

    python examples/spiral_optimizers.py                     # NumPy, 10,001 epochs each
    python examples/spiral_optimizers.py --backend torch --quiet --plot spiral.png

As the book does with ``nnfs.init()``, every run starts from ``np.random.seed(0)``: the same
data and the same initial weights for every optimizer.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.data.synthetic import spiral_data
from xpnn.nnfs import (
    Activation_ReLU,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Layer_Dense,
    Optimizer_Adagrad,
    Optimizer_Adam,
    Optimizer_RMSprop,
    Optimizer_SGD,
)

SETTINGS = {
    "SGD": lambda: Optimizer_SGD(),
    "SGD, decay 1e-3": lambda: Optimizer_SGD(decay=1e-3),
    "SGD, decay 1e-3, momentum 0.9": lambda: Optimizer_SGD(decay=1e-3, momentum=0.9),
    "AdaGrad, decay 1e-4": lambda: Optimizer_Adagrad(decay=1e-4),
    "RMSprop, lr 0.02, decay 1e-5, rho 0.999": lambda: Optimizer_RMSprop(
        learning_rate=0.02, decay=1e-5, rho=0.999
    ),
    "Adam, lr 0.05, decay 5e-7": lambda: Optimizer_Adam(learning_rate=0.05, decay=5e-7),
}


class Network:
    """The chapter's network: Dense(2, 64) -> ReLU -> Dense(64, 3) -> softmax + cross-entropy."""

    def __init__(self) -> None:
        self.dense1 = Layer_Dense(2, 64)
        self.activation1 = Activation_ReLU()
        self.dense2 = Layer_Dense(64, 3)
        self.loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()

    def scores(self, x: Any) -> Any:
        self.dense1.forward(x)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        return self.dense2.output


def train(name: str, target: backend.Backend, epochs: int, quiet: bool) -> tuple[Network, np.ndarray, str]:
    """The book's training loop; returns the network, the loss of every epoch and the last line."""
    xp = target.xp
    np.random.seed(0)  # what nnfs.init() does: the book's data and initial weights
    x_host, y_host = spiral_data(samples=100, classes=3)
    x, y = backend.from_host(x_host, target), backend.from_host(y_host.astype(np.int64), target)
    net, optimizer = Network(), SETTINGS[name]()
    losses, line = [], ""
    for epoch in range(epochs):
        loss = net.loss_activation.forward(net.scores(x), y)
        losses.append(loss)  # stays on the device: one transfer at the end, not one per epoch
        if not epoch % 100 or epoch == epochs - 1:
            predictions = xp.argmax(net.loss_activation.output, axis=1)
            accuracy = xp.mean(xp.astype(predictions == y, xp.float32))
            line = (
                f"epoch: {epoch}, acc: {float(accuracy):.3f}, loss: {float(loss):.3f}, "
                f"lr: {optimizer.current_learning_rate}"
            )
            if not quiet:
                print(line)
        net.loss_activation.backward(net.loss_activation.output, y)
        net.dense2.backward(net.loss_activation.dinputs)
        net.activation1.backward(net.dense2.dinputs)
        net.dense1.backward(net.activation1.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(net.dense1)
        optimizer.update_params(net.dense2)
        optimizer.post_update_params()
    return net, backend.to_host(xp.stack(losses)), line


def decision_regions(net: Network, target: backend.Backend, size: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class over a ``size`` x ``size`` grid covering the spiral."""
    axis = np.linspace(-1.1, 1.1, size, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    grid = backend.from_host(np.stack([gx.ravel(), gy.ravel()], axis=1), target)
    classes = backend.to_host(target.xp.argmax(net.scores(grid), axis=1))
    return axis, classes.reshape(size, size)


def plot(results: dict[str, tuple[Network, np.ndarray, str]], target: backend.Backend, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    np.random.seed(0)
    x, y = spiral_data(samples=100, classes=3)
    colors = ["#e41a1c", "#377eb8", "#4daf4a"]
    figure = plt.figure(figsize=(20, 9), layout="constrained")
    grid = figure.add_gridspec(2, 4)
    curves = figure.add_subplot(grid[:, 3])
    for i, (name, (net, losses, line)) in enumerate(results.items()):
        ax = figure.add_subplot(grid[i // 3, i % 3])
        axis, classes = decision_regions(net, target)
        regions = ListedColormap(colors)
        ax.contourf(axis, axis, classes, levels=[-0.5, 0.5, 1.5, 2.5], cmap=regions, alpha=0.25)
        ax.scatter(x[:, 0], x[:, 1], c=[colors[c] for c in y], s=8, edgecolors="none")
        acc, loss = line.split(", ")[1:3]
        ax.set_title(f"{name}\n{acc}, {loss}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
        curves.plot(losses, label=name, linewidth=1)
    curves.set_yscale("log")
    curves.set_xlabel("epoch")
    curves.set_ylabel("loss (softmax cross-entropy)")
    curves.set_title("training loss")
    curves.legend(fontsize=8)
    figure.suptitle(f"NNFS chapter 10: 2-64-3 network on spiral_data(100, 3), backend {target.name}")
    figure.savefig(out, dpi=80)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = "numpy, array_api_strict, torch, torch:cuda, cupy, jax"
    parser.add_argument("--backend", default="numpy", help=names)
    parser.add_argument("--epochs", type=int, default=10001, help="epochs per optimizer (the book: 10001)")
    parser.add_argument("--plot", "--out", dest="plot", default="spiral_optimizers.png", metavar="FILE.png",
                        help="where to save the PNG (--out: the old name)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print only the final line of each optimizer")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    target = backend.resolve(args.backend)
    results, start = {}, time.perf_counter()
    for name in SETTINGS:
        if not args.quiet:
            print(f"== {name}")
        began = time.perf_counter()
        results[name] = train(name, target, args.epochs, args.quiet)
        print(f"{name:42s} {results[name][2]}  ({time.perf_counter() - began:.1f} s)")
    print(f"trained in {time.perf_counter() - start:.1f} s on {target.name}")
    plot(results, target, args.plot)
    print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
