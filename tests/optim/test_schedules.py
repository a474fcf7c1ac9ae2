"""Learning-rate schedules: their formulas, torch's lr_scheduler numbers, composition and repr."""

from __future__ import annotations

import math

import pytest

from tests.helpers.optional import require_torch
from xpnn.optim.schedules import (
    Constant,
    CosineDecay,
    ExponentialDecay,
    InverseTimeDecay,
    Join,
    OneCycle,
    StepDecay,
    Warmup,
)


def torch_rates(scheduler: str, steps: int, **options: float) -> list[float]:
    """The rates ``torch.optim.lr_scheduler.<scheduler>(opt, **options)`` gives at t = 0 .. steps-1
    (base lr 1.0 scaled by the schedule)."""
    torch = require_torch()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = getattr(torch.optim.lr_scheduler, scheduler)(opt, **options)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return rates


def test_inverse_time_decay_is_the_books_expression() -> None:
    schedule = InverseTimeDecay(1.0, 1e-3)
    assert [schedule(t) for t in (0, 1, 1000)] == [1.0, 1.0 * (1.0 / 1.001), 1.0 * (1.0 / 2.0)]


def test_step_decay_matches_torch_step_lr() -> None:
    expected = torch_rates("StepLR", 30, step_size=7, gamma=0.5)
    assert [StepDecay(1.0, 7, 0.5)(t) for t in range(30)] == pytest.approx(expected, rel=1e-12)


def test_exponential_decay_matches_torch_exponential_lr() -> None:
    expected = torch_rates("ExponentialLR", 30, gamma=0.9)
    assert [ExponentialDecay(1.0, 0.9)(t) for t in range(30)] == pytest.approx(expected, rel=1e-12)


def test_cosine_decay_follows_half_a_cosine_then_holds_min_lr() -> None:
    schedule = CosineDecay(1.0, 20, min_lr=0.1)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * min(t, 20) / 20)) / 2 for t in range(40)]
    assert [schedule(t) for t in range(40)] == pytest.approx(expected, rel=1e-14)
    assert schedule(0) == 1.0 and schedule(39) == pytest.approx(0.1)


def test_cosine_warm_restarts_match_torch() -> None:
    expected = torch_rates("CosineAnnealingWarmRestarts", 40, T_0=5, T_mult=2, eta_min=0.01)
    schedule = CosineDecay(1.0, 5, min_lr=0.01, restarts=True, period_mult=2)
    assert [schedule(t) for t in range(40)] == pytest.approx(expected, rel=1e-10)


def test_warmup_ramps_linearly_then_hands_over() -> None:
    schedule = Warmup(4, CosineDecay(1.0, 10), start=0.2)
    assert [schedule(t) for t in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert schedule(9) == pytest.approx(CosineDecay(1.0, 10)(5))


def test_join_calls_each_schedule_with_steps_since_its_start() -> None:
    schedule = Join([Constant(0.5), ExponentialDecay(1.0, 0.5)], boundaries=[3])
    assert [schedule(t) for t in range(6)] == [0.5, 0.5, 0.5, 1.0, 0.5, 0.25]


def test_schedules_return_python_floats() -> None:
    for schedule in (StepDecay(1, 2), ExponentialDecay(1, 0.5), CosineDecay(1, 3), Warmup(2, 1.0)):
        assert type(schedule(5)) is float


def test_repr_reads_like_the_construction() -> None:
    assert repr(Warmup(10, CosineDecay(0.01, 100))) == (
        "Warmup(10, CosineDecay(lr=0.01, period=100, min_lr=0.0), start=0.0)"
    )


@pytest.mark.parametrize(
    "build", [lambda: StepDecay(1.0, 0), lambda: CosineDecay(1.0, 0), lambda: Join([Constant(1.0)], [3])]
)
def test_bad_schedule_arguments_are_rejected(build: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(("total", "pct_start"), [(10, 0.3), (100, 0.3), (37, 0.25), (7035, 0.3), (5, 0.5)])
def test_one_cycle_matches_torch_one_cycle_lr(total: int, pct_start: float) -> None:
    expected = torch_rates("OneCycleLR", total, max_lr=1.0, total_steps=total, pct_start=pct_start,
                           cycle_momentum=False)  # fmt: skip
    rates = [OneCycle(1.0, total, pct_start=pct_start)(t) for t in range(total)]
    assert rates == pytest.approx(expected, rel=1e-12)


def test_one_cycle_holds_its_last_rate_and_starts_at_the_peak_where_torch_divides_by_zero() -> None:
    schedule = OneCycle(1.0, 10, div_factor=10.0, final_div_factor=100.0)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == schedule(500) == pytest.approx(1e-3)
    assert OneCycle(1.0, 10, pct_start=0.1)(0) == 1.0  # the first phase ends at step 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"total_steps": 1}, "total_steps"),
        ({"pct_start": 1.0}, "pct_start"),
        ({"div_factor": 0.0}, "div_factor"),
    ],
)
def test_one_cycle_refuses_bad_arguments_by_name(options: dict, named: str) -> None:
    arguments = {"total_steps": 10, **options}
    with pytest.raises(ValueError, match=named):
        OneCycle(1.0, **arguments)
