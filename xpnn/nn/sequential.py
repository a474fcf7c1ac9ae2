"""Sequential: modules applied in order, as torch's ``nn.Sequential`` and the NNFS book's list
of layers.

On a Tensor it records as any Module does. On a plain array (the book's explicit style)
``forward(x)`` records the same calls and keeps them, and ``backward(dL/dy)`` runs them back,
adding every parameter's gradient into ``.grad`` (and the layers' L1/L2 penalty gradients,
as the book's backward does). Each call keeps its own saved arrays, so a module used twice
(``Sequential([d, Tanh(), d])``) gets both gradients. Parameters are named by position:
``"0.weight"``, ``"2.bias"``, as torch's ``nn.Sequential`` counts layers.

The plain-array path is a chain, so with the fast paths on (:func:`xpnn.kernels.enabled`) it
keeps the chain's nodes in a list (:class:`_Chain`) instead of building a graph of Tensors: a
built-in layer in training mode is one call of its function, run back newest first with the
tape's own rules (the same backward functions, the same gradients added in the same order:
the same bits, tested), and whatever else it holds (a Module of your own, Dropout, a layer in
eval mode) runs through the tape as a segment of the chain. For a small model the Tensors
and the graph walk were a large part of a step (784-32-10, batch 32, one thread: 1.15x
JAX-jit's epoch before the chain, 0.83-1.04x with it, JAX's own epoch varying by a third
between runs; ``benchmarks/README.md``). ``fit`` steps a Sequential through this chain too
(:meth:`Sequential.loss_and_gradients`), unless data-parallel training follows the tape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from xpnn import backend, kernels
from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node, is_grad_enabled, run_backward
from xpnn.autograd.tensor import Tensor
from xpnn.checks import check_dout, check_seed, is_floating, kind_of
from xpnn.errors import ForwardFirstError, NotALayerError
from xpnn.nn.layers import Layer
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
        the calls kept for :meth:`backward`."""
        if not isinstance(x, Tensor):
            return self._forward_array(x)
        layers, i, n = self.layers, 0, len(self.layers)
        while i < n:
            pair = _pair(layers, i)
            if pair is not None:
                layer = layers[i]
                assert isinstance(layer, Layer)
                x, i = pair.call(x, layer.inputs(), layer.options(x.value)), i + 2
            else:
                x, i = layers[i](x), i + 1
        return x

    def _forward_array(self, x: Array) -> Array:
        floating = hasattr(x, "dtype") and is_floating(x)
        if not (kernels.enabled() and is_grad_enabled()):  # the plain path: one graph of Tensors
            inp = Tensor(x, requires_grad=floating)
            out = self.forward(inp)
            self._graph: _Chain | tuple[Tensor, Tensor] | None = (inp, out)
            return out.value
        self._graph = None  # a failing layer leaves no half-kept chain
        chain = _Chain(floating)
        layers, i, n = self.layers, 0, len(self.layers)
        while i < n:
            function, span = _pair(layers, i), 2
            layer = layers[i]
            if function is None and _direct(layer):
                function, span = layer.function, 1  # type: ignore[attr-defined]
            if function is not None:
                assert isinstance(layer, Layer)
                x = chain.call(function, layer, x)
            else:  # layers the chain does not call directly: through the tape, as one segment
                span = 1
                while i + span < n and not _direct(layers[i + span]):
                    span += 1
                x = chain.segment(layers[i : i + span], x)
            i += span
        chain.out = kind_of(x)
        self._graph = chain
        return x

    def backward(self, dout: Array, *, input_grad: bool = False) -> Array | None:
        """Backpropagate ``dL/doutput`` of the last plain-array ``forward``; fills every
        parameter's ``.grad`` (adding into it). Returns dL/dinput when ``input_grad`` is True,
        else None (the first layer's input gradient is not computed)."""
        dx = self._layers_backward(dout, input_grad)
        self._penalty_backward()
        return dx if input_grad else None

    def loss_and_gradients(self, x: Array, target: Array, loss: Any) -> tuple[Array, Array]:
        """One training step's forward and backward on plain arrays: ``(loss + the layers' L1/L2
        penalty, predictions)`` as arrays, every parameter's gradient added into ``.grad``.

        ``loss`` is a :class:`~xpnn.Loss` (its array ``forward`` and ``backward``; labels not
        validated). This is ``fit``'s step for a Sequential: :meth:`forward`'s chain instead of
        a graph of Tensors, with the tape's numbers (the same functions, the same rules)."""
        pred = self.forward(x)
        value = loss.forward(pred, target, validate=False)
        self._layers_backward(loss.backward(), False)
        penalty = self._penalty_backward()
        return (value + penalty.value if isinstance(penalty, Tensor) else value), pred

    def _layers_backward(self, dout: Array, input_grad: bool) -> Array | None:
        graph = vars(self).get("_graph")
        if graph is None:
            raise ForwardFirstError("Sequential.backward: called before forward (nothing to differentiate)")
        if isinstance(graph, _Chain):
            check_dout(lambda: f"{self.who()}.backward", dout, graph.out)
            return graph.backward(dout, input_grad)
        inp, out = graph
        check_dout(lambda: f"{self.who()}.backward", dout, kind_of(out.value))
        inp.grad = None
        if out.requires_grad:
            run_backward(out, dout, retain_graph=True, exclude=() if input_grad else (inp,))
        return inp.grad

    def _penalty_backward(self) -> Any:
        """The layers' penalty (0.0 for none), its gradient added into ``.grad`` (the book adds
        it in backward)."""
        penalty = self.regularization_loss()
        if isinstance(penalty, Tensor) and penalty.requires_grad:
            penalty.backward()
        return penalty

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


def _direct(layer: Module) -> bool:
    """Whether a plain-array chain calls ``layer``'s function itself: a built-in layer in
    training mode whose call is :class:`Layer`'s own (not rewritten by a subclass or on the
    instance, not the book's forward/backward style)."""
    return (
        isinstance(layer, Layer)
        and layer.training
        and layer.function is not None
        and not layer._book_style
        and type(layer).forward is Layer.forward
        and type(layer).__call__ is Layer.__call__
        and "forward" not in vars(layer)
    )


def _pair(layers: list[Module], i: int) -> type[Function] | None:
    """The function computing ``layers[i + 1](layers[i](x))`` as one node, where the pair has
    one (:meth:`Layer.fused_with`), else None."""
    layer, n = layers[i], len(layers)
    if i + 1 >= n or not isinstance(layer, Layer):
        return None
    return layer.fused_with(layers[i + 1], layers[i + 2] if i + 2 < n else None)


class _Chain:
    """A plain-array forward's calls, oldest first, for :meth:`Sequential.backward`: per direct
    call ``(node, parameters, None)``, per segment run through the tape ``(input Tensor,
    parameters, output Tensor)``."""

    __slots__ = ("calls", "floating", "out")

    def __init__(self, floating: bool) -> None:
        self.calls: list[tuple[Any, tuple[Parameter | None, ...], Tensor | None]] = []
        self.floating = floating  # whether the chain's input may have a gradient
        self.out: Any = None  # the output's ArrayKind (what dout must be)

    def call(self, function: type[Function], layer: Layer, x: Array) -> Array:
        """``function(x, *layer's parameters)`` as :meth:`Function.call` runs it, its node
        kept without Tensors around it."""
        options = layer.options(x)
        params = layer.inputs()
        ctx = Node(function.backward, (None, *params), None, function.name, function.fresh_grads)
        ctx.options = options
        y = function.forward(ctx, x, *[None if p is None else p.value for p in params], **options)
        if function is layer.function:
            layer.after_forward(options)
        self.calls.append((ctx, params, None))
        return y

    def segment(self, layers: list[Module], x: Array) -> Array:
        """``layers`` applied through the tape, their graph kept as one piece of the chain."""
        inp = out = Tensor(x, requires_grad=hasattr(x, "dtype") and is_floating(x))
        for layer in layers:
            out = layer(out)
        self.calls.append((inp, tuple(p for layer in layers for p in layer.parameters()), out))
        return out.value

    def backward(self, g: Array, input_grad: bool) -> Array | None:
        """The calls run back newest first, with the tape's rules: a call's input gradient is
        computed where an older call has a parameter that needs one (or ``input_grad``);
        returns dL/dinput (None where not wanted)."""
        calls, live = self.calls, [input_grad and self.floating]  # live[k]: call k's dL/dinput wanted
        wants = []  # per call, which parameters need a gradient (their flags now, at backward time)
        for _, params, _ in calls:
            flags = [p is not None and p.requires_grad for p in params]
            wants.append(flags)
            live.append(live[-1] or True in flags)
        owned = False
        for k in range(len(calls) - 1, -1, -1):
            first, params, out = calls[k]
            if out is None:  # a direct call: its node's backward, as the tape's _propagate runs it
                needs = (live[k], *wants[k])
                if True not in needs:
                    return None
                first.needs, first.owned = needs, owned
                grads = first.vjp(first, g)
                for p, need, piece in zip(params, needs[1:], grads[1:], strict=False):
                    if need and piece is not None:
                        p.accumulate(piece)  # type: ignore[union-attr]
                g, owned = grads[0], first.fresh
            else:  # a segment: the tape's backward through its graph
                first.grad = None
                if out.requires_grad:
                    run_backward(out, g, retain_graph=True, exclude=() if live[k] else (first,))
                g, owned = first.grad, False
            if g is None:
                return None
        return g if input_grad else None
