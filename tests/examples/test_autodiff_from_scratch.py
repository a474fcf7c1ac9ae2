"""examples/autodiff_from_scratch.py: the course's programs learn on every backend, reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnn
from tests.examples.loading import load_example
from xpnn import backend
from xpnn import functional as F

course = load_example("autodiff_from_scratch")
STEPS = 600  # tiny settings: every update rule solves XOR from seed 0 by then


@pytest.mark.parametrize("update", list(course.UPDATES))
def test_every_update_rule_solves_xor(bk: backend.Backend, update: str) -> None:
    run = course.train(course.PROBLEMS["xor"], update, bk, STEPS, seed=0)
    assert course.xor_solved(run)
    assert run.losses[-1] < 0.1 * run.losses[0]


@pytest.mark.parametrize("update", list(course.UPDATES))
def test_every_update_rule_brings_the_sine_loss_well_below_its_start(
    bk: backend.Backend, update: str
) -> None:
    run = course.train(course.PROBLEMS["sine"], update, bk, STEPS, seed=0)
    assert np.all(np.isfinite(run.losses))
    assert run.losses[-1] < 0.4 * run.losses[0]
    if update == "Adam":  # near the noise floor, var(U[0, 1)) = 1/12
        assert run.losses[-1] < 0.15


def test_the_loss_stays_float32_on_the_tape(bk: backend.Backend) -> None:
    model = course.MLP([1, 10, 1], np.random.default_rng(0)).to(bk.name)
    x = backend.from_host(np.zeros((5, 1), np.float32), bk)
    loss = course.mean_squared_error(model(x), x)
    assert loss.dtype == bk.xp.float32 and loss.ndim == 0
    loss.backward()
    assert all(p.grad.dtype == bk.xp.float32 for p in model.parameters())


def test_the_course_sigmoid_has_f_sigmoids_value_and_gradient(bk: backend.Backend) -> None:
    host = np.linspace(-6, 6, 13)
    x1 = xpnn.Tensor(backend.from_host(host, bk), requires_grad=True)
    x2 = xpnn.Tensor(backend.from_host(host, bk), requires_grad=True)
    y1, y2 = course.sigmoid(x1), F.sigmoid(x2)
    (y1 * y1).sum().backward()
    (y2 * y2).sum().backward()
    np.testing.assert_allclose(backend.to_host(y1.value), backend.to_host(y2.value), rtol=1e-12)
    np.testing.assert_allclose(backend.to_host(x1.grad), backend.to_host(x2.grad), rtol=1e-10)


def test_the_update_by_hand_is_plain_sgd(bk: backend.Backend) -> None:
    by_hand = course.train(course.PROBLEMS["sine"], "SGD by hand (no_grad)", bk, 20, seed=3)
    problem = course.PROBLEMS["sine"]
    model = course.MLP(problem.sizes, np.random.default_rng(4)).to(bk.name)
    x_host, y_host = problem.data(np.random.default_rng(3))
    x, y = backend.from_host(x_host, bk), backend.from_host(y_host, bk)
    optimizer = xpnn.SGD(model.parameters(), problem.rates["SGD by hand (no_grad)"])
    for _ in range(20):
        course.mean_squared_error(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
    for ours, theirs in zip(by_hand.model.parameters(), model.parameters(), strict=True):
        np.testing.assert_allclose(backend.to_host(ours.value), backend.to_host(theirs.value), rtol=1e-6)


def test_the_same_seed_gives_the_same_losses_and_another_seed_other_ones() -> None:
    numpy = backend.resolve("numpy")
    first, again, other = (
        course.train(course.PROBLEMS["sine"], "Adam", numpy, 30, seed) for seed in (5, 5, 6)
    )
    np.testing.assert_array_equal(first.losses, again.losses)
    assert not np.array_equal(first.losses, other.losses)


def test_every_backend_follows_the_numpy_losses(bk: backend.Backend) -> None:
    ours = course.train(course.PROBLEMS["xor"], "Adam", bk, 50, seed=0)
    reference = course.train(course.PROBLEMS["xor"], "Adam", backend.resolve("numpy"), 50, seed=0)
    np.testing.assert_allclose(ours.losses, reference.losses, rtol=1e-4)


def test_main_prints_the_curve_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "autodiff.png"
    runs = course.main(["--xor-steps", "20", "--sine-steps", "20", "--every", "10", "--plot", str(path)])
    out = capsys.readouterr().out
    assert len(runs) == len(course.PROBLEMS) * len(course.UPDATES)
    assert "xor   Adam                   step     10  loss" in out
    assert "sine  SGD, Nesterov 0.9      step     19  loss" in out
    assert path.stat().st_size > 10_000


def test_bad_step_counts_are_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        course.parse_args(["--xor-steps", "-1"])
