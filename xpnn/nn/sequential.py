"""Sequential: modules applied in order, as torch's ``nn.Sequential`` and the NNFS book's list
of layers.

On a Tensor it records as any Module does. On a plain array (the book's explicit style)
``forward(x)`` records the same graph and keeps it, and ``backward(dL/dy)`` runs it back,
adding every parameter's gradient into ``.grad`` (and the layers' L1/L2 penalty gradients,
as the book's backward does). Each call keeps its own saved arrays, so a module used twice
(``Sequential([d, Tanh(), d])``) gets both gradients. Parameters are named by position:
``"0.weight"``, ``"2.bias"``, as torch's ``nn.Sequential`` counts layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import run_backward
from xpnn.autograd.tensor import Tensor
from xpnn.checks import check_dout, check_seed, is_floating, kind_of
from xpnn.errors import ForwardFirstError, NotALayerError
from xpnn.nn.module import Module, attribute_members
from xpnn.nn.parameter import Parameter

Array = Any


class Sequential(Module):
    """Modules applied in order. ``seed`` fixes the initial weights and dropout seeds, drawn on
    the host so every backend starts from identical numbers."""

    def __init__(self, layers: Iterable[Module], *, seed: int | None = None) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Module):
                raise NotALayerError(f"Sequential: item {i} is a {type(layer).__name__}, not an xpnn Module")
        self.seed = check_seed("Sequential", seed)
        self.reset_parameters(seed)

    def members(self) -> Iterator[tuple[str, Parameter | Module]]:
        """The layers by position (``"0"``, ``"1"``, as torch's ``nn.Sequential``), then whatever
        else a subclass assigns, in assignment order."""
        for name, value in vars(self).items():
            if name == "layers":
                for i, layer in enumerate(value):
                    yield str(i), layer
            else:
                yield from attribute_members(name, value)

    def reset_parameters(self, seed: Any = None) -> None:  # type: ignore[override]
        """Re-draw every layer's initial parameters from one host generator seeded by ``seed``
        (or from the generator ``seed`` itself, when a containing module passes one down)."""
        rng = seed if hasattr(seed, "integers") else backend.host_rng(seed)
        for layer in self.layers:
            layer.reset_parameters(rng)

    def forward(self, x: Any) -> Any:
        """The layers applied in order: a Tensor for a Tensor; for a plain array, an array, with
        the graph kept for :meth:`backward`."""
        if isinstance(x, Tensor):
            layers, i, n = self.layers, 0, len(self.layers)
            while i < n:
                pair = (
                    layers[i].fused_with(layers[i + 1], layers[i + 2] if i + 2 < n else None)
                    if i + 1 < n
                    else None
                )
                if pair is not None:
                    x, i = pair(x), i + 2
                else:
                    x, i = layers[i](x), i + 1
            return x
        inp = Tensor(x, requires_grad=hasattr(x, "dtype") and is_floating(x))
        out = self.forward(inp)
        self._graph = (inp, out)
        return out.value

    def backward(self, dout: Array, *, input_grad: bool = False) -> Array | None:
        """Backpropagate ``dL/doutput`` of the last plain-array ``forward``; fills every
        parameter's ``.grad`` (adding into it). Returns dL/dinput when ``input_grad`` is True,
        else None (the first layer's input gradient is not computed)."""
        graph = vars(self).get("_graph")
        if graph is None:
            raise ForwardFirstError("Sequential.backward: called before forward (nothing to differentiate)")
        inp, out = graph
        check_dout(f"{self.who()}.backward", dout, kind_of(out.value))
        inp.grad = None
        if out.requires_grad:
            run_backward(out, dout, retain_graph=True, exclude=() if input_grad else (inp,))
        penalty = self.regularization_loss()
        if isinstance(penalty, Tensor) and penalty.requires_grad:
            penalty.backward()
        return inp.grad if input_grad else None

    def who(self) -> str:
        return f"Sequential({len(self.layers)} layers)"

    def regularization_loss(self, seen: set[int] | None = None) -> Any:
        """The layers' penalties, each layer once (``Sequential([d, Tanh(), d])`` counts ``d``'s
        once): a plain loop over ``layers``, as fit and ``backward`` ask at every step."""
        seen = {id(self)} if seen is None else seen
        total: Any = 0.0
        for layer in self.layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                penalty = layer.regularization_loss(seen)
                if not (isinstance(penalty, float) and penalty == 0.0):
                    total = penalty if isinstance(total, float) else total + penalty
        return total

    def output_width(self) -> int | None:
        """The output width fixed by the last layer that fixes one (fit checks labels against it)."""
        for layer in reversed(self.layers):
            width = layer.output_width()
            if width is not None:
                return width
        return None

    def summary(self, input_shape: tuple[int, ...] | None = None) -> str:
        """A table of layers, output shapes and parameters (:func:`xpnn.nn.summary.summary`)."""
        from xpnn.nn.summary import summary

        return summary(self, input_shape)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"
