"""F.dropout: inverted dropout whose mask is a pure function of its integer key, so its gradient
is the upstream gradient times that same mask (finite differences see the same mask at every
evaluation). torch draws other masks, so the mask itself is checked instead: 0 or 1/(1-rate)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.finite_differences import check_finite_differences, recorded_gradients
from xpnn import Tensor, backend
from xpnn import functional as F

X = 0.5 + np.random.default_rng(0).random((4, 6))  # nowhere 0: y / x recovers the mask


def test_dropout_gradient_matches_finite_differences(bk):
    check_finite_differences(bk, lambda t: F.dropout(t, 0.4, key=(7, 0, 3)), X)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_scales_kept_inputs_by_one_over_keep_and_sends_the_gradient_through_the_same_mask(rate, bk):
    upstream = np.random.default_rng(1).standard_normal(X.shape)
    y, (grad,) = recorded_gradients(bk, lambda t: F.dropout(t, rate, key=(3, 1)), [X], upstream)
    mask = backend.to_host(y.value) / X
    kept = mask != 0.0
    np.testing.assert_allclose(mask[kept], 1.0 / (1.0 - rate), rtol=1e-15)
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(grad, upstream * mask, rtol=1e-15)


def test_the_same_key_draws_the_same_mask_and_another_key_another(bk):
    x = Tensor(backend.from_host(np.ones((8, 8)), bk))
    first, again, other = (
        backend.to_host(F.dropout(x, 0.5, key=key).value) for key in [(1, 2), (1, 2), (1, 3)]
    )
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


def test_dropout_drops_about_rate_of_the_inputs(bk):
    y = F.dropout(Tensor(backend.from_host(np.ones((100, 100)), bk)), 0.3, key=(0,))
    assert abs(float((backend.to_host(y.value) == 0.0).mean()) - 0.3) < 0.03


@pytest.mark.parametrize(("rate", "training"), [(0.5, False), (0.0, True)])
def test_dropout_out_of_training_or_at_rate_zero_is_the_identity(rate, training, bk):
    t = Tensor(backend.from_host(X, bk), requires_grad=True)
    assert F.dropout(t, rate, training=training, key=(1,)) is t
