"""A seeded, bounded differential fuzzer (issue 24): random layers with fast paths (Conv2D,
MaxPool2D, AvgPool2D, BatchNorm, Dense + ReLU, GELU, LayerNorm, softmax cross-entropy), random
shapes and random inputs with NaN, infinities, huge values and ties; each case's output and
gradients (input and parameters) from the fused path, the plain equations
(``xpnn.kernels.disabled()``) and torch must agree: the same NaN and infinity positions, the
finite values close. A failure names the case and its seed to replay it alone."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import kernels

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN and inf inputs are the point
CASES = 160
BASE_SEED = 24
# Known differences from torch the fuzzer found (issue 24, open, reported): not compared with
# torch until fixed, but fused and plain must still agree on them. GELU(-inf) is NaN here
# (-inf * Phi(-inf) = -inf * 0), 0 in torch; LayerNorm of |x| > ~1e19 in float32 squares past
# the float32 range (NaN) where torch stays finite; ReLU's gradient where its input is NaN
# passes here, torch's is 0 (``grad * (x > 0)``).
KNOWN_TORCH_DIFFERENCES = {("gelu", "inf"), ("layer_norm", "huge"), ("dense_relu", "nan")}


def _values(rng: np.random.Generator, shape: tuple[int, ...], special: str) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    picks = rng.integers(0, flat.size, max(1, flat.size // 8))
    if special == "nan":
        flat[picks] = np.nan
    elif special == "inf":
        flat[picks] = rng.choice(np.array([np.inf, -np.inf], np.float32), picks.size)
    elif special == "huge":
        flat[picks] *= np.float32(1e20)
    elif special == "ties":
        x = np.round(x).astype(np.float32)
    return x


def _conv(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
    c_in, c_out, k, stride, pad = (
        r.randint(1, 3),
        r.randint(1, 4),
        r.randint(1, 3),
        r.randint(1, 2),
        r.randint(0, 1),
    )
    size, bias, seed = r.randint(k, 7), r.random() < 0.5, r.randint(0, 99)
    torch = require_torch()
    return (
        lambda: xpnn.Conv2D(c_in, c_out, k, stride=stride, padding=pad, bias=bias, seed=seed),
        lambda _: torch.nn.Conv2d(c_in, c_out, k, stride, pad, bias=bias),
        (r.randint(1, 3), c_in, size, size),
    )


def _pool(kind: str) -> Callable[[random.Random], Any]:
    def make(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
        k, stride = r.randint(1, 4), r.randint(1, 3)
        pad, size = r.randint(0, k // 2), r.randint(k, 9)
        torch = require_torch()
        ours_cls, theirs_cls = (
            (xpnn.MaxPool2D, torch.nn.MaxPool2d) if kind == "max" else (xpnn.AvgPool2D, torch.nn.AvgPool2d)
        )
        return (
            lambda: ours_cls(k, stride=stride, padding=pad),
            lambda _: theirs_cls(k, stride, pad),
            (r.randint(1, 2), r.randint(1, 3), size, r.randint(k, 9)),
        )

    return make


def _batchnorm(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
    c, image = r.randint(1, 4), r.random() < 0.5
    shape = (r.randint(2, 5), c, r.randint(1, 4), r.randint(1, 4)) if image else (r.randint(2, 9), c)
    torch = require_torch()
    theirs = torch.nn.BatchNorm2d if image else torch.nn.BatchNorm1d
    return lambda: xpnn.BatchNorm(c), lambda _: theirs(c), shape


def _dense_relu(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
    a, b, seed = r.randint(1, 9), r.randint(1, 9), r.randint(0, 99)
    torch = require_torch()
    return (
        lambda: xpnn.Sequential([xpnn.Dense(a, b), xpnn.ReLU()], seed=seed),  # the fused pair
        lambda _: torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU()),
        (r.randint(1, 9), a),
    )


def _gelu(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
    approximate = r.choice(["none", "tanh"])
    torch = require_torch()
    return (
        lambda: xpnn.GELU(approximate),
        lambda _: torch.nn.GELU(approximate),
        (r.randint(1, 6), r.randint(1, 9)),
    )


def _layer_norm(r: random.Random) -> tuple[Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]:
    dim = r.randint(1, 9)
    torch = require_torch()
    return lambda: xpnn.LayerNorm(dim), lambda _: torch.nn.LayerNorm(dim), (r.randint(1, 6), dim)


LAYERS = {
    "conv": _conv,
    "max_pool": _pool("max"),
    "avg_pool": _pool("avg"),
    "batch_norm": _batchnorm,
    "dense_relu": _dense_relu,
    "gelu": _gelu,
    "layer_norm": _layer_norm,
}


def _ours(build: Callable[[], Any], x: np.ndarray, dout: np.ndarray, fused: bool) -> list[np.ndarray]:
    """Output, input gradient and parameter gradients, on the fused path or the plain one."""
    layer = build()
    options = {"input_grad": True} if isinstance(layer, xpnn.Sequential) else {}
    with contextlib.nullcontext() if fused else kernels.disabled():
        out = layer.forward(x.copy())
        dx = layer.backward(dout.copy(), **options)
    return [np.asarray(out), np.asarray(dx), *(np.asarray(p.grad) for p in layer.parameters())]


def _theirs(
    build: Callable[[], Any], make: Callable[[Any], Any], x: np.ndarray, dout: np.ndarray
) -> list[np.ndarray]:
    """The same from torch, the layer's weights copied in; parameter gradients in xpnn's order."""
    torch = require_torch()
    layer = build()
    module = make(layer).train()
    state = layer.state_dict(to_torch=True)
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = module(tx)
    out.backward(torch.from_numpy(dout.copy()))
    named = dict(module.named_parameters())
    grads = [named[n].grad.numpy() for n in state if n in named]
    return [out.detach().numpy(), tx.grad.numpy(), *grads]


def _to_torch_layout(layer_grads: list[np.ndarray], build: Callable[[], Any]) -> list[np.ndarray]:
    """Parameter gradients in torch's layouts (Dense's weight transposed)."""
    layer = build()
    out = layer_grads[:2]
    for grad, (name, _) in zip(layer_grads[2:], layer.named_parameters(), strict=True):
        transposed = isinstance(_owner(layer, name), xpnn.Dense) and name.endswith("weight")
        out.append(grad.T if transposed else grad)
    return out


def _owner(layer: Any, name: str) -> Any:
    modules = dict(layer.named_modules())
    return modules.get(name.rpartition(".")[0], layer)


def _agree(a: np.ndarray, b: np.ndarray, rtol: float) -> str | None:
    """None where ``a`` and ``b`` agree (shape, NaN and infinity positions, finite values)."""
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return f"NaN at {np.argwhere(np.isnan(a) != np.isnan(b))[:3].tolist()}"
    if not np.array_equal(np.isposinf(a), np.isposinf(b)) or not np.array_equal(
        np.isneginf(a), np.isneginf(b)
    ):
        return "infinities differ"
    finite = np.isfinite(a)
    scale = float(np.max(np.abs(a[finite]), initial=1.0))
    if not np.allclose(a[finite], b[finite], rtol=rtol, atol=rtol * scale):
        worst = np.max(np.abs(a[finite] - b[finite]))
        return f"finite values differ by up to {worst} (scale {scale})"
    return None


def _case(seed: int) -> tuple[str, str, Callable[[], Any], Callable[[Any], Any], np.ndarray, np.ndarray]:
    r = random.Random(seed)
    name = r.choice(sorted(LAYERS))
    build, make, shape = LAYERS[name](r)
    rng = np.random.default_rng(seed)
    special = r.choice(["none", "none", "nan", "inf", "huge", "ties"])
    x = _values(rng, shape, special)
    out_shape = np.asarray(build().forward(x.copy())).shape
    dout = rng.standard_normal(out_shape).astype(np.float32)
    return name, special, build, make, x, dout


@pytest.mark.fast_paths
def test_fused_plain_and_torch_agree_on_random_layers_and_hostile_inputs() -> None:
    failures = []
    for case in range(CASES):
        seed = BASE_SEED * 1000 + case
        name, special, build, make, x, dout = _case(seed)
        fused, plain = _ours(build, x, dout, True), _ours(build, x, dout, False)
        labels = ["output", "dx", *(n for n, _ in build().named_parameters())]
        where = f"case {case} (seed {seed}, {name}, {special} input {x.shape})"
        for label, a, b in zip(labels, fused, plain, strict=True):
            problem = _agree(a, b, 1e-5)
            if problem:
                failures.append(f"{where}: fused vs plain {label}: {problem}")
        if (name, special) in KNOWN_TORCH_DIFFERENCES:
            continue
        torch_side = _theirs(build, make, x, dout)
        for label, a, b in zip(labels, _to_torch_layout(plain, build), torch_side, strict=True):
            problem = _agree(a, b, 1e-4)
            if problem:
                failures.append(f"{where}: plain vs torch {label}: {problem}")
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:30])
