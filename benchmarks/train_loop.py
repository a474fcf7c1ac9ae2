"""Training throughput: xpnn vs PyTorch vs a hand-written NumPy loop, same model, same batches.

Each framework trains the same MLP on the same Fashion-MNIST batches (no dropout; loss sum
and correct count accumulated on the device, one synchronisation per epoch). Runs alternate
between frameworks; the table gives median and min epoch seconds over the repeats and the
ratios xpnn / PyTorch and xpnn / hand-written.

    python benchmarks/train_loop.py                     # every model, 1 and 2 threads
    python benchmarks/train_loop.py --models mlp --threads 1 --repeats 3
    python benchmarks/train_loop.py --backend torch     # xpnn on torch tensors
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
from handwritten_numpy import HandwrittenMLP  # beside this script

import xpnn
from xpnn import backend
from xpnn.optim.optimizers import SGD, Adam

MODELS = {  # name -> (layer widths, batch size, optimizer, learning rate)
    "mlp": ([784, 256, 128, 10], 128, "adam", 1e-3),
    "deep": ([784, 350, 250, 150, 50, 10], 256, "sgd", 0.1),
    "small": ([784, 32, 10], 32, "adam", 1e-3),
    "gemm": ([784, 256, 128, 10], 8192, "adam", 1e-3),
}
Epoch = Callable[[np.ndarray], tuple[float, float]]  # batch order -> (mean loss, accuracy)


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST training images as float32 in [0, 1], or random data of the same shape."""
    try:
        from xpnn.data import load_fashion_mnist

        (x, y), _ = load_fashion_mnist()
        return np.asarray(x, np.float32).reshape(len(x), -1) / 255.0, np.asarray(y, np.int64), "Fashion-MNIST"
    except Exception as error:  # the benchmark still runs where the data set is absent
        print(f"(Fashion-MNIST not loaded: {error}; using random data of the same shape)")
        rng = np.random.default_rng(0)
        return rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000), "random"


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


def torch_epoch(device: str, x: np.ndarray, y: np.ndarray, spec: tuple, flush: bool = False) -> Epoch:
    """PyTorch's own loop; ``flush``: with ``torch.set_flush_denormal(True)`` during the epoch,
    the setting xpnn's optimizer step uses (see xpnn/backend/denormals.py)."""
    import torch

    widths, batch, optimizer, lr = spec
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(widths) - 2 else [])
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
        for linear, (w, b) in zip(linears, initial_weights(widths), strict=True):
            linear.weight.copy_(torch.from_numpy(w.T))
            linear.bias.copy_(torch.from_numpy(b))
    model = model.to(device)
    params = model.parameters()
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    images, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def epoch(order: np.ndarray) -> tuple[float, float]:
        torch.set_flush_denormal(flush)
        try:
            return run(order)
        finally:
            torch.set_flush_denormal(False)

    def run(order: np.ndarray) -> tuple[float, float]:
        index = torch.from_numpy(order).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, len(order) - batch + 1, batch):
            idx = index[start : start + batch]
            xb, yb = images.index_select(0, idx), labels.index_select(0, idx)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss_sum += loss.detach() * batch
            correct += (logits.detach().argmax(dim=1) == yb).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        n = (len(order) // batch) * batch
        return float(loss_sum) / n, float(correct) / n

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


def gemm_epoch(framework: str, spec: tuple) -> Epoch:
    """Only the GEMMs of one epoch (forward, weight gradients, and input gradients but the first
    layer's) on fixed arrays of the model's shapes, in NumPy (its BLAS) or torch: the floor
    that no framework on that GEMM goes below."""
    widths, batch, _, _ = spec
    rng = np.random.default_rng(0)
    acts = [rng.random((batch, width), dtype=np.float32) for width in widths]
    weights = [rng.random(shape, dtype=np.float32) for shape in itertools.pairwise(widths)]
    if framework == "torch":
        import torch

        acts, weights = [torch.from_numpy(a) for a in acts], [torch.from_numpy(w) for w in weights]

    def epoch(order: np.ndarray) -> tuple[float, float]:
        for _ in range(len(order) // batch):
            for a, w in zip(acts, weights, strict=False):
                a @ w
            for a, d in itertools.pairwise(acts):
                a.T @ d
            for d, w in zip(acts[2:], weights[1:], strict=True):
                d @ w.T
        return float("nan"), float("nan")

    return epoch


def run_model(name: str, args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> list[str]:
    spec = MODELS[name]
    torch_device = "cuda" if args.backend in ("cupy", "torch:cuda") else "cpu"
    runners = {
        f"xpnn[{args.backend}]": xpnn_epoch(args.backend, x, y, spec),
        f"torch[{torch_device}]": torch_epoch(torch_device, x, y, spec),
    }
    if torch_device == "cpu":
        runners["torch[cpu], flush denormals"] = torch_epoch(torch_device, x, y, spec, flush=True)
        runners["numpy (hand-written)"] = numpy_epoch(x, y, spec, input_grad=True)
        runners["numpy (hand-written, no dL/dx)"] = numpy_epoch(x, y, spec, input_grad=False)
        runners["GEMMs only, NumPy"] = gemm_epoch("numpy", spec)
        runners["GEMMs only, torch"] = gemm_epoch("torch", spec)
    rng = np.random.default_rng(0)
    warmup = rng.permutation(len(x))[: spec[1] * 20]
    for epoch in runners.values():
        epoch(warmup)
    times: dict[str, list[float]] = {label: [] for label in runners}
    final: dict[str, tuple[float, float]] = {}  # last epoch's (loss, accuracy): the same work?
    for repeat in range(args.repeats):
        order = rng.permutation(len(x)).astype(np.int64)
        labels = list(runners)
        for label in (
            labels[repeat % len(labels) :] + labels[: repeat % len(labels)]
        ):  # alternate who goes first
            start = time.perf_counter()
            final[label] = runners[label](order)
            times[label].append(time.perf_counter() - start)
    steps = len(x) // spec[1]
    reference = statistics.median(times[f"xpnn[{args.backend}]"])
    lines = []
    for label, values in times.items():
        median = statistics.median(values)
        ratio = reference / median
        loss, accuracy = final[label]
        result = "-" if loss != loss else f"{loss:.4f} / {accuracy:.4f}"  # NaN: GEMMs only
        lines.append(
            f"| {name} | {label} | {median:.3f} | {min(values):.3f} | {steps / median:,.0f} | {ratio:.2f} "
            f"| {result} |"
        )
    return lines


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in info)
    except ImportError:
        return "unknown (threadpoolctl not installed)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", choices=sorted(MODELS), default=["mlp", "deep", "small", "gemm"]
    )
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="BLAS/torch threads per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per framework (median, min)")
    parser.add_argument(
        "--backend", default="numpy", help="xpnn backend: numpy, torch, cupy, torch:cuda, ..."
    )
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    x, y, source = load_data()
    print(
        f"data: {source} {x.shape}; xpnn {xpnn.__version__}, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    print(f"BLAS: {blas_description()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            print(f"\n{threads} thread(s), {args.repeats} epochs each, seconds per epoch:\n")
            print(
                "| model | framework | median s | min s | steps/s | xpnn time / this (median) "
                "| last epoch loss / accuracy |"
            )
            print("|---|---|---|---|---|---|---|")
            for name in args.models:
                for line in run_model(name, args, x, y):
                    print(line, flush=True)
    print(
        "\npeak host RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
