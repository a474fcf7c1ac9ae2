"""What ``nox -s tests-gpu`` must know before it tests: is there a CUDA device, which interpreter
has CuPy, and which versions run. Plain functions over injectable ``run``/``which``, so the
logic has CPU tests with fakes (tests/tooling/test_gpu_session.py).

Standard library only: the session runs this file as a script in ITS interpreter
(``python backends/gpu.py devices|versions|paths``), which may not have the dev tools installed yet.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SCRIPT = os.path.abspath(__file__)

# TF32 rounds float32 matmul inputs to 10 mantissa bits (~1e-3 relative): the float32
# comparisons with NumPy would fail on Ampere and later unless every library is told not to.
TF32_OFF = {"CUPY_TF32": "0", "NVIDIA_TF32_OVERRIDE": "0", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "0"}

# The packages whose versions decide what a GPU run means (import name, distribution name).
REPORTED = [
    ("numpy", "numpy"),
    ("array_api_compat", "array-api-compat"),
    ("array_api_strict", "array-api-strict"),
    ("cupy", "cupy"),
    ("torch", "torch"),
    ("pytest", "pytest"),
    ("hypothesis", "hypothesis"),
]

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]
Which = Callable[[str], str | None]  # shutil.which's shape


def run_command(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command``, capturing its text output. Never raises: a missing program or a hang
    (a wedged driver) is a failed command, as a shell reports it (exit 127, 124)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    except OSError as error:
        return subprocess.CompletedProcess(command, 127, "", str(error))
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", f"timed out after 300 s: {command[0]}")


@dataclass(frozen=True)
class Detection:
    """The CUDA device found (None: none), and how it was found or why none was."""

    device: str | None
    how: str


def from_nvidia_smi(run: Runner = run_command, which: Which = shutil.which) -> Detection:
    """The first GPU line of ``nvidia-smi -L``."""
    if which("nvidia-smi") is None:
        return Detection(None, "nvidia-smi not found")
    result = run(["nvidia-smi", "-L"])
    if result.returncode != 0:
        failure = f"exit {result.returncode}: {_last_line(result.stderr)}"
        return Detection(None, f"nvidia-smi -L failed ({failure})")
    gpus = [line for line in result.stdout.splitlines() if line.startswith("GPU")]
    return Detection(gpus[0], "nvidia-smi -L") if gpus else Detection(None, "nvidia-smi -L lists no GPU")


def from_cupy(python: str, run: Runner = run_command) -> Detection:
    """The first device CuPy's own ``getDeviceCount()`` reports, asked in ``python``: a container
    without nvidia-smi can still have a working GPU."""
    result = run([python, SCRIPT, "devices"])
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Detection(None, f"asking CuPy in {python} failed: {_last_line(result.stderr)}")
    if found["cupy"] is None:
        return Detection(None, f"CuPy is not importable from {python}")
    if found["count"] == 0:
        return Detection(None, f"CuPy {found['cupy']} in {python} reports 0 CUDA devices ({found['error']})")
    return Detection(f"{found['names'][0]} (1 of {found['count']})", f"CuPy {found['cupy']} getDeviceCount()")


def find_cuda_device(python: str, run: Runner = run_command, which: Which = shutil.which) -> Detection:
    """nvidia-smi where it works, else CuPy in the session's interpreter; ``how`` says why neither."""
    by_smi = from_nvidia_smi(run, which)
    if by_smi.device is not None:
        return by_smi
    by_cupy = from_cupy(python, run)
    return by_cupy if by_cupy.device is not None else Detection(None, f"{by_smi.how}; {by_cupy.how}")


def candidate_interpreters(environ: dict[str, str] | None = None) -> list[str]:
    """Interpreters that may hold CuPy, most explicit first: ``$XPNN_GPU_PYTHON``, the one running
    nox, the one it was made from (a venv's ``--system-site-packages`` sees THAT one's packages,
    not the venv's), then ``python3`` on PATH. Exact paths: a venv's python is a symlink to its
    base, but the two see different site-packages."""
    environ = os.environ if environ is None else environ
    paths = [environ.get("XPNN_GPU_PYTHON"), sys.executable, getattr(sys, "_base_executable", None)]
    paths.append(shutil.which("python3"))
    return list(dict.fromkeys(path for path in paths if path))


def can_run(python: str, code: str, run: Runner = run_command) -> bool:
    """Whether ``python -c code`` exits 0 (e.g. ``import cupy``)."""
    return run([python, "-c", code]).returncode == 0


def interpreter_with(module: str, candidates: Iterable[str], run: Runner = run_command) -> str | None:
    """The first of ``candidates`` that can import ``module``."""
    return next((python for python in candidates if can_run(python, f"import {module}", run)), None)


def borrow_site_packages(python: str, donor: str, run: Runner = run_command) -> str:
    """Make the venv of ``python`` see ``donor``'s site-packages, after its own (a ``.pth`` file),
    and return that file's path. For CuPy installed in a venv: ``--system-site-packages`` shows
    only the packages of the interpreter a venv was made from, never those of another venv."""
    mine, theirs = _paths_of(python, run), _paths_of(donor, run)
    if mine["version"] != theirs["version"]:
        raise RuntimeError(
            f"{donor} is Python {theirs['version']}, {python} is {mine['version']}: "
            f"their packages cannot be shared; set XPNN_GPU_PYTHON={donor}"
        )
    path = os.path.join(mine["purelib"], "xpnn-borrowed-site-packages.pth")
    with open(path, "w") as file:
        file.write("".join(f"{folder}\n" for folder in theirs["site_packages"]))
    return path


def _paths_of(python: str, run: Runner) -> dict[str, Any]:
    result = run([python, SCRIPT, "paths"])
    try:
        return dict(json.loads(result.stdout))
    except json.JSONDecodeError:
        raise RuntimeError(f"cannot read the folders of {python}: {_last_line(result.stderr)}") from None


def ensure_cupy(python: str, candidates: list[str], run: Runner = run_command) -> tuple[bool, str]:
    """Make ``python`` import CuPy where one of ``candidates`` has it; (whether it now does, what
    was found or done, for the log)."""
    if can_run(python, "import cupy", run):
        return True, f"CuPy importable from the session's interpreter {python}"
    donor = interpreter_with("cupy", candidates, run)
    if donor is None:
        return False, f"CuPy importable neither from {python} nor from any of {', '.join(candidates)}"
    try:
        pth = borrow_site_packages(python, donor, run)
    except RuntimeError as error:
        return False, str(error)
    if not can_run(python, "import cupy", run):
        return False, f"CuPy from {donor} still not importable from {python} after adding {pth}"
    return True, f"CuPy from {donor}: its site-packages added to the session's by {pth}"


def paths() -> dict[str, Any]:
    """In THIS interpreter: its Python version, site-packages folders and install folder."""
    return {
        "version": ".".join(platform.python_version_tuple()[:2]),
        "site_packages": site.getsitepackages(),
        "purelib": sysconfig.get_paths()["purelib"],
    }


def cupy_devices() -> dict[str, Any]:
    """In THIS interpreter: CuPy's version, its device count and names (an error text where the
    CUDA runtime refuses, e.g. cudaErrorNoDevice or an old driver)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as error:
        return {"cupy": None, "count": 0, "error": str(error)}
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
        names = [_text(runtime.getDeviceProperties(i)["name"]) for i in range(count)]
    except runtime.CUDARuntimeError as error:
        return {"cupy": cupy.__version__, "count": 0, "error": str(error)}
    return {"cupy": cupy.__version__, "count": count, "names": names, "error": None}


def versions() -> list[str]:
    """In THIS interpreter: one line per fact a GPU result depends on (interpreter, packages with
    where they come from, CUDA runtime and driver as CuPy and torch see them)."""
    lines = [f"python {platform.python_version()} at {sys.executable} (base prefix {sys.base_prefix})"]
    modules = {}
    for module, distribution in REPORTED:
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:
            lines.append(f"{distribution}: not installed")
            continue
        file = getattr(modules[module], "__file__", None)
        where = os.path.dirname(file) if file else "?"
        lines.append(f"{distribution} {getattr(modules[module], '__version__', '?')} from {where}")
    return lines + _cuda_lines(modules.get("cupy"), modules.get("torch"))


def _cuda_lines(cupy: Any, torch: Any) -> list[str]:
    lines = []
    if cupy is not None:
        try:
            runtime = cupy.cuda.runtime
            runtime_version, driver_version = runtime.runtimeGetVersion(), runtime.driverGetVersion()
            lines.append(f"CUDA runtime {runtime_version}, driver {driver_version} (as CuPy sees them)")
        except Exception as error:  # CUDARuntimeError without a driver: report, don't stop the log
            lines.append(f"CUDA runtime: unknown ({error})")
    if torch is not None:
        lines.append(f"torch CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
    return lines


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    if sys.argv[1:] == ["devices"]:
        print(json.dumps(cupy_devices()))
    elif sys.argv[1:] == ["versions"]:
        print("\n".join(versions()))
    elif sys.argv[1:] == ["paths"]:
        print(json.dumps(paths()))
    else:
        sys.exit(f"usage: {sys.argv[0]} devices|versions|paths")
