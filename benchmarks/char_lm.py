"""Training a character-level GPT: xpnn against PyTorch eager, the same model on the same batches.

Both train the GPT of ``examples/gpt.py`` (by default nanoGPT's CPU configuration: 4 layers,
4 heads, width 128, context 64, batch 12) from the same initial weights (xpnn's, copied into
the PyTorch twin of ``benchmarks/_torch_gpt.py``), on the same windows of the Python standard
library's source, with AdamW (betas 0.9, 0.99; weight decay 0.1 on the matrices only) at a
constant learning rate.

Timing (the default): blocks of ``--iters`` iterations, alternating xpnn and PyTorch, after
``--warmup`` untimed ones; the median and min seconds per iteration of ``--repeats`` blocks,
wall and CPU time (the process's, all threads: on a shared machine, where others take turns on
the cores, CPU time stays near the uncontended figure while wall time does not), and xpnn's
time over PyTorch's in the same run. Each thread count runs in its own process pinned to that
many cores (``sched_setaffinity``: one thread is ``taskset -c 0``); BLAS through threadpoolctl,
torch through ``set_num_threads``, XLA through its one-thread flags. Where JAX is installed,
a third row times the same model's whole training step under one ``jax.jit``
(``benchmarks/_jax_gpt.py``: AdamW written out with torch's equations, optax not needed).
The last column is each framework's loss at its last timed step: all three train the same
model on the same batches, so they agree (up to float rounding).

``--compare-loss`` trains both for ``--iters`` iterations with the example's schedule (warmup,
cosine to a tenth) and prints the loss over the whole validation text of each, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/char_lm.py
    ... benchmarks/char_lm.py --threads 1 --iters 20 --repeats 5
    ... benchmarks/char_lm.py --compare-loss --iters 1000 --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))  # gpt.py, char_lm.py
import char_lm
from gpt import GPT

import xpnn
from xpnn import backend
from xpnn.data import TextLoader, load_text
from xpnn.optim import decay_groups

ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="BLAS and torch threads per run")
    p.add_argument("--iters", type=int, default=20, help="iterations per timed block (or trained)")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per framework")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gelu", default="tanh", choices=["tanh", "none"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="numpy", help="xpnn's backend")
    p.add_argument("--text", nargs="+", metavar="PATH", help="UTF-8 files or folders (default: stdlib)")
    p.add_argument("--compare-loss", action="store_true", help="train both, print validation losses")
    return p.parse_args()


class Pair:
    """The xpnn GPT and its PyTorch twin from the same weights, each with its AdamW and loader."""

    def __init__(self, args: argparse.Namespace, corpus: Any, schedule: bool) -> None:
        import torch
        from _torch_gpt import decay_groups as torch_groups  # beside this script
        from _torch_gpt import from_xpnn

        sizes = {"vocab_size": len(corpus.vocabulary), "layers": args.layers, "heads": args.heads,
                 "width": args.width, "context": args.context, "gelu": args.gelu}  # fmt: skip
        self.model = GPT(**sizes, seed=args.seed).to(args.backend)
        self.twin = from_xpnn(self.model)
        if schedule:
            self.optimizer = char_lm.make_optimizer(self.model, args.lr, args.iters)
            rate = self.optimizer.param_groups[0]["lr"]
        else:
            self.optimizer = xpnn.AdamW(decay_groups(self.model, 0.1), lr=args.lr, betas=(0.9, 0.99))
            rate = None
        self.torch_optimizer = torch.optim.AdamW(torch_groups(self.twin, 0.1), lr=args.lr, betas=(0.9, 0.99))
        self.torch_schedule = (
            torch.optim.lr_scheduler.LambdaLR(self.torch_optimizer, lambda t: rate(t) / args.lr)
            if rate is not None
            else None
        )  # t = steps taken, as xpnn's schedule is called
        windows = {"batch_size": args.batch_size, "context": args.context, "seed": args.seed}
        self.loader = TextLoader(corpus.train, target=args.backend, **windows)
        self.torch_loader = TextLoader(corpus.train, target="torch", **windows)

    def xpnn_step(self, step: int) -> Any:
        x, y = self.loader.batch(step)
        loss = self.model.loss(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.value

    def torch_step(self, step: int) -> Any:
        x, y = self.torch_loader.batch(step)
        loss = self.twin.loss(x, y)
        self.torch_optimizer.zero_grad()
        loss.backward()
        self.torch_optimizer.step()
        if self.torch_schedule is not None:
            self.torch_schedule.step()
        return loss.detach()


Timings = dict[str, tuple[list[float], list[float], float]]  # name -> (wall, CPU per block, last loss)


def time_blocks(steps: dict[str, Any], args: argparse.Namespace) -> Timings:
    """Seconds per iteration (wall, CPU) of each block, alternating the frameworks, and each
    one's loss at its last timed step."""
    for step in range(args.warmup):
        for run in steps.values():
            run(step)
    found: Timings = {name: ([], [], math.nan) for name in steps}
    for block in range(args.repeats):
        for name, run in steps.items():
            first = args.warmup + block * args.iters
            wall, cpu = time.perf_counter(), time.process_time()
            for step in range(first, first + args.iters):
                loss = run(step)
            last = float(loss)  # waits for the device (JAX dispatches asynchronously)
            found[name][0].append((time.perf_counter() - wall) / args.iters)
            found[name][1].append((time.process_time() - cpu) / args.iters)
            found[name] = (found[name][0], found[name][1], last)
    return found


LABELS = {"torch": "torch eager (CPU)", "jax": "JAX (jax.jit)"}


def print_times(found: Timings, args: argparse.Namespace, threads: int) -> None:
    print(f"\n{threads} thread(s); seconds per iteration over {args.repeats} blocks of {args.iters}:\n")
    print("| framework | median s/it | min s/it | CPU s/it (median) | xpnn / this (median) | (min) | (CPU) "
          "| last loss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    mine = found["xpnn"]
    for name, (wall, cpu, last) in found.items():
        ratios = (statistics.median(mine[0]) / statistics.median(wall), min(mine[0]) / min(wall),
                  statistics.median(mine[1]) / statistics.median(cpu))  # fmt: skip
        label = LABELS.get(name, f"xpnn[{args.backend}]")
        print(f"| {label} | {statistics.median(wall):.4f} | {min(wall):.4f} | {statistics.median(cpu):.4f} | "
              + " | ".join(f"{r:.2f}" for r in ratios) + f" | {last:.4f} |")  # fmt: skip
    for name in found:
        if name != "xpnn":
            ratio = statistics.median(mine[0]) / statistics.median(found[name][0])
            print(f"RESULT threads={threads} xpnn/{name} median={ratio:.3f} "
                  f"min={min(mine[0]) / min(found[name][0]):.3f}")  # fmt: skip


def compare_loss(pair: Pair, corpus: Any, args: argparse.Namespace) -> None:
    """Train both for ``--iters`` iterations; the loss over the whole validation text of each."""
    import torch

    seconds = {}
    for name, run in (("xpnn", pair.xpnn_step), ("torch", pair.torch_step)):
        start = time.perf_counter()
        for step in range(args.iters):
            loss = run(step)
            if (step + 1) % max(args.iters // 10, 1) == 0:
                print(
                    f"{name} iteration {step + 1}/{args.iters}: training loss {float(loss):.4f}", flush=True
                )
        seconds[name] = (time.perf_counter() - start) / max(args.iters, 1)
    every = {"batch_size": 64, "context": args.context}
    mine = char_lm.mean_loss(
        pair.model, TextLoader(corpus.validation, target=args.backend, **every).sequential()
    )
    total, count = 0.0, 0
    pair.twin.eval()
    with torch.no_grad():
        for x, y in TextLoader(corpus.validation, target="torch", **every).sequential():
            n = x.shape[0] * x.shape[1]
            total += float(pair.twin.loss(x, y)) * n
            count += n
    theirs = total / count
    print(f"\nafter {args.iters} iterations (seconds per iteration: xpnn {seconds['xpnn']:.4f}, "
          f"torch {seconds['torch']:.4f}; each trained alone in turn):")  # fmt: skip
    print(f"validation loss xpnn[{args.backend}]: {mine:.4f} nats/char ({mine / math.log(2):.4f} bits)")
    print(f"validation loss torch: {theirs:.4f} nats/char ({theirs / math.log(2):.4f} bits)")
    print(f"RESULT xpnn/torch validation loss = {mine / theirs:.4f} ({100 * (mine / theirs - 1):+.2f}%)")


def jax_peer(pair: Pair, args: argparse.Namespace) -> Any:
    """The JAX step (``benchmarks/_jax_gpt.py``) from the pair's weights, or None, saying why."""
    try:
        import jax
        from _jax_gpt import JaxGPT  # beside this script
    except ImportError as error:
        print(f"JAX: not installed ({error}; pip install jax): no JAX row")
        return None
    print(f"JAX {jax.__version__} on {jax.devices()[0]}; XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}")
    model = JaxGPT(pair.model, args.lr)

    def step(index: int) -> Any:
        x, y = pair.loader.batch(index)
        return model.step(backend.to_host(x), backend.to_host(y))

    return step


def blas() -> str:
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"
                     for i in threadpool_info() if i.get("user_api") == "blas")  # fmt: skip


def run_threads(args: argparse.Namespace, threads: int) -> None:
    """Everything for one thread count, in this process pinned to ``threads`` cores."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])  # XLA ignores thread limits
    if threads == 1:  # read once, when JAX's CPU client starts
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD_XLA}".strip()
    import torch
    from threadpoolctl import threadpool_limits

    corpus = load_text(args.text)
    print(f"xpnn {xpnn.__version__}, torch {torch.__version__}, numpy {np.__version__}; BLAS: {blas()}; "
          f"cores {sorted(os.sched_getaffinity(0))}")  # fmt: skip
    if os.environ.get("OPENBLAS_CORETYPE"):
        print("OPENBLAS_CORETYPE is set: NumPy's GEMMs run a kernel this CPU would not pick; rerun as "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/char_lm.py`")  # fmt: skip
    print(f"model: {args.layers} layers, {args.heads} heads, width {args.width}, context {args.context}, "
          f"batch {args.batch_size}, GELU {args.gelu}; {len(corpus.train):,} training symbols")  # fmt: skip
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        pair = Pair(args, corpus, schedule=args.compare_loss)
        if args.compare_loss:
            compare_loss(pair, corpus, args)
            return
        steps = {"xpnn": pair.xpnn_step, "torch": pair.torch_step}
        jax_step = jax_peer(pair, args)
        if jax_step is not None:
            steps["jax"] = jax_step
        print_times(time_blocks(steps, args), args, threads)


def main() -> None:
    args = parse_args()
    if len(args.threads) == 1:
        run_threads(args, args.threads[0])
        return
    for threads in args.threads:  # one process per thread count, each pinned to its cores
        own = list(sys.argv[1:])
        if "--threads" in own:
            at = own.index("--threads")
            own = own[:at] + own[at + 1 + len(args.threads) :]
        subprocess.run([sys.executable, __file__, *own, "--threads", str(threads)], check=True)


if __name__ == "__main__":
    main()
