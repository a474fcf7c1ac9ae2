"""examples/optimizer_paths.py: closed-form gradients, paths that are the optimizers' own steps,
the pictures; and the examples' common ``--plot`` option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.examples.loading import load_example
from xpnn import backend

paths = load_example("optimizer_paths")
LANDSCAPES = paths.LANDSCAPES


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_closed_form_gradient_matches_central_differences(name: str) -> None:
    landscape = LANDSCAPES[name]
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = landscape.box
    points = np.stack([rng.uniform(x0, x1, 20), rng.uniform(y0, y1, 20)], axis=1)
    h = 1e-6
    for x, y in points:
        dx, dy = landscape.grad(x, y)
        fd_x = (landscape.value(x + h, y) - landscape.value(x - h, y)) / (2 * h)
        fd_y = (landscape.value(x, y + h) - landscape.value(x, y - h)) / (2 * h)
        np.testing.assert_allclose([dx, dy], [fd_x, fd_y], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_gradient_is_zero_at_the_minimum(name: str) -> None:
    landscape = LANDSCAPES[name]
    where = landscape.minimum or (0.0, 0.0)  # the saddle's stationary point
    assert landscape.grad(*where) == (0.0, 0.0)


@pytest.mark.parametrize("optimizer", sorted(paths.OPTIMIZERS))
def test_path_starts_at_the_start_and_is_the_optimizers_own_steps(
    bk: backend.Backend, optimizer: str
) -> None:
    landscape, lr, steps = LANDSCAPES["rosenbrock"], 1e-3, 25
    path = paths.run_path(landscape, optimizer, lr, steps, bk)
    # the same optimizer stepped by hand, on a float64 Parameter of shape (2,)
    point = xpnn.Parameter(backend.from_host(np.array(landscape.start), bk), name="xy")
    opt = paths.OPTIMIZERS[optimizer]([point], lr)
    expected = [backend.to_host(point.value)]
    for _ in range(steps):
        x, y = point.value[0], point.value[1]
        point.grad = bk.xp.stack(landscape.grad(x, y))
        opt.step()
        opt.zero_grad()
        expected.append(backend.to_host(point.value))
    assert path.points.dtype == np.float64 and path.points.shape == (steps + 1, 2)
    assert tuple(path.points[0]) == landscape.start
    np.testing.assert_array_equal(path.points, np.stack(expected))  # bit for bit
    np.testing.assert_array_equal(path.losses, landscape.value(path.points[:, 0], path.points[:, 1]))


def test_every_backend_follows_the_numpy_path(bk: backend.Backend) -> None:
    for name in ("beale", "quadratic"):
        ours = paths.run_path(LANDSCAPES[name], "Adam", 0.05, 50, bk)
        reference = paths.run_path(LANDSCAPES[name], "Adam", 0.05, 50, backend.resolve("numpy"))
        np.testing.assert_allclose(ours.points, reference.points, rtol=1e-12, atol=1e-12)


def test_a_path_ends_at_its_first_point_outside_the_box() -> None:
    landscape = LANDSCAPES["saddle"]
    path = paths.run_path(landscape, "SGD", 0.05, 500, backend.resolve("numpy"))
    x0, x1, y0, y1 = landscape.box
    inside = (path.points[:, 0] >= x0) & (path.points[:, 0] <= x1)
    inside &= (path.points[:, 1] >= y0) & (path.points[:, 1] <= y1)
    assert path.steps < 500 and inside[:-1].all() and not inside[-1]  # off the saddle along y
    assert len(path.losses) == len(path.points)


def test_default_rates_reach_the_minimum_where_the_classics_say_they_do() -> None:
    numpy = backend.resolve("numpy")
    rosenbrock = {p.optimizer: p for p in paths.run_all(LANDSCAPES["rosenbrock"], numpy)}
    assert rosenbrock["Adam"].losses[-1] < 1e-4  # Adam gets down the banana valley
    assert rosenbrock["SGD"].losses[-1] > 1.0  # plain SGD is still crawling along it
    quadratic = {p.optimizer: p for p in paths.run_all(LANDSCAPES["quadratic"], numpy)}
    assert quadratic["Nesterov"].losses[-1] < 1e-6
    assert set(rosenbrock) == set(paths.OPTIMIZERS)


def test_lr_and_steps_override_the_defaults() -> None:
    results = paths.run_all(LANDSCAPES["beale"], backend.resolve("numpy"), lr=1e-4, steps=7)
    assert all(p.lr == 1e-4 and p.steps == 7 for p in results)


def test_main_writes_the_png_and_a_gif_with_the_frames(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    png, gif = tmp_path / "paths.png", tmp_path / "paths.gif"
    paths.main(["--function", "quadratic", "--steps", "6", "--plot", str(png), "--gif", str(gif)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 6  # one frame per step, up to 60
    assert "Nesterov (lr 0.01)" in capsys.readouterr().out


def test_every_example_takes_plot_and_the_spiral_keeps_out_as_an_alias() -> None:
    spiral = load_example("spiral_optimizers")
    assert spiral.parse_args(["--plot", "a.png"]).plot == "a.png"
    assert spiral.parse_args(["--out", "b.png"]).plot == "b.png"
    assert paths.parse_args(["--plot", "c.png"]).plot == "c.png"
    assert load_example("fashion_mnist").parse_args(["--plot", "d.png", "--lr-find"]).lr_find
