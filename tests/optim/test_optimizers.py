"""Every optimizer and option against (a) its equations written plainly in float64 NumPy
(tests/optimizer_cases.py) and (b) torch.optim: parameters and state after every one of 50
steps, rtol 1e-10, on every backend under test; plus clipping, parameter groups, skipped grads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import (
    CASES,
    RTOL,
    SHAPES,
    STEPS,
    TORCH_CASES,
    assert_matches,
    gradient_sequence,
    initial_values,
    make,
    reference_run,
    step_with,
    torch_optimizer,
    torch_run,
)
from tests.helpers.optional import require_torch
from xpnn.testing import assert_close


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_reference_equations_for_50_steps(name: str, to_bk: Any) -> None:
    params, opt = make(name, to_bk)
    for t, (grads, expected) in enumerate(zip(gradient_sequence(), reference_run(name), strict=True)):
        step_with(opt, params, grads, to_bk)
        assert_matches(params, opt, expected, f"{name} step {t}")
    assert opt.t == STEPS and all(opt.state[i]["step"] == STEPS for i in range(len(SHAPES)))


@pytest.mark.parametrize("name", TORCH_CASES)
def test_optimizer_matches_torch_optim_for_50_steps(name: str, to_bk: Any) -> None:
    params, opt = make(name, to_bk)
    for t, (grads, expected) in enumerate(zip(gradient_sequence(), torch_run(name), strict=True)):
        step_with(opt, params, grads, to_bk)
        assert_matches(params, opt, expected, f"{name} vs torch, step {t}")


def test_nnfs_momentum_differs_from_torch_momentum_once_the_rate_decays() -> None:
    book, torch_style = reference_run("sgd_nnfs_momentum_decay"), reference_run("sgd_decay")
    assert not np.allclose(book[-1][0][0], torch_style[-1][0][0], rtol=1e-3)


CLIPS = {"clip_value": 0.5, "clip_norm": 1.0, "clip_global_norm": 2.0}


def torch_clip(kind: str, limit: float, tensors: list[Any]) -> None:
    torch = require_torch()
    if kind == "clip_value":
        torch.nn.utils.clip_grad_value_(tensors, limit)
    elif kind == "clip_norm":
        for tensor in tensors:
            torch.nn.utils.clip_grad_norm_([tensor], limit)
    else:
        torch.nn.utils.clip_grad_norm_(tensors, limit)


@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize("name", ["sgd_momentum", "rmsprop_centered", "adam_amsgrad"])
def test_clipping_matches_torch_clip_utilities_then_step(name: str, clip: str, to_bk: Any) -> None:
    torch = require_torch()
    params, opt = make(name, to_bk, **{clip: CLIPS[clip]})
    tensors = [torch.tensor(w) for w in initial_values()]
    reference, _ = torch_optimizer(name, tensors)
    for t, grads in enumerate(gradient_sequence()):
        step_with(opt, params, grads, to_bk)
        for tensor, g in zip(tensors, grads, strict=True):
            tensor.grad = torch.tensor(g)
        torch_clip(clip, CLIPS[clip], tensors)
        reference.step()
        for i, (p, tensor) in enumerate(zip(params, tensors, strict=True)):
            assert_close(
                p.value, tensor.detach().numpy(), rtol=RTOL, what=f"{name} {clip} step {t} param {i}"
            )


def test_clip_global_norm_scales_every_gradient_by_one_factor(to_bk: Any) -> None:
    grads, values = gradient_sequence(1)[0], initial_values()
    params = [xpnn.Parameter(to_bk(w)) for w in values]
    opt = xpnn.SGD(params, 1.0, clip_global_norm=1.0)
    step_with(opt, params, grads, to_bk)
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    for p, w, g in zip(params, values, grads, strict=True):
        assert_close(p.value, w - g * min(1.0, 1.0 / (norm + 1e-6)), rtol=RTOL)


def test_clip_norm_leaves_small_gradients_unchanged(to_bk: Any) -> None:
    grads, values = gradient_sequence(1)[0], initial_values()
    params = [xpnn.Parameter(to_bk(w)) for w in values]
    opt = xpnn.SGD(params, 1.0, clip_norm=1e6, clip_value=1e6)
    step_with(opt, params, grads, to_bk)
    for p, w, g in zip(params, values, grads, strict=True):
        assert_close(p.value, w - g, rtol=RTOL)


def test_clipping_does_not_modify_the_gradients(to_bk: Any) -> None:
    params, opt = make("adam", to_bk, clip_value=0.01, clip_global_norm=0.1)
    grads = gradient_sequence(1)[0]
    step_with(opt, params, grads, to_bk)
    for p, g in zip(params, grads, strict=True):
        assert_close(p.grad, g, rtol=0.0)


def test_parameter_groups_match_torch_param_groups(to_bk: Any) -> None:
    torch = require_torch()
    params = [xpnn.Parameter(to_bk(w)) for w in initial_values()]
    tensors = [torch.tensor(w) for w in initial_values()]
    opt = xpnn.Adam(
        [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "lr": 1e-3}], lr=0.01
    )
    groups = [{"params": tensors[:2], "weight_decay": 0.1}, {"params": tensors[2:], "lr": 1e-3}]
    reference = torch.optim.Adam(groups, lr=0.01)
    for t, grads in enumerate(gradient_sequence()):
        step_with(opt, params, grads, to_bk)
        for tensor, g in zip(tensors, grads, strict=True):
            tensor.grad = torch.tensor(g)
        reference.step()
        for i, (p, tensor) in enumerate(zip(params, tensors, strict=True)):
            assert_close(p.value, tensor.detach().numpy(), rtol=RTOL, what=f"step {t} param {i}")
            assert_close(opt.state[i]["exp_avg_sq"], reference.state[tensor]["exp_avg_sq"].numpy(), rtol=RTOL)


@pytest.mark.parametrize("name", ["sgd_momentum", "adagrad", "rmsprop_momentum", "adam_amsgrad", "adamw"])
def test_parameters_without_gradient_are_skipped_as_torch_does(name: str, to_bk: Any) -> None:
    torch = require_torch()
    params, opt = make(name, to_bk)
    tensors = [torch.tensor(w) for w in initial_values()]
    reference, _ = torch_optimizer(name, tensors)
    for t, grads in enumerate(gradient_sequence()):
        for p, tensor, g in zip(params, tensors, grads, strict=True):
            skip = p is params[1] and t % 3 == 0
            p.grad = None if skip else to_bk(g)
            tensor.grad = None if skip else torch.tensor(g)
        opt.step()
        reference.step()
        for i, (p, tensor) in enumerate(zip(params, tensors, strict=True)):
            assert_close(p.value, tensor.detach().numpy(), rtol=RTOL, what=f"{name} step {t} param {i}")
    skipped = sum(1 for t in range(STEPS) if t % 3 == 0)
    assert (opt.state[1]["step"], opt.state[0]["step"], opt.t) == (STEPS - skipped, STEPS, STEPS)
