"""glibc's thresholds raised for training (``xpnn.kernels.memory``): freed step-sized blocks stay
mapped (no page faults at every step), the user's malloc settings stand, and ``fit`` asks for it
only with the fast paths on. The page-fault checks run in fresh processes: the setting is
process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only (Linux)"
)

# a "step" that allocates 8 blocks of 8 MB and frees them together, as a CNN step frees its
# activations; prints whether the thresholds were set and the page faults per later step
CHURN = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from xpnn.kernels.memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    def step():
        arrays = [np.empty(2_000_000, np.float32) for _ in range(8)]
        for a in arrays:
            a.fill(1.0)
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
    """
)


def _churn(mode: str, **env: str) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", CHURN, mode], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    applied, faults = done.stdout.split()
    return applied, float(faults)


@glibc
def test_freed_blocks_stay_mapped_so_a_step_does_not_fault_its_memory_back_in() -> None:
    applied, kept = _churn("keep")
    _, plain = _churn("plain")
    assert applied == "True"
    assert kept <= 16  # 64 MB a step: 16,384 pages of 4 KiB, none faulted again
    assert plain > 20 * max(kept, 1)  # glibc's own thresholds: the memory went back and came again


@glibc
def test_the_users_malloc_settings_stand() -> None:
    assert _churn("keep", MALLOC_TRIM_THRESHOLD_="131072")[0] == "False"
    assert _churn("keep", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")[0] == "False"


def test_fit_keeps_freed_memory_only_with_the_fast_paths_on(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("xpnn.train.loop.keep_freed_memory", lambda: calls.append(1) or True)
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    y = np.arange(16) % 2

    def fit() -> None:
        model = xpnn.Sequential([xpnn.Dense(4, 2)], seed=0)
        model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
                  epochs=1, batch_size=8, verbose=0)  # fmt: skip

    with xpnn.kernels.disabled():
        fit()
    assert calls == []
    fit()
    assert calls == [1]
