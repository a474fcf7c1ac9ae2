"""Module: parameters and sub-modules found by assignment, as PyTorch's ``nn.Module``.

A Module's Parameters, Modules, and lists / tuples / dicts of Modules (or of Parameters)
assigned as attributes are found in assignment order (Python keeps ``vars(self)`` in that
order), with dotted names: ``"inp.weight"``, ``"blocks.0.bias"``. A parameter reached twice
(weight tying) is listed once, under its first name. ``module(x)`` takes plain arrays as
constant Tensors and calls ``forward``, which records on the tape.

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
from xpnn.checks import check_float_dtype
from xpnn.errors import CheckpointError
from xpnn.nn.parameter import Parameter

Array = Any


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Tensor)


class Module:
    """Base class of every model and layer; subclass it and write ``forward``."""

    training: bool = True
    buffer_names: tuple[str, ...] = ()  # buffers declared by class (register_buffer adds more)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(constant(a) if _is_array(a) else a for a in args)
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__}.forward is not written: a Module subclass defines "
            "forward(self, x) -> Tensor (its backward then comes from the tape)"
        )

    # -- the tree -----------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules, by attribute name (``"blocks.0"`` for a list's items)."""
        for name, value in vars(self).items():
            for key, item in _items(name, value):
                if isinstance(item, Module):
                    yield key, item

    def children(self) -> list[Module]:
        return [m for _, m in self.named_children()]

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
        return [m for _, m in self.named_modules()]

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            for key, item in _items(name, value):
                if isinstance(item, Parameter):
                    yield key, item

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` in assignment order; a tied parameter once."""
        found, seen = [], set()
        for prefix, module in self.named_modules():
            for name, p in module._own_parameters():
                if id(p) not in seen and p.value is not None:
                    seen.add(id(p))
                    found.append((f"{prefix}.{name}" if prefix else name, p))
        return found

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: Array) -> None:
        """Keep ``value`` as non-trained state: an attribute, in ``buffers()`` and checkpoints."""
        names = vars(self).setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)
        setattr(self, name, value)

    def own_buffers(self) -> dict[str, Array]:
        """This module's buffers (not its sub-modules'), by name."""
        names = (*self.buffer_names, *vars(self).get("_buffer_names", ()))
        return {name: getattr(self, name) for name in names}

    def named_buffers(self) -> list[tuple[str, Array]]:
        return [
            (f"{prefix}.{name}" if prefix else name, value)
            for prefix, module in self.named_modules()
            for name, value in module.own_buffers().items()
        ]

    def buffers(self) -> dict[str, Array]:
        """``{"bn.running_mean": array, ...}``: every module's buffers, by dotted name."""
        return dict(self.named_buffers())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module, then on this one (torch's order); returns self."""
        for module in reversed(self.modules()):
            fn(module)
        return self

    # -- modes, placement, gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, target: str | backend.Backend, *, dtype: str | None = None) -> Module:
        """Move (and optionally cast) every parameter and buffer to a backend, e.g. ``"cupy"``;
        in place, returns self. Everything is checked before anything moves."""
        resolved = backend.resolve(target) if isinstance(target, str) else target
        check_float_dtype(f"{self.who()}.to", resolved.xp, dtype)

        def moved(value: Array) -> Array:
            kind = backend.dtype_name(value.dtype) if dtype is None else dtype
            return backend.from_host(backend.to_host(value), resolved, backend.dtype_named(resolved.xp, kind))

        for p in self.parameters():
            p.value, p.grad = moved(p.value), None
        for module in self.modules():
            for name, value in module.own_buffers().items():
                setattr(module, name, moved(value))
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

    def regularization_loss(self) -> Any:
        """The sum of the NNFS-style L1/L2 penalties below (0.0 when none): a 0-d Tensor whose
        gradient is the book's."""
        total: Any = 0.0
        for child in self.children():
            penalty = child.regularization_loss()
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

    def fused_with(self, following: Module, reader: Module | None) -> Callable[[Any], Any] | None:
        """A function computing ``following(self(x))`` as one node, where this module has one
        for that follower (Dense then ReLU), else None. A Sequential asks each adjacent pair;
        ``reader`` is the module that reads the pair's output (None: the caller does)."""
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
        from xpnn.nn.state import load_state

        return load_state(self, state, strict=strict)

    # -- reading it ---------------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of the modules (nested ones by dotted name), their output shapes for inputs of
        ``input_shape`` (no batch axis: one probe forward in eval mode under ``no_grad``, which
        changes nothing), their parameters, and the trainable / frozen totals
        (:mod:`xpnn.nn.summary`)."""
        from xpnn.nn.summary import summary

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
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return head + "\n" + "\n".join(lines) + "\n)"


def _items(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """An attribute's value, or the items of a list / tuple / dict of them, with their names."""
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield f"{name}.{i}", item
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{name}.{key}", item
    else:
        yield name, value
