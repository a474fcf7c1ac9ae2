"""Launching small scripts under ``mpiexec -n N`` from the test suite, held to loopback.

MPICH's launcher and its TCP transport are told to bind and connect on ``lo`` only
(``HYDRA_IFACE``, ``UCX_NET_DEVICES``, ``FI_TCP_IFACE``): a local run never touches the
machine's own network address. Every launch has a bounded timeout, so a deadlock fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"HYDRA_IFACE": "lo", "UCX_NET_DEVICES": "lo", "FI_TCP_IFACE": "lo"}


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (``pip install mpich`` puts it there), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError(
            "mpiexec not found beside sys.executable nor on PATH: install the 'mpi' extra "
            "(pip install mpi4py mpich) to run the data-parallel tests"
        )
    return found


def environment() -> dict[str, str]:
    """This process's environment, the repository on PYTHONPATH, MPI held to loopback, and
    no launcher variables inherited (a one-process run must not think it is under mpiexec)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL"))}
    env.update(LOOPBACK)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"  # 2 ranks on a 2-core machine
    return env


def run(
    ranks: int, script: Path, args: Sequence[str], *, timeout: float = 90.0
) -> subprocess.CompletedProcess:
    """Run ``python script args`` on ``ranks`` ranks (``ranks == 0``: plainly, without mpiexec)."""
    command = [sys.executable, str(script), *args]
    if ranks:
        command = [mpiexec(), "-n", str(ranks), *command]
    return subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
