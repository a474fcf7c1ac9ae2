"""The layers a transformer is built of besides attention: GELU, LayerNorm and Embedding, each
one call of its function in :mod:`xpnn.functional` (:mod:`~xpnn.functional.gelu`,
``layer_norm``, ``embedding``), with torch's parameter names, shapes and initial values."""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.checks import (
    check_array,
    check_choice,
    check_count,
    check_flag,
    check_floating,
    check_like,
    check_number,
    check_seed,
    is_integral,
)
from xpnn.errors import DTypeError, ShapeError
from xpnn.functional.embedding import Embedding as EmbeddingFunction
from xpnn.functional.gelu import APPROXIMATIONS, Gelu
from xpnn.functional.layer_norm import LayerNorm as LayerNormFunction
from xpnn.nn.init import named, normal_weights, zeros
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any


class GELU(Layer):
    """``y = x * Phi(x)`` (``approximate="none"``, the default, as torch's: exact, through an
    erf accurate to float64 rounding) or ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))``
    (``"tanh"``, GPT-2's). ``fused``: the tanh form in one pass each way where numba is installed."""

    function = Gelu

    def __init__(self, approximate: str = "none") -> None:
        self.approximate = check_choice("GELU", "approximate", approximate, APPROXIMATIONS)

    def options(self, x: Array) -> dict[str, Any]:
        check_array("GELU", x)
        check_floating("GELU", x)
        return {"approximate": self.approximate, "fused": self.fused}

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class LayerNorm(Layer):
    """Normalize the last axis of ``(..., dim)``: ``(x - mean) / sqrt(var + eps) * weight + bias``
    (biased variance), as torch's ``LayerNorm(dim)``: ``weight`` ones, ``bias`` zeros, both
    absent with ``elementwise_affine=False``. ``fused``: one pass each way where numba is installed."""

    function = LayerNormFunction

    def __init__(self, dim: int, *, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        self.dim = check_count("LayerNorm", "dim", dim)
        self.eps = check_number("LayerNorm", "eps", eps, low=0.0)
        self.elementwise_affine = check_flag("LayerNorm", "elementwise_affine", elementwise_affine)
        self.weight = Parameter(None, "weight") if self.elementwise_affine else None
        self.bias = Parameter(None, "bias") if self.elementwise_affine else None
        self.reset_parameters(None)

    def reset_parameters(self, rng: Any) -> None:
        """weight = 1, bias = 0, on the parameters' current backend and dtype."""
        if self.weight is None or self.bias is None:
            return
        ones = zeros((self.dim,)) + 1.0
        old = self.weight.value
        self.weight.value = ones if old is None else backend.move_like(ones, old)
        self.bias.value = ones * 0.0 if old is None else backend.move_like(ones * 0.0, old)
        self.weight.grad = self.bias.grad = None

    def inputs(self) -> tuple[Parameter | None, ...]:
        return (self.weight, self.bias)

    def options(self, x: Array) -> dict[str, Any]:
        name = repr(self)
        check_array(name, x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ShapeError(f"{name}: expected input of shape (..., {self.dim}), got {tuple(x.shape)}")
        check_floating(name, x)
        if self.weight is not None:
            check_like(name, x, self.weight.value)
        return {"eps": self.eps, "fused": self.fused}

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "eps": self.eps, "elementwise_affine": self.elementwise_affine}

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim})"


class Embedding(Layer):
    """A lookup table: integer ids of any shape ``(...)`` -> rows of ``weight``
    (num_embeddings, dim), ``(..., dim)``; ``weight`` drawn from N(0, 1) as torch's. Repeated
    ids add their gradients. The ids get no gradient (``input_grad`` is False). ``fused``: the
    gradient's scatter-add in one numba loop (the same bits as NumPy's ``add.at``)."""

    function = EmbeddingFunction
    input_grad = False

    def __init__(self, num_embeddings: int, dim: int, *, seed: int | None = None) -> None:
        self.num_embeddings = check_count("Embedding", "num_embeddings", num_embeddings)
        self.dim = check_count("Embedding", "dim", dim)
        self.weight = Parameter(None, "weight")
        rng = backend.host_rng(check_seed("Embedding", seed))
        with named(f"Embedding({self.num_embeddings}, {self.dim})"):
            self.reset_parameters(rng)

    def reset_parameters(self, rng: Any) -> None:
        weight = normal_weights(rng, (self.num_embeddings, self.dim))
        old = self.weight.value
        self.weight.value = weight if old is None else backend.move_like(weight, old)
        self.weight.grad = None

    def inputs(self) -> tuple[Parameter | None, ...]:
        return (self.weight,)

    def options(self, x: Array) -> dict[str, Any]:
        name = repr(self)
        check_array(name, x, "ids")
        if not is_integral(x):
            raise DTypeError(f"{name}: expected integer ids, got dtype {x.dtype}")
        w = self.weight.value
        if type(x) is not type(w) or backend.device_of(x) != backend.device_of(w):
            check_like(name, x, w, "ids")  # its named backend or device error
        return {"fused": self.fused}

    def output_width(self) -> int | None:
        return self.dim

    def config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "dim": self.dim}

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.dim})"
