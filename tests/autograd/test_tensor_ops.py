"""Every Tensor operation's recorded gradient equals central finite differences in float64, on
every backend: arithmetic with broadcasting on either side and Python numbers, powers,
elementwise functions, matmul of every rank, reductions over every kind of axis, shape moves,
basic and integer-array indexing (repeated indices add up), clip and astype."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.finite_differences import check_finite_differences, recorded_gradients
from xpnn import Tensor, backend


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape: int, seed: int = 0) -> np.ndarray:
    """Values in [0.5, 1.5): away from log's, sqrt's and division's poles."""
    return 0.5 + np.random.default_rng(seed).random(shape)


# -- arithmetic ------------------------------------------------------------------------------------
OPERATORS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
BROADCASTS = {
    "same_shape": ((2, 3), (2, 3)),
    "right_operand_broadcast": ((2, 3), (3,)),
    "left_operand_broadcast": ((1, 3), (2, 3)),
    "both_operands_broadcast": ((2, 1, 3), (4, 1)),
    "zero_d_operand": ((), (2, 3)),
}


@pytest.mark.parametrize("shapes", sorted(BROADCASTS))
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_binary_operator_gradients_with_broadcasting_match_finite_differences(op, shapes, bk):
    a_shape, b_shape = BROADCASTS[shapes]
    check_finite_differences(bk, OPERATORS[op], normal(*a_shape, seed=1), positive(*b_shape, seed=2))


@pytest.mark.parametrize("side", ["number_left", "number_right"])
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_binary_operator_with_a_python_number_on_either_side_matches_finite_differences(op, side, bk):
    f = OPERATORS[op]
    g = (lambda t: f(1.75, t)) if side == "number_left" else (lambda t: f(t, -1.25))
    check_finite_differences(bk, g, positive(2, 3))


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_binary_operator_with_a_constant_array_of_the_namespace_matches_finite_differences(op, bk):
    constant = backend.from_host(positive(3, seed=4), bk)
    check_finite_differences(bk, lambda t: OPERATORS[op](t, constant), normal(2, 3))


def test_the_same_tensor_on_both_sides_gets_both_gradients(bk):
    check_finite_differences(bk, lambda t: t * t - t / (t + 3.0), positive(2, 3))


def test_unary_minus_matches_finite_differences(bk):
    check_finite_differences(bk, lambda t: -t, normal(2, 3))


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 0.5, -1.5])
def test_power_with_a_python_number_exponent_matches_finite_differences(exponent, bk):
    check_finite_differences(bk, lambda t: t**exponent, positive(2, 3))


@pytest.mark.parametrize("base", [2.0, 0.5])
def test_python_number_to_the_power_of_a_tensor_matches_finite_differences(base, bk):
    check_finite_differences(bk, lambda t: base**t, normal(2, 3))


# -- matmul ----------------------------------------------------------------------------------------
MATMULS = {
    "vector_vector": ((3,), (3,)),
    "vector_matrix": ((3,), (3, 4)),
    "matrix_vector": ((2, 3), (3,)),
    "matrix_matrix": ((2, 3), (3, 4)),
    "batched_matrix": ((2, 2, 3), (3, 4)),
    "matrix_batched": ((2, 3), (2, 3, 4)),
    "vector_batched": ((3,), (2, 3, 4)),
    "batched_vector": ((2, 2, 3), (3,)),
    "batched_with_broadcast": ((2, 1, 2, 3), (3, 3, 2)),
}


@pytest.mark.parametrize("case", sorted(MATMULS))
def test_matmul_gradients_of_every_rank_match_finite_differences(case, bk):
    a_shape, b_shape = MATMULS[case]
    check_finite_differences(bk, lambda a, b: a @ b, normal(*a_shape, seed=1), normal(*b_shape, seed=2))


# -- elementwise functions -------------------------------------------------------------------------
ELEMENTWISE = {
    "exp": (lambda t: t.exp(), normal),
    "log": (lambda t: t.log(), positive),
    "sqrt": (lambda t: t.sqrt(), positive),
    "tanh": (lambda t: t.tanh(), normal),
    "abs": (lambda t: t.abs(), normal),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_method_gradient_matches_finite_differences(name, bk):
    f, values = ELEMENTWISE[name]
    check_finite_differences(bk, f, values(2, 3))


CLIPS = {
    "both_bounds": (lambda t: t.clip(-0.5, 0.5)),
    "min_only": (lambda t: t.clip(min=0.1)),
    "max_only": (lambda t: t.clip(max=-0.1)),
    "all_beyond_max": (lambda t: t.clip(-5.0, -4.0)),
}


@pytest.mark.parametrize("case", sorted(CLIPS))
def test_clip_gradient_matches_finite_differences_inside_and_beyond_the_bounds(case, bk):
    check_finite_differences(bk, CLIPS[case], normal(3, 4))


def test_clip_gradient_passes_at_the_bounds_themselves_and_stops_beyond_them(bk):
    values = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])  # torch.clamp's rule: min <= x <= max
    _, (grad,) = recorded_gradients(bk, lambda t: t.clip(-1.0, 1.0), [values], np.ones(7))
    np.testing.assert_array_equal(grad, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])


# -- reductions ------------------------------------------------------------------------------------
REDUCTIONS = ["sum", "mean", "max", "min", "var"]
AXES = {"all": None, "first": 0, "last": -1, "tuple": (0, 2)}


@pytest.mark.parametrize("keepdims", [False, True], ids=["dropped", "keepdims"])
@pytest.mark.parametrize("axis", sorted(AXES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduction_gradient_matches_finite_differences_for_each_axis(reduction, axis, keepdims, bk):
    check_finite_differences(
        bk, lambda t: getattr(t, reduction)(axis=AXES[axis], keepdims=keepdims), normal(2, 3, 2)
    )


def test_var_with_a_correction_matches_finite_differences(bk):
    check_finite_differences(bk, lambda t: t.var(axis=1, correction=1.0), normal(3, 4))


def test_reductions_of_a_reduction_chain_match_finite_differences(bk):
    check_finite_differences(bk, lambda t: (t - t.mean(axis=0)).max(axis=1).sum() * t.var(), normal(3, 4))


# -- shapes ----------------------------------------------------------------------------------------
SHAPE_MOVES = {
    "reshape_varargs": lambda t: t.reshape(3, 4),
    "reshape_tuple_with_minus_one": lambda t: t.reshape((-1,)),
    "transpose_reversed": lambda t: t.transpose(),
    "transpose_permutation": lambda t: t.transpose(1, 0, 2),
    "mT": lambda t: t.mT,
    "T_of_2d": lambda t: t.reshape(6, 2).T,
    "expand_dims_front": lambda t: t.expand_dims(0),
    "expand_dims_last": lambda t: t.expand_dims(-1),
    "squeeze_all": lambda t: t.expand_dims(1).squeeze(),
    "squeeze_one_axis": lambda t: t.expand_dims(0).expand_dims(-1).squeeze(0),
}


@pytest.mark.parametrize("case", sorted(SHAPE_MOVES))
def test_shape_move_gradient_matches_finite_differences(case, bk):
    check_finite_differences(bk, SHAPE_MOVES[case], normal(2, 3, 2))


# -- indexing --------------------------------------------------------------------------------------
BASIC_INDEXES = {
    "slices": lambda t: t[1:, ::2],
    "integer_and_ellipsis": lambda t: t[1, ...],
    "integer_column": lambda t: t[:, 2],
    "new_axis": lambda t: t[None, :, 1:3],
    "ellipsis_slice": lambda t: t[..., 1:],
}


@pytest.mark.parametrize("case", sorted(BASIC_INDEXES))
def test_basic_indexing_gradient_matches_finite_differences(case, bk):
    check_finite_differences(bk, BASIC_INDEXES[case], normal(3, 4))


def _index_array(bk: backend.Backend, values: list) -> object:
    return backend.from_host(np.asarray(values, dtype=np.int64), bk)


INTEGER_INDEXES = {
    "first_axis_repeated": ([0, 2, 0, 0], lambda t, i: t[i]),
    "after_a_full_slice": ([3, 1, 3], lambda t, i: t[:, i]),
    "two_d_index_array": ([[0, 1], [1, 1]], lambda t, i: t[i]),
    "followed_by_a_slice": ([2, 2], lambda t, i: t[i, 1:]),
}


@pytest.mark.parametrize("case", sorted(INTEGER_INDEXES))
def test_integer_array_indexing_gradient_matches_finite_differences(case, bk):
    values, f = INTEGER_INDEXES[case]
    index = _index_array(bk, values)
    check_finite_differences(bk, lambda t: f(t, index), normal(3, 4))


def test_repeated_integer_indices_add_their_gradients(bk):
    index = _index_array(bk, [1, 1, 1, 0])
    _, (grad,) = recorded_gradients(bk, lambda t: t[index], [normal(3, 2)], np.ones((4, 2)))
    np.testing.assert_array_equal(grad, [[1.0, 1.0], [3.0, 3.0], [0.0, 0.0]])


def test_a_python_list_index_is_an_integer_array(bk):
    _, (grad,) = recorded_gradients(bk, lambda t: t[[2, 2]], [normal(3)], np.ones(2))
    np.testing.assert_array_equal(grad, [0.0, 0.0, 2.0])


# -- dtypes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "target"), [("float64", "float32"), ("float32", "float64")])
def test_astype_between_float_dtypes_sends_the_gradient_back_in_the_source_dtype(source, target, bk):
    xp = bk.xp
    x = Tensor(backend.from_host(normal(2, 3).astype(source), bk), requires_grad=True)
    y = x.astype(getattr(xp, target)) * 3.0
    assert y.dtype == getattr(xp, target)
    g = normal(2, 3, seed=5).astype(target)
    y.backward(backend.from_host(g, bk))
    assert x.grad.dtype == getattr(xp, source)
    np.testing.assert_array_equal(backend.to_host(x.grad), (3.0 * g).astype(source))


def test_astype_to_the_same_dtype_matches_finite_differences(bk):
    check_finite_differences(bk, lambda t: t.astype(bk.xp.float64) * t, normal(2, 3))


# -- what is not differentiated ------------------------------------------------------------------------
def test_comparisons_give_plain_boolean_arrays(bk):
    t = Tensor(backend.from_host(normal(2, 3), bk), requires_grad=True)
    for result in (t > 0.0, t <= t, t == 1.0, t != t):
        assert not isinstance(result, Tensor) and result.dtype == bk.xp.bool


def test_argmax_gives_a_plain_integer_array(bk):
    t = Tensor(backend.from_host(np.array([[1.0, 3.0, 2.0], [5.0, 4.0, 0.0]]), bk), requires_grad=True)
    result = t.argmax(axis=1)
    assert not isinstance(result, Tensor)
    np.testing.assert_array_equal(backend.to_host(result), [1, 0])


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_an_array_left_of_an_operator_hands_the_operation_to_the_tensor(op, name):
    # NumPy through __array_ufunc__ = None, torch by returning NotImplemented (array-api-strict's
    # operators raise TypeError instead: use the namespace's functions there)
    if name == "torch":
        pytest.importorskip("torch", reason="torch is not installed: this case is torch's operator")
    bk = backend.resolve(name)
    constant = backend.from_host(positive(2, 3, seed=3), bk)
    check_finite_differences(bk, lambda t: OPERATORS[op](constant, t), positive(2, 3))
