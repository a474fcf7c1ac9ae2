"""The one module of the numeric core that names concrete array libraries.

Everything else in xpnn is written against the Array API namespace ``xp`` that
:func:`namespace` returns for the arrays at hand. What the standard does not give
lives here, behind small functions: resolving a backend name to ``(xp, device)``,
moving arrays to and from the host, seeded random numbers, device
synchronisation and the one in-place-or-rebind update helper.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from xpnn.errors import BackendUnavailableError

Array = Any  # an array of any Array API namespace

BACKENDS = ("numpy", "array_api_strict", "torch", "torch:cuda", "cupy", "jax")

# backend name -> (module to import, pip package that provides it)
_PROVIDERS = {
    "numpy": ("numpy", "numpy"),
    "array_api_strict": ("array_api_strict", "array-api-strict  (pip install 'xpnn[strict]')"),
    "torch": ("torch", "torch  (pip install 'xpnn[torch]')"),
    "torch:cuda": ("torch", "a CUDA build of torch"),
    "cupy": ("cupy", "cupy-cuda12x or cupy-cuda13x  (pip install 'xpnn[cuda13]')"),
    "jax": ("jax", "jax  (pip install jax)"),
}


class Backend(NamedTuple):
    """A resolved backend: its name, Array API namespace and device."""

    name: str
    xp: Any
    device: Any


def resolve(name: str) -> Backend:
    """Resolve a backend name such as ``"numpy"`` or ``"torch:cuda"``.

    Raises :class:`BackendUnavailableError` naming the package to install when the
    library cannot be imported, or the device is missing.
    """
    if name not in _PROVIDERS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    module, package = _PROVIDERS[name]
    try:
        lib = importlib.import_module(module)
    except ImportError as error:
        raise BackendUnavailableError(
            f"backend {name!r} needs {package}, which cannot be imported: {error}"
        ) from error
    if name == "numpy":
        return Backend(name, array_api_compat.array_namespace(lib.empty(0)), "cpu")
    if name == "array_api_strict":
        return Backend(name, lib, lib.Device())
    if name.startswith("torch"):
        device = lib.device("cuda" if name == "torch:cuda" else "cpu")
        if device.type == "cuda" and not lib.cuda.is_available():
            raise BackendUnavailableError("backend 'torch:cuda': torch sees no CUDA device")
        return Backend(name, array_api_compat.array_namespace(lib.empty(0)), device)
    if name == "cupy":
        try:
            device = lib.cuda.Device()
            device.compute_capability  # noqa: B018 -- raises when no device is usable
        except Exception as error:  # CUDARuntimeError and friends
            raise BackendUnavailableError(f"backend 'cupy': no usable CUDA device: {error}") from error
        return Backend(name, array_api_compat.array_namespace(lib.empty(0)), device)
    jnp = importlib.import_module("jax.numpy")
    return Backend(name, jnp, lib.devices()[0])


_NAMESPACES: dict[type, Any] = {}


def namespace(*arrays: Array) -> Any:
    """The Array API namespace of ``arrays`` (cached per array type: this is on the hot path)."""
    kind = type(arrays[0])
    xp = _NAMESPACES.get(kind)
    if xp is None or len(arrays) > 1:
        xp = array_api_compat.array_namespace(*arrays)
        if not hasattr(kind, "requires_grad"):  # a Tensor's namespace is its array's: never cached
            _NAMESPACES.setdefault(kind, xp)
    return xp


def backend_name(x: Array) -> str:
    """The backend name of an array (``"numpy"``, ``"torch:cuda"``, ...)."""
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch:cuda" if x.device.type == "cuda" else "torch"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_jax_array(x):
        return "jax"
    if array_api_compat.is_array_api_strict_namespace(namespace(x)):
        return "array_api_strict"
    return type(x).__module__.split(".")[0]


def device_of(x: Array) -> Any:
    """The device of an array, in the form its namespace uses."""
    if type(x) is np.ndarray:  # the hot path: checked for every array of every step
        return "cpu"
    return array_api_compat.device(x)


def from_host(a: np.ndarray, backend: Backend, dtype: Any = None) -> Array:
    """Copy a host NumPy array onto ``backend``'s device (optionally casting)."""
    if backend.name == "numpy":
        return np.array(a, dtype=dtype, copy=True)
    if backend.name == "array_api_strict":
        x = backend.xp.asarray(np.asarray(a, order="C"), copy=True)
        return x if dtype is None else backend.xp.astype(x, dtype)
    if backend.name == "cupy":
        with backend.device:
            return backend.xp.asarray(a, dtype=dtype)
    x = backend.xp.asarray(np.asarray(a, order="C"), device=backend.device, copy=True)
    return x if dtype is None or x.dtype == dtype else backend.xp.astype(x, dtype)


def to_host(x: Array) -> np.ndarray:
    """Copy an array of any backend to a host NumPy array."""
    if array_api_compat.is_numpy_array(x):
        return np.array(x, copy=True)
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy().copy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_jax_array(x):  # also copies from a GPU, where from_dlpack would not
        return np.array(x, copy=True)
    return np.from_dlpack(x).copy()


def move_like(host: np.ndarray, like: Array) -> Array:
    """A host array copied onto ``like``'s backend, device and dtype."""
    target = Backend(backend_name(like), namespace(like), device_of(like))
    return from_host(host, target, like.dtype)


def dtype_named(xp: Any, name: str) -> Any:
    """The dtype object of namespace ``xp`` called ``name`` (e.g. ``"float32"``)."""
    return getattr(xp, name)


def dtype_name(dtype: Any) -> str:
    """A backend-independent name for a dtype: ``"float32"``, ``"int64"``, ..."""
    text = str(dtype)
    return text.rsplit(".", 1)[-1].strip("'<>").replace("dtype(", "").replace(")", "")


def host_rng(seed: int | Sequence[int] | None) -> np.random.Generator:
    """The host generator used for initial weights and shuffling (identical on every backend)."""
    return np.random.default_rng(seed)


def uniform(
    like: Array,
    shape: tuple[int, ...],
    key: Sequence[int],
    dtype: Any = None,
    *,
    offset: int = 0,
    total: int = 0,
) -> Array:
    """Uniform [0, 1) numbers on ``like``'s device, a pure function of the integer ``key``.

    Dropout draws its mask from ``key = (seed, epoch, step)``: a stateless,
    counter-keyed draw, so a resumed run reproduces the uninterrupted one even on
    CuPy, whose generator state cannot be saved. ``offset``/``total``: the numbers at
    ``[offset, offset + prod(shape))`` of the ``total`` that ``key`` gives, in C order (a
    data-parallel rank's rows of the global batch's mask: N ranks draw one process's mask).
    """
    count = math.prod(shape)
    if offset or total > count:
        return _uniform_part(like, shape, key, dtype, offset, max(total, offset + count))
    xp = namespace(like)
    dtype = like.dtype if dtype is None else dtype
    seed = np.random.SeedSequence([int(k) % 2**63 for k in key]).generate_state(2, np.uint64)
    if array_api_compat.is_cupy_array(like):
        import cupy

        return cupy.random.default_rng(int(seed[0])).random(shape, dtype=dtype)
    if array_api_compat.is_torch_array(like):
        import torch

        generator = torch.Generator(device=like.device).manual_seed(int(seed[0] % 2**63))
        return torch.rand(shape, generator=generator, dtype=dtype, device=like.device)
    if array_api_compat.is_jax_array(like):
        import jax

        return jax.random.uniform(jax.random.key(int(seed[0] % 2**31)), shape, dtype=dtype)
    host = np.random.Generator(np.random.Philox(key=seed)).random(shape, dtype=np.float32)
    out = host if array_api_compat.is_numpy_array(like) else xp.asarray(host, device=device_of(like))
    return xp.astype(out, dtype, copy=False)


def _uniform_part(like: Array, shape: tuple[int, ...], key: Sequence[int], dtype: Any, offset: int,
                  total: int) -> Array:  # fmt: skip
    """:func:`uniform`'s numbers ``[offset, offset + prod(shape))`` of ``total``. The host's Philox
    generator skips ahead (each of its counter steps gives 8 float32 draws); the device
    generators draw all ``total`` and keep the part."""
    xp, count = namespace(like), math.prod(shape)
    on_host = not any(
        check(like) for check in (array_api_compat.is_cupy_array, array_api_compat.is_torch_array,
                                  array_api_compat.is_jax_array)
    )  # fmt: skip
    if not on_host:
        return xp.reshape(uniform(like, (total,), key, dtype)[offset : offset + count], shape)
    seed = np.random.SeedSequence([int(k) % 2**63 for k in key]).generate_state(2, np.uint64)
    bits = np.random.Philox(key=seed)
    bits.advance(offset // 8)
    host = np.random.Generator(bits).random(offset % 8 + count, dtype=np.float32)[offset % 8 :].reshape(shape)
    out = host if array_api_compat.is_numpy_array(like) else xp.asarray(host, device=device_of(like))
    return xp.astype(out, like.dtype if dtype is None else dtype, copy=False)


def assign(target: Array, value: Array) -> Array:
    """Write ``value`` into ``target`` in place where ``target`` is writeable; else return ``value``.

    The one update helper of xpnn: callers always rebind (``p.value = assign(p.value, new)``),
    so read-only NumPy arrays and immutable JAX arrays take the same code path as
    everything else.
    """
    if value is target:  # an in-place fast path already wrote it
        return target
    if array_api_compat.is_writeable_array(target):
        target[...] = value
        return target
    if isinstance(value, np.generic):  # NumPy turns 0-d results into scalars: keep an array
        return np.asarray(value)
    return value


def synchronize(x: Array | None = None) -> None:
    """Wait until the device that holds ``x`` (or every CUDA device in use) has finished."""
    if x is None:
        if "cupy" in sys.modules:
            sys.modules["cupy"].cuda.get_current_stream().synchronize()
        if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
            sys.modules["torch"].cuda.synchronize()
        return
    if array_api_compat.is_cupy_array(x):
        sys.modules["cupy"].cuda.get_current_stream().synchronize()
    elif array_api_compat.is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)
    elif array_api_compat.is_jax_array(x):
        x.block_until_ready()
