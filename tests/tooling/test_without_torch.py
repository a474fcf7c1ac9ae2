"""Issue 18 A.3: the suite collects and runs where torch is not installed, and what needs
torch.optim / torch.nn.functional skips with the reason. Proved in a subprocess whose
``import torch`` fails as it does without torch (tests/helpers/without_torch/sitecustomize.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.optional import COMPARES_WITH_TORCH, TORCH_MISSING

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = ROOT / "tests" / "helpers" / "without_torch"


def run_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repo root with torch blocked, testing numpy and array-api-strict."""
    env = dict(os.environ, XPNN_TEST_BACKENDS="numpy,array_api_strict")
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKER), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def test_the_blocker_makes_import_torch_fail_as_a_missing_package() -> None:
    result = run_without_torch("-c", "import torch")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr


def test_the_whole_suite_collects_without_torch() -> None:
    result = run_without_torch("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests")
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert result.returncode == 0, "\n".join(errors[-30:])
    summary = result.stdout.strip().splitlines()[-1]  # "855 tests collected in 2.2s"
    collected = re.fullmatch(r"(\d+) tests collected in .*", summary)
    assert collected and int(collected.group(1)) > 500, summary


def test_torch_comparisons_skip_with_the_reason_and_the_rest_passes_without_torch() -> None:
    quick = "clip_norm_leaves or nnfs_momentum_differs or parameter_groups or schedules"
    result = run_without_torch(
        "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", quick,
        "tests/optim/test_optimizers.py", "tests/optim/test_schedules.py",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    summary = re.search(r"(\d+) passed, (\d+) skipped", output)
    assert summary and int(summary.group(1)) > 0 and int(summary.group(2)) > 0, output[-1000:]
    assert f"{TORCH_MISSING}: {COMPARES_WITH_TORCH}" in output
