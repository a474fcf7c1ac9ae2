"""Gradient clipping by ``minimum``/``maximum``: the numbers of ``clip``, without its boolean-mask
assignment (a host sync on CuPy and torch-cuda through array-api-compat's generic ``clip``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xpnn import backend
from xpnn.optim import clipping


def _grads(to_bk: Any) -> list[Any]:
    rng = np.random.default_rng(3)
    return [to_bk(rng.standard_normal(shape) * 3.0, "float32") for shape in ((4, 5), (7,))]


def test_clip_by_value_equals_the_namespace_clip(bk: Any, to_bk: Any, xp: Any) -> None:
    for grad in _grads(to_bk):
        got = backend.to_host(clipping.clip_by_value(grad, 1.5))
        assert got.dtype == np.float32 and np.array_equal(got, backend.to_host(xp.clip(grad, -1.5, 1.5)))


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_by_norm_and_global_norm_equal_the_clip_form(
    max_norm: float, bk: Any, to_bk: Any, xp: Any
) -> None:
    grads = _grads(to_bk)
    norm = clipping.global_norm(grads)
    scale = xp.clip(max_norm / (norm + clipping.NORM_EPS), max=1.0)  # the old expression
    for got, grad in zip(clipping.clip_by_global_norm(grads, max_norm), grads, strict=True):
        assert np.array_equal(backend.to_host(got), backend.to_host(grad * scale))
    one = grads[0]
    own = xp.clip(max_norm / (xp.sqrt(xp.sum(one * one)) + clipping.NORM_EPS), max=1.0)
    assert np.array_equal(backend.to_host(clipping.clip_by_norm(one, max_norm)), backend.to_host(one * own))


def test_clipping_never_calls_the_namespace_clip(
    bk: Any, to_bk: Any, xp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("clip() called on the optimizer path")

    monkeypatch.setattr(xp, "clip", refuse)
    grads = _grads(to_bk)
    clipping.GradientClipping(value=1.0, norm=2.0, global_norm=3.0)(grads)
