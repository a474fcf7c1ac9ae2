"""``distributed.py --per-step``: seconds per training step, 1 process vs 2 MPI ranks, against
PyTorch DDP (gloo over 127.0.0.1) on the same work, with the all-reduce alone timed and a
scaling table on paper. Each process is pinned to its own core with one BLAS thread; the
timed epochs follow one warm-up epoch, so start-up is left out (the default whole-fit mode
counts it).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time

import numpy as np
from _processes import GLOBAL_BATCH, blas_kernel, data, launch, measure_ceiling, pin, report, role_command

WIDTHS = [784, 256, 128, 10]


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


def step_time(results: list[dict]) -> tuple[float, float]:
    """(median, min) over repeats of the slowest rank's seconds per step."""
    slowest = [max(r["per_step"][i] for r in results) for i in range(len(results[0]["per_step"]))]
    return statistics.median(slowest), min(slowest)


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
    compute with the all-reduce NOT hidden (efficiency = c B / (c B + T)); overlapping it with
    backward, as fit does, hides up to backward's share of c B."""
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


def run_steps(args: argparse.Namespace) -> None:
    print(f"BLAS: {blas_kernel()}; {os.cpu_count()} CPUs; global batch {GLOBAL_BATCH}, {args.steps} steps")
    timing = ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    ceiling, alone_gflops = measure_ceiling()  # before and after the runs: a shared host drifts
    xpnn_one = step_time(launch([role_command("--role", "xpnn", *timing)], 600))
    mpi = role_command("--role", "xpnn", *timing, ranks=2)
    two = launch([mpi], 600)
    xpnn_two = step_time(two)
    plain = launch([[*mpi, "--no-shared-memory"]], 600)
    xpnn_plain = step_time(plain)
    torch_one = step_time(launch([role_command("--role", "torch", *timing)], 600))
    ddp = [
        role_command("--role", "torch", "--rank", str(r), "--size", "2", "--port", str(args.port), *timing)
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
