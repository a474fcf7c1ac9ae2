"""Flat parameter buffers: one contiguous array per parameter group; parameters become views.

With every parameter of a group a view into one buffer (and its optimizer state likewise),
an elementwise update equation runs once over one big array instead of once per tensor:
~10 array operations per step instead of ~10 per tensor, the main lever for small models.
Only backends whose slices are writeable views (NumPy, CuPy, torch) are packed; the others
keep the per-parameter path. The packing is invisible: ``Parameter.value`` still has its
shape, the optimizer's state dict is still per parameter, and a parameter whose value the
user swapped is packed again (its new value copied in) before the next flat update.

The gradients have a flat buffer too: ``Parameter.gradient_out`` offers each parameter's
view of it, and on NumPy ``Dense`` writes its weight and bias gradients there directly
(``matmul(..., out=)``), so the optimizer reads them without gathering a copy.

Two differences from the per-parameter path: packing gives each ``Parameter`` a new array
(a view of the buffer), so read ``p.value`` after a step rather than keeping a reference to
the array you constructed it with (two Parameters sharing one array are packed as two); and
the next backward after ``zero_grad`` overwrites the array that ``p.grad`` was, so copy a
gradient you keep. Set ``optimizer.flat = False`` before the first step to keep both as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xpnn.backend import assign, device_of, namespace
from xpnn.backend.views import flatten_into, supports_views, view_as
from xpnn.nn.parameter import Parameter

Array = Any
Names = Callable[[dict[str, Any]], tuple[str, ...]]  # an optimizer's state names under a group


class FlatGroup:
    """The parameters of one group packed into one 1-D buffer, with their state buffers."""

    def __init__(self, params: Sequence[Parameter]) -> None:
        self.params = list(params)
        self.shapes = [tuple(p.value.shape) for p in self.params]
        self.bounds: list[tuple[int, int]] = []
        start = 0
        for shape in self.shapes:
            size = 1
            for n in shape:
                size *= int(n)
            self.bounds.append((start, start + size))
            start += size
        xp = self.xp = namespace(self.params[0].value)
        self.values = xp.empty(
            (start,), dtype=self.params[0].value.dtype, device=device_of(self.params[0].value)
        )
        self.grads = xp.empty_like(self.values)
        self.grad_views = self._views_of(self.grads)
        self.views: list[Array] = []
        self.state: dict[str, Array] = {}
        self.state_views: dict[str, list[Array]] = {}
        self.pack_values()

    @staticmethod
    def packable(params: Sequence[Parameter]) -> bool:
        """All of one array type, dtype and device, each a writeable-view backend."""
        if not params:
            return False
        first = params[0].value
        return all(
            type(p.value) is type(first)
            and p.value.dtype == first.dtype
            and supports_views(p.value)
            and device_of(p.value) == device_of(first)
            for p in params
        )

    def _views_of(self, flat: Array) -> list[Array]:
        return [
            view_as(flat[start:stop], shape)
            for (start, stop), shape in zip(self.bounds, self.shapes, strict=True)
        ]

    def pack_values(self) -> None:
        """Copy every parameter's current value into the buffer and make it a view of it."""
        flatten_into([p.value for p in self.params], self.values)
        self.views = self._views_of(self.values)
        for p, view, grad_view in zip(self.params, self.views, self.grad_views, strict=True):
            p.value, p.grad_home = view, grad_view

    def in_sync(self) -> bool:
        """True while every parameter's value is still its view (no one swapped it)."""
        return all(p.value is view for p, view in zip(self.params, self.views, strict=True))

    def still_fits(self) -> bool:
        """A swapped value can be packed again if its shape, dtype and backend are unchanged."""
        return (
            self.packable(self.params)
            and device_of(self.params[0].value) == device_of(self.values)
            and all(
                tuple(p.value.shape) == shape
                and type(p.value) is type(self.values)
                and p.value.dtype == self.values.dtype
                for p, shape in zip(self.params, self.shapes, strict=True)
            )
        )

    def gather_grads(self, grads: Sequence[Array]) -> Array:
        """The group's gradients in the persistent flat gradient buffer. Those a layer wrote
        there already (``Parameter.gradient_out``) are not copied."""
        homes = self.grad_views
        if all(g is home for g, home in zip(grads, homes, strict=True)):
            return self.grads
        if not any(g is home for g, home in zip(grads, homes, strict=True)):
            return flatten_into(grads, self.grads)
        for g, home in zip(grads, homes, strict=True):
            if g is not home:
                assign(home, g)
        return self.grads

    def move_grads(self, grads: Array) -> None:
        """Make ``grads`` (the flat buffer's shape and dtype, holding the current gradients) the
        group's gradient buffer: every parameter's ``grad`` and ``gradient_out`` become views of
        it (the data-parallel all-reduce moves it into memory the ranks share)."""
        want = (type(self.grads).__name__, tuple(self.grads.shape), self.grads.dtype)
        got = (type(grads).__name__, tuple(grads.shape), grads.dtype)
        if got != want or device_of(grads) != device_of(self.grads):  # checked before anything changes
            raise ValueError(f"FlatGroup.move_grads: expected (type, shape, dtype) {want}, got {got}")
        views = self._views_of(grads)
        old_views, self.grads, self.grad_views = self.grad_views, grads, views
        for p, old, new in zip(self.params, old_views, self.grad_views, strict=True):
            p.grad_home = new
            if p.grad is old:
                p.grad = new

    def unchanged(self, params: Sequence[Parameter], states: Sequence[Any], names: Sequence[str]) -> bool:
        """True while the packing of the last flat step still holds: each parameter's value and
        gradient are its views of the buffers, and its state (exactly ``names``, one step count)
        its views of the state buffers; then every check of the full step holds by construction."""
        if len(params) != len(self.views) or len(params) < 2:
            return False
        for p, value, grad in zip(params, self.views, self.grad_views, strict=True):
            if p.value is not value or p.grad is not grad:
                return False
        size = 1 + len(names)  # "step" and the arrays (a hyperparameter change changes the names)
        for state in states:
            if state is None or len(state) != size or state["step"] != states[0]["step"]:
                return False
        for name in names:  # plain loops: this runs at every step
            views = self.state_views.get(name)
            if views is None:
                return False
            for state, view in zip(states, views, strict=True):
                if state[name] is not view:
                    return False
        return True

    def pack_state(self, entries: Sequence[dict[str, Any]], names: Sequence[str]) -> None:
        """Make each parameter's state arrays views of one flat buffer per state name."""
        for name in names:
            views = self.state_views.get(name)
            if views is not None and all(e[name] is v for e, v in zip(entries, views, strict=True)):
                continue
            if name not in self.state:
                self.state[name] = self.xp.empty_like(self.values)
            flatten_into([e[name] for e in entries], self.state[name])
            self.state_views[name] = self._views_of(self.state[name])
            for entry, view in zip(entries, self.state_views[name], strict=True):
                entry[name] = view


class Slot:
    """One update of the optimizer's loop: ``value``, ``grad`` and ``state`` (with its step
    count) under ``group`` (the optimizer gives the rate): a whole packed group (its flat
    buffers) or one parameter; :meth:`commit` stores the new value and counts the step."""

    __slots__ = ("flat", "grad", "group", "params", "state", "states", "value")

    def __init__(self, value: Array, grad: Array, state: dict[str, Any], group: dict[str, Any],
                 *, flat: FlatGroup | None = None, params: Sequence[Parameter] = (),
                 states: Sequence[dict[str, Any]] = ()) -> None:  # fmt: skip
        self.value, self.grad, self.state, self.group = value, grad, state, group
        self.flat, self.params, self.states = flat, params, states

    def commit(self, new: Array) -> None:
        """Write ``new`` (and state an equation rebound instead of assigning) back, count the step."""
        if self.flat is None:
            p = self.params[0]
            p.value = assign(p.value, new)
            return
        flat = self.flat
        flat.values = assign(flat.values, new)
        for name, array in self.state.items():
            if name != "step" and array is not flat.state[name]:
                flat.state[name] = assign(flat.state[name], array)
        for state in self.states:
            state["step"] += 1


class FlatBuffers:
    """An optimizer's flat buffers: group index -> :class:`FlatGroup` (None: not packable)."""

    def __init__(self) -> None:
        self.groups: dict[int, FlatGroup | None] = {}

    def __getitem__(self, g_index: int) -> FlatGroup | None:
        return self.groups.get(g_index)

    def group(self, g_index: int, params: Sequence[Parameter]) -> FlatGroup | None:
        """The group's flat buffer, packed on first use and re-packed after a value was swapped."""
        flat = self.groups.get(g_index)
        if flat is not None and flat.in_sync():
            return flat
        if flat is not None and flat.still_fits():
            flat.pack_values()
            return flat
        flat = self.groups[g_index] = FlatGroup(params) if FlatGroup.packable(params) else None
        return flat  # new, moved or recast values: packed afresh

    def gradient_buffers(self, param_groups: Sequence[dict[str, Any]]) -> list[Array]:
        """Per group, its flat gradient buffer where every parameter has a gradient and the group
        packs (each ``grad`` then becomes a view of it), else the gradients themselves."""
        buffers: list[Array] = []
        for g_index, group in enumerate(param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            flat = self.group(g_index, group["params"]) if len(params) == len(group["params"]) else None
            if flat is None:
                buffers += [p.grad for p in params]
                continue
            buffers.append(flat.gather_grads([p.grad for p in params]))
            for p, view in zip(params, flat.grad_views, strict=True):
                p.grad = view
        return buffers

    def layout(self) -> list[tuple[Array, list[tuple[Parameter, int, int]]]]:
        """Per packed group: its flat gradient buffer and each parameter's ``[start, stop)`` in it."""
        return [
            (
                flat.grads,
                [(p, start, stop) for p, (start, stop) in zip(flat.params, flat.bounds, strict=True)],
            )
            for flat in self.groups.values()
            if flat is not None
        ]

    def holding(self, grads: Array) -> FlatGroup | None:
        """The group whose flat gradient buffer is ``grads``, if any."""
        for flat in self.groups.values():
            if flat is not None and flat.grads is grads:
                return flat
        return None

    def steady_slots(
        self, param_groups: Sequence[dict[str, Any]], states: dict[int, Any], names: Names
    ) -> list[tuple[int, Slot]] | None:
        """``(group index, slot)`` per group (the caller gives each its rate), when every group
        was updated flat last time and nothing changed since (:meth:`FlatGroup.unchanged`: the
        steady state of a training loop), skipping the checks and packing that cannot find
        anything new (~20 us per step on a small model); None otherwise."""
        plan, first = [], 0
        for g_index, group in enumerate(param_groups):
            positions = range(first, first + len(group["params"]))
            first += len(group["params"])
            flat = self.groups.get(g_index)
            entries: list[Any] = [states.get(position) for position in positions]  # None: no step yet
            if flat is None or not flat.unchanged(group["params"], entries, names(group)):
                return None
            plan.append((g_index, _flat_slot(flat, group, entries, names(group), flat.grads)))
        return plan

    def slots(self, param_groups: Sequence[dict[str, Any]], states: dict[int, Any],
              names: Names, pending: list[tuple[int, Parameter, int]],
              grads: list[Array]) -> tuple[list[tuple[int, Slot]], set[int]]:  # fmt: skip
        """``(group index, slot)`` per packable group, and the positions covered. A group qualifies when
        every one of its parameters has a gradient and all share one step count (the others
        are updated parameter by parameter: same equations, same numbers)."""
        found: list[tuple[int, Slot]] = []
        done: set[int] = set()
        by_group: dict[int, list[Array]] = {}
        for (_, _, g_index), grad in zip(pending, grads, strict=True):
            by_group.setdefault(g_index, []).append(grad)
        first = 0
        for g_index, group in enumerate(param_groups):
            positions = range(first, first + len(group["params"]))
            first += len(group["params"])
            entries = by_group.get(g_index, [])
            flat = self.group(g_index, group["params"])
            if flat is None or len(entries) != len(positions) or len(positions) < 2:
                continue
            group_states = [states[position] for position in positions]
            if len({state["step"] for state in group_states}) != 1:
                continue
            found.append((g_index, _flat_slot(flat, group, group_states, names(group), entries)))
            done.update(positions)
        return found, done


def _flat_slot(flat: FlatGroup, group: dict[str, Any], states: list[dict[str, Any]], names: tuple[str, ...],
               grads: list[Array] | Array) -> Slot:  # fmt: skip
    """The slot of a packed group; ``grads`` a list to gather, or its flat gradient buffer."""
    if grads is not flat.grads:
        flat.pack_state(states, names)
        grads = flat.gather_grads(grads)
    shared = {"step": states[0]["step"] + 1, **{name: flat.state[name] for name in names}}
    return Slot(flat.values, grads, shared, group, flat=flat, states=states)
