"""MultiHeadAttention: self-attention over ``(batch, time, dim)`` with ``heads`` heads.

``qkv = x @ W_qkv + b_qkv`` (``.qkv = Dense(dim, 3 * dim)``: q, k and v stacked in that order
along its output axis, each split into ``heads`` heads of ``dim / heads``), each head
``softmax(q k^T / sqrt(dim / heads), masked) v``, the heads concatenated and projected by
``.out = Dense(dim, dim)``. Three nodes on the tape: the two projections and
:class:`~xpnn.functional.attention.HeadsAttention` (split, attend, merge as one).
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.graph import run_backward
from xpnn.autograd.tensor import Tensor
from xpnn.checks import check_array, check_count, check_floating, check_seed, kind_of
from xpnn.errors import ArgumentError, ForwardFirstError, ShapeError
from xpnn.functional.attention import HeadsAttention
from xpnn.functional.transformer import check_mask
from xpnn.nn.dense import Dense
from xpnn.nn.layers import Layer

Array = Any


class MultiHeadAttention(Layer):
    """``mha(x, mask=None)``: ``(batch, time, dim) -> (batch, time, dim)``.

    ``q, k, v = split(qkv(x))`` (one ``Dense(dim, 3 * dim)``), each cut into ``heads`` heads of
    ``dim / heads``; per head ``softmax(q k^T / sqrt(dim / heads)) v`` (masked scores set to
    -inf), the heads joined again and projected: ``out(...)``, a ``Dense(dim, dim)``.

    ``causal``: position ``i`` attends to positions ``j <= i`` (a language model's mask, kept,
    not rebuilt per call); ``mask``: boolean, True where a query may attend to a key,
    broadcastable to ``(batch, heads, time, time)`` (combined with ``causal``). ``bias``: the
    two projections' biases. On a plain array, ``forward(x)`` keeps the graph and
    ``backward(dout)`` returns dL/dx, as any layer's.
    """

    function = HeadsAttention

    def __init__(self, dim: int, heads: int, *, causal: bool = False, bias: bool = True,
                 seed: int | None = None) -> None:  # fmt: skip
        self.dim = check_count("MultiHeadAttention", "dim", dim)
        self.heads = check_count("MultiHeadAttention", "heads", heads)
        if self.dim % self.heads:
            raise ArgumentError(f"MultiHeadAttention: dim {dim} is not divisible by heads {heads}")
        self.causal, self.use_bias = bool(causal), bool(bias)
        check_seed("MultiHeadAttention", seed)
        self.qkv = Dense(self.dim, 3 * self.dim, bias=self.use_bias, seed=seed)
        self.out = Dense(self.dim, self.dim, bias=self.use_bias, seed=None if seed is None else seed + 1)

    def __call__(self, x: Any, mask: Array | None = None) -> Any:  # type: ignore[override]
        return self.forward(x if isinstance(x, Tensor) else Tensor(x), mask)

    def forward(self, x: Any, mask: Array | None = None) -> Any:  # type: ignore[override]
        """The attended ``x``: a Tensor for a Tensor; for a plain array an array (the graph kept
        for :meth:`backward`)."""
        if not isinstance(x, Tensor):
            inp = Tensor(x, requires_grad=True)
            out = self.forward(inp, mask)
            self._graph = (inp, out)
            return out.value
        options = self.options(x.value)
        if mask is not None:
            value = mask.value if isinstance(mask, Tensor) else mask
            check_mask(repr(self), value, x.value, (x.shape[0], self.heads, x.shape[1], x.shape[1]))
            options["mask"] = value
        packed = self.qkv(x)
        return self.out(HeadsAttention.call(packed, (), options))

    def backward(self, dout: Array) -> Array | None:
        """dL/dx for the last plain-array ``forward``; the projections' gradients added into ``.grad``."""
        graph = vars(self).get("_graph")
        if graph is None:
            raise ForwardFirstError(f"{self!r}.backward: called before forward (nothing to differentiate)")
        inp, out = graph
        self.check_dout(dout, kind_of(out.value))
        inp.grad = None
        run_backward(out, dout, retain_graph=True, exclude=() if self.input_grad else (inp,))
        return inp.grad if self.input_grad else None

    def options(self, x: Array) -> dict[str, Any]:
        name = repr(self)
        check_array(name, x)
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ShapeError(
                f"{name}: expected input of shape (batch, time, {self.dim}), got {tuple(x.shape)}"
            )
        check_floating(name, x)
        return {"heads": self.heads, "causal": self.causal, "fused": self.fused}

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "heads": self.heads, "causal": self.causal, "bias": self.use_bias}

    def __repr__(self) -> str:
        return (
            f"MultiHeadAttention({self.dim}, heads={self.heads}" + (", causal" if self.causal else "") + ")"
        )
