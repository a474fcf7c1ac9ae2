"""Issue 24 item 10: BatchNorm's variance stays finite for |x| > 1.8e19 in float32 as torch's
(the one-process statistics take two passes; the data-parallel sums are kept for the global
case), and global average pooling of an empty image is a named error, not NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn import functional as F


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 2)])
def test_batchnorm_of_values_beyond_1_8e19_in_float32_is_finite_and_torchs(
    bk: backend.Backend, to_bk: Any, shape: tuple[int, ...]
) -> None:
    torch = require_torch()
    rng = np.random.default_rng(0)
    x = (3e19 + 1e18 * rng.standard_normal(shape)).astype(np.float32)  # x * x overflows float32
    layer = xpnn.BatchNorm(3).to(bk.name)
    y = backend.to_host(layer.forward(to_bk(x)))
    reference = torch.nn.BatchNorm1d(3) if len(shape) == 2 else torch.nn.BatchNorm2d(3)
    expected = reference(torch.tensor(x)).detach().numpy()
    assert np.isfinite(y).all() and np.isfinite(backend.to_host(layer.running_var)).all()
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(backend.to_host(layer.running_var), reference.running_var.numpy(), rtol=1e-3)
    np.testing.assert_allclose(backend.to_host(layer.running_mean), reference.running_mean.numpy(), rtol=1e-5)


def test_batchnorm_statistics_stay_exact_for_ordinary_values(bk: backend.Backend, to_bk: Any) -> None:
    x = np.random.default_rng(1).standard_normal((5, 4, 3, 3))
    layer = xpnn.BatchNorm(4).to(bk.name, dtype="float64")
    y = backend.to_host(layer.forward(to_bk(x, "float64")))
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw", [(0, 0), (0, 3), (2, 0)])
def test_global_average_pooling_of_an_empty_image_is_a_shape_error(
    bk: backend.Backend, to_bk: Any, hw: tuple[int, int]
) -> None:
    x = to_bk(np.zeros((2, 3, *hw), np.float32))
    match = rf"expected an image of at least 1x1 pixels, got {hw[0]}x{hw[1]}"
    with pytest.raises(xpnn.ShapeError, match=rf"GlobalAvgPool2D: {match}"):
        xpnn.GlobalAvgPool2D().forward(x)
    with pytest.raises(xpnn.ShapeError, match=rf"global_avg_pool2d: {match}"):
        F.global_avg_pool2d(x)
