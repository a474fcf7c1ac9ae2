"""F.batch_norm as torch's: training normalizes with the batch statistics and moves the running
ones (the variance unbiased) in place; eval normalizes with the running statistics, and its
gradients are those of a fixed affine map. Compared with torch.nn.functional.batch_norm and
torch.autograd in float64, and with finite differences on every backend."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest

from tests.helpers.finite_differences import check_finite_differences, check_matches_torch
from tests.helpers.optional import require_torch
from xpnn import Tensor, backend
from xpnn import functional as F

RNG = np.random.default_rng(11)
RUNNING_MEAN = RNG.standard_normal(3)
RUNNING_VAR = 0.5 + RNG.random(3)
SHAPES = {"features": (5, 3), "images": (2, 3, 2, 3)}


def _inputs(shape: str) -> list[np.ndarray]:
    rng = np.random.default_rng(len(shape))
    return [2.0 + 3.0 * rng.standard_normal(SHAPES[shape]), rng.standard_normal(3), rng.standard_normal(3)]


def _running(bk: backend.Backend) -> tuple[Any, Any]:
    return backend.from_host(RUNNING_MEAN.copy(), bk), backend.from_host(RUNNING_VAR.copy(), bk)


@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_training_moves_writeable_running_statistics_in_place_as_torch(shape, momentum, bk):
    torch = require_torch()
    x, w, b = _inputs(shape)
    mean, var = _running(bk)
    expected_mean, expected_var = torch.tensor(RUNNING_MEAN), torch.tensor(RUNNING_VAR)
    for step in range(2):  # twice: the second update starts from the first one's result
        scaled = x * (step + 1.0)
        F.batch_norm(
            backend.from_host(scaled, bk),
            mean,
            var,
            backend.from_host(w, bk),
            backend.from_host(b, bk),
            training=True,
            momentum=momentum,
        )
        torch.nn.functional.batch_norm(
            torch.tensor(scaled),
            expected_mean,
            expected_var,
            torch.tensor(w),
            torch.tensor(b),
            training=True,
            momentum=momentum,
        )
    if not array_api_compat.is_writeable_array(mean):
        # JAX's arrays are immutable: F.batch_norm cannot move them (the BatchNorm layer rebinds its own)
        expected_mean, expected_var = torch.tensor(RUNNING_MEAN), torch.tensor(RUNNING_VAR)
    np.testing.assert_allclose(backend.to_host(mean), expected_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_host(var), expected_var.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_training_with_running_statistics_equals_torch_forward_and_gradients(shape, bk):
    torch = require_torch()
    mean, var = _running(bk)

    def xpnn_bn(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return F.batch_norm(x, mean, var, w, b, training=True)

    def torch_bn(x: Any, w: Any, b: Any) -> Any:
        return torch.nn.functional.batch_norm(
            x, torch.tensor(RUNNING_MEAN), torch.tensor(RUNNING_VAR), w, b, training=True
        )

    check_matches_torch(bk, xpnn_bn, torch_bn, *_inputs(shape), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_eval_normalizes_with_the_running_statistics_as_torch(shape, bk):
    torch = require_torch()
    mean, var = _running(bk)

    def xpnn_bn(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return F.batch_norm(x, mean, var, w, b, training=False, eps=1e-3)

    def torch_bn(x: Any, w: Any, b: Any) -> Any:
        return torch.nn.functional.batch_norm(
            x, torch.tensor(RUNNING_MEAN), torch.tensor(RUNNING_VAR), w, b, training=False, eps=1e-3
        )

    check_matches_torch(bk, xpnn_bn, torch_bn, *_inputs(shape), rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(backend.to_host(mean), RUNNING_MEAN)  # eval leaves them alone
    np.testing.assert_array_equal(backend.to_host(var), RUNNING_VAR)


def test_eval_gradient_matches_finite_differences(bk):
    mean, var = _running(bk)
    check_finite_differences(
        bk, lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), *_inputs("images")
    )


def test_training_gradient_with_running_statistics_matches_finite_differences(bk):
    mean, var = _running(bk)  # moved by every evaluation: the output does not depend on them
    check_finite_differences(
        bk, lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=True), *_inputs("features")
    )
