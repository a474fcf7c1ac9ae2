"""The tape's gradient-ready hook: backward tells, leaf by leaf, when a gradient is final (what
data-parallel fit starts each bucket's all-reduce from)."""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn import backend
from xpnn import functional as F
from xpnn.autograd.graph import set_gradient_ready_hook


class Residual(xpnn.Module):
    """``inp`` is read twice (through ``block`` and the skip): its gradient is final last."""

    def __init__(self) -> None:
        self.inp, self.block, self.out = (
            xpnn.Dense(4, 6, seed=1),
            xpnn.Dense(6, 6, seed=2),
            xpnn.Dense(6, 3, seed=3),
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        h = F.relu(self.inp(x))
        return self.out(h + F.relu(self.block(h)))


def test_each_leaf_is_reported_once_with_its_final_gradient_in_backward_order(
    bk: backend.Backend, to_bk: Any
) -> None:
    model = Residual().to(bk.name)
    x = to_bk(np.random.default_rng(0).standard_normal((5, 4)), "float32")
    seen: list[tuple[str, np.ndarray]] = []
    names = {id(p): name for name, p in model.named_parameters()}
    previous = set_gradient_ready_hook(
        lambda leaf: seen.append((names[id(leaf)], backend.to_host(leaf.grad).copy()))
    )
    try:
        (model(xpnn.Tensor(x)) ** 2).sum().backward()
    finally:
        assert set_gradient_ready_hook(previous) is not None
    assert [name for name, _ in seen] == [
        "out.weight", "out.bias", "block.weight", "block.bias", "inp.weight", "inp.bias"
    ]  # fmt: skip
    final = {name: backend.to_host(p.grad) for name, p in model.named_parameters()}
    for name, grad in seen:
        np.testing.assert_array_equal(grad, final[name])


def test_without_a_hook_backward_reports_nothing_and_gives_the_same_gradients(
    bk: backend.Backend, to_bk: Any
) -> None:
    x = to_bk(np.random.default_rng(0).standard_normal((5, 4)), "float32")
    grads = []
    for hook in (None, lambda leaf: None):
        model = Residual().to(bk.name)
        previous = set_gradient_ready_hook(hook)
        (model(xpnn.Tensor(x)) ** 2).sum().backward()
        set_gradient_ready_hook(previous)
        grads.append([backend.to_host(p.grad) for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_array_equal(a, b)
