"""Hyperparameters, each declared once: its keyword, default, type, range and the check of it.

An optimizer lists the :class:`Hyper` declarations it takes; its constructor's signature
(what ``inspect.signature`` and ``help()`` show), the conversion of user and saved values to
plain Python numbers, and the range check all come from that one list (optax declares a
transform's arguments once in the same spirit). Every range is finite: a value that would
turn weights into NaN or inf (``decay=inf``, ``eps=0``, ``momentum=inf``) is refused at
construction, in ``add_param_group``, on ``opt.lr = ...`` and when a state dict is loaded,
each time before anything changes.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from xpnn.errors import OptimizerError

Schedule = Callable[[int], float]
REQUIRED = inspect.Parameter.empty  # ``lr`` without a default (SGD, AdaGrad, RMSProp)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: ``kind`` is ``"number"`` (a finite float in [low, high]), ``"bool"``
    (a real ``bool``), ``"betas"`` (two numbers in [low, high)) or ``"choice"`` (one of ``choices``)."""

    name: str
    default: Any
    kind: str = "number"
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False  # True: the low end is excluded (eps > 0)
    high_open: bool = False  # True: the high end is excluded (betas < 1)
    choices: tuple[str, ...] = ()

    @property
    def annotation(self) -> str:
        kinds = {"number": "float", "bool": "bool", "betas": "tuple[float, float]", "choice": "str"}
        return kinds[self.kind]

    @property
    def interval(self) -> str:
        return _interval(self.low, self.high, self.low_open, self.high_open)

    def describe(self) -> str:
        """``name = default`` and its range, for the optimizer's docstring."""
        if self.kind == "number":
            allowed = f"a finite float in {self.interval}"
        elif self.kind == "betas":
            allowed = f"two floats in {self.interval}"
        else:
            allowed = " or ".join(repr(c) for c in self.choices) if self.kind == "choice" else "True or False"
        return f"``{self.name}={self.default!r}``: {allowed}"

    def convert(self, who: str, value: Any) -> Any:
        """``value`` as a plain Python value of this kind, or :class:`OptimizerError` naming
        the optimizer ``who``, this keyword, its range and the value."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise OptimizerError(f"{who}: expected {self.name} True or False, got {value!r}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                options = " or ".join(repr(c) for c in self.choices)
                raise OptimizerError(f"{who}: {self.name} must be {options}, got {value!r}")
            return str(value)
        if self.kind == "betas":
            return self._betas(who, value)
        return self._number(who, value)

    def _number(self, who: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            kind = type(value).__name__
            raise OptimizerError(f"{who}: expected {self.name} a Python number, got {kind} {value!r}")
        number = float(value)  # a NumPy scalar would promote float32 arrays: plain floats only
        above = number > self.low or (number == self.low and not self.low_open)
        below = number < self.high or (number == self.high and not self.high_open)
        if above and below and math.isfinite(number):
            return number
        raise OptimizerError(f"{who}: expected {self._wanted(number)}, got {value!r} (range {self.interval})")

    def _wanted(self, number: float) -> str:
        """The bound ``number`` breaks, in words."""
        if math.isnan(number):
            return f"{self.name} in {self.interval}"
        if number <= self.low:
            return f"{self.name} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high == math.inf:
            return f"a finite {self.name}"
        return f"{self.name} {'<' if self.high_open else '<='} {self.high:g}"

    def _betas(self, who: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise OptimizerError(f"{who}: expected betas (beta1, beta2) in {self.interval}, got {value!r}")
        try:
            beta1, beta2 = (self._number(who, beta) for beta in value)
        except OptimizerError:
            raise OptimizerError(
                f"{who}: expected betas (beta1, beta2) in {self.interval}, got {tuple(value)!r}"
            ) from None
        return beta1, beta2


def with_default(declared: Sequence[Hyper], name: str, default: Any) -> tuple[Hyper, ...]:
    """``declared`` with ``name``'s default changed (AdamW's weight decay is Adam's, defaulting to 1e-2)."""
    return tuple(replace(h, default=default) if h.name == name else h for h in declared)


# -- the declarations (DESIGN.md's public defaults) --------------------------------------------
DECAY = Hyper("decay", 0.0)  # NNFS inverse-time decay: lr_t = lr / (1 + decay * t)
WEIGHT_DECAY = Hyper("weight_decay", 0.0)
MOMENTUM = Hyper("momentum", 0.0, high=1.0)  # above 1 the buffer grows geometrically
DAMPENING = Hyper("dampening", 0.0, high=1.0)
NESTEROV = Hyper("nesterov", False, "bool")
MOMENTUM_STYLE = Hyper("momentum_style", "torch", "choice", choices=("torch", "nnfs"))
EPS = Hyper("eps", 1e-7, low_open=True)  # the book's and Keras' default; 0 gives 0/0 at a zero gradient
ADAM_EPS = replace(EPS, default=1e-8)  # torch's
INITIAL_ACCUMULATOR_VALUE = Hyper("initial_accumulator_value", 0.0)
RHO = Hyper("rho", 0.9, high=1.0)
CENTERED = Hyper("centered", False, "bool")
BETAS = Hyper("betas", (0.9, 0.999), "betas", high=1.0, high_open=True)
AMSGRAD = Hyper("amsgrad", False, "bool")
LR_RANGE = _interval(0.0, math.inf, False, True)


def check_rate(who: str, value: Any) -> float:
    """A learning rate: a finite Python number >= 0 (the value a schedule returns is checked too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptimizerError(f"{who}: expected a learning rate (Python float), got {type(value).__name__}")
    rate = float(value)
    if not rate >= 0.0:  # also catches NaN
        raise OptimizerError(f"{who}: expected a learning rate >= 0, got {value!r} (lr: range {LR_RANGE})")
    if rate == math.inf:
        raise OptimizerError(f"{who}: expected a finite learning rate, got {value!r} (lr: range {LR_RANGE})")
    return rate


def learning_rate(who: str, value: Any) -> float | Schedule:
    """Decided once, when a group gets its rate: a schedule (any callable) or a checked float."""
    return value if callable(value) else check_rate(who, value)


def check_values(who: str, declared: Sequence[Hyper], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` by keyword as plain Python values: ``lr`` a rate or a schedule, each declared
    keyword converted and range-checked (:meth:`Hyper.convert`), others (a custom optimizer's) as given."""
    specs = {h.name: h for h in declared}
    return {
        key: learning_rate(who, value)
        if key == "lr"
        else specs[key].convert(who, value)
        if key in specs
        else value
        for key, value in values.items()
    }


def documented(doc: str | None, declared: Sequence[Hyper]) -> str:
    """``doc`` with the declared keywords, defaults and ranges appended (what ``help()`` shows)."""
    lines = [f"    - {h.describe()}" for h in declared]
    rate = f"    - ``lr``: a finite float in {LR_RANGE}, or a schedule ``t -> lr``"
    clip = "    - ``clip_value``, ``clip_norm``, ``clip_global_norm``: None or a finite float > 0"
    return (
        f"{doc or ''}\n    Keywords, each checked at construction, in add_param_group and on load:\n\n"
        + "\n".join([rate, *lines, clip])
        + "\n"
    )


def signature(
    lr_default: Any, declared: Sequence[Hyper], extra: Sequence[inspect.Parameter]
) -> inspect.Signature:
    """The constructor signature ``(params, lr, *, <declared>, <extra>)`` shown by ``inspect``."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            inspect.Parameter("params", positional, annotation="Iterable[Parameter] | Iterable[dict]"),
            inspect.Parameter("lr", positional, default=lr_default, annotation="float | Schedule"),
            *(
                inspect.Parameter(h.name, keyword, default=h.default, annotation=h.annotation)
                for h in declared
            ),
            *extra,
        ]
    )
