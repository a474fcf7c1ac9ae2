"""The transformer's functions, checked: ``F.gelu``, ``F.layer_norm``, ``F.embedding`` and
``F.scaled_dot_product_attention`` (each one node with its hand-written backward, in
:mod:`~xpnn.functional.gelu`, ``layer_norm``, ``embedding`` and ``attention``). Inputs are
Tensors or arrays (taken as constants); bad input raises a named error before anything runs.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.tensor import Tensor
from xpnn.backend import namespace
from xpnn.checks import check_array, check_choice, check_floating_input, check_like, check_number, is_integral
from xpnn.errors import ArgumentTypeError, DTypeError, ShapeError
from xpnn.functional.attention import ScaledDotProductAttention
from xpnn.functional.embedding import Embedding
from xpnn.functional.gelu import APPROXIMATIONS, Gelu
from xpnn.functional.layer_norm import LayerNorm

Array = Any
TensorLike = Tensor | Array


def _value(x: TensorLike) -> Array:
    return x.value if isinstance(x, Tensor) else x


def gelu(x: TensorLike, approximate: str = "none") -> Tensor:
    """``x * Phi(x)``, ``Phi`` the standard normal CDF (``approximate="none"``, torch's default,
    through an erf accurate to float64 rounding), or GPT-2's
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))`` (``"tanh"``)."""
    check_floating_input("gelu", _value(x))
    check_choice("gelu", "approximate", approximate, APPROXIMATIONS)
    return Gelu.apply(x, approximate=approximate)


def layer_norm(
    x: TensorLike, weight: TensorLike | None = None, bias: TensorLike | None = None, *, eps: float = 1e-5
) -> Tensor:
    """Normalize over the last axis: ``(x - mean) / sqrt(var + eps) * weight + bias`` (biased
    variance; ``weight`` and ``bias`` of shape (dim,) or None), as torch's ``layer_norm``."""
    xv = _value(x)
    check_floating_input("layer_norm", xv)
    if xv.ndim < 1:
        raise ShapeError("layer_norm: expected x of shape (..., dim), got a 0-d array")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            check_like("layer_norm", _value(p), xv, name)  # type: ignore[arg-type]
            if tuple(_value(p).shape) != (xv.shape[-1],):
                raise ShapeError(
                    f"layer_norm: expected {name} of shape ({xv.shape[-1]},) for x of shape "
                    f"{tuple(xv.shape)}, got {tuple(_value(p).shape)}"
                )
    eps = check_number("layer_norm", "eps", eps, low=0.0)
    return LayerNorm.apply(x, weight, bias, eps=eps)


def embedding(ids: TensorLike, weight: TensorLike) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``ids`` (any shape): the
    result has shape ``ids.shape + (dim,)``; repeated ids add their gradients. Ids out of range
    raise the backend's own IndexError (no value is read on the host)."""
    iv, wv = _value(ids), _value(weight)
    check_floating_input("embedding", wv, "weight")
    check_array("embedding", iv, "ids")
    if wv.ndim != 2:
        raise ShapeError(f"embedding: expected weight of shape (num_embeddings, dim), got {tuple(wv.shape)}")
    if not is_integral(iv):
        raise DTypeError(f"embedding: expected integer ids, got dtype {iv.dtype}")
    return Embedding.apply(ids, weight)


def scaled_dot_product_attention(
    q: TensorLike,
    k: TensorLike,
    v: TensorLike,
    *,
    mask: Array | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """``softmax(scale q k^T, masked) @ v`` over (..., time, dim) as torch's: q (..., time_q, d),
    k (..., time_k, d), v (..., time_k, d_v) -> (..., time_q, d_v). ``mask``: boolean, True where
    a query may attend to a key, broadcastable to (..., time_q, time_k); ``causal``: query ``i``
    attends to keys ``j <= i`` (combined with ``mask`` where both are given); ``scale``
    defaults to ``1 / sqrt(d)``."""
    who = "scaled_dot_product_attention"
    qv = _value(q)
    scores = _check_qkv(who, qv, _value(k), _value(v))
    plain_mask = _value(mask) if mask is not None else None
    check_mask(who, plain_mask, qv, scores)
    if scale is not None:
        scale = check_number(who, "scale", scale)
    if not isinstance(causal, bool):
        raise ArgumentTypeError(f"{who}: expected causal to be a bool, got {type(causal).__name__}")
    return ScaledDotProductAttention.apply(q, k, v, mask=plain_mask, causal=causal, scale=scale)


def _check_qkv(who: str, qv: Array, kv: Array, vv: Array) -> tuple[int, ...]:
    """q, k, v floating, of one namespace, device and dtype, with fitting shapes; returns the
    scores' shape (..., time_q, time_k)."""
    check_floating_input(who, qv, "q")
    for name, a in (("k", kv), ("v", vv)):
        check_like(who, a, qv, name)
    for name, a in (("q", qv), ("k", kv), ("v", vv)):
        if a.ndim < 2:
            raise ShapeError(f"{who}: expected {name} of shape (..., time, dim), got {tuple(a.shape)}")
    lead = tuple(qv.shape[:-2])
    same_lead = tuple(kv.shape[:-2]) == lead and tuple(vv.shape[:-2]) == lead
    if not same_lead or kv.shape[-1] != qv.shape[-1] or vv.shape[-2] != kv.shape[-2]:
        raise ShapeError(
            f"{who}: expected q (..., time_q, d), k (..., time_k, d) and v (..., time_k, d_v) with the "
            f"same leading axes, got q {tuple(qv.shape)}, k {tuple(kv.shape)}, v {tuple(vv.shape)}"
        )
    return (*lead, qv.shape[-2], kv.shape[-2])


def check_mask(who: str, mask: Array | None, like: Array, scores: tuple[int, ...]) -> None:
    """A boolean array of ``like``'s namespace and device, broadcastable to ``scores``."""
    if mask is None:
        return
    check_array(who, mask, "mask")
    if type(mask) is not type(like):
        check_like(who, mask, like, "mask")  # its named backend error
    if not namespace(mask).isdtype(mask.dtype, "bool"):
        raise DTypeError(f"{who}: expected a boolean mask (True = attend), got dtype {mask.dtype}")
    shape = tuple(mask.shape)
    fits = len(shape) <= len(scores) and all(
        m in (1, s) for m, s in zip(reversed(shape), reversed(scores), strict=False)
    )
    if not fits:
        raise ShapeError(f"{who}: expected a mask broadcastable to the scores' shape {scores}, got {shape}")
