"""The processes of ``distributed.py``: each child pins itself, measures, and prints one
``RESULT {json}`` line that the driver collects; plus the machine's GEMM ceiling.

A child is this benchmark's own script started with ``--role ...`` (see :func:`role_command`),
alone or under ``mpiexec -n 2``, with one BLAS thread and MPI held to loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GLOBAL_BATCH = 512
LOOPBACK = {"HYDRA_IFACE": "lo", "UCX_NET_DEVICES": "lo", "FI_TCP_IFACE": "lo"}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("distributed.py")
LAUNCHED = "XPNN_BENCH_LAUNCHED"  # the driver's time.time() when it started the command


def pin(core: int | None) -> None:
    """This process on core ``core`` alone (None: wherever the OS puts it), one BLAS thread."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def data(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` global batches of synthetic Fashion-MNIST-shaped uint8 images and labels."""
    n = steps * GLOBAL_BATCH
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n)


def report(**values: object) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def since_launch() -> float:
    """Seconds since the driver started this process's command (mpiexec's, for a rank)."""
    return time.time() - float(os.environ[LAUNCHED])


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_"))}
    env.update(LOOPBACK, **ONE_THREAD)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else (shutil.which("mpiexec") or "mpiexec")


def role_command(*options: str, ranks: int = 0, bind: bool = False) -> list[str]:
    """This benchmark's script with ``options``: one process, or ``ranks`` MPI ranks (``bind``:
    each bound to a core of its own by the launcher, Hydra's ``-bind-to core``)."""
    command = [sys.executable, str(SCRIPT), *options]
    if not ranks:
        return command
    return [mpiexec(), "-n", str(ranks), *(["-bind-to", "core"] if bind else []), *command]


def start(command: list[str]) -> subprocess.Popen[str]:
    """Start ``command`` in a session of its own. Linux's scheduler (autogroup, on by default)
    shares a loaded CPU equally between sessions, and Hydra puts every MPI rank in a session of
    its own: a plain child left in the driver's session (with a busy process also started here)
    would get a smaller share than a rank, and the comparison would flatter the ranks."""
    env = child_env()
    env[LAUNCHED] = repr(time.time())
    return subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def launch(commands: list[list[str]], timeout: float) -> list[dict]:
    """Start every command at once, wait for all; their RESULT lines."""
    procs = [start(c) for c in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode:
            raise SystemExit(f"benchmark child failed ({proc.returncode}):\n{out}\n{err}")
        results += parse_results(out)
    return results


def parse_results(out: str) -> list[dict]:
    """Every ``RESULT {...}`` in ``out``: mpiexec forwards two ranks' output through one pipe,
    and their lines can come interleaved, so each object is decoded where it starts."""
    decoder, found = json.JSONDecoder(), []
    for piece in out.split("RESULT ")[1:]:
        found.append(decoder.raw_decode(piece)[0])
    return found


def role_gemm(core: int, seconds: float, library: str) -> None:
    """GEMMs of the MLP's first layer (512 x 784 @ 784 x 256) for ``seconds``: GFLOP/s, through
    NumPy's BLAS (xpnn's) or torch's (MKL: another kernel, which may scale differently)."""
    pin(core)
    rng = np.random.default_rng(core)
    a, b = rng.random((GLOBAL_BATCH, 784), dtype=np.float32), rng.random((784, 256), dtype=np.float32)
    out = np.empty((GLOBAL_BATCH, 256), np.float32)
    matmul = np.matmul
    if library == "torch":
        import torch

        torch.set_num_threads(1)
        a, b, out, matmul = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out), torch.matmul
    matmul(a, b, out=out)
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for _ in range(20):
            matmul(a, b, out=out)
        count += 20
    report(
        role="gemm",
        core=core,
        gflops=count * 2 * a.shape[0] * 784 * 256 / (time.perf_counter() - begin) / 1e9,
    )


def measure_ceiling(library: str = "numpy") -> tuple[float, float]:
    """(GEMM throughput of cores 0 and 1 together / core 0 alone, core 0's GFLOP/s)."""
    gemm = ["--role", "gemm", "--library", library, "--rank"]
    alone = launch([role_command(*gemm, "0")], 60)
    pair = launch([role_command(*gemm, "0"), role_command(*gemm, "1")], 60)
    return sum(r["gflops"] for r in pair) / alone[0]["gflops"], alone[0]["gflops"]


def blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in info
        )
    except ImportError:
        return "unknown (threadpoolctl not installed)"
