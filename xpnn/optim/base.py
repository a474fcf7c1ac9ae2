"""The Optimizer base class: the loop, per-parameter state, step count, learning rate, clipping, hooks.

A subclass owns only its update equation (DeZero's ``update_one``, optax's ``scale_by_*``):
``state_names`` says which arrays it keeps per parameter and ``update`` maps
``(value, grad, state, group, lr)`` to the new value. Everything here is elementwise per
array, so the same code updates one big flat buffer as well as many small tensors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xpnn import kernels
from xpnn.backend import device_of, namespace
from xpnn.errors import OptimizerError
from xpnn.kernels.denormals import flush_denormals
from xpnn.nn.parameter import Parameter
from xpnn.optim import hyper
from xpnn.optim.checks import check_new_parameters, check_state_shapes, reject_gradient
from xpnn.optim.clipping import CLIP_KEYWORDS, CLIP_PARAMETERS, GradientClipping
from xpnn.optim.flat import FlatBuffers, Slot
from xpnn.optim.hyper import REQUIRED, Hyper, Schedule, check_rate, learning_rate
from xpnn.optim.state import follow, plain_state_dict, restore

Array = Any
Hook = Callable[["Optimizer"], None]


class Optimizer:
    """Updates a list of :class:`~xpnn.Parameter` (or torch-style parameter groups) in place.

    ``params`` is an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}``
    each overriding the optimizer's keywords for its parameters (``param_groups``, as
    torch.optim). ``lr`` is a float or a schedule ``t -> lr`` called with ``t`` = the number of
    steps taken (0 at the first step); ``decay`` > 0 multiplies it by ``1 / (1 + decay * t)``
    (the NNFS book's inverse-time decay). ``clip_value`` / ``clip_norm`` (per tensor) /
    ``clip_global_norm`` clip the gradients (in that order) before the update equation,
    without modifying ``.grad``. Parameters whose ``grad`` is ``None`` are skipped, as torch does.

    A subclass declares ``hyperparameters`` (:class:`~xpnn.optim.hyper.Hyper`: keyword, default,
    range, once) and writes ``update``; its constructor signature is built from the declarations.

    Three fast paths, all on by default and all off under ``xpnn.kernels.enabled(False)``:
    ``fused`` tries the class's ``update_fast`` (its equation in :mod:`xpnn.kernels.optimizers`,
    with the scalars the class computed) before its plain ``update`` (False: always the plain
    equation); ``flat`` packs each group into one buffer (see :mod:`xpnn.optim.flat`);
    ``flush_denormals`` runs the step with x86 flush-to-zero (see :mod:`xpnn.kernels.denormals`):
    optimizer state that decays below float32's smallest normal number (1.2e-38) becomes 0
    instead of a subnormal that slows every later step 2-3x; the updates such state contributes
    are far below a weight's last digit, so the weights come out bit for bit the same (tested).
    Set it False for IEEE gradual underflow.
    """

    fused = True  # try ``update_fast`` before ``update`` (False: the plain equation)
    flat = True  # pack each group into one flat buffer where the backend has views (False: never)
    flush_denormals = True  # step with subnormal floats flushed to zero on x86 (see backend.denormals)
    hyperparameters: tuple[Hyper, ...] = ()  # the keywords after ``lr``, declared once each
    nonnegative_state: tuple[str, ...] = ()  # saved state that must be >= 0 (squares' averages)
    lr_default: Any = REQUIRED

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "update" in cls.__dict__ and "update_fast" not in cls.__dict__:
            cls.update_fast = Optimizer.update_fast  # type: ignore[method-assign]  # a new equation: not the old kernel
        cls.__signature__ = hyper.signature(cls.lr_default, cls.hyperparameters, CLIP_PARAMETERS)  # type: ignore[attr-defined]
        if cls.hyperparameters and "hyperparameters" in cls.__dict__:
            cls.__doc__ = hyper.documented(cls.__doc__, cls.hyperparameters)

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: float | Schedule = REQUIRED,  # type: ignore[assignment]  # the class default (Adam: 1e-3)
        **keywords: Any,
    ) -> None:
        who = type(self).__name__
        lr = self.lr_default if lr is REQUIRED else lr
        names = {h.name for h in self.hyperparameters}
        unknown = sorted(set(keywords) - names - set(CLIP_KEYWORDS))
        if lr is REQUIRED or unknown:
            what = f"an unexpected keyword argument {unknown[0]!r}" if unknown else "no learning rate 'lr'"
            raise TypeError(f"{who}() got {what}; its signature is {who}{inspect.signature(type(self))}")
        self.defaults = self.checked(
            {"lr": lr, **{h.name: keywords.get(h.name, h.default) for h in self.hyperparameters}}
        )
        self.clipping = GradientClipping(*(keywords.get(name) for name in CLIP_KEYWORDS))
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by position, created at the first step
        self.t = 0  # steps taken; the schedule and ``decay`` read it
        self._flat = FlatBuffers()  # group index -> its flat buffers (see flat.py)
        self._seen: dict[int, Array] = {}  # position -> the value array its state was checked against
        self._last_pending: list[tuple[int, Parameter, int]] = []  # the last full step's parameters
        self._pre_hooks: list[Hook] = []
        self._post_hooks: list[Hook] = []
        groups = list(params)
        if not groups:
            raise OptimizerError(f"{who}: got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)  # type: ignore[arg-type]

    # -- what a subclass provides -------------------------------------------------------------
    def state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the arrays kept per parameter under ``group``'s hyperparameters."""
        return ()

    def init_state(self, value: Array, group: dict[str, Any]) -> dict[str, Array]:
        """The state of one parameter before its first step: zeros like the parameter."""
        xp = namespace(value)
        return {name: xp.zeros_like(value) for name in self.state_names(group)}

    def check_group(self, group: dict[str, Any]) -> None:
        """Raise :class:`OptimizerError` for hyperparameters that conflict (SGD's Nesterov needs
        momentum); each one's own range is checked by its declaration before this is called."""

    def update(
        self, value: Array, grad: Array, state: dict[str, Any], group: dict[str, Any], lr: float
    ) -> Array:
        """The new value of one parameter; updates ``state`` through :func:`xpnn.backend.assign`."""
        raise NotImplementedError

    def update_fast(
        self, value: Array, grad: Array, state: dict[str, Any], group: dict[str, Any], lr: float
    ) -> bool:
        """``update`` by the class's fast form (:mod:`xpnn.kernels.optimizers`), in place into
        ``value`` and ``state``; False (nothing changed) where it does not apply."""
        return False

    # -- groups and learning rate -------------------------------------------------------------
    def checked(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (hyperparameters by keyword) as plain Python values, each checked by its declaration."""
        return hyper.check_values(type(self).__name__, self.hyperparameters, values)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add parameters with their own hyperparameters (the rest from the constructor's keywords)."""
        who = type(self).__name__
        if not isinstance(group, Mapping) or "params" not in group:
            raise OptimizerError(f"{who}: expected a parameter group {{'params': [...], ...}}, got {group!r}")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            expected = sorted(self.defaults)
            raise OptimizerError(f"{who}: unknown hyperparameter(s) {unknown}; expected some of {expected}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        check_new_parameters(who, params, {id(p) for p in self.parameters()})
        merged = {"params": params, **self.checked({k: group.get(k, v) for k, v in self.defaults.items()})}
        self.check_group(merged)
        self.param_groups.append(merged)

    def parameters(self) -> list[Parameter]:
        """All parameters, in position order (the keys of ``state`` and ``state_dict``)."""
        return [p for group in self.param_groups for p in group["params"]]

    def lr_at(self, t: int, group: int = 0) -> float:
        """The learning rate of parameter group ``group`` at step ``t`` (schedule and ``decay`` applied)."""
        hyper = self.param_groups[group]
        base = hyper["lr"]
        rate = (
            check_rate(f"{type(self).__name__}: schedule {base!r} at t={t}", base(t))
            if callable(base)
            else base
        )
        if hyper.get("decay"):
            rate = rate * (1.0 / (1.0 + hyper["decay"] * t))  # the book's expression, to the last bit
        return rate

    @property
    def lr(self) -> float:
        """The learning rate the NEXT ``step()`` uses (group 0). After the book's
        ``pre_update_params`` this is its ``current_learning_rate``."""
        return self.lr_at(self.t)

    @lr.setter
    def lr(self, value: float | Schedule) -> None:
        rate = learning_rate(type(self).__name__, value)  # checked before any group changes
        for group in self.param_groups:
            group["lr"] = rate

    # -- the step -----------------------------------------------------------------------------
    def _pending(self) -> list[tuple[int, Parameter, int]]:
        """(position, parameter, group index) of each parameter with a gradient, all checked first."""
        pending, position = [], 0
        for g_index, group in enumerate(self.param_groups):
            for p in group["params"]:
                grad, value = p.grad, p.value
                if grad is not None and p.requires_grad:
                    if (
                        type(grad) is not type(value)
                        or grad.dtype != value.dtype
                        or grad.shape != value.shape
                        or device_of(grad) != device_of(value)
                    ):
                        reject_gradient(type(self).__name__, position, p)
                    pending.append((position, p, g_index))
                position += 1
        return pending

    def step(self) -> None:
        """Update every parameter that has a gradient. Everything is checked before anything
        changes, so a ``step()`` that raises leaves parameters and state as they were."""
        if self._pre_hooks:
            for hook in self._pre_hooks:
                hook(self)
        with flush_denormals(self.flush_denormals and kernels.enabled()):
            self._step()
        self.t += 1
        if self._post_hooks:
            for hook in self._post_hooks:
                hook(self)

    def _rates(self) -> list[float]:
        return [self.lr_at(self.t, g) for g in range(len(self.param_groups))]

    def _step(self) -> None:
        """The loop: one update per slot (a packed group's flat buffers, or one parameter)."""
        flat = self.flat and kernels.enabled()
        slots = None
        if flat and not self.clipping:
            slots = self._flat.steady_slots(self.param_groups, self.state, self.state_names)
        full = slots is None
        if slots is None:
            slots = self._slots(flat)
        rates = self._rates()
        for g_index, slot in slots:
            slot.commit(self.apply_update(slot.value, slot.grad, slot.state, slot.group, rates[g_index]))
        if full:
            for position, p, _ in self._last_pending:
                self._seen[position] = p.value

    def _slots(self, flat: bool) -> list[tuple[int, Slot]]:
        """Check every pending gradient and state, clip, create missing state; the slots."""
        pending = self._last_pending = self._pending()
        self._rates()  # a schedule that raises does so before any state is created
        swapped = [entry for entry in pending if self._seen.get(entry[0]) is not entry[1].value]
        check_state_shapes(type(self).__name__, swapped, self.state)  # only a new value can change shape
        grads = [p.grad for _, p, _ in pending]
        if self.clipping and grads:
            grads = self.clipping(grads)
        sizes = [1 + len(self.state_names(group)) for group in self.param_groups]  # "step" + arrays
        for position, p, g_index in pending:
            group, state = self.param_groups[g_index], self.state.get(position)
            if state is None:
                self.state[position] = {"step": 0, **self.init_state(p.value, group)}
            elif self._seen.get(position) is not p.value or len(state) != sizes[g_index]:
                follow(state, p.value, self.state_names(group))  # value replaced, or a hyperparameter changed
        slots: list[tuple[int, Slot]] = []
        done: set[int] = set()
        if flat:
            slots, done = self._flat.slots(self.param_groups, self.state, self.state_names, pending, grads)
        for (position, p, g_index), grad in zip(pending, grads, strict=True):
            if position not in done:
                state = self.state[position]
                state["step"] += 1
                slots.append((g_index, Slot(p.value, grad, state, self.param_groups[g_index], params=(p,))))
        return slots

    def apply_update(
        self, value: Array, grad: Array, state: dict[str, Any], group: dict[str, Any], lr: float
    ) -> Array:
        """:meth:`update_fast` (in place) where ``fused`` and the fast paths are on and it
        applies, else :meth:`update`."""
        if self.fused and kernels.enabled() and self.update_fast(value, grad, state, group, lr):
            return value
        return self.update(value, grad, state, group, lr)

    def gradient_buffers(self) -> list[Array]:
        """The contiguous arrays that hold every pending gradient: per packable group its flat
        gradient buffer (gradients a layer did not write there are copied in, and each ``grad``
        becomes its view), else each gradient itself. For one collective per buffer (the
        data-parallel all-reduce): changing them in place changes what the next step uses."""
        self._pending()  # the same checks as step(), before anything is packed
        if not (self.flat and kernels.enabled()):
            return [p.grad for p in self.parameters() if p.grad is not None]
        return self._flat.gradient_buffers(self.param_groups)

    def gradient_layout(self) -> list[tuple[Array, list[tuple[Parameter, int, int]]]]:
        """Each flat gradient buffer (as :meth:`gradient_buffers` last packed them) with the
        parameters whose gradients are its slices ``[start, stop)``: what the data-parallel
        all-reduce splits into buckets that start while backward runs."""
        return self._flat.layout()

    def can_move_gradient_buffer(self, buffer: Array) -> bool:
        """Whether ``buffer`` is a flat gradient buffer this optimizer can swap for another."""
        return self._flat.holding(buffer) is not None

    def move_gradient_buffer(self, buffer: Array, new: Array) -> None:
        """Swap the flat gradient buffer ``buffer`` for ``new`` (same type, shape and dtype,
        holding the gradients): every gradient becomes a view of ``new``."""
        flat = self._flat.holding(buffer)
        if flat is None:
            raise ValueError(f"{type(self).__name__}.move_gradient_buffer: not one of its gradient buffers")
        flat.move_grads(new)

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to ``None`` (the next backward sets rather than adds)."""
        for p in self.parameters():
            p.grad = None

    def register_step_pre_hook(self, hook: Hook) -> Callable[[], None]:
        """Call ``hook(optimizer)`` before each step; returns a function that removes it."""
        self._pre_hooks.append(hook)
        return lambda: self._pre_hooks.remove(hook)

    def register_step_post_hook(self, hook: Hook) -> Callable[[], None]:
        """Call ``hook(optimizer)`` after each step; returns a function that removes it."""
        self._post_hooks.append(hook)
        return lambda: self._post_hooks.remove(hook)

    # -- saving and resuming ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data (numbers, strings, host NumPy copies) keyed by parameter position.

        A schedule is saved as its ``repr`` (text, not code): loading keeps the loading
        optimizer's schedule, which resumes at the saved step count ``t``.
        """
        return plain_state_dict(self)

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (e.g. after a round trip through ``np.savez``).

        Arrays go onto each parameter's backend, device and dtype. Raises
        :class:`OptimizerError` naming the mismatch (optimizer type, group or parameter count,
        state names, shapes); on error nothing is changed.
        """
        groups, state, t = restore(self, saved)
        for group, values in zip(self.param_groups, groups, strict=True):
            group.update(values)
        self.state, self.t = state, t

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items() if k != "params")
        return f"{type(self).__name__}({len(self.parameters())} parameters, {hyper})"
