"""Where a derivative is not defined, xpnn takes torch's choice: tied maxima and minima share
the gradient equally (torch.amax / amin, torch.maximum / minimum), clip passes it at its
bounds (torch.clamp), abs sends 0 at 0; compared with torch.autograd in float64."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.finite_differences import check_matches_torch, recorded_gradients
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn import functional as F

# ties along rows, columns and across the whole array
TIED = np.array([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5], [-2.0, 3.0, -2.0, 3.0]])
AXES = {"all": None, "rows": 1, "columns": 0, "tuple": (0, 1)}


@pytest.mark.parametrize("keepdims", [False, True], ids=["dropped", "keepdims"])
@pytest.mark.parametrize("axis", sorted(AXES))
def test_max_with_ties_shares_the_gradient_equally_as_torch_amax(axis, keepdims, bk):
    dim = AXES[axis]

    def f_torch(t):
        return t.amax(dim=dim if dim is not None else (0, 1), keepdim=keepdims)

    check_matches_torch(bk, lambda t: t.max(axis=dim, keepdims=keepdims), f_torch, TIED)


@pytest.mark.parametrize("keepdims", [False, True], ids=["dropped", "keepdims"])
@pytest.mark.parametrize("axis", sorted(AXES))
def test_min_with_ties_shares_the_gradient_equally_as_torch_amin(axis, keepdims, bk):
    dim = AXES[axis]

    def f_torch(t):
        return t.amin(dim=dim if dim is not None else (0, 1), keepdim=keepdims)

    check_matches_torch(bk, lambda t: t.min(axis=dim, keepdims=keepdims), f_torch, -TIED)


def test_a_three_way_tie_gives_each_maximum_a_third(bk):
    values = np.array([2.0, 5.0, 5.0, 5.0])
    _, (grad,) = recorded_gradients(bk, lambda t: t.max(), [values], np.array(1.0))
    np.testing.assert_allclose(grad, [0.0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-15)


PAIRS = (np.array([[1.0, 2.0, -1.0], [0.0, 4.0, 4.0]]), np.array([[1.0, 3.0, -1.0], [0.5, 4.0, -4.0]]))


def test_maximum_with_ties_gives_each_side_half_as_torch(bk):
    check_matches_torch(bk, F.maximum, lambda a, b: a.maximum(b), *PAIRS)


def test_minimum_with_ties_gives_each_side_half_as_torch(bk):
    check_matches_torch(bk, F.minimum, lambda a, b: a.minimum(b), *PAIRS)


def test_maximum_with_ties_and_broadcasting_matches_torch(bk):
    column = np.array([[1.0], [4.0]])
    check_matches_torch(bk, F.maximum, lambda a, b: a.maximum(b), PAIRS[0], column)


def test_maximum_with_a_python_number_at_a_tie_matches_torch_clamp_min(bk):
    # torch.clamp(x, min=0) passes the whole gradient at x == 0 while maximum(x, 0) halves it:
    # F.maximum follows torch.maximum (the number is a constant that takes the other half)
    values = np.array([-1.0, 0.0, 2.0])
    _, (grad,) = recorded_gradients(bk, lambda t: F.maximum(t, 0.0), [values], np.ones(3))
    np.testing.assert_array_equal(grad, [0.0, 0.5, 1.0])


def test_where_gives_each_side_the_gradient_where_it_was_chosen_as_torch(bk):
    torch = require_torch()
    condition = np.array([[True, False, True], [False, False, True]])
    on_backend, in_torch = backend.from_host(condition, bk), torch.tensor(condition)
    check_matches_torch(bk, lambda a, b: F.where(on_backend, a, b), lambda a, b: a.where(in_torch, b), *PAIRS)


def test_clip_at_and_beyond_its_bounds_matches_torch_clamp(bk):
    values = np.array([[-2.0, -1.0, -0.25, 0.0], [0.25, 1.0, 1.0, 3.0]])
    check_matches_torch(bk, lambda t: t.clip(-1.0, 1.0), lambda t: t.clamp(-1.0, 1.0), values)


def test_abs_at_zero_has_gradient_zero_as_torch(bk):
    values = np.array([-1.5, 0.0, 0.0, 2.0])
    check_matches_torch(bk, lambda t: t.abs(), lambda t: t.abs(), values)
