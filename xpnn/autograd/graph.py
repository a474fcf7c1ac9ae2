"""The tape: graph nodes, grad mode, and backward in one topological pass.

Define-by-run, as DeZero's and PyTorch's autograd: every differentiable operation on a
:class:`~xpnn.Tensor` that needs a gradient creates one :class:`Node` holding what THAT call
needs for its backward (``saved``) and the tensors it read (``inputs``). ``backward`` walks
the nodes reachable from the root once, newest first (a node's inputs are always older than
it, so creation order is a topological order), hands each node the gradient of its output,
and adds the gradients of leaves (Parameters, tensors made with ``requires_grad=True``) into
their ``.grad``. Gradients of intermediate tensors are dropped as soon as they are used.

An input that needs no gradient (a constant, the data) is not even kept by the node: a first
layer's input gradient (a whole GEMM for a Dense layer) is never computed. ``exclude`` narrows
it further at backward time (Sequential's explicit ``backward(input_grad=False)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import attrgetter
from typing import Any

from xpnn.errors import GradientError

Array = Any
Vjp = Callable[["Node", Array], Sequence[Array | None]]

_CONSUMED = object()  # a node's ``saved`` after a backward without ``retain_graph``
_mode = [True]  # grad mode: record nodes (no_grad sets it False)
_clock = [0]  # creation counter: a topological order of the nodes
_ready: list[Callable[[Any], None] | None] = [None]  # see set_gradient_ready_hook


def is_grad_enabled() -> bool:
    """Whether operations on tensors that need gradients are recorded (False inside ``no_grad``)."""
    return _mode[0]


@contextmanager
def no_grad() -> Iterator[None]:
    """Nothing computed inside is recorded: for evaluation, and for updates by hand."""
    before = _mode[0]
    _mode[0] = False
    try:
        yield
    finally:
        _mode[0] = before


@contextmanager
def enable_grad() -> Iterator[None]:
    """Record again inside a ``no_grad`` block."""
    before = _mode[0]
    _mode[0] = True
    try:
        yield
    finally:
        _mode[0] = before


class Node:
    """One recorded call: ``vjp(node, g)`` maps the gradient of its output to one gradient per
    input (None where ``needs`` says none is wanted); ``saved`` is what that call kept for it.

    ``inputs`` are the tensors the call read that require a gradient (None for the others);
    ``needs[i]``: whether input ``i``'s gradient is wanted (backward may narrow it, see
    ``exclude``). ``name`` says what the node is, for error messages and for exporters;
    ``options``: the call's keyword options (kernel size, eps, a constant operand), which the
    backward never reads: an exporter (ONNX) does.
    """

    __slots__ = ("fresh", "grad", "inputs", "name", "needs", "options", "owned", "saved", "seq", "vjp")

    def __init__(
        self, vjp: Vjp, inputs: tuple[Any, ...], saved: Any = None, name: str = "", fresh: bool = False
    ) -> None:
        self.vjp = vjp
        self.inputs = inputs
        self.saved = saved
        self.name = name
        self.options: dict[str, Any] | None = None
        self.needs: tuple[bool, ...] = tuple([t is not None for t in inputs])
        self.grad: Array | None = None
        self.fresh = fresh  # its vjp returns new arrays that nothing else holds
        self.owned = False  # backward: ``grad`` is an array only this node holds (it may write into it)
        _clock[0] += 1
        self.seq = _clock[0]

    def grad_out(self, index: int) -> Array | None:
        """Where input ``index``'s gradient may be written directly (a Parameter's view of an
        optimizer's flat gradient buffer, offered while its ``.grad`` is None), else None."""
        leaf = self.inputs[index]
        return None if leaf is None or leaf.node is not None else leaf.gradient_out()

    def __repr__(self) -> str:
        return f"Node({self.name or getattr(self.vjp, '__qualname__', '?')}, {len(self.inputs)} inputs)"


def set_gradient_ready_hook(hook: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """Call ``hook(leaf)`` during every backward as soon as a leaf's gradient is final (its last
    contribution added: the oldest node reading it has run), in the order backward finalises
    them; returns the hook it replaces (None: none). Data-parallel training starts each bucket's
    all-reduce from it while backward goes on. Without a hook backward pays one test per node."""
    previous, _ready[0] = _ready[0], hook
    return previous


def gradient_ready_hook() -> Callable[[Any], None] | None:
    """The hook :func:`set_gradient_ready_hook` installed (None: none)."""
    return _ready[0]


def _finalising(nodes: list[Node]) -> dict[int, list[Any]]:
    """``id(node)`` -> the leaves whose gradient is final once that node has run: each leaf's
    oldest reader, as backward runs newest first (nodes oldest first)."""
    seen: set[int] = set()
    found: dict[int, list[Any]] = {}
    for node in nodes:
        for tensor, need in zip(node.inputs, node.needs, strict=False):
            if need and tensor.node is None and id(tensor) not in seen:
                seen.add(id(tensor))
                found.setdefault(id(node), []).append(tensor)
    return found


def _collect(root: Node) -> list[Node]:
    """Every node reachable from ``root``, oldest first."""
    nodes, seen, i = [root], {id(root)}, 0
    while i < len(nodes):
        for tensor in nodes[i].inputs:
            if tensor is not None:
                parent = tensor.node
                if parent is not None and id(parent) not in seen:
                    seen.add(id(parent))
                    nodes.append(parent)
        i += 1
    nodes.sort(key=_seq)
    return nodes


_seq = attrgetter("seq")


def _mark_needs(nodes: list[Node], exclude: frozenset[int]) -> None:
    """Oldest first: input ``i`` of a node needs a gradient if it is a leaf that requires one
    (and is not excluded), or the output of a node any of whose inputs needs one."""
    live: set[int] = set()
    for node in nodes:
        needs = []
        for tensor in node.inputs:
            if tensor is None:
                needs.append(False)
            elif tensor.node is None:
                needs.append(tensor.requires_grad and id(tensor) not in exclude)
            else:
                needs.append(id(tensor.node) in live)
        node.needs = tuple(needs)
        if any(needs):
            live.add(id(node))


def _propagate(node: Node, g: Array) -> None:
    """Run ``node``'s backward on its output gradient ``g``: add each input's piece into its
    leaf's ``.grad`` or its parent node's pending gradient."""
    grads = node.vjp(node, g)
    for tensor, need, piece in zip(node.inputs, node.needs, grads, strict=False):
        if not need or piece is None:
            continue
        parent = tensor.node
        if parent is None:
            tensor.accumulate(piece)
        elif parent.grad is None:
            parent.grad, parent.owned = piece, node.fresh
        else:  # never in place: a vjp may hand the same array to several inputs
            parent.grad, parent.owned = parent.grad + piece, True


def run_backward(
    root: Any, grad: Array, *, retain_graph: bool = False, exclude: Sequence[Any] | None = None
) -> None:
    """Backpropagate ``grad`` (dL/droot) from the tensor ``root`` into every leaf's ``.grad``.

    ``exclude``: leaves whose gradient is not wanted this time (as if they did not require
    one); given (even empty), which inputs need a gradient is worked out again from the
    leaves. Without ``retain_graph`` each node drops what it saved once used, and a second
    backward through it raises :class:`~xpnn.GradientError`.
    """
    if root.node is None:  # a leaf: its own gradient is the seed
        root.accumulate(grad)
        return
    nodes = _collect(root.node)
    consumed = [node for node in nodes if node.saved is _CONSUMED]
    if consumed:
        raise GradientError(
            f"backward through a graph already consumed ({consumed[0]!r} freed what it saved): "
            "call backward(..., retain_graph=True) the first time to go through it twice"
        )
    if exclude is not None:
        _mark_needs(nodes, frozenset(id(t) for t in exclude))
    root.node.grad, root.node.owned = grad, False
    ready = _ready[0]
    finals = {} if ready is None else _finalising(nodes)
    for node in reversed(nodes):
        g, node.grad = node.grad, None
        if g is not None and True in node.needs:
            _propagate(node, g)
            if not retain_graph:
                node.saved = _CONSUMED
        if ready is not None:
            for leaf in finals.get(id(node), ()):
                ready(leaf)
    if not retain_graph:
        for node in nodes:
            node.saved = _CONSUMED
