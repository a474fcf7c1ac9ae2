"""Test, lint and benchmark sessions, built from the backend files in ``backends/``.

nox -s tests-cpu tests-gpu   # the test command (GPU session skips without a CUDA device)
XPNN_GPU_PYTHON=/path/to/python XPNN_WHEELS=/path/to/wheels nox -s tests-gpu   # CuPy's python, offline
nox -s lint                  # ruff + mypy
nox -s tests-jax             # JAX: immutable arrays (large install, not part of tests-cpu)
nox -s bench                 # benchmarks against PyTorch
nox -s docs                  # the documentation site, strict, into site/
"""

from __future__ import annotations

import os
import sys

import nox

sys.path.insert(0, os.path.dirname(__file__))  # nox does not put the project on sys.path
import backends
from backends import gpu

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests-cpu", "tests-gpu", "lint"]

# "python -m": the session's interpreter even where pytest's script comes from system site-packages
PYTEST = ["python", "-m", "pytest", "-ra", "-q", "-p", "no:cacheprovider"]


def _requirements(specs: list[dict]) -> list[str]:
    return sorted({req for spec in specs for req in spec["requires"]})


def _run_tests(session: nox.Session, names: list[str]) -> None:
    session.log(f"testing backends: {', '.join(names)}")
    session.run(*PYTEST, *session.posargs, env={"XPNN_TEST_BACKENDS": ",".join(names)})


@nox.session(name="tests-cpu")
def tests_cpu(session: nox.Session) -> None:
    """The whole suite on every CPU backend: numpy, array-api-strict and torch (CPU); then once
    more on NumPy with every fast path off (``XPNN_KERNELS=off``: the plain equations alone)."""
    specs = backends.for_session("cpu")
    # mpi: distributed; fast: numba; io: safetensors, onnx, onnxruntime
    session.install("-e", ".[test,examples,mpi,fast,io]", *_requirements(specs))
    _run_tests(session, [spec["name"] for spec in specs])
    session.log("the plain equations: every fast path off (xpnn.kernels.enabled(False))")
    session.run(*PYTEST, *session.posargs, env={"XPNN_TEST_BACKENDS": "numpy", "XPNN_KERNELS": "off"})


# The extras whose floors tests-gpu installs (pyproject.toml's, so they cannot drift apart).
GPU_EXTRAS = ["test", "strict", "examples", "mpi"]
GPU_PYTHON = os.environ.get("XPNN_GPU_PYTHON")  # None: the interpreter nox runs with


@nox.session(name="tests-gpu", python=GPU_PYTHON, venv_params=["--system-site-packages"])
def tests_gpu(session: nox.Session) -> None:
    """The whole suite on CuPy (and torch:cuda where the interpreter's torch has CUDA).

    CuPy and torch are the interpreter's own (system site-packages: a venv built over the
    interpreter nox runs with, or over ``$XPNN_GPU_PYTHON``). Where that venv cannot import CuPy,
    the first candidate that can (``$XPNN_GPU_PYTHON``, nox's python, its base, ``python3``) lends
    its site-packages through a ``.pth`` file: CuPy installed in a venv is invisible to
    ``--system-site-packages``. numpy, array-api-compat, pytest and the other test dependencies
    are installed at pyproject.toml's floors, from the wheel folder ``$XPNN_WHEELS`` (no network:
    with their dependencies) when it is set, else from the index. The device comes from
    ``nvidia-smi -L``, else from CuPy's ``getDeviceCount()``; the log names the device, whose CuPy
    it is and every relevant version. TF32 is off for the float32 comparisons. Skips where no
    CUDA device is found. The logic lives in backends/gpu.py (tested on the CPU with fakes).
    """
    python = os.path.join(session.bin, "python")
    has_cupy, cupy_log = gpu.ensure_cupy(python, gpu.candidate_interpreters())
    session.log(cupy_log)
    found = gpu.find_cuda_device(python)
    if found.device is None:
        session.skip(f"no CUDA device found ({found.how}): GPU tests skipped")
    session.log(f"CUDA device: {found.device} (found by {found.how})")
    if not has_cupy:
        session.error(f"{cupy_log}: install cupy-cuda12x (or 13x) or name its python in XPNN_GPU_PYTHON")
    session.env.update(gpu.TF32_OFF)
    session.log("TF32 off: " + " ".join(f"{key}={value}" for key, value in gpu.TF32_OFF.items()))
    wheels = os.environ.get("XPNN_WHEELS")
    source = ["--no-index", "--find-links", wheels] if wheels else []
    session.install(*source, *backends.requirements(GPU_EXTRAS))
    session.run("python", gpu.SCRIPT, "versions")  # numpy, array-api-compat, cupy, torch, CUDA...
    names = [spec["name"] for spec in backends.for_session("gpu") if not spec.get("optional")]
    if gpu.can_run(python, "import torch; assert torch.cuda.is_available()"):
        names.append("torch:cuda")
    _run_tests(session, names)


@nox.session(name="tests-jax")
def tests_jax(session: nox.Session) -> None:
    """The suite on JAX (immutable arrays: updates go through the rebind path).

    Installs what tests-cpu installs as well (torch.optim is a reference, array-api-strict a
    second backend, tqdm the progress bar), but tests only numpy and jax.
    """
    specs = backends.for_session("jax")
    session.install("-e", ".[test,examples,mpi]", *_requirements(specs + backends.for_session("cpu")))
    session.env["JAX_ENABLE_X64"] = "1"  # float64 gradient checks need 64-bit JAX
    _run_tests(session, ["numpy"] + [spec["name"] for spec in specs])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) over everything, mypy over the package."""
    session.install("ruff", "mypy", "numpy>=2", "array-api-compat")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "xpnn")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs + Material + mkdocstrings) into ``site/``, in strict mode: a
    warning fails it (a broken link, a public name without a docstring or without its API entry,
    see docs/hooks.py). Its code samples run in the test sessions (tests/docs/)."""
    session.install("-e", ".[docs]")
    mkdocs_2_notice_off = {"NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner on every build
    session.run("python", "-m", "mkdocs", "build", "--strict", *session.posargs, env=mkdocs_2_notice_off)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against PyTorch (CPU, one and two threads); see benchmarks/README.md."""
    session.install("-e", ".", "threadpoolctl", *_requirements(backends.for_session("cpu")))
    for script in sorted(os.listdir("benchmarks")):
        if script.endswith(".py") and not script.startswith("_"):
            session.run("python", os.path.join("benchmarks", script), *session.posargs)
