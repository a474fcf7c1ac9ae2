"""Public test helpers: a float64 finite-difference gradient check and a cross-backend assert.

Use them to check your own layers and modules, in float64 (finite differences in float32 are
too coarse to check anything); ``check_gradients`` returns the worst relative error of the
input's gradient and of each parameter's (a module of several inputs takes a tuple of them):

>>> import numpy as np
>>> import xpnn
>>> layer = xpnn.Dense(3, 2).to("numpy", dtype="float64")
>>> x64 = np.random.default_rng(0).standard_normal((4, 3))
>>> errors = xpnn.testing.check_gradients(layer, x64)
>>> sorted(errors), max(errors.values()) < 1e-6
(['bias', 'input', 'weight'], True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import no_grad
from xpnn.autograd.tensor import Tensor
from xpnn.nn.layers import Layer
from xpnn.nn.losses import Loss
from xpnn.nn.parameter import Parameter
from xpnn.nn.sequential import Sequential

Array = Any
HostArray = Any  # a host NumPy array, from ``backend.to_host`` (only its methods are used here)


def assert_close(
    actual: Any, expected: Any, *, rtol: float | None = None, atol: float = 0.0, what: str = ""
) -> None:
    """Assert two arrays (of any backends) are equal in shape and close in value.

    ``rtol`` defaults by dtype: 1e-5 for float32 (or lower), 1e-10 for float64.
    """
    a, e = backend.to_host(actual), backend.to_host(expected)
    label = f"{what}: " if what else ""
    if a.shape != e.shape:
        raise AssertionError(f"{label}shapes differ: {a.shape} vs {e.shape}")
    if rtol is None:
        rtol = 1e-10 if "float64" in (a.dtype.name, e.dtype.name) else 1e-5
    _check_within(label.rstrip(": ") or "values", a * 1.0, e * 1.0, rtol, atol)


def check_gradients(
    module: Any,
    x: Array | tuple[Array, ...],
    target: Array | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
) -> dict[str, float]:
    """Compare a module's gradients with central finite differences, in float64.

    ``module`` is any Module (a built-in layer, a Sequential, a layer or model of your own) or
    (with ``target``) a Loss; ``x`` one input array, or a tuple of them for a module whose
    ``forward`` takes several. The scalar checked is ``sum(module(x) * dy) +
    regularization_loss()`` with a *random* upstream gradient ``dy`` (a plain ``sum`` would
    hide errors: softmax's sum has zero gradient). A built-in layer and a Sequential are
    differentiated by their explicit ``backward`` (the hand-written one); any other module
    by the tape. Checks each input's gradient and every parameter's (by dotted name); returns
    the worst relative error of each and raises ``AssertionError`` naming the first one
    outside ``atol + rtol * |numeric|``.
    """
    inputs = x if isinstance(x, tuple) else (x,)
    is_loss = isinstance(module, Loss)
    params = [] if is_loss else _named_parameters(module)
    for name, array in [*_input_names(inputs), *((n, p.value) for n, p in params)]:
        if backend.dtype_name(array.dtype) != "float64":
            raise TypeError(f"check_gradients needs float64 arrays; {name} is {array.dtype}")
    target_backend = backend.resolve(backend.backend_name(inputs[0]))
    # the random dL/dy of a module (a loss's own output is the scalar)
    upstream: HostArray = (
        0.0 if is_loss else backend.host_rng(seed).standard_normal(_output(module, inputs).shape)
    )

    def scalar(arrays: tuple[Array, ...]) -> float:
        if is_loss:
            return float(module.forward(arrays[0], target))
        out = _output(module, arrays)
        return float((backend.to_host(out) * upstream).sum()) + float(_value(module.regularization_loss()))

    for _, p in params:
        p.grad = None
    if is_loss:
        module.forward(inputs[0], target)
        grads = [module.backward()]
    else:
        grads = _gradients(module, inputs, backend.from_host(upstream, target_backend))
    errors = {}
    for k, (name, array) in enumerate(_input_names(inputs)):

        def perturb_input(value: HostArray, k: int = k) -> float:
            return scalar((*inputs[:k], backend.from_host(value, target_backend), *inputs[k + 1 :]))

        errors[name] = _compare(
            f"dL/d{name}", grads[k], _numeric(perturb_input, backend.to_host(array), eps), rtol, atol
        )
    for name, p in params:
        numeric = _numeric_parameter(p, lambda: scalar(inputs), target_backend, eps)
        errors[name] = _compare(f"dL/d{name}", p.grad, numeric, rtol, atol)
    return errors


def _numeric_parameter(p: Parameter, f: Callable[[], float], bk: backend.Backend, eps: float) -> HostArray:
    """The finite-difference gradient of ``f()`` with respect to ``p``'s value (put back after)."""
    original = p.value

    def perturbed(value: HostArray) -> float:
        p.value = backend.from_host(value, bk)
        return f()

    try:
        return _numeric(perturbed, backend.to_host(original), eps)
    finally:
        p.value = original


def _input_names(inputs: tuple[Array, ...]) -> list[tuple[str, Array]]:
    """``input`` for one input; ``input0``, ``input1``, ... for several."""
    return [("input" if len(inputs) == 1 else f"input{k}", a) for k, a in enumerate(inputs)]


def _value(out: Any) -> Any:
    return out.value if isinstance(out, Tensor) else out


def _output(module: Any, inputs: tuple[Array, ...]) -> Array:
    """The module's output array for ``inputs``, recording nothing."""
    with no_grad():
        return _value(module.forward(inputs[0]) if _has_explicit_backward(module) else module(*inputs))


def _has_explicit_backward(module: Any) -> bool:
    """A Sequential, or a layer with a hand-written backward (a ``function``, or the NNFS
    book's own ``forward`` / ``backward`` pair); a layer that writes only ``forward`` has none."""
    if isinstance(module, Sequential):
        return True
    return isinstance(module, Layer) and (module.function is not None or module._book_style)


def _gradients(module: Any, inputs: tuple[Array, ...], dy: Array) -> list[Array | None]:
    """dL/dinput for ``L = sum(module(inputs) * dy) + regularization_loss()``, the parameters'
    gradients added into their ``.grad``: by the explicit ``backward`` where the module has
    one, else by the tape."""
    if _has_explicit_backward(module):
        module.forward(inputs[0])
        return [
            module.backward(dy, input_grad=True) if isinstance(module, Sequential) else module.backward(dy)
        ]
    tensors = [Tensor(a, requires_grad=True) for a in inputs]
    total = (module(*tensors) * dy).sum()
    penalty = module.regularization_loss()
    (total + penalty if isinstance(penalty, Tensor) else total).backward()
    return [t.grad for t in tensors]


def _named_parameters(module: Any) -> list[tuple[str, Parameter]]:
    """A built-in layer's parameters by their own names (``weight``), any other module's by
    dotted name (``blocks.0.weight``)."""
    if isinstance(module, Layer) and _has_explicit_backward(module):
        return [(p.name or str(i), p) for i, p in enumerate(module.parameters())]
    return module.named_parameters()


def _numeric(f: Callable[[HostArray], float], value: HostArray, eps: float) -> HostArray:
    grad = value * 0.0
    flat = grad.reshape(-1)
    for i in range(value.size):
        shifted = value.copy().reshape(-1)
        shifted[i] += eps
        plus = f(shifted.reshape(value.shape))
        shifted[i] -= 2 * eps
        minus = f(shifted.reshape(value.shape))
        flat[i] = (plus - minus) / (2 * eps)
    return grad


def _compare(what: str, analytic: Array | None, numeric: HostArray, rtol: float, atol: float) -> float:
    if analytic is None:
        raise AssertionError(f"{what}: backward left no gradient")
    a = backend.to_host(analytic)
    if a.shape != numeric.shape:
        raise AssertionError(f"{what}: gradient shape {a.shape}, expected {numeric.shape}")
    _check_within(what, a, numeric, rtol, atol, "analytic and finite-difference gradients differ")
    error = abs(a - numeric)
    return float((error / (abs(numeric) + atol / rtol)).max()) if error.size else 0.0


def _check_within(
    what: str,
    actual: HostArray,
    expected: HostArray,
    rtol: float,
    atol: float,
    problem: str = "values differ",
) -> None:
    """Raise naming the worst element outside ``atol + rtol * |expected|`` (NaN counts as outside)."""
    excess = abs(actual - expected) - (atol + rtol * abs(expected))
    bad = ~(excess <= 0)
    if not bad.any():
        return
    flat = bad.reshape(-1).nonzero()[0]
    worst = int(flat[excess.reshape(-1)[flat].argmax()]) if not (excess != excess).any() else int(flat[0])
    index: list[int] = []
    for n in reversed(actual.shape):
        worst, k = divmod(worst, n)
        index.insert(0, k)
    at = tuple(index)
    raise AssertionError(
        f"{what}: {problem} at {at} ({int(bad.sum())} of {bad.size} elements): "
        f"{actual[at]!r} vs {expected[at]!r} (rtol {rtol}, atol {atol})"
    )
