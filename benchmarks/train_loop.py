"""Training throughput: xpnn vs JAX+optax (jit) vs PyTorch vs hand-written NumPy, same batches.

Each framework trains the same MLP from the same initial weights on the same Fashion-MNIST
batches ``X[idx]`` (float32, same order; no dropout; loss sum and correct count accumulated on
the device, one synchronisation per epoch). Runs alternate between frameworks; the table gives
median and min epoch seconds over the repeats and xpnn's time over each row's (median, min,
and paired: the median over the repeats of each repeat's own ratio, its two epochs run moments
apart, where the machine's speed, which drifts on a shared host, was the same for both).
The ``fit`` rows time ``model.fit`` (which adds the loader's batch gather and uint8 -> float32
cast) beside a jitted JAX step that gathers and casts uint8 batches too. The GEMM-floor row is
the step's GEMMs at the GFLOP/s NumPy measured for each of their shapes in the same run.
"CPU s" is the process's CPU time over the epoch (all its threads): on a shared machine, where
other processes take turns on the core, it stays near the uncontended one-thread epoch time while
wall time does not (with two threads it adds both threads' time, spin-waits included).

One-thread runs pin the process to one core (XLA ignores BLAS thread limits) and set XLA's
one-thread flags; each thread count runs in its own process (XLA reads its flags once).
Unset OpenBLAS's overrides first, or the script prints no ratios:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_loop.py
    ... train_loop.py --models mlp --threads 1 --repeats 3
    ... train_loop.py --backend torch     # xpnn on torch tensors
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from _gemm_floor import gemm_epoch, gemm_floor  # beside this script
from _torch_mlp import torch_epoch
from handwritten_numpy import HandwrittenMLP

import xpnn
from xpnn import backend
from xpnn.data.loader import DataLoader
from xpnn.optim.optimizers import SGD, Adam

MODELS = {  # name -> (layer widths, batch size, optimizer, learning rate)
    "mlp": ([784, 256, 128, 10], 128, "adam", 1e-3),
    "deep": ([784, 350, 250, 150, 50, 10], 256, "sgd", 0.2),
    "small": ([784, 32, 10], 32, "adam", 1e-3),
    "gemm": ([784, 256, 128, 10], 8192, "adam", 1e-3),
}
FIT_SEED = 0  # fit's shuffle seed: its loader's order, which the JAX fit peer replays
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
Epoch = Callable[[np.ndarray], tuple[float, float]]  # batch order -> (mean loss, accuracy)


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Fashion-MNIST training images as float32 in [0, 1] and as stored (uint8, flattened),
    and labels; or random data of the same shape."""
    try:
        from xpnn.data import load_fashion_mnist

        (x, y), _ = load_fashion_mnist()
        source = "Fashion-MNIST"
    except Exception as error:  # the benchmark still runs where the data set is absent
        print(f"(Fashion-MNIST not loaded: {error}; using random data of the same shape)")
        rng = np.random.default_rng(0)
        x, y, source = (
            rng.integers(0, 256, (60000, 784), dtype=np.uint8),
            rng.integers(0, 10, 60000),
            "random",
        )
    x_uint8 = np.ascontiguousarray(np.asarray(x, np.uint8).reshape(len(x), -1))
    return x_uint8.astype(np.float32) / 255.0, x_uint8, np.asarray(y, np.int64), source


def xpnn_model(widths: list[int]) -> xpnn.Sequential:
    """The benchmarked MLP (ReLU between Dense layers), seed 0: every framework starts from its
    initial weights, so all follow the same trajectory (and meet the same subnormal numbers)."""
    layers: list[xpnn.Layer] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers += [xpnn.Dense(a, b)] + ([xpnn.ReLU()] if i < len(widths) - 2 else [])
    return xpnn.Sequential(layers, seed=0)


def initial_weights(widths: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    dense = [layer for layer in xpnn_model(widths) if isinstance(layer, xpnn.Dense)]
    return [(backend.to_host(d.weight.value), backend.to_host(d.bias.value)) for d in dense]


def xpnn_epoch(name: str, x: np.ndarray, y: np.ndarray, spec: tuple) -> Epoch:
    widths, batch, optimizer, lr = spec
    model = xpnn_model(widths).to(name)
    opt = Adam(model.parameters(), lr=lr) if optimizer == "adam" else SGD(model.parameters(), lr=lr)
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    target = backend.resolve(name)
    xp, images, labels = target.xp, backend.from_host(x, target), backend.from_host(y, target)

    def epoch(order: np.ndarray) -> tuple[float, float]:
        index = backend.from_host(order, target)
        loss_sum, correct = xp.zeros((), dtype=xp.float32, device=target.device), 0
        for start in range(0, len(order) - batch + 1, batch):
            idx = index[start : start + batch]
            xb, yb = xp.take(images, idx, axis=0), xp.take(labels, idx, axis=0)
            logits = model.forward(xb)
            loss_sum = loss_sum + loss_fn.forward(logits, yb) * float(batch)
            correct = correct + xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, xp.int32))
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
        backend.synchronize(loss_sum)
        n = (len(order) // batch) * batch
        return float(loss_sum) / n, float(correct) / n

    return epoch


def xpnn_fit_epoch(name: str, x_uint8: np.ndarray, y: np.ndarray, spec: tuple) -> Epoch:
    """xpnn's ``model.fit``, one epoch a call (its order: the loader's for ``FIT_SEED``), on the
    uint8 images: the loader's device copy, gather, cast and scale are part of the time."""
    widths, batch, optimizer, lr = spec
    model = xpnn_model(widths).to(name)
    opt = Adam(model.parameters(), lr=lr) if optimizer == "adam" else SGD(model.parameters(), lr=lr)
    loss_fn = xpnn.SoftmaxCrossEntropy()

    def epoch(_order: np.ndarray) -> tuple[float, float]:
        history = model.fit(
            x_uint8, y, loss=loss_fn, optimizer=opt, epochs=1, batch_size=batch, seed=FIT_SEED, verbose=0
        )
        return history["loss"][0], history["accuracy"][0]

    return epoch


def numpy_epoch(x: np.ndarray, y: np.ndarray, spec: tuple, input_grad: bool) -> Epoch:
    widths, batch, optimizer, lr = spec
    model = HandwrittenMLP(initial_weights(widths), optimizer, lr, input_grad=input_grad)

    def epoch(order: np.ndarray) -> tuple[float, float]:
        loss_sum, correct = np.float32(0), 0
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start : start + batch]
            batch_loss, batch_correct = model.train_step(x[idx], y[idx])
            loss_sum += batch_loss
            correct += batch_correct
        n = (len(order) // batch) * batch
        return float(loss_sum) / n, correct / n

    return epoch


def runners_for(name: str, args: argparse.Namespace, data: tuple) -> tuple[dict[str, Epoch], str]:
    """The timed epochs of one model, by row label, and the label of the fit reference."""
    x, x_uint8, y = data
    spec = MODELS[name]
    widths, batch = spec[0], spec[1]
    torch_device = "cuda" if args.backend in ("cupy", "torch:cuda") else "cpu"
    fit_ref = f"fit: xpnn[{args.backend}]"
    runners = {f"xpnn[{args.backend}]": xpnn_epoch(args.backend, x, y, spec)}
    if not args.no_jax:
        from _jax_mlp import jax_epoch, jax_fit_epoch  # after XLA_FLAGS is set

        runners["JAX+optax, jit"] = jax_epoch(initial_weights(widths), x, y, spec)
    runners[f"torch[{torch_device}]"] = torch_epoch(initial_weights(widths), torch_device, x, y, spec)
    if torch_device == "cpu":
        runners["torch[cpu], flush denormals"] = torch_epoch(
            initial_weights(widths), torch_device, x, y, spec, flush=True
        )
        runners["numpy (hand-written)"] = numpy_epoch(x, y, spec, input_grad=True)
        runners["numpy (hand-written, no dL/dx)"] = numpy_epoch(x, y, spec, input_grad=False)
        runners["GEMMs only, NumPy"] = gemm_epoch("numpy", widths, batch)
        runners["GEMMs only, torch"] = gemm_epoch("torch", widths, batch)
    runners[fit_ref] = xpnn_fit_epoch(args.backend, x_uint8, y, spec)
    if not args.no_jax:
        order = DataLoader(x_uint8, y, batch_size=batch, seed=FIT_SEED).order(0)
        runners["fit: JAX+optax, jit, uint8 gather+cast in step"] = jax_fit_epoch(
            initial_weights(widths), x_uint8, y, spec, order
        )
    return runners, fit_ref


def time_runners(
    runners: dict[str, Epoch], spec: tuple, repeats: int, n: int
) -> tuple[dict, dict, dict, list[str]]:
    """Each runner's epoch seconds over ``repeats`` (who goes first rotates), wall and process
    CPU, its last epoch's (loss, accuracy), and the GEMM floor measured once per repeat."""
    rng = np.random.default_rng(0)
    warmup = rng.permutation(n)[: spec[1] * 20]
    for epoch in runners.values():  # fit and its JAX peer warm up on a whole epoch: the same work
        epoch(warmup)
    times: dict[str, list[float]] = {label: [] for label in [*runners, "GEMM floor"]}
    cpu: dict[str, list[float]] = {label: [] for label in times}  # on a shared machine: time-sharing
    final: dict[str, tuple[float, float]] = {}  # last epoch's (loss, accuracy): the same work?
    shapes: list[str] = []
    for repeat in range(repeats):
        order = rng.permutation(n).astype(np.int64)
        labels = list(runners)
        for label in labels[repeat % len(labels) :] + labels[: repeat % len(labels)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            final[label] = runners[label](order)
            times[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
        floor, floor_cpu, shapes = gemm_floor(spec[0], spec[1], n // spec[1])
        times["GEMM floor"].append(floor)
        cpu["GEMM floor"].append(floor_cpu)
    final["GEMM floor"] = (float("nan"), float("nan"))
    return times, cpu, final, shapes


def run_model(name: str, args: argparse.Namespace, data: tuple, ratios: bool) -> list[str]:
    spec = MODELS[name]
    runners, fit_ref = runners_for(name, args, data)
    times, cpu, final, shapes = time_runners(runners, spec, args.repeats, len(data[0]))
    lines = []
    for label, values in times.items():
        ref = fit_ref if label.startswith("fit:") else f"xpnn[{args.backend}]"
        median, low, cpu_median = statistics.median(values), min(values), statistics.median(cpu[label])
        ratio = "- | - | - | -"
        if ratios:
            paired = statistics.median(r / t for r, t in zip(times[ref], values, strict=True))
            ratio = f"{statistics.median(times[ref]) / median:.2f} | {min(times[ref]) / low:.2f} | "
            ratio += f"{statistics.median(cpu[ref]) / cpu_median:.2f} | {paired:.2f}"
        loss, accuracy = final[label]
        result = "-" if loss != loss else f"{loss:.4f} / {accuracy:.4f}"  # NaN: GEMMs only
        lines.append(
            f"| {name} | {label} | {median:.3f} | {low:.3f} | {cpu_median:.3f} | {ratio} | {result} |"
        )
    lines.append(
        f"\n{name}: NumPy SGEMM GFLOP/s per step shape (thread CPU time, last repeat): "
        + "; ".join(shapes)
        + "\n"
    )
    return lines


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in info)
    except ImportError:
        return "unknown (threadpoolctl not installed)"


def run_threads(args: argparse.Namespace, threads: int) -> None:
    """The whole table for one thread count, in this process (pinned to ``threads`` cores)."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])  # XLA ignores BLAS limits
    if threads == 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD_XLA}".strip()
    import torch
    from threadpoolctl import threadpool_limits

    x, x_uint8, y, source = load_data()
    versions = f"xpnn {xpnn.__version__}, torch {torch.__version__}, numpy {np.__version__}"
    if not args.no_jax:
        try:
            import jax
            import optax

            versions += f", jax {jax.__version__}, optax {optax.__version__}"
        except ImportError as error:  # an optional peer: the other rows still run
            print(f"(JAX rows left out: {error}; `pip install jax optax` adds them)")
            args.no_jax = True
    print(f"data: {source} {x.shape}; {versions}")
    cores = sorted(os.sched_getaffinity(0))
    print(f"BLAS: {blas_description()}; cores {cores}; XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        print(
            f"OPENBLAS_CORETYPE={coretype} is set: OpenBLAS runs that kernel, not the one this CPU "
            "would pick, so NumPy's GEMMs (xpnn, hand-written, floor) are handicapped against "
            "JAX and torch and NO RATIOS are printed. Rerun as "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_loop.py`."
        )
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        print(f"\n{threads} thread(s), {args.repeats} epochs each, seconds per epoch:\n")
        print(
            "| model | framework | median s | min s | CPU s (median) | xpnn / this (median) "
            "| xpnn / this (min) | xpnn / this (CPU median) | xpnn / this (paired) "
            "| last epoch loss / accuracy |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in args.models:
            for line in run_model(name, args, (x, x_uint8, y), ratios=not coretype):
                print(line, flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak host RSS of this process: {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", choices=sorted(MODELS), default=["mlp", "deep", "small", "gemm"]
    )
    parser.add_argument(
        "--threads", nargs="+", type=int, default=[1, 2], help="BLAS/torch/XLA threads per run"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per framework (median, min)")
    parser.add_argument(
        "--backend", default="numpy", help="xpnn backend: numpy, torch, cupy, torch:cuda, ..."
    )
    parser.add_argument("--no-jax", action="store_true", help="leave out the JAX rows")
    args = parser.parse_args()
    if len(args.threads) == 1:
        run_threads(args, args.threads[0])
        return
    for threads in args.threads:  # one process per thread count: XLA reads its flags once
        own = ["--models", *args.models, "--repeats", str(args.repeats), "--backend", args.backend]
        own += ["--no-jax"] * args.no_jax + ["--threads", str(threads)]
        subprocess.run([sys.executable, __file__, *own], check=True)


if __name__ == "__main__":
    main()
