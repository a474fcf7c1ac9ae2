"""Issue 18 A.4: what ``nox -s tests-gpu`` decides before testing (backends/gpu.py), with fakes
for nvidia-smi and CuPy, so the logic is tested where no GPU is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backends import gpu

SMI_LIST = "GPU 0: NVIDIA H200 (UUID: GPU-1234)\nGPU 1: NVIDIA H200 (UUID: GPU-5678)\n"


def done(returncode: int = 0, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


class FakeRun:
    """Answers commands by their first matching key (a substring of the joined command); records them."""

    def __init__(self, answers: dict[str, subprocess.CompletedProcess[str]]) -> None:
        self.answers, self.commands = answers, []

    def __call__(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        line = " ".join(command)
        return next((answer for key, answer in self.answers.items() if key in line), done(1, stderr="?"))


def cupy_says(**found: Any) -> subprocess.CompletedProcess[str]:
    return done(stdout="some warning\n" + json.dumps({"error": None, **found}) + "\n")


def smi(present: bool) -> Callable[[str], str | None]:
    return lambda name: "/usr/bin/nvidia-smi" if present and name == "nvidia-smi" else None


def test_nvidia_smi_listing_a_gpu_gives_its_first_line_without_asking_cupy() -> None:
    run = FakeRun({"nvidia-smi -L": done(stdout=SMI_LIST)})
    found = gpu.find_cuda_device("python", run, smi(True))
    assert found == gpu.Detection("GPU 0: NVIDIA H200 (UUID: GPU-1234)", "nvidia-smi -L")
    assert run.commands == [["nvidia-smi", "-L"]]


def test_without_nvidia_smi_cupys_own_device_count_finds_the_gpu() -> None:
    run = FakeRun({"devices": cupy_says(cupy="13.6.0", count=1, names=["NVIDIA H200"])})
    found = gpu.find_cuda_device("/env/bin/python", run, smi(False))
    assert found == gpu.Detection("NVIDIA H200 (1 of 1)", "CuPy 13.6.0 getDeviceCount()")
    assert run.commands == [["/env/bin/python", gpu.SCRIPT, "devices"]]


def test_a_failing_nvidia_smi_falls_back_to_cupy() -> None:
    run = FakeRun(
        {
            "nvidia-smi": done(9, stderr="NVIDIA-SMI has failed: couldn't communicate with the driver"),
            "devices": cupy_says(cupy="13.6.0", count=2, names=["A100", "A100"]),
        }
    )
    assert gpu.find_cuda_device("python", run, smi(True)).device == "A100 (1 of 2)"


def test_cupy_reporting_zero_devices_means_no_device_and_says_both_reasons() -> None:
    run = FakeRun({"devices": cupy_says(cupy="13.6.0", count=0, error="cudaErrorNoDevice")})
    found = gpu.find_cuda_device("/env/bin/python", run, smi(False))
    assert found.device is None
    assert found.how == (
        "nvidia-smi not found; CuPy 13.6.0 in /env/bin/python reports 0 CUDA devices (cudaErrorNoDevice)"
    )


def test_nvidia_smi_listing_no_gpu_and_cupy_missing_means_no_device() -> None:
    run = FakeRun(
        {"nvidia-smi": done(stdout="No devices found.\n"), "devices": cupy_says(cupy=None, count=0)}
    )
    found = gpu.find_cuda_device("/env/bin/python", run, smi(True))
    assert found == gpu.Detection(
        None, "nvidia-smi -L lists no GPU; CuPy is not importable from /env/bin/python"
    )


def test_a_crashing_cupy_query_is_reported_not_raised() -> None:
    run = FakeRun({"devices": done(-11, stderr="Segmentation fault\n")})
    found = gpu.from_cupy("/env/bin/python", run)
    assert found == gpu.Detection(None, "asking CuPy in /env/bin/python failed: Segmentation fault")


def fake_cupy(count: int | Exception) -> types.ModuleType:
    """A module with the few CuPy runtime calls gpu.py makes; ``count`` may be the error it raises."""

    class CUDARuntimeError(RuntimeError):
        pass

    def device_count() -> int:
        if isinstance(count, Exception):
            raise CUDARuntimeError(str(count))
        return count

    runtime = types.SimpleNamespace(
        CUDARuntimeError=CUDARuntimeError,
        getDeviceCount=device_count,
        getDeviceProperties=lambda i: {"name": f"GPU{i}".encode()},
        runtimeGetVersion=lambda: 12080,
        driverGetVersion=lambda: 12090,
    )
    module = types.ModuleType("cupy")
    module.__version__ = "13.6.0"  # type: ignore[attr-defined]
    module.cuda = types.SimpleNamespace(runtime=runtime)  # type: ignore[attr-defined]
    return module


def test_cupy_devices_reports_cupys_count_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(2))
    assert gpu.cupy_devices() == {"cupy": "13.6.0", "count": 2, "names": ["GPU0", "GPU1"], "error": None}


def test_cupy_devices_turns_a_cuda_runtime_error_into_zero_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(RuntimeError("cudaErrorInsufficientDriver")))
    assert gpu.cupy_devices() == {"cupy": "13.6.0", "count": 0, "error": "cudaErrorInsufficientDriver"}


def test_cupy_devices_without_cupy_says_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import raises ImportError, as when absent
    found = gpu.cupy_devices()
    assert found["cupy"] is None and found["count"] == 0 and "cupy" in found["error"]


def test_the_real_cupy_query_in_a_subprocess_agrees_with_this_interpreter() -> None:
    here = gpu.cupy_devices()
    found = gpu.from_cupy(sys.executable)
    if here["cupy"] is None:
        assert found == gpu.Detection(None, f"CuPy is not importable from {sys.executable}")
    else:
        assert (found.device is None) == (here["count"] == 0)


def test_versions_name_each_package_its_origin_and_the_cuda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(1))
    monkeypatch.setitem(sys.modules, "torch", None)
    lines = gpu.versions()
    assert lines[0].startswith(f"python {sys.version.split()[0]} at {sys.executable}")
    assert any(line.startswith(f"numpy {np_version()} from ") for line in lines)
    assert "cupy 13.6.0 from ?" in lines and "torch: not installed" in lines
    assert "CUDA runtime 12080, driver 12090 (as CuPy sees them)" in lines
    assert {line.split()[0].rstrip(":") for line in lines[1:8]} == {name for _, name in gpu.REPORTED}


def np_version() -> str:
    import numpy

    return numpy.__version__


def script(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, gpu.SCRIPT, command], capture_output=True, text=True, check=False)


def test_the_script_prints_devices_as_json_and_versions_as_lines() -> None:
    assert json.loads(script("devices").stdout) == gpu.cupy_devices()
    assert script("versions").stdout.splitlines() == gpu.versions()
    wrong = script("bogus")
    assert wrong.returncode != 0 and "usage" in wrong.stderr


def test_tf32_is_switched_off_for_cupy_cublas_and_torch() -> None:
    assert set(gpu.TF32_OFF) == {"CUPY_TF32", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"}
    assert set(gpu.TF32_OFF.values()) == {"0"}


def test_candidate_interpreters_put_the_named_one_first_without_repeats() -> None:
    candidates = gpu.candidate_interpreters({"XPNN_GPU_PYTHON": "/opt/gpu/bin/python"})
    assert candidates[:2] == ["/opt/gpu/bin/python", sys.executable]
    assert len(candidates) == len(set(candidates))
    assert gpu.candidate_interpreters({})[0] == sys.executable


def test_interpreter_with_returns_the_first_that_imports_the_module() -> None:
    run = FakeRun({"/b/python -c import cupy": done(0), "/c/python -c import cupy": done(0)})
    assert gpu.interpreter_with("cupy", ["/a/python", "/b/python", "/c/python"], run) == "/b/python"
    assert gpu.interpreter_with("cupy", ["/a/python"], run) is None


def make_venv(folder: Path) -> tuple[str, Path]:
    """A bare venv over this interpreter's base: its python and site-packages folder."""
    venv.create(folder, with_pip=False)
    python = str(folder / ("Scripts" if os.name == "nt" else "bin") / "python")
    paths = json.loads(subprocess.run([python, gpu.SCRIPT, "paths"], capture_output=True, check=True).stdout)
    return python, Path(paths["purelib"])


def test_borrowing_a_venvs_site_packages_makes_its_modules_importable(tmp_path: Path) -> None:
    session, _ = make_venv(tmp_path / "session")
    donor, donor_site = make_venv(tmp_path / "donor")
    (donor_site / "xpnn_probe_module.py").write_text("VALUE = 42\n")  # stands in for CuPy
    assert not gpu.can_run(session, "import xpnn_probe_module")
    pth = gpu.borrow_site_packages(session, donor)
    assert gpu.can_run(session, "import xpnn_probe_module; assert xpnn_probe_module.VALUE == 42")
    assert Path(pth).read_text().splitlines() == [str(donor_site)]


def test_borrowing_across_python_versions_is_refused() -> None:
    run = FakeRun(
        {
            "/s/python": done(stdout=json.dumps({"version": "3.11", "site_packages": [], "purelib": "/s"})),
            "/d/python": done(stdout=json.dumps({"version": "3.12", "site_packages": [], "purelib": "/d"})),
        }
    )
    with pytest.raises(
        RuntimeError, match=r"/d/python is Python 3.12, /s/python is 3.11: .*XPNN_GPU_PYTHON=/d/python"
    ):
        gpu.borrow_site_packages("/s/python", "/d/python", run)


def test_ensure_cupy_keeps_an_interpreter_that_already_imports_it() -> None:
    run = FakeRun({"/s/python -c import cupy": done(0)})
    assert gpu.ensure_cupy("/s/python", ["/d/python"], run) == (
        True,
        "CuPy importable from the session's interpreter /s/python",
    )
    assert len(run.commands) == 1


def test_ensure_cupy_without_any_cupy_says_where_it_looked() -> None:
    ok, log = gpu.ensure_cupy("/s/python", ["/a/python", "/b/python"], FakeRun({}))
    assert not ok and log == "CuPy importable neither from /s/python nor from any of /a/python, /b/python"


def test_ensure_cupy_borrows_from_the_venv_that_has_it(tmp_path: Path) -> None:
    session, session_site = make_venv(tmp_path / "session")
    donor, donor_site = make_venv(tmp_path / "donor")
    (donor_site / "cupy").mkdir()
    (donor_site / "cupy" / "__init__.py").write_text("__version__ = 'fake'\n")
    ok, log = gpu.ensure_cupy(session, ["/nonexistent/python", donor])
    assert ok and log.startswith(f"CuPy from {donor}: ") and str(session_site) in log
    assert gpu.can_run(session, "import cupy; assert cupy.__version__ == 'fake'")


def test_ensure_cupy_reports_a_donor_whose_folders_cannot_be_read() -> None:
    run = FakeRun({"/d/python -c import cupy": done(0), "paths": done(1, stderr="Killed")})
    ok, log = gpu.ensure_cupy("/s/python", ["/d/python"], run)
    assert not ok and log == "cannot read the folders of /s/python: Killed"
