"""Learning-rate schedules: plain callables ``t -> lr`` with a readable ``repr``.

``t`` is the optimizer's step count (0 at the first step). A schedule holds no state of its
own, so saving the optimizer's step count is enough to resume exactly where a run stopped
(keras#13027). Each returns a Python float computed on the host: no array, no device sync.
Pass one as ``lr=`` to any optimizer; ``decay=`` still applies on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Schedule = Callable[[int], float]


class Constant:
    """``lr`` at every step."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def __call__(self, t: int) -> float:
        return self.lr

    def __repr__(self) -> str:
        return f"Constant({self.lr!r})"


class InverseTimeDecay:
    """``lr / (1 + decay * t)``: the NNFS book's decay (computed as the book does, ``lr * (1 / ...)``)."""

    def __init__(self, lr: float, decay: float) -> None:
        self.lr, self.decay = float(lr), float(decay)

    def __call__(self, t: int) -> float:
        return self.lr * (1.0 / (1.0 + self.decay * t))

    def __repr__(self) -> str:
        return f"InverseTimeDecay(lr={self.lr!r}, decay={self.decay!r})"


class StepDecay:
    """``lr * gamma ** (t // step_size)``: multiply by ``gamma`` every ``step_size`` steps (torch StepLR)."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepDecay: expected step_size >= 1, got {step_size!r}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)

    def __repr__(self) -> str:
        return f"StepDecay(lr={self.lr!r}, step_size={self.step_size}, gamma={self.gamma!r})"


class ExponentialDecay:
    """``lr * gamma ** t`` (torch ExponentialLR)."""

    def __init__(self, lr: float, gamma: float) -> None:
        self.lr, self.gamma = float(lr), float(gamma)

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma**t

    def __repr__(self) -> str:
        return f"ExponentialDecay(lr={self.lr!r}, gamma={self.gamma!r})"


class CosineDecay:
    """Half a cosine from ``lr`` down to ``min_lr`` over ``period`` steps (Loshchilov & Hutter 2017).

    ``min_lr + (lr - min_lr) * (1 + cos(pi * s / period)) / 2`` with ``s`` the steps since the
    last (re)start. Without restarts the rate stays at ``min_lr`` after ``period`` steps; with
    ``restarts=True`` it jumps back to ``lr`` and each period is ``period_mult`` times the last
    (torch's CosineAnnealingWarmRestarts with T_0=period, T_mult=period_mult).
    """

    def __init__(
        self, lr: float, period: int, *, min_lr: float = 0.0, restarts: bool = False, period_mult: int = 1
    ) -> None:
        if period < 1 or period_mult < 1:
            raise ValueError(
                f"CosineDecay: expected period, period_mult >= 1, got {period!r}, {period_mult!r}"
            )
        self.lr, self.min_lr, self.period = float(lr), float(min_lr), int(period)
        self.restarts, self.period_mult = bool(restarts), int(period_mult)

    def _position(self, t: int) -> tuple[int, int]:
        """(steps since the last restart, length of the current period)."""
        if not self.restarts:
            return min(t, self.period), self.period
        length = self.period
        while t >= length:
            t, length = t - length, length * self.period_mult
        return t, length

    def __call__(self, t: int) -> float:
        since, length = self._position(t)
        return self.min_lr + (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * since / length)) / 2.0

    def __repr__(self) -> str:
        extra = f", restarts=True, period_mult={self.period_mult}" if self.restarts else ""
        return f"CosineDecay(lr={self.lr!r}, period={self.period}, min_lr={self.min_lr!r}{extra})"


class Warmup:
    """A linear ramp from ``start`` to ``then(0)`` over ``steps`` steps, then ``then(t - steps)``.

    ``Warmup(500, CosineDecay(1e-3, 10_000))`` is the usual warmup-then-cosine; in small:

    >>> from xpnn import schedules
    >>> lr = schedules.Warmup(2, schedules.CosineDecay(1e-3, 4, min_lr=1e-5))
    >>> [round(lr(t), 6) for t in range(7)]
    [0.0, 0.0005, 0.001, 0.000855, 0.000505, 0.000155, 1e-05]
    """

    def __init__(self, steps: int, then: Schedule | float, *, start: float = 0.0) -> None:
        if steps < 0:
            raise ValueError(f"Warmup: expected steps >= 0, got {steps!r}")
        self.steps, self.start = int(steps), float(start)
        self.then = then if callable(then) else Constant(then)

    def __call__(self, t: int) -> float:
        if t >= self.steps:
            return float(self.then(t - self.steps))
        return self.start + (float(self.then(0)) - self.start) * t / self.steps

    def __repr__(self) -> str:
        return f"Warmup({self.steps}, {self.then!r}, start={self.start!r})"


class OneCycle:
    """The one-cycle policy (Smith & Topin 2018; torch's ``OneCycleLR`` with its defaults, the
    rate part): over the first ``pct_start`` of ``total_steps`` the rate rises from ``lr /
    div_factor`` to ``lr``, then falls to ``lr / div_factor / final_div_factor`` at the last
    step, each phase half a cosine ``end + (start - end) * (1 + cos(pi * p)) / 2`` with ``p``
    the fraction of the phase done. The first phase ends at step ``pct_start * total_steps - 1``
    and the second at ``total_steps - 1``, as torch's; after that the rate stays at its last
    value (torch raises there; and where the first phase ends at step 0, which torch divides by
    zero, the rate starts at its peak). torch's ``cycle_momentum`` (beta1 from 0.95 down to 0.85 and
    back) is not part of it: pass ``cycle_momentum=False`` to torch for the same run.

    >>> from xpnn import schedules
    >>> lr = schedules.OneCycle(1e-3, 10)
    >>> [f"{lr(t):.2e}" for t in (0, 2, 9)]
    ['4.00e-05', '1.00e-03', '4.00e-09']
    """

    def __init__(
        self,
        lr: float,
        total_steps: int,
        *,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        if total_steps < 2:
            raise ValueError(f"OneCycle: expected total_steps >= 2, got {total_steps!r}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"OneCycle: expected 0 < pct_start < 1, got {pct_start!r}")
        if not div_factor > 0.0 or not final_div_factor > 0.0:
            raise ValueError(
                "OneCycle: expected div_factor, final_div_factor > 0, "
                f"got {div_factor!r}, {final_div_factor!r}"
            )
        self.lr, self.total_steps, self.pct_start = float(lr), int(total_steps), float(pct_start)
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        self.start = self.lr / self.div_factor
        self.end = self.start / self.final_div_factor
        self.peak_step = self.pct_start * self.total_steps - 1.0  # torch's float(pct * total) - 1

    def __call__(self, t: int) -> float:
        t = min(t, self.total_steps - 1)
        if t <= self.peak_step:
            begin, end, done = self.start, self.lr, t / self.peak_step if self.peak_step > 0 else 1.0
        else:
            last = self.total_steps - 1
            begin, end, done = self.lr, self.end, (t - self.peak_step) / (last - self.peak_step)
        return end + (begin - end) / 2.0 * (1.0 + math.cos(math.pi * done))

    def __repr__(self) -> str:
        return (
            f"OneCycle({self.lr!r}, {self.total_steps}, pct_start={self.pct_start!r}, "
            f"div_factor={self.div_factor!r}, final_div_factor={self.final_div_factor!r})"
        )


class Join:
    """Schedules one after another: ``schedules[i]`` runs from ``boundaries[i - 1]``, called with
    the steps since its own start (optax's ``join_schedules``)."""

    def __init__(self, schedules: Sequence[Schedule], boundaries: Sequence[int]) -> None:
        if len(boundaries) != len(schedules) - 1 or list(boundaries) != sorted(boundaries):
            raise ValueError(
                f"Join: expected {len(schedules) - 1} increasing boundaries for {len(schedules)} schedules, "
                f"got {list(boundaries)}"
            )
        self.schedules, self.boundaries = list(schedules), [int(b) for b in boundaries]

    def __call__(self, t: int) -> float:
        start = 0
        for schedule, boundary in zip(self.schedules, self.boundaries, strict=False):
            if t < boundary:
                return float(schedule(t - start))
            start = boundary
        return float(self.schedules[-1](t - start))

    def __repr__(self) -> str:
        return f"Join({self.schedules!r}, boundaries={self.boundaries!r})"


__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "Join",
    "OneCycle",
    "StepDecay",
    "Warmup",
]
