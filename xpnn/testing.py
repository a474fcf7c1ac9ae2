"""Public test helpers: a float64 finite-difference gradient check and a cross-backend assert.

Use them to check your own layers::

    layer = MyLayer().to("numpy", dtype="float64")
    xpnn.testing.check_gradients(layer, x64)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn import backend
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
    x: Array,
    target: Array | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    seed: int = 0,
) -> dict[str, float]:
    """Compare a module's backward with central finite differences, in float64.

    ``module`` is a Layer, a Sequential or (with ``target``) a Loss. For a layer the
    scalar checked is ``sum(forward(x) * dy) + regularization_loss()`` with a *random*
    upstream gradient ``dy`` (a plain ``sum`` would hide errors: softmax's sum has zero
    gradient). Checks dL/dx and every parameter's gradient; returns the worst relative
    error of each and raises ``AssertionError`` naming the first one outside
    ``atol + rtol * |numeric|``.
    """
    is_loss = isinstance(module, Loss)
    params = [] if is_loss else _named_parameters(module)
    for name, array in [("input", x)] + [(n, p.value) for n, p in params]:
        if backend.dtype_name(array.dtype) != "float64":
            raise TypeError(f"check_gradients needs float64 arrays; {name} is {array.dtype}")
    target_backend = backend.resolve(backend.backend_name(x))
    upstream: HostArray = 0.0  # the random dL/dy of a layer (unused for a loss)

    def scalar(inp: Array) -> float:
        if is_loss:
            return float(module.forward(inp, target))
        out = module.forward(inp)  # backward also adds the L1/L2 penalty's gradient:
        return float((backend.to_host(out) * upstream).sum()) + float(module.regularization_loss())

    if not is_loss:
        out = module.forward(x)
        upstream = backend.host_rng(seed).standard_normal(tuple(out.shape))
    for _, p in params:
        p.grad = None
    if is_loss:
        module.forward(x, target)
        dx = module.backward()
    else:
        module.forward(x)
        dy = backend.from_host(upstream, target_backend)
        dx = module.backward(dy, input_grad=True) if isinstance(module, Sequential) else module.backward(dy)

    def perturb_input(value: HostArray) -> float:
        return scalar(backend.from_host(value, target_backend))

    errors = {
        "input": _compare("dL/dinput", dx, _numeric(perturb_input, backend.to_host(x), eps), rtol, atol)
    }
    for name, p in params:
        original = p.value

        def perturb_param(value: HostArray, p: Parameter = p) -> float:
            p.value = backend.from_host(value, target_backend)
            return scalar(x)

        numeric = _numeric(perturb_param, backend.to_host(original), eps)
        p.value = original
        errors[name] = _compare(f"dL/d{name}", p.grad, numeric, rtol, atol)
    return errors


def _named_parameters(module: Any) -> list[tuple[str, Parameter]]:
    if isinstance(module, Sequential):
        return module.named_parameters()
    return [(p.name or str(i), p) for i, p in enumerate(module.parameters())]


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
