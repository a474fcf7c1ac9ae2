"""The Optimizer base class: the loop, per-parameter state, step count, learning rate, clipping, hooks.

A subclass owns only its update equation (DeZero's ``update_one``, optax's ``scale_by_*``):
``state_names`` says which arrays it keeps per parameter and ``update`` maps
``(value, grad, state, group, lr)`` to the new value. Everything here is elementwise per
array, so the same code updates one big flat buffer as well as many small tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xpnn.backend import assign, device_of, move_like, namespace, to_host
from xpnn.backend.denormals import flush_denormals
from xpnn.errors import DTypeError, NotAParameterError, OptimizerError, ShapeError
from xpnn.nn.checks import check_like, is_floating
from xpnn.nn.parameter import Parameter
from xpnn.optim.clipping import GradientClipping
from xpnn.optim.flat import FlatGroup
from xpnn.optim.state import as_hyperparameter, check_rate, restore, to_host_state

Array = Any
Schedule = Callable[[int], float]
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

    Two switches, both on by default: ``flat`` packs each group into one buffer (see
    :mod:`xpnn.optim.flat`); ``flush_denormals`` runs the step with x86 flush-to-zero (see
    :mod:`xpnn.backend.denormals`): optimizer state that decays below float32's smallest
    normal number (1.2e-38) becomes 0 instead of a subnormal that slows every later step
    2-3x; the updates such state contributes are far below a weight's last digit, so the
    weights come out bit for bit the same (tested). Set it False for IEEE gradual underflow.
    """

    flat = True  # pack each group into one flat buffer where the backend has views (False: never)
    flush_denormals = True  # step with subnormal floats flushed to zero on x86 (see backend.denormals)

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        defaults: dict[str, Any],
        *,
        clip_value: float | None = None,
        clip_norm: float | None = None,
        clip_global_norm: float | None = None,
    ) -> None:
        self.defaults = defaults
        self.clipping = GradientClipping(clip_value, clip_norm, clip_global_norm)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by position, created at the first step
        self.t = 0  # steps taken; the schedule and ``decay`` read it
        self._flat: dict[int, FlatGroup | None] = {}  # group index -> its flat buffers (see flat.py)
        self._seen: dict[int, Array] = {}  # position -> the value array its state was checked against
        self._pre_hooks: list[Hook] = []
        self._post_hooks: list[Hook] = []
        groups = list(params)
        if not groups:
            raise OptimizerError(f"{type(self).__name__}: got an empty parameter list")
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
        """Raise :class:`OptimizerError` for a hyperparameter out of range (subclasses extend)."""
        who = type(self).__name__
        if not callable(group["lr"]):
            check_rate(who, group["lr"])
        for key in ("weight_decay", "decay", "eps", "momentum"):
            if key in group and not group[key] >= 0.0:
                raise OptimizerError(f"{who}: expected {key} >= 0, got {group[key]!r}")

    def update(
        self, value: Array, grad: Array, state: dict[str, Any], group: dict[str, Any], lr: float
    ) -> Array:
        """The new value of one parameter; updates ``state`` through :func:`xpnn.backend.assign`."""
        raise NotImplementedError

    # -- groups and learning rate -------------------------------------------------------------
    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add parameters with their own hyperparameters (the rest from the constructor's keywords)."""
        who = type(self).__name__
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            expected = sorted(self.defaults)
            raise OptimizerError(f"{who}: unknown hyperparameter(s) {unknown}; expected some of {expected}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        known = {id(p) for p in self.parameters()}
        first = len(known)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise NotAParameterError(
                    f"{who}: parameter {first + i} is a {type(p).__name__}, expected an xpnn.Parameter "
                    "(pass model.parameters() or layer.parameters())"
                )
            if not is_floating(p.value):
                raise DTypeError(
                    f"{who}: parameter {first + i} {p.name!r}: expected a floating dtype, got {p.dtype}"
                )
            if id(p) in known:
                raise OptimizerError(f"{who}: parameter {first + i} {p.name!r} appears twice")
            known.add(id(p))
        merged = {"params": params}
        for key, default in self.defaults.items():
            merged[key] = as_hyperparameter(key, group.get(key, default), default)
        self.check_group(merged)
        self.param_groups.append(merged)

    def parameters(self) -> list[Parameter]:
        """All parameters, in position order (the keys of ``state`` and ``state_dict``)."""
        return [p for group in self.param_groups for p in group["params"]]

    def lr_at(self, t: int, group: int = 0) -> float:
        """The learning rate of parameter group ``group`` at step ``t`` (schedule and ``decay`` applied)."""
        hyper = self.param_groups[group]
        base = hyper["lr"]
        rate = float(base(t)) if callable(base) else base
        if callable(base):
            check_rate(f"{type(self).__name__}: schedule {base!r} at t={t}", rate)
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
        for group in self.param_groups:
            group["lr"] = value if callable(value) else float(value)
            self.check_group(group)

    # -- the step -----------------------------------------------------------------------------
    def _pending(self) -> list[tuple[int, Parameter, int]]:
        """(position, parameter, group index) of each parameter with a gradient, all checked first."""
        pending, position = [], 0
        for g_index, group in enumerate(self.param_groups):
            for p in group["params"]:
                grad, value = p.grad, p.value
                if grad is not None:
                    if (
                        type(grad) is not type(value)
                        or grad.dtype != value.dtype
                        or grad.shape != value.shape
                        or device_of(grad) != device_of(value)
                    ):
                        self._reject_gradient(position, p)
                    pending.append((position, p, g_index))
                position += 1
        return pending

    def _reject_gradient(self, position: int, p: Parameter) -> None:
        """Raise the specific error for a gradient the fast check in ``_pending`` refused."""
        culprit = f"{type(self).__name__}: parameter {position} {p.name!r}"
        grad = p.grad
        check_like(culprit, grad, p.value, what="gradient")
        raise ShapeError(
            f"{culprit}: expected a gradient of shape {tuple(p.value.shape)} "
            f"(the parameter's), got {tuple(grad.shape)}"  # type: ignore[union-attr]
        )

    def step(self) -> None:
        """Update every parameter that has a gradient. Everything is checked before anything
        changes, so a ``step()`` that raises leaves parameters and state as they were."""
        for hook in self._pre_hooks:
            hook(self)
        with flush_denormals(self.flush_denormals):
            self._step()
        self.t += 1
        for hook in self._post_hooks:
            hook(self)

    def _step(self) -> None:
        pending = self._pending()
        rates = [self.lr_at(self.t, g) for g in range(len(self.param_groups))]
        grads = [p.grad for _, p, _ in pending]
        if self.clipping and grads:
            grads = self.clipping(grads)
        sizes = [1 + len(self.state_names(group)) for group in self.param_groups]  # "step" + arrays
        for position, p, g_index in pending:
            group, state = self.param_groups[g_index], self.state.get(position)
            if state is None:
                self.state[position] = {"step": 0, **self.init_state(p.value, group)}
            elif self._seen.get(position) is not p.value or len(state) != sizes[g_index]:
                self._follow(state, p.value, group)  # value replaced, or a hyperparameter changed
        done = self._flat_step(pending, grads, rates) if self.flat else set()
        for (position, p, g_index), grad in zip(pending, grads, strict=True):
            if position in done:
                continue
            state = self.state[position]
            state["step"] += 1
            new = self.update(p.value, grad, state, self.param_groups[g_index], rates[g_index])
            p.value = assign(p.value, new)
        for position, p, _ in pending:
            self._seen[position] = p.value

    def _follow(self, state: dict[str, Any], value: Array, group: dict[str, Any]) -> None:
        """Keep a parameter's state on its backend, device and dtype (after ``model.to()``),
        and create state that a changed hyperparameter (e.g. momentum turned on) now needs."""
        for name in self.state_names(group):
            array = state.get(name)
            if array is None:
                state[name] = namespace(value).zeros_like(value)
            elif (
                type(array) is not type(value)
                or array.dtype != value.dtype
                or device_of(array) != device_of(value)
            ):
                state[name] = move_like(to_host(array), value)

    def _flat_step(
        self, pending: list[tuple[int, Parameter, int]], grads: list[Array], rates: list[float]
    ) -> set[int]:
        """Update each packable group as ONE flat array; returns the positions it updated.

        A group qualifies when every one of its parameters has a gradient and all share one
        step count (else the per-parameter path runs: same equations, same numbers).
        """
        done: set[int] = set()
        by_group: dict[int, list[tuple[int, Array]]] = {}
        for (position, _, g_index), grad in zip(pending, grads, strict=True):
            by_group.setdefault(g_index, []).append((position, grad))
        first = 0
        for g_index, group in enumerate(self.param_groups):
            positions = range(first, first + len(group["params"]))
            first += len(group["params"])
            entries = by_group.get(g_index, [])
            flat = self._flat_group(g_index)
            if flat is None or len(entries) != len(positions) or len(positions) < 2:
                continue
            states = [self.state[position] for position in positions]
            if len({state["step"] for state in states}) != 1:
                continue
            names = self.state_names(group)
            flat.pack_state(states, names)
            shared = {"step": states[0]["step"] + 1, **{name: flat.state[name] for name in names}}
            new = self.update(
                flat.values, flat.gather_grads([g for _, g in entries]), shared, group, rates[g_index]
            )
            flat.values = assign(flat.values, new)
            for name in names:
                if shared[name] is not flat.state[name]:  # an equation that rebound instead of assigning
                    flat.state[name] = assign(flat.state[name], shared[name])
            for state in states:
                state["step"] += 1
            done.update(positions)
        return done

    def _flat_group(self, g_index: int) -> FlatGroup | None:
        """The group's flat buffer, packed on first use and re-packed after a value was swapped."""
        flat = self._flat.get(g_index)
        if flat is not None and flat.in_sync():
            return flat
        if flat is not None and flat.still_fits():
            flat.pack_values()
            return flat
        params = self.param_groups[g_index]["params"]  # new, moved or recast values: pack afresh
        flat = self._flat[g_index] = FlatGroup(params) if FlatGroup.packable(params) else None
        return flat

    def gradient_buffers(self) -> list[Array]:
        """The contiguous arrays that hold every pending gradient: per packable group its flat
        gradient buffer (gradients a layer did not write there are copied in, and each ``grad``
        becomes its view), else each gradient itself. For one collective per buffer (the
        data-parallel all-reduce): changing them in place changes what the next step uses."""
        self._pending()  # the same checks as step(), before anything is packed
        buffers: list[Array] = []
        for g_index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            flat = self._flat_group(g_index) if self.flat and len(params) == len(group["params"]) else None
            if flat is None:
                buffers += [p.grad for p in params]
                continue
            buffers.append(flat.gather_grads([p.grad for p in params]))
            for p, view in zip(params, flat.grad_views, strict=True):
                p.grad = view
        return buffers

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
        groups, position = [], 0
        for group in self.param_groups:
            saved = {k: (repr(v) if callable(v) else v) for k, v in group.items() if k != "params"}
            saved["params"] = list(range(position, position + len(group["params"])))
            position += len(group["params"])
            groups.append(saved)
        state = {i: to_host_state(entry) for i, entry in self.state.items()}
        return {"optimizer": type(self).__name__, "t": self.t, "param_groups": groups, "state": state}

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (e.g. after a round trip through ``np.savez``).

        Arrays go onto each parameter's backend, device and dtype. Raises
        :class:`OptimizerError` naming the mismatch (optimizer type, group or parameter count,
        state names, shapes); on error nothing is changed.
        """
        groups, state, t = restore(self, saved)
        for group, hyper in zip(self.param_groups, groups, strict=True):
            group.update(hyper)
        self.state, self.t = state, t

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items() if k != "params")
        return f"{type(self).__name__}({len(self.parameters())} parameters, {hyper})"
