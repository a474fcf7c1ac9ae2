"""Optimizer paths on 2-parameter loss landscapes, run through xpnn's own optimizers.

SGD, SGD with momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW each move one
``xpnn.Parameter`` of shape (2,) -- the point (x, y) -- over Rosenbrock's valley, Beale's
function, a saddle x^2 - y^2 and an ill-conditioned quadratic. The gradients are the
functions' closed forms in the Array API namespace of the parameter, so every backend runs
the same code; the optimizer is the real one, its ``step()`` the one training uses.

    python examples/optimizer_paths.py                          # optimizer_paths.png
    python examples/optimizer_paths.py --backend array_api_strict --gif paths.gif
    python examples/optimizer_paths.py --function rosenbrock --lr 0.002 --steps 2000

The PNG has one contour plot per function with every optimizer's path (start: black circle,
end: a dot in the path's colour, the minimum: a star), its final loss and steps in the
legend. A path ends early when it leaves the plotted box (diverged, or off the saddle).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import xpnn
from xpnn import backend

Array = Any
OPTIMIZERS: dict[str, Callable[[list[xpnn.Parameter], float], xpnn.Optimizer]] = {
    "SGD": lambda params, lr: xpnn.SGD(params, lr),
    "Momentum": lambda params, lr: xpnn.SGD(params, lr, momentum=0.9),
    "Nesterov": lambda params, lr: xpnn.SGD(params, lr, momentum=0.9, nesterov=True),
    "AdaGrad": lambda params, lr: xpnn.AdaGrad(params, lr),
    "RMSProp": lambda params, lr: xpnn.RMSProp(params, lr),
    "Adam": lambda params, lr: xpnn.Adam(params, lr),
    "AdamW": lambda params, lr: xpnn.AdamW(params, lr, weight_decay=0.01),
}


def rosenbrock(x: Array, y: Array) -> Array:
    """Rosenbrock's banana valley (1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1)."""
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def rosenbrock_grad(x: Array, y: Array) -> tuple[Array, Array]:
    return -2.0 * (1.0 - x) - 400.0 * x * (y - x**2), 200.0 * (y - x**2)


def beale(x: Array, y: Array) -> Array:
    """Beale's function: a flat plateau and sharp ridges; minimum 0 at (3, 0.5)."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale_grad(x: Array, y: Array) -> tuple[Array, Array]:
    a, b, c = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    dx = 2.0 * a * (y - 1.0) + 2.0 * b * (y**2 - 1.0) + 2.0 * c * (y**3 - 1.0)
    dy = 2.0 * a * x + 4.0 * b * x * y + 6.0 * c * x * y**2
    return dx, dy


def saddle(x: Array, y: Array) -> Array:
    """The saddle x^2 - y^2: a minimum along x, a maximum along y, no minimum at all."""
    return x**2 - y**2


def saddle_grad(x: Array, y: Array) -> tuple[Array, Array]:
    return 2.0 * x, -2.0 * y


CONDITION = 50.0  # the quadratic's curvature ratio: SGD is stable below lr = 2 / 50


def quadratic(x: Array, y: Array) -> Array:
    """The ill-conditioned bowl (x^2 + 50 y^2) / 2; minimum 0 at (0, 0)."""
    return 0.5 * (x**2 + CONDITION * y**2)


def quadratic_grad(x: Array, y: Array) -> tuple[Array, Array]:
    return x, CONDITION * y


@dataclass(frozen=True)
class Landscape:
    """A test function, its gradient, where paths start, the plotted box and default settings."""

    title: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], tuple[Array, Array]]
    start: tuple[float, float]
    box: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max
    minimum: tuple[float, float] | None
    steps: int
    rates: dict[str, float] = field(default_factory=dict)  # default learning rate per optimizer
    log_levels: bool = True  # contours on a log scale (for functions >= 0)

    def gradient(self, point: Array) -> Array:
        """The gradient at ``point`` (shape (2,)) as an array of its namespace, device and dtype."""
        xp = backend.namespace(point)
        return xp.stack(self.grad(point[0], point[1]))


LANDSCAPES = {
    "rosenbrock": Landscape(
        "Rosenbrock (1-x)² + 100(y-x²)²", rosenbrock, rosenbrock_grad, (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0),
        (1.0, 1.0), 1000,
        {"SGD": 1e-3, "Momentum": 2e-4, "Nesterov": 2e-4, "AdaGrad": 0.5, "RMSProp": 0.01, "Adam": 0.1,
         "AdamW": 0.1},
    ),
    "beale": Landscape(
        "Beale", beale, beale_grad, (0.7, 1.4), (-1.0, 4.5, -1.5, 2.0), (3.0, 0.5), 600,
        {"SGD": 0.01, "Momentum": 1e-3, "Nesterov": 1e-3, "AdaGrad": 0.5, "RMSProp": 0.01, "Adam": 0.05,
         "AdamW": 0.05},
    ),
    "saddle": Landscape(
        "saddle x² - y²", saddle, saddle_grad, (-1.4, 1e-3), (-1.5, 1.5, -1.5, 1.5), None, 150,
        {"SGD": 0.05, "Momentum": 0.01, "Nesterov": 0.01, "AdaGrad": 0.1, "RMSProp": 0.01, "Adam": 0.03,
         "AdamW": 0.03},
        log_levels=False,
    ),
    "quadratic": Landscape(
        "ill-conditioned (x² + 50y²) / 2", quadratic, quadratic_grad, (-4.5, 1.0), (-5.0, 5.0, -1.5, 1.5),
        (0.0, 0.0), 200,
        {"SGD": 0.038, "Momentum": 0.01, "Nesterov": 0.01, "AdaGrad": 0.5, "RMSProp": 0.02, "Adam": 0.1,
         "AdamW": 0.1},
    ),
}  # fmt: skip


@dataclass
class Path:
    """An optimizer's path: ``points`` (n + 1, 2) on the host, from the start, and the losses."""

    optimizer: str
    lr: float
    points: np.ndarray
    losses: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.points) - 1


def run_path(landscape: Landscape, optimizer: str, lr: float, steps: int, target: backend.Backend) -> Path:
    """Step ``OPTIMIZERS[optimizer]`` ``steps`` times on one Parameter of shape (2,) (float64)
    from ``landscape.start``. Every point stays on the device until one transfer at the end;
    the path is cut after the first point outside the box (or not finite)."""
    start = np.asarray(landscape.start, dtype=np.float64)
    point = xpnn.Parameter(backend.from_host(start, target), name="xy")
    opt = OPTIMIZERS[optimizer]([point], lr)
    xp = target.xp
    visited = [xp.asarray(point.value, copy=True)]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging path overflows: cut below
        for _ in range(steps):
            point.grad = landscape.gradient(point.value)
            opt.step()
            opt.zero_grad()
            visited.append(xp.asarray(point.value, copy=True))
        points = backend.to_host(xp.stack(visited))
        losses = landscape.value(points[:, 0], points[:, 1])
    return _cut(Path(optimizer, lr, points, losses), landscape.box)


def _cut(path: Path, box: tuple[float, float, float, float]) -> Path:
    x, y = path.points[:, 0], path.points[:, 1]
    inside = np.isfinite(x) & np.isfinite(y) & (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])
    if inside.all():
        return path
    end = int(np.argmin(inside)) + 1  # keep the first point outside: the path visibly leaves
    return Path(path.optimizer, path.lr, path.points[:end], path.losses[:end])


def run_all(
    landscape: Landscape, target: backend.Backend, lr: float | None = None, steps: int | None = None
) -> list[Path]:
    """Every optimizer's path, at ``lr`` (default: the landscape's rate for each optimizer)."""
    count = landscape.steps if steps is None else steps
    return [
        run_path(landscape, name, landscape.rates[name] if lr is None else lr, count, target)
        for name in OPTIMIZERS
    ]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _contours(ax: Any, landscape: Landscape) -> None:
    x0, x1, y0, y1 = landscape.box
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    values = landscape.value(gx, gy)
    if landscape.log_levels:
        low = max(float(values.min()), 1e-3)
        levels = np.geomspace(low, float(values.max()), 30)
    else:
        levels = np.linspace(float(values.min()), float(values.max()), 30)
    ax.contourf(gx, gy, values, levels=levels, cmap="Greys", alpha=0.2,
                norm="log" if landscape.log_levels else None)  # fmt: skip
    ax.contour(gx, gy, values, levels=levels, colors="0.6", linewidths=0.4)
    if landscape.minimum is not None:
        ax.plot(*landscape.minimum, marker="*", color="gold", markeredgecolor="k", markersize=14, zorder=5)
    ax.plot(*landscape.start, "o", color="k", markersize=7, zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(landscape.title)


def _label(path: Path) -> str:
    return f"{path.optimizer} (lr {path.lr:g}): f={path.losses[-1]:.3g}, {path.steps} steps"


def _panels(results: dict[str, list[Path]], width: float, height: float) -> tuple[Any, Any, list[Any]]:
    """pyplot, a figure with one contour panel per landscape (two columns) and those axes."""
    plt = _pyplot()
    columns = 2 if len(results) > 1 else 1
    rows = -(-len(results) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), layout="constrained",
                                squeeze=False)  # fmt: skip
    for ax in list(axes.flat)[len(results) :]:
        ax.set_axis_off()
    for ax, name in zip(axes.flat, results, strict=False):
        _contours(ax, LANDSCAPES[name])
    return plt, figure, list(axes.flat)[: len(results)]


def plot_paths(results: dict[str, list[Path]], out: str, backend_name: str) -> None:
    """The PNG: one contour panel per landscape with every optimizer's path."""
    plt, figure, axes = _panels(results, 8.5, 6.5)
    for ax, paths in zip(axes, results.values(), strict=True):
        for k, path in enumerate(paths):
            color = f"C{k}"
            ax.plot(path.points[:, 0], path.points[:, 1], "-", color=color, linewidth=1.4, label=_label(path))
            ax.plot(*path.points[-1], "o", color=color, markeredgecolor="k", markersize=6, zorder=6)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    figure.suptitle(f"xpnn optimizers on 2-parameter landscapes (backend {backend_name})")
    figure.savefig(out, dpi=70)
    plt.close(figure)


def animate_paths(results: dict[str, list[Path]], out: str, frames: int = 60, fps: int = 15) -> None:
    """The GIF: the same panels, every path growing step by step (matplotlib's PillowWriter);
    each panel runs through its own step count in the same number of frames."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt, figure, axes = _panels(results, 6.0, 4.5)
    panels = []  # (axes, title, longest path, [(line, head, path)])
    for ax, (name, paths) in zip(axes, results.items(), strict=True):
        artists = []
        for k, path in enumerate(paths):
            (line,) = ax.plot([], [], "-", color=f"C{k}", linewidth=1.4, label=path.optimizer)
            (head,) = ax.plot([], [], "o", color=f"C{k}", markeredgecolor="k", markersize=5, zorder=6)
            artists.append((line, head, path))
        ax.legend(fontsize=7, loc="best")
        panels.append((ax, LANDSCAPES[name].title, max(path.steps for path in paths), artists))
    frames = max(1, min(frames, max(panel[2] for panel in panels)))  # no two frames alike (merged)

    def draw(frame: int) -> None:
        for ax, title, longest, artists in panels:
            step = round(longest * (frame + 1) / frames)
            for line, head, path in artists:
                shown = path.points[: step + 1]
                line.set_data(shown[:, 0], shown[:, 1])
                head.set_data(shown[-1:, 0], shown[-1:, 1])
            ax.set_title(f"{title}: step {step}")

    FuncAnimation(figure, draw, frames=frames).save(out, writer=PillowWriter(fps=fps), dpi=60)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", default="numpy", help="numpy, array_api_strict, torch, torch:cuda, cupy, jax"
    )
    parser.add_argument("--function", default="all", choices=["all", *LANDSCAPES], help="which landscape")
    parser.add_argument(
        "--lr", type=float, default=None, help="one rate for every optimizer (default: tuned)"
    )
    parser.add_argument("--steps", type=int, default=None, help="steps per path (default: per function)")
    parser.add_argument(
        "--plot", default="optimizer_paths.png", metavar="FILE.png", help="where to save the PNG"
    )
    parser.add_argument("--gif", default=None, metavar="FILE.gif", help="also save an animation")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[Path]]:
    args = parse_args(argv)
    target = backend.resolve(args.backend)
    names = list(LANDSCAPES) if args.function == "all" else [args.function]
    results = {name: run_all(LANDSCAPES[name], target, args.lr, args.steps) for name in names}
    for name, paths in results.items():
        print(f"== {name}")
        for path in paths:
            print(f"  {_label(path)}, ends at ({path.points[-1, 0]:.4f}, {path.points[-1, 1]:.4f})")
    plot_paths(results, args.plot, target.name)
    print(f"saved {args.plot}")
    if args.gif:
        animate_paths(results, args.gif)
        print(f"saved {args.gif}")
    return results


if __name__ == "__main__":
    main()
