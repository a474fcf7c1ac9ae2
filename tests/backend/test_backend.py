"""The backend module: resolution, host transfer, counter-keyed random numbers, the update helper."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import backend

# Only the array adapter (backend/) and the fast paths (kernels/) name array libraries; host
# memory may be NumPy's: saved files (io/), data files and data sets (data/), the MPI buffers
# of data-parallel training.
HOST_MODULES = {
    "data/fashion_mnist.py",
    "data/idx.py",
    "data/loader.py",
    "data/synthetic.py",
    "distributed/host_buffers.py",
    "distributed/shared_memory.py",
    "data/text.py",
}
HOST_PACKAGES = ("backend/", "kernels/", "io/")
ROOT = Path(xpnn.__file__).parent  # subpackages too: xpnn/nnfs/*.py are numeric core
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py"))
CORE = [m for m in MODULES if m not in HOST_MODULES and not m.startswith(HOST_PACKAGES)]
CONCRETE = {"numpy", "cupy", "torch", "jax", "array_api_strict"}
IMMUTABLE = {"jax"}  # backends whose arrays cannot be written in place


def test_the_numeric_core_is_found():
    core = {"nn/layers.py", "nn/losses.py", "nn/sequential.py", "nn/activations.py", "nnfs/optimizers.py"}
    core |= {"autograd/tensor.py", "autograd/graph.py", "functional/linear.py", "functional/losses.py"}
    assert core <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_numeric_core_imports_no_concrete_array_library(module):
    path = Path(xpnn.__file__).parent / module
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & CONCRETE, f"xpnn/{module} imports {sorted(imported & CONCRETE)}"


def test_an_unavailable_backend_says_which_package_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "cupy", raising=False)
    with pytest.raises(
        xpnn.BackendUnavailableError, match=r"backend 'cupy' needs cupy-cuda12x or cupy-cuda13x"
    ):
        backend.resolve("cupy")


def test_host_round_trip_keeps_values_and_dtype(bk):
    host = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    moved = backend.from_host(host, bk)
    assert backend.backend_name(moved) == bk.name
    back = backend.to_host(moved)
    assert back.dtype == np.float32 and np.array_equal(back, host)


def test_uniform_is_a_pure_function_of_its_key(bk, xp):
    like = backend.from_host(np.zeros(1, dtype=np.float32), bk)
    a = backend.to_host(backend.uniform(like, (1000,), (1, 2, 3)))
    b = backend.to_host(backend.uniform(like, (1000,), (1, 2, 3)))
    c = backend.to_host(backend.uniform(like, (1000,), (1, 2, 4)))
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05


def test_assign_writes_in_place_where_writeable_else_returns_the_new_value(bk, xp):
    target = backend.from_host(np.zeros(3, dtype=np.float32), bk)
    result = backend.assign(target, target + 1.0)
    assert np.array_equal(backend.to_host(result), np.ones(3))
    if bk.name in IMMUTABLE:  # the caller's rebind carries the update; the old array is untouched
        assert result is not target and np.array_equal(backend.to_host(target), np.zeros(3))
    else:
        assert result is target and np.array_equal(backend.to_host(target), np.ones(3))


def test_assign_rebinds_a_read_only_numpy_array_without_touching_it():
    target = np.zeros(3, dtype=np.float32)
    target.flags.writeable = False
    result = backend.assign(target, target + 1.0)
    assert result is not target and np.array_equal(result, np.ones(3)) and np.array_equal(target, np.zeros(3))


def test_gradients_accumulate_into_a_read_only_grad_by_rebinding():
    p = xpnn.Parameter(np.zeros(2, dtype=np.float32), "w")
    p.grad = np.ones(2, dtype=np.float32)
    p.grad.flags.writeable = False
    p.accumulate(np.ones(2, dtype=np.float32))
    assert np.array_equal(p.grad, [2.0, 2.0])


def test_the_no_host_sync_guard_catches_a_conversion_on_array_api_strict():
    from tests.helpers.host_sync import no_host_sync_strict

    strict = backend.resolve("array_api_strict")
    x = backend.from_host(np.ones(3, dtype=np.float32), strict)
    for convert in (float, bool, int, np.asarray, backend.to_host):
        with no_host_sync_strict(), pytest.raises(AssertionError, match="host conversion"):
            convert(strict.xp.sum(x))
    assert float(strict.xp.sum(x)) == 3.0  # restored afterwards


def test_dtype_names_are_backend_independent(bk):
    assert backend.dtype_name(bk.xp.float32) == "float32"
    assert backend.dtype_name(bk.xp.int64) == "int64"
