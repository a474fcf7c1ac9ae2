"""Issue 13 "small things" and the backend files: pyproject.toml agrees with itself (Python floor,
ruff, mypy), users install ranges not pins, the dev pin lives in backends/torch.toml, and the
tooling runs on the Python floor (tomli on 3.10, no newer syntax)."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import backends
from xpnn import backend

ROOT = Path(__file__).resolve().parents[2]
PROJECT = backends.read_toml(ROOT / "pyproject.toml")


def python_floor() -> str:
    """ "3.10" from requires-python ">=3.10"."""
    (spec,) = SpecifierSet(PROJECT["project"]["requires-python"])
    assert spec.operator == ">=", "requires-python states a floor"
    return spec.version


def test_ruff_target_and_mypy_version_are_the_requires_python_floor() -> None:
    floor = python_floor()
    assert PROJECT["tool"]["ruff"]["target-version"] == "py" + floor.replace(".", "")
    assert PROJECT["tool"]["mypy"]["python_version"] == floor


def user_requirements() -> list[Requirement]:
    extras = PROJECT["project"]["optional-dependencies"].values()
    optional = [req for extra in extras for req in extra]
    return [Requirement(req) for req in PROJECT["project"]["dependencies"] + optional]


def test_no_dependency_users_install_pins_an_exact_version() -> None:
    pinned = [
        str(req) for req in user_requirements() if any(s.operator in ("==", "===") for s in req.specifier)
    ]
    assert pinned == []


def test_the_torch_extra_is_a_range_holding_the_dev_machines_pin() -> None:
    (extra,) = [Requirement(req) for req in PROJECT["project"]["optional-dependencies"]["torch"]]
    (pin,) = [
        Requirement(req)
        for spec in backends.for_session("cpu")
        if spec["name"] == "torch"
        for req in spec["requires"]
    ]
    (exact,) = pin.specifier
    assert exact.operator == "==" and extra.specifier.contains(exact.version)
    assert extra.specifier.contains("99.0") and not extra.specifier.contains("2.0")


def test_tomli_comes_with_the_test_extra_below_python_3_11_only() -> None:
    (tomli,) = [
        Requirement(r) for r in PROJECT["project"]["optional-dependencies"]["test"] if r.startswith("tomli")
    ]
    assert tomli.marker is not None
    assert tomli.marker.evaluate({"python_version": "3.10"}) and not tomli.marker.evaluate(
        {"python_version": "3.11"}
    )


def test_backends_reads_its_files_with_tomli_on_python_3_10(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tomli = types.ModuleType("tomli")
    fake_tomli.loads = backends.tomllib.loads  # type: ignore[attr-defined]  # tomllib is tomli, upstreamed
    monkeypatch.setitem(sys.modules, "tomli", fake_tomli)
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    spec = importlib.util.spec_from_file_location("backends_on_310", ROOT / "backends" / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.tomllib is fake_tomli
    assert [s["name"] for s in module.load()] == [s["name"] for s in backends.load()]


def python_files() -> list[Path]:
    folders = ["xpnn", "backends", "tests", "examples", "benchmarks"]
    return [ROOT / "noxfile.py"] + [path for name in folders for path in sorted((ROOT / name).rglob("*.py"))]


def test_every_python_file_parses_as_python_3_10() -> None:
    for path in python_files():
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))


def test_requirements_are_pyprojects_own_floors() -> None:
    reqs = backends.requirements(["test", "strict"])
    assert reqs[: len(PROJECT["project"]["dependencies"])] == PROJECT["project"]["dependencies"]
    names = {Requirement(r).name: Requirement(r).specifier for r in reqs}
    assert names["numpy"].contains("2.0") and not names["numpy"].contains("1.26")
    assert not names["pytest"].contains("7.4") and "array-api-compat" in names and "array-api-strict" in names


def test_every_backend_file_names_a_known_backend_session_and_device() -> None:
    specs = backends.load()
    assert specs[0]["name"] == "numpy" and len({s["name"] for s in specs}) == len(specs)
    for spec in specs:
        assert spec["name"] in backend.BACKENDS and spec["session"] in {"cpu", "gpu", "jax"}
        assert spec["device"] in {"cpu", "cuda"} and all(Requirement(r) for r in spec["requires"])
    assert {s["name"] for s in backends.for_session("gpu")} == {"cupy", "torch:cuda"}


def test_the_noxfile_defines_tests_gpu_over_system_site_packages() -> None:
    pytest.importorskip("nox", reason="nox is not installed: this test imports noxfile.py")
    from nox.registry import get

    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    sessions = get()
    assert {"tests-cpu", "tests-gpu", "lint"} <= set(sessions)
    assert sessions["tests-gpu"].venv_params == ["--system-site-packages"]
