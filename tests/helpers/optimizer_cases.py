"""The optimizer test cases, their reference equations written plainly in float64 NumPy, and the
same runs through torch.optim: shared by the optimizer test modules. torch is imported only by
the torch.optim runs, so the rest works (and the suite collects) where torch is absent."""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.optim.optimizers import SGD, AdaGrad, Adam, AdamW, RMSProp
from xpnn.optim.schedules import CosineDecay, StepDecay, Warmup
from xpnn.testing import assert_close

SHAPES = [(4, 3), (5,), (2, 3, 2)]
STEPS = 50
RTOL = 1e-10

CASES: dict[str, tuple[type, dict[str, Any]]] = {
    "sgd": (SGD, dict(lr=0.1)),
    "sgd_momentum": (SGD, dict(lr=0.1, momentum=0.9)),
    "sgd_dampening": (SGD, dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "sgd_nesterov": (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (SGD, dict(lr=0.1, momentum=0.8, weight_decay=0.05)),
    "sgd_decay": (SGD, dict(lr=0.1, momentum=0.9, decay=0.05)),
    "sgd_schedule": (SGD, dict(lr=CosineDecay(0.1, 30), momentum=0.5)),
    "sgd_nnfs_momentum_decay": (SGD, dict(lr=0.1, momentum=0.9, decay=0.05, momentum_style="nnfs")),
    "sgd_nnfs_nesterov": (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, momentum_style="nnfs")),
    "adagrad": (AdaGrad, dict(lr=0.5)),
    "adagrad_decay_initial": (AdaGrad, dict(lr=0.5, decay=0.1, initial_accumulator_value=0.1)),
    "adagrad_weight_decay": (AdaGrad, dict(lr=0.5, weight_decay=0.05, eps=1e-10)),
    "adagrad_schedule": (AdaGrad, dict(lr=StepDecay(0.5, 10, 0.5))),
    "rmsprop": (RMSProp, dict(lr=0.01)),
    "rmsprop_momentum": (RMSProp, dict(lr=0.01, momentum=0.9, rho=0.95)),
    "rmsprop_centered": (RMSProp, dict(lr=0.01, centered=True)),
    "rmsprop_centered_momentum_weight_decay": (
        RMSProp,
        dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
    ),
    "rmsprop_decay": (RMSProp, dict(lr=0.01, decay=0.1)),
    "adam": (Adam, dict(lr=0.01)),
    "adam_amsgrad": (Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.99))),
    "adam_weight_decay": (Adam, dict(lr=0.01, weight_decay=0.1, eps=1e-7)),
    "adam_decay": (Adam, dict(lr=0.01, decay=0.1)),
    "adam_schedule": (Adam, dict(lr=Warmup(10, CosineDecay(0.01, 40)))),
    "adamw": (AdamW, dict(lr=0.01)),
    "adamw_amsgrad_decay": (AdamW, dict(lr=0.01, amsgrad=True, decay=0.05, weight_decay=0.1)),
}
TORCH_CASES = [name for name in CASES if "nnfs" not in name]  # torch has no book-style momentum


def initial_values(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_sequence(steps: int = STEPS, seed: int = 2) -> list[list[np.ndarray]]:
    """Fixed random gradients whose scale jumps now and then (so AMSGrad's max matters)."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) * (4.0 if k % 7 == 3 else 1.0) for s in SHAPES] for k in range(steps)]


# -- the reference equations, plainly ---------------------------------------------------------
def reference_lr(hp: dict[str, Any], t: int) -> float:
    lr = hp["lr"](t) if callable(hp["lr"]) else hp["lr"]
    return lr / (1.0 + hp.get("decay", 0.0) * t)


def reference_sgd(w, g, s, hp, lr, k):
    m, wd = hp.get("momentum", 0.0), hp.get("weight_decay", 0.0)
    g = g + wd * w
    if not m:
        return w - lr * g
    if hp.get("momentum_style") == "nnfs":
        s["momentum_buffer"] = m * s.get("momentum_buffer", 0.0) - lr * g
        return w + (m * s["momentum_buffer"] - lr * g if hp.get("nesterov") else s["momentum_buffer"])
    d = hp.get("dampening", 0.0)
    s["momentum_buffer"] = g.copy() if k == 1 else m * s["momentum_buffer"] + (1 - d) * g
    g = g + m * s["momentum_buffer"] if hp.get("nesterov") else s["momentum_buffer"]
    return w - lr * g


def reference_adagrad(w, g, s, hp, lr, k):
    g = g + hp.get("weight_decay", 0.0) * w
    s["sum"] = s.get("sum", hp.get("initial_accumulator_value", 0.0)) + g**2
    return w - lr * g / (np.sqrt(s["sum"]) + hp.get("eps", 1e-7))


def reference_rmsprop(w, g, s, hp, lr, k):
    rho, eps, m = hp.get("rho", 0.9), hp.get("eps", 1e-7), hp.get("momentum", 0.0)
    g = g + hp.get("weight_decay", 0.0) * w
    s["square_avg"] = rho * s.get("square_avg", 0.0) + (1 - rho) * g**2
    if hp.get("centered"):
        s["grad_avg"] = rho * s.get("grad_avg", 0.0) + (1 - rho) * g
        denom = np.sqrt(s["square_avg"] - s["grad_avg"] ** 2) + eps
    else:
        denom = np.sqrt(s["square_avg"]) + eps
    if m:
        s["momentum_buffer"] = m * s.get("momentum_buffer", 0.0) + g / denom
        return w - lr * s["momentum_buffer"]
    return w - lr * g / denom


def reference_adam(w, g, s, hp, lr, k, decoupled=False):
    b1, b2 = hp.get("betas", (0.9, 0.999))
    wd = hp.get("weight_decay", 1e-2 if decoupled else 0.0)
    if decoupled:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    s["exp_avg"] = b1 * s.get("exp_avg", 0.0) + (1 - b1) * g
    s["exp_avg_sq"] = b2 * s.get("exp_avg_sq", 0.0) + (1 - b2) * g**2
    v = s["exp_avg_sq"]
    if hp.get("amsgrad"):
        v = s["max_exp_avg_sq"] = np.maximum(s.get("max_exp_avg_sq", 0.0), v)
    m_hat, v_hat = s["exp_avg"] / (1 - b1**k), v / (1 - b2**k)
    return w - lr * m_hat / (np.sqrt(v_hat) + hp.get("eps", 1e-8))


REFERENCES = {
    SGD: reference_sgd,
    AdaGrad: reference_adagrad,
    RMSProp: reference_rmsprop,
    Adam: reference_adam,
    AdamW: lambda *a: reference_adam(*a, decoupled=True),
}


def reference_run(name: str, steps: int = STEPS) -> list[tuple[list[np.ndarray], list[dict[str, Any]]]]:
    """(parameters, states) after each step, from the plain equations."""
    kind, hp = CASES[name]
    values, states, out = initial_values(), [{} for _ in SHAPES], []
    for t, grads in enumerate(gradient_sequence(steps)):
        lr = reference_lr(hp, t)
        update = REFERENCES[kind]
        values = [update(w, g, s, hp, lr, t + 1) for w, g, s in zip(values, grads, states, strict=True)]
        out.append(([w.copy() for w in values], [{k: np.copy(v) for k, v in s.items()} for s in states]))
    return out


# -- torch.optim, configured to the same numbers -----------------------------------------------
def torch_optimizer(name: str, tensors: list[Any]) -> tuple[Any, Any]:
    """The torch.optim optimizer (and LambdaLR for xpnn's decay or schedule) giving case ``name``'s
    numbers; skips the calling test where torch is not installed."""
    torch = require_torch()
    kind, hp = CASES[name]
    hp = dict(hp)
    lr, decay = hp.pop("lr"), hp.pop("decay", 0.0)
    if kind is AdaGrad:
        hp["lr_decay"] = decay
        decay = 0.0
    if kind is RMSProp:
        hp["alpha"] = hp.pop("rho", 0.9)
        hp.setdefault("eps", 1e-7)
    if kind is AdaGrad:
        hp.setdefault("eps", 1e-7)
    torch_class = {SGD: torch.optim.SGD, AdaGrad: torch.optim.Adagrad, RMSProp: torch.optim.RMSprop}
    torch_class.update({Adam: torch.optim.Adam, AdamW: torch.optim.AdamW})
    opt = torch_class[kind](tensors, lr=1.0 if callable(lr) else lr, **hp)
    if callable(lr):
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr(t) / (1.0 + decay * t))
    if decay:
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + decay * t))
    return opt, None


def torch_run(name: str, steps: int = STEPS) -> list[tuple[list[np.ndarray], list[dict[str, Any]]]]:
    """(parameters, states) after each step, from torch.optim (skips where torch is absent)."""
    torch = require_torch()
    tensors = [torch.tensor(w) for w in initial_values()]
    opt, scheduler = torch_optimizer(name, tensors)
    out = []
    for grads in gradient_sequence(steps):
        for tensor, g in zip(tensors, grads, strict=True):
            tensor.grad = torch.tensor(g)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        states = [{k: v.numpy().copy() for k, v in opt.state[x].items() if k != "step"} for x in tensors]
        out.append(([x.detach().numpy().copy() for x in tensors], states))
    return out


# -- xpnn on the backend under test ------------------------------------------------------------
def make(name: str, to_bk: Any, dtype: str | None = None, **extra: Any) -> tuple[list[xpnn.Parameter], Any]:
    kind, hp = CASES[name]
    params = [xpnn.Parameter(to_bk(w, dtype), name=f"p{i}") for i, w in enumerate(initial_values())]
    return params, kind(params, **hp, **extra)


def step_with(opt: Any, params: list[xpnn.Parameter], grads: list[np.ndarray], to_bk: Any) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = to_bk(g, backend.dtype_name(p.dtype))
    opt.step()


def assert_matches(params: list[xpnn.Parameter], opt: Any, expected: tuple[list, list], what: str) -> None:
    values, states = expected
    for i, (p, w, s) in enumerate(zip(params, values, states, strict=True)):
        assert_close(p.value, w, rtol=RTOL, what=f"{what}: parameter {i}")
        ours = {k: v for k, v in opt.state[i].items() if k != "step"}
        assert sorted(ours) == sorted(s), f"{what}: state names of parameter {i}"
        for key, value in s.items():
            assert_close(ours[key], np.broadcast_to(value, p.shape), rtol=RTOL, what=f"{what}: {key} of {i}")
