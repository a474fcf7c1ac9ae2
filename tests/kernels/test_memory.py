"""glibc's thresholds raised for training (``xpnn.kernels.memory``): freed step-sized blocks stay
mapped (no page faults at every step), the user's malloc settings stand, nothing happens with
the fast paths off, and ``fit`` asks for it. The checks that set the thresholds run in fresh
processes: the setting is process-wide."""

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
from xpnn.kernels import memory

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only (Linux)"
)

# a "step" that allocates 8 blocks of 8 MB and frees them together, as a CNN step frees its
# activations, with transparent huge pages off for this process (PR_SET_THP_DISABLE: a fault
# per 4 KiB page, whatever the machine's setting); prints whether the thresholds were set and
# the page faults per later step
CHURN = textwrap.dedent(
    """
    import ctypes, resource, sys
    import numpy as np
    from xpnn.kernels.memory import keep_freed_memory
    ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)
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
SWITCH = textwrap.dedent(
    """
    from xpnn import kernels
    from xpnn.kernels.memory import keep_freed_memory
    with kernels.disabled():
        off = keep_freed_memory()
    print(off, keep_freed_memory())
    """
)


def _run(script: str, *args: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", script, *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout.split()


@glibc
def test_freed_blocks_stay_mapped_so_a_step_does_not_fault_its_memory_back_in() -> None:
    applied, kept = _run(CHURN, "keep")
    _, plain = _run(CHURN, "plain")
    assert applied == "True"
    assert float(kept) <= 16  # 64 MB a step: 16,384 pages of 4 KiB, none faulted again
    assert float(plain) > 1000  # glibc's own thresholds: the memory went back and came again


@glibc
def test_the_users_malloc_settings_stand() -> None:
    assert _run(CHURN, "keep", MALLOC_TRIM_THRESHOLD_="131072")[0] == "False"
    assert _run(CHURN, "keep", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")[0] == "False"


def test_what_counts_as_the_users_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                 "GLIBC_TUNABLES", "LD_PRELOAD"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert not memory.user_set_malloc()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")  # not a threshold: ours still apply
    assert not memory.user_set_malloc()
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")  # another allocator
    assert memory.user_set_malloc()
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert memory.user_set_malloc()


@glibc
def test_nothing_is_set_with_the_fast_paths_off_and_a_later_call_still_sets_it() -> None:
    assert _run(SWITCH) == ["False", "True"]


def test_fit_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("xpnn.train.loop.keep_freed_memory", lambda: calls.append(1) or True)
    model = xpnn.Sequential([xpnn.Dense(4, 2)], seed=0)
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    model.fit(x, np.arange(16) % 2, loss=xpnn.SoftmaxCrossEntropy(),
              optimizer=xpnn.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8, verbose=0)  # fmt: skip
    assert calls == [1]
