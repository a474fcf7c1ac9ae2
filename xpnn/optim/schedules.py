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


__all__ = ["Constant", "CosineDecay", "ExponentialDecay", "InverseTimeDecay", "Join", "StepDecay", "Warmup"]
