"""Test, lint and benchmark sessions, built from the backend files in ``backends/``.

nox -s tests-cpu tests-gpu   # the test command (GPU session skips without a CUDA device)
nox -s lint                  # ruff + mypy
nox -s tests-jax             # JAX: immutable arrays (large install, not part of tests-cpu)
nox -s bench                 # benchmarks against PyTorch
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nox

sys.path.insert(0, os.path.dirname(__file__))  # nox does not put the project on sys.path
import backends

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests-cpu", "tests-gpu", "lint"]

PYTEST = ["pytest", "-ra", "-q", "-p", "no:cacheprovider"]


def _requirements(specs: list[dict]) -> list[str]:
    return sorted({req for spec in specs for req in spec["requires"]})


def _run_tests(session: nox.Session, names: list[str]) -> None:
    session.log(f"testing backends: {', '.join(names)}")
    session.run(*PYTEST, *session.posargs, env={"XPNN_TEST_BACKENDS": ",".join(names)})


@nox.session(name="tests-cpu")
def tests_cpu(session: nox.Session) -> None:
    """The whole suite on every CPU backend: numpy, array-api-strict and torch (CPU)."""
    specs = backends.for_session("cpu")
    session.install("-e", ".[test,examples,mpi]", *_requirements(specs))  # mpi: tests/distributed
    _run_tests(session, [spec["name"] for spec in specs])


def _cuda_device() -> str | None:
    """The first line of ``nvidia-smi -L``, or None where no CUDA device is present."""
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("GPU")]
    return lines[0] if result.returncode == 0 and lines else None


@nox.session(name="tests-gpu", venv_params=["--system-site-packages"])
def tests_gpu(session: nox.Session) -> None:
    """The whole suite on CuPy (and torch:cuda where the installed torch has CUDA).

    Uses the interpreter's own CuPy/torch (system site-packages), no version pins; with no
    network, set XPNN_WHEELS to a folder of wheels for the small pure-Python dependencies.
    """
    device = _cuda_device()
    if device is None:
        session.skip("no CUDA device found (nvidia-smi lists none): GPU tests skipped")
    session.log(f"CUDA device: {device}")
    wheels = os.environ.get("XPNN_WHEELS")
    source = ["--no-index", "--find-links", wheels] if wheels else []
    needed = {
        "array_api_compat": "array-api-compat",
        "array_api_strict": "array-api-strict",
        "pytest": "pytest",
        "tqdm": "tqdm",
        "nnfs": "nnfs",
        "hypothesis": "hypothesis",
    }
    missing = [package for module, package in needed.items() if not _importable(session, module)]
    if missing:
        session.install(*source, *missing)
    session.run(
        "python", "-c", "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount())"
    )
    names = [spec["name"] for spec in backends.for_session("gpu") if not spec.get("optional")]
    if _importable(session, "torch") and _run_ok(session, "import torch; assert torch.cuda.is_available()"):
        names.append("torch:cuda")
    _run_tests(session, names)


def _importable(session: nox.Session, module: str) -> bool:
    return _run_ok(session, f"import {module}")


def _run_ok(session: nox.Session, code: str) -> bool:
    python = os.path.join(session.bin, "python")
    return subprocess.run([python, "-c", code], capture_output=True, check=False).returncode == 0


@nox.session(name="tests-jax")
def tests_jax(session: nox.Session) -> None:
    """The suite on JAX (immutable arrays: updates go through the rebind path).

    Installs what tests-cpu installs as well (torch.optim is a reference, array-api-strict a
    second backend, tqdm the progress bar), but tests only numpy and jax.
    """
    specs = backends.for_session("jax")
    session.install("-e", ".[test,examples]", *_requirements(specs + backends.for_session("cpu")))
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
def bench(session: nox.Session) -> None:
    """Benchmarks against PyTorch (CPU, one and two threads); see benchmarks/README.md."""
    session.install("-e", ".", "threadpoolctl", *_requirements(backends.for_session("cpu")))
    for script in sorted(os.listdir("benchmarks")):
        if script.endswith(".py") and not script.startswith("_"):
            session.run("python", os.path.join("benchmarks", script), *session.posargs)
