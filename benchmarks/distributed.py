"""Data-parallel scaling on one machine: 1 process vs 2 MPI ranks, against PyTorch DDP.

The 784-256-128-10 MLP, Adam, global batch 512, on synthetic Fashion-MNIST-shaped uint8 data
(the real images when the data set is found; the numbers do not depend on the values).
Every process is pinned to its own core (0 and 1) with one BLAS thread, and the machine's own
ceiling is measured in the same run: the GEMM throughput of two processes on cores 0 and 1
against one alone (a shared host, with shared caches and memory bandwidth, rarely gives 2.0),
through NumPy's BLAS (xpnn's GEMMs) and through torch's (DDP's), which can scale differently.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py --steps 60 --repeats 9

Reported: seconds per step (median over repeats), speedup = t(1 process) / t(2 processes),
efficiency = speedup / ceiling, the xpnn all-reduce's time per step (one call on the 235,146
float32 gradients, 0.94 MB), and torch DDP (gloo over 127.0.0.1) with 2 processes on the same
work. MPI is held to loopback (HYDRA_IFACE=lo ...). Targets: efficiency >= 0.85 and xpnn's 2
ranks faster than DDP's 2 processes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WIDTHS = [784, 256, 128, 10]
GLOBAL_BATCH = 512
LOOPBACK = {"HYDRA_IFACE": "lo", "UCX_NET_DEVICES": "lo", "FI_TCP_IFACE": "lo"}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ROOT = Path(__file__).resolve().parents[1]


def pin(core: int) -> None:
    """This process on core ``core`` alone, with one BLAS thread."""
    os.sched_setaffinity(0, {core})
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def data(steps: int) -> tuple[np.ndarray, np.ndarray]:
    n = steps * GLOBAL_BATCH
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n)


def report(**values: object) -> None:
    print("RESULT " + json.dumps(values), flush=True)


# -- the roles each child process plays ---------------------------------------------------
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
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            matmul(a, b, out=out)
        count += 20
    report(
        role="gemm",
        core=core,
        gflops=count * 2 * a.shape[0] * 784 * 256 / (time.perf_counter() - start) / 1e9,
    )


def role_xpnn(steps: int, repeats: int, shared_memory: bool = True) -> None:
    """xpnn's fit on this rank's share of each global batch; seconds per step per repeat.
    ``shared_memory=False``: gradients averaged by MPI's own Allreduce (xpnn's node-shared path off)."""
    import xpnn

    comm = xpnn.distributed.init()
    if not shared_memory and comm.size > 1:
        comm.shared_memory = False  # type: ignore[attr-defined]
    pin(comm.rank)
    x, y = data(steps)
    layers: list[xpnn.Layer] = [xpnn.Dense(784, 256), xpnn.ReLU(), xpnn.Dense(256, 128), xpnn.ReLU(),
                                xpnn.Dense(128, 10)]  # fmt: skip
    model = xpnn.Sequential(layers, seed=0)
    optimizer = xpnn.Adam(model.parameters(), lr=1e-3)
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=repeats + 1,
                        batch_size=GLOBAL_BATCH, seed=0, verbose=0, communicator=comm)  # fmt: skip
    per_step = [s / steps for s in history["seconds"][1:]]  # epoch 1 warms up
    allreduce = None
    if comm.size > 1:  # the all-reduce alone, on the flat gradient buffer the steps reduced
        loss = xpnn.SoftmaxCrossEntropy()
        loss.forward(model.forward(x[:256].astype(np.float32) / 255), y[:256])
        model.backward(loss.backward())
        (buffer,) = optimizer.gradient_buffers()  # in node-shared memory after fit (see mpi.py)
        comm.barrier()
        calls = []
        for _ in range(100):
            start = time.perf_counter()
            comm.allreduce_mean(buffer, 0.5, adopt=True)
            calls.append(time.perf_counter() - start)
        allreduce = statistics.median(calls)  # a loaded host deschedules a rank now and then
    report(role="xpnn", rank=comm.rank, size=comm.size, per_step=per_step, allreduce=allreduce)


def role_torch(rank: int, size: int, steps: int, repeats: int, port: int) -> None:
    """The same MLP in PyTorch: one process, or DistributedDataParallel (gloo) over loopback."""
    import torch

    pin(rank)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = [torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
              torch.nn.Linear(128, 10)]  # fmt: skip
    model: torch.nn.Module = torch.nn.Sequential(*layers)
    if size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
        torch.distributed.init_process_group("gloo", rank=rank, world_size=size)
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(steps)
    share = GLOBAL_BATCH // size
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    per_step = []
    for epoch in range(repeats + 1):
        order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(len(x)))
        start = time.perf_counter()
        for k in range(steps):
            idx = order[k * GLOBAL_BATCH + rank * share : k * GLOBAL_BATCH + (rank + 1) * share]
            xb = xs[idx].to(torch.float32) * (1.0 / 255.0)
            loss = torch.nn.functional.cross_entropy(model(xb), ys[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if epoch:
            per_step.append((time.perf_counter() - start) / steps)
    if size > 1:
        torch.distributed.destroy_process_group()
    report(role="torch", rank=rank, size=size, per_step=per_step)


# -- the driver -----------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_"))}
    env.update(LOOPBACK, **ONE_THREAD)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def launch(commands: list[list[str]], timeout: float) -> list[dict]:
    """Start every command at once, wait for all; their RESULT lines."""
    me = [sys.executable, str(Path(__file__).resolve())]
    procs = [subprocess.Popen(me + c if c[0].startswith("--") else c, env=child_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]  # fmt: skip
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


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else (shutil.which("mpiexec") or "mpiexec")


def step_time(results: list[dict]) -> tuple[float, float]:
    """(median, min) over repeats of the slowest rank's seconds per step."""
    slowest = [max(r["per_step"][i] for r in results) for i in range(len(results[0]["per_step"]))]
    return statistics.median(slowest), min(slowest)


def blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in info
        )
    except ImportError:
        return "unknown (threadpoolctl not installed)"


NETWORKS = {"10 GbE, TCP": (25e-6, 1.25e9), "InfiniBand HDR": (2e-6, 25e9)}  # (latency s, bytes/s)


def allreduce_seconds(nodes: int, size: float, latency: float, bandwidth: float) -> dict[str, float]:
    """Textbook all-reduce costs of ``size`` bytes on ``nodes`` nodes (Thakur, Rabenseifner and
    Gropp 2005): ring = 2(N-1) latencies + 2(N-1)/N of the data each way; tree (binomial reduce,
    then broadcast) = 2 log2 N latencies + 2 full messages per hop, pipelined."""
    hops = math.log2(nodes)
    ring = 2 * (nodes - 1) * latency + 2 * (nodes - 1) / nodes * size / bandwidth
    tree = 2 * hops * latency + 2 * size / bandwidth
    return {"ring": ring, "tree": tree}


def scaling_table(per_sample: float, size: float) -> None:
    """All-reduce time per step at 8 and 64 nodes and the local batch that keeps the step 90%
    compute (xpnn does not overlap the all-reduce with backward: efficiency = c B / (c B + T))."""
    print(f"\nscaling on paper: {size / 1e6:.2f} MB of gradients per step, "
          f"{per_sample * 1e6:.1f} us of compute per sample (1 process, min above)")  # fmt: skip
    print(
        "| network | nodes | bytes sent per node per step (ring) | ring ms | tree ms | local batch for 90% |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, (latency, bandwidth) in NETWORKS.items():
        for nodes in (8, 64):
            cost = allreduce_seconds(nodes, size, latency, bandwidth)
            best = min(cost.values())
            sent = 2 * (nodes - 1) / nodes * size
            ring, tree = cost["ring"] * 1e3, cost["tree"] * 1e3
            batch = math.ceil(9 * best / per_sample)
            print(f"| {name} | {nodes} | {sent / 1e6:.2f} MB | {ring:.2f} | {tree:.2f} | {batch:,} |")


def measure_ceiling(library: str = "numpy") -> tuple[float, float]:
    """(GEMM throughput of cores 0 and 1 together / core 0 alone, core 0's GFLOP/s)."""
    gemm = ["--role", "gemm", "--library", library, "--rank"]
    alone = launch([[*gemm, "0"]], 60)
    pair = launch([[*gemm, "0"], [*gemm, "1"]], 60)
    return sum(r["gflops"] for r in pair) / alone[0]["gflops"], alone[0]["gflops"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--steps", type=int, default=40, help="steps of global batch 512 per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs (after one warm-up)")
    parser.add_argument("--role", choices=["gemm", "xpnn", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--library", default="numpy", help=argparse.SUPPRESS)
    parser.add_argument("--no-shared-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=29517, help="DDP's rendezvous port on 127.0.0.1")
    args = parser.parse_args()
    if args.role == "gemm":
        return role_gemm(args.rank, 2.0, args.library)
    if args.role == "xpnn":
        return role_xpnn(args.steps, args.repeats, not args.no_shared_memory)
    if args.role == "torch":
        return role_torch(args.rank, args.size, args.steps, args.repeats, args.port)
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    overrides = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if overrides:
        print(f"warning: {', '.join(overrides)} set: GEMMs run a slower kernel; unset them in the command")
    print(f"BLAS: {blas_kernel()}; {os.cpu_count()} CPUs; global batch {GLOBAL_BATCH}, {args.steps} steps")
    timing = ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    ceiling, alone_gflops = measure_ceiling()  # before and after the runs: a shared host drifts
    xpnn_one = step_time(launch([["--role", "xpnn", *timing]], 600))
    mpi = [mpiexec(), "-n", "2", sys.executable, str(Path(__file__).resolve()), "--role", "xpnn", *timing]
    two = launch([mpi], 600)
    xpnn_two = step_time(two)
    plain = launch([[*mpi, "--no-shared-memory"]], 600)
    xpnn_plain = step_time(plain)
    torch_one = step_time(launch([["--role", "torch", *timing]], 600))
    ddp = [
        ["--role", "torch", "--rank", str(r), "--size", "2", "--port", str(args.port), *timing]
        for r in (0, 1)
    ]
    torch_two = step_time(launch(ddp, 600))
    allreduce = max(r["allreduce"] for r in two)
    allreduce_plain = max(r["allreduce"] for r in plain)
    later, _ = measure_ceiling()
    torch_ceiling, torch_gflops = measure_ceiling("torch")
    print(f"GEMM ceiling (cores 0+1 vs core 0), NumPy's BLAS: {ceiling:.2f}x before, {later:.2f}x after "
          f"the runs ({alone_gflops:.1f} GFLOP/s alone), their mean is used; torch's BLAS: "
          f"{torch_ceiling:.2f}x ({torch_gflops:.1f} GFLOP/s alone), used for DDP's row")  # fmt: skip
    ceiling = (ceiling + later) / 2
    print("| run | ms / step (median) | min | speedup | speedup / ceiling |")
    print("|---|---:|---:|---:|---:|")
    runs = (
        ("xpnn (MPI)", xpnn_one, xpnn_two, ceiling),
        ("xpnn (MPI, MPI_Allreduce only)", xpnn_one, xpnn_plain, ceiling),
        ("torch DDP (gloo)", torch_one, torch_two, torch_ceiling),
    )
    for name, (one, one_min), (two_t, two_min), limit in runs:
        if "only" not in name:  # the same one-process run as the row above
            print(f"| {name}, 1 process | {one * 1e3:.2f} | {one_min * 1e3:.2f} | | |")
        print(
            f"| {name}, 2 processes | {two_t * 1e3:.2f} | {two_min * 1e3:.2f} | {one / two_t:.2f}x "
            f"| {one / two_t / limit:.2f} |"
        )
    count = sum(w * v + v for w, v in itertools.pairwise(WIDTHS))
    share = allreduce / xpnn_two[0]
    print(
        f"xpnn all-reduce of {count:,} float32 gradients: {allreduce * 1e3:.3f} ms / step (median) "
        f"({share:.1%} of a step) in node-shared memory; {allreduce_plain * 1e3:.3f} ms through MPI_Allreduce"
    )
    print(f"xpnn 2 ranks vs torch DDP 2 processes: {torch_two[0] / xpnn_two[0]:.2f}x faster (median), "
          f"{torch_two[1] / xpnn_two[1]:.2f}x (min)")  # fmt: skip
    scaling_table(xpnn_one[1] / GLOBAL_BATCH, 4.0 * count)


if __name__ == "__main__":
    main()
