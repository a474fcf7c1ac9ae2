"""Module: parameters and sub-modules found by assignment, as PyTorch's ``nn.Module``.

A Module's Parameters, Modules, and lists / tuples / dicts of them (nested too) assigned as
attributes are found in assignment order (Python keeps ``vars(self)`` in that order), with
dotted names: ``"inp.weight"``, ``"blocks.0.bias"``, ``"scale"``. Unlike torch, which lists a
module's own parameters before its children's, a Parameter assigned after a sub-module comes
after that sub-module's parameters: the order is the order of the code. A parameter or module
reached twice (weight tying, a shared layer) is listed once, under its first name.
``module(x)`` takes plain arrays as constant Tensors and calls ``forward``, which records on
the tape.

Buffers (non-trained state such as BatchNorm's running statistics) are registered by name
with :meth:`register_buffer`: saved in ``state_dict`` and checkpoints, moved and cast by
:meth:`to`. Training conveniences (``fit``, ``evaluate``, ``predict``, ``save``) are composed
onto the public ``xpnn.Module`` by :mod:`xpnn.train` (Keras 3's ``Model(Trainer, Layer)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from xpnn import backend
from xpnn.autograd.tensor import Tensor, constant
from xpnn.errors import CheckpointError, MissingForwardError
from xpnn.nn.parameter import Parameter
from xpnn.nn.state import check_buffer, load_state, move_to
from xpnn.nn.summary import module_repr, summary

Array = Any
_CONTAINERS = (list, tuple, dict)  # what may hold members (a tuple of types: faster than a union)


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Tensor)


class Module:
    """Base class of every model and layer; subclass it and write ``forward``."""

    training: bool = True
    buffer_names: tuple[str, ...] = ()  # buffers declared by class (register_buffer adds more)
    nonnegative_buffers: tuple[str, ...] = ()  # a loaded file must hold them >= 0 (a variance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(constant(a) if _is_array(a) else a for a in args)
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """What the module computes; a subclass writes it (on Tensors: the tape differentiates it)."""
        raise MissingForwardError(
            f"{type(self).__name__}.forward is not written: a Module subclass defines "
            "forward(self, x) -> Tensor (its backward then comes from the tape)"
        )

    # -- the tree -----------------------------------------------------------------------------------
    def members(self) -> Iterator[tuple[str, Parameter | Module]]:
        """The Parameters and Modules this module holds directly, in assignment order, by
        attribute name (``"blocks.0"`` for a list's items, ``"heads.q"`` for a dict's)."""
        for name, value in vars(self).items():
            yield from attribute_members(name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules, by attribute name."""
        for key, item in self.members():
            if isinstance(item, Module):
                yield key, item

    def children(self) -> list[Module]:
        """The direct sub-modules, in :meth:`named_children`' order (found without their names:
        ``regularization_loss`` walks the tree at every step)."""
        found: list[Module] = []
        for value in vars(self).values():
            if isinstance(value, Module):
                found.append(value)
            elif isinstance(value, _CONTAINERS):
                _modules_in(value, found)
        return found

    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
        """This module (named ``prefix``) and every sub-module, each once, parents first."""
        found: list[tuple[str, Module]] = []
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            found.append((name, module))
            children = list(module.named_children())
            stack.extend((f"{name}.{key}" if name else key, child) for key, child in reversed(children))
        return found

    def modules(self) -> list[Module]:
        """This module and every sub-module, each once, in :meth:`named_modules`' order."""
        found: list[Module] = []
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:  # named_modules without the names (see children)
            module = stack.pop()
            if id(module) not in seen:
                seen.add(id(module))
                found.append(module)
                stack.extend(reversed(module.children()))
        return found

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` in assignment order, depth first; a tied parameter once."""
        found: list[tuple[str, Parameter]] = []
        seen: set[int] = set()

        def visit(prefix: str, module: Module) -> None:
            seen.add(id(module))
            for key, item in module.members():
                if id(item) in seen:
                    continue
                name = f"{prefix}.{key}" if prefix else key
                if isinstance(item, Module):
                    visit(name, item)
                elif item.value is not None:  # a Parameter not yet given a value is no parameter
                    seen.add(id(item))
                    found.append((name, item))

        visit("", self)
        return found

    def parameters(self) -> list[Parameter]:
        """The Parameters of this module and its sub-modules, in assignment order; a tied one once."""
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: Array | None) -> None:
        """Keep ``value`` (an array, or None: no buffer for now) as non-trained state: an
        attribute, in ``buffers()``, ``state_dict()`` and checkpoints, moved by ``to()``."""
        taken = vars(self).get(name)
        check_buffer(self.who(), name, value, taken if isinstance(taken, Parameter | Module) else None)
        names = vars(self).setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)
        setattr(self, name, value)

    def own_buffers(self) -> dict[str, Array]:
        """This module's buffers (not its sub-modules'), by name; a buffer set to None is left out."""
        names = (*self.buffer_names, *vars(self).get("_buffer_names", ()))
        values = {name: getattr(self, name) for name in names}
        return {name: value for name, value in values.items() if value is not None}

    def named_buffers(self) -> list[tuple[str, Array]]:
        """``(dotted name, array)`` of every module's buffers, in module order."""
        return [
            (f"{prefix}.{name}" if prefix else name, value)
            for prefix, module in self.named_modules()
            for name, value in module.own_buffers().items()
        ]

    def buffers(self) -> dict[str, Array]:
        """``{"bn.running_mean": array, ...}``: every module's buffers, by dotted name."""
        return dict(self.named_buffers())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module, then on this one (torch's order: each child's whole
        subtree in turn, children before parents), each module once; returns self."""
        seen: set[int] = set()

        def visit(module: Module) -> None:
            seen.add(id(module))
            for child in module.children():
                if id(child) not in seen:
                    visit(child)
            fn(module)

        visit(self)
        return self

    # -- modes, placement, gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=True``) or eval mode for this module and every sub-module; returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Eval mode (``train(False)``): dropout off, BatchNorm on its running statistics; returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (the next backward sets, then adds)."""
        for p in self.parameters():
            p.grad = None

    def to(self, target: str | backend.Backend, *, dtype: str | None = None) -> Module:
        """Move every parameter and buffer to a backend, e.g. ``"cupy"``, and cast the floating
        ones to ``dtype`` (None: each keeps its own: float64 stays float64; integer and boolean
        buffers are never cast); in place, returns self. Everything is checked before anything
        moves."""
        move_to(self, backend.resolve(target) if isinstance(target, str) else target, dtype)
        return self

    @property
    def backend(self) -> str:
        """The backend name of the parameters (``"numpy"`` for a module without any)."""
        params = self.parameters()
        if params:
            return backend.backend_name(params[0].value)
        buffers = list(self.buffers().values())
        return backend.backend_name(buffers[0]) if buffers else "numpy"

    # -- hooks of training (containers pass them on to their children; layers override) -------------
    def reset_parameters(self, rng: Any) -> None:
        """Draw fresh initial parameters from the host generator ``rng``, child by child."""
        for child in self.children():
            child.reset_parameters(rng)

    def start_epoch(self, epoch: int) -> None:
        """Called by ``fit`` before each epoch (Dropout restarts its mask counter there)."""
        for child in self.children():
            child.start_epoch(epoch)

    def set_communicator(self, communicator: Any) -> None:
        """Data-parallel training hands every module the communicator (None: one process)."""
        for child in self.children():
            child.set_communicator(communicator)

    def penalty(self) -> Any:
        """This module's OWN penalty added to the loss (Dense's NNFS L1/L2 terms), not its
        sub-modules': a 0-d Tensor, or 0.0 for none."""
        return 0.0

    def regularization_loss(self, seen: set[int] | None = None) -> Any:
        """The sum of the own :meth:`penalty` of this module and every sub-module (0.0 when
        none): a 0-d Tensor whose gradient is the book's. A module used twice counts once
        (``seen``: the ids of the modules already counted by a caller walking the tree)."""
        seen = {id(self)} if seen is None else seen
        total = self.penalty()
        for child in self.children():
            if id(child) not in seen:
                seen.add(id(child))
                penalty = child.regularization_loss(seen)
                if not (isinstance(penalty, float) and penalty == 0.0):
                    total = penalty if isinstance(total, float) else total + penalty
        return total

    def counters(self) -> dict[str, int]:
        """This module's own integer state saved in checkpoints (Dropout's mask counters)."""
        return {}

    def load_counters(self, counters: dict[str, int]) -> None:
        """Restore :meth:`counters`; only this module's own names are accepted."""
        if counters:
            raise CheckpointError(f"{self!r}: has no counters, got {sorted(counters)}")

    def output_width(self) -> int | None:
        """The number of output features where the module fixes it, else None (unknown)."""
        return None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self, *, to_torch: bool = False) -> dict[str, Array]:
        """Every parameter's and buffer's array by dotted name (the arrays, not copies).
        ``to_torch``: the names and layouts a torch module of the same shape loads
        (:mod:`xpnn.nn.torch_layout`: Dense weights transposed, BatchNorm's
        ``num_batches_tracked`` a 0-d int64 array), still on this module's backend."""
        if to_torch:
            from xpnn.nn.torch_layout import torch_state

            return torch_state(self)
        state = {name: p.value for name, p in self.named_parameters()}
        state.update(self.named_buffers())
        return state

    def load_state_dict(
        self, state: Mapping[str, Any], *, strict: bool = True, from_torch: bool = False
    ) -> tuple[list[str], list[str]]:
        """Copy arrays (any backend; each moved onto the parameter's backend, device and dtype) into
        the parameters and buffers named by ``state``. The whole dict is checked first (names,
        shapes, floating dtypes), so a refused dict changes nothing. ``strict=False`` loads the
        names that match and returns ``(missing, unexpected)`` keys, as torch's. ``from_torch``:
        a torch module's state dict (torch tensors or arrays) of the same architecture, in
        torch's names and layouts (:mod:`xpnn.nn.torch_layout`)."""
        if from_torch:
            from xpnn.nn.torch_layout import load_torch_state

            return load_torch_state(self, state, strict=strict)
        return load_state(self, state, strict=strict)

    # -- reading it ---------------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of the modules (nested ones by dotted name), their output shapes for inputs of
        ``input_shape`` (no batch axis: one probe forward in eval mode under ``no_grad``, which
        changes nothing), their parameters, and the trainable / frozen totals
        (:mod:`xpnn.nn.summary`)."""
        return summary(self, input_shape)

    def __str__(self) -> str:
        """``print(model)``: the :meth:`summary` table of a model (without output shapes: call
        ``summary(input_shape=...)`` for them); a single layer prints as its ``repr``."""
        return self.summary() if any(True for _ in self.named_children()) else repr(self)

    def who(self) -> str:
        """How error messages name this module (``Dense(784 -> 128)``, ``Sequential(3 layers)``)."""
        return type(self).__name__

    def extra_repr(self) -> str:
        """The constructor arguments shown by ``repr`` (layers say theirs)."""
        return ""

    def __repr__(self) -> str:
        return module_repr(self)


def _modules_in(container: list[Any] | tuple[Any, ...] | dict[Any, Any], found: list[Module]) -> None:
    """Append the Modules in a list / tuple / dict (nested too) to ``found``, in order."""
    for item in container.values() if isinstance(container, dict) else container:
        if isinstance(item, Module):
            found.append(item)
        elif isinstance(item, _CONTAINERS):
            _modules_in(item, found)


def attribute_members(name: str, value: Any) -> Iterator[tuple[str, Parameter | Module]]:
    """The Parameter or Module an attribute holds, or those in a list / tuple / dict of them
    (nested too), with their dotted names; anything else is no member."""
    if isinstance(value, Parameter | Module):
        yield name, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from attribute_members(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from attribute_members(f"{name}.{key}", item)
