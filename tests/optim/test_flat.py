"""Flat parameter buffers and fused kernels give exactly the numbers of the plain per-parameter path."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import CASES, gradient_sequence, make, step_with
from xpnn import backend
from xpnn.kernels import dense
from xpnn.kernels import optimizers as kernels
from xpnn.optim.optimizers import Adam

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

STEPS = 20


def _run(name, to_bk, *, flat, dtype="float32", fused=True, swap_at=None):  # type: ignore[no-untyped-def]
    params, opt = make(name, to_bk, dtype)
    opt.flat, opt.fused = flat, fused
    for step, grads in enumerate(gradient_sequence(STEPS)):
        if step == swap_at:  # the user swaps a value for a new array of the same shape
            params[0].value = to_bk(np.full(params[0].shape, 0.5), dtype)
        step_with(opt, params, grads, to_bk)
    return [backend.to_host(p.value) for p in params], opt


@pytest.mark.parametrize("name", sorted(CASES))
def test_flat_buffers_give_the_per_parameter_numbers_bit_for_bit(name, bk, to_bk):
    flat_values, flat_opt = _run(name, to_bk, flat=True)
    plain_values, plain_opt = _run(name, to_bk, flat=False)
    for a, b in zip(flat_values, plain_values, strict=True):
        assert np.array_equal(a, b)
    flat_state, plain_state = flat_opt.state_dict()["state"], plain_opt.state_dict()["state"]
    for position, entry in plain_state.items():
        for key, value in entry.items():
            assert np.array_equal(flat_state[position][key], value), (position, key)


def test_parameters_become_views_of_one_buffer_where_the_backend_has_views(bk, to_bk):
    params, opt = make("adam", to_bk, "float32")
    step_with(opt, params, gradient_sequence(1)[0], to_bk)
    flat = opt._flat[0]
    if bk.name in ("array_api_strict", "jax"):
        assert flat is None  # no writeable views (standard; immutable JAX): the per-parameter path
        return
    assert flat is not None and all(p.value is view for p, view in zip(params, flat.views, strict=True))
    assert tuple(flat.values.shape) == (sum(int(np.prod(p.shape)) for p in params),)


def test_a_swapped_parameter_value_is_used_not_silently_dropped(bk, to_bk):
    flat_values, _ = _run("adam", to_bk, flat=True, swap_at=5)
    plain_values, _ = _run("adam", to_bk, flat=False, swap_at=5)
    for a, b in zip(flat_values, plain_values, strict=True):
        assert np.array_equal(a, b)


def test_a_swapped_value_of_another_dtype_falls_back_to_the_per_parameter_path(bk, to_bk):
    params, opt = make("sgd", to_bk, "float32")
    grads = gradient_sequence(3)
    step_with(opt, params, grads[0], to_bk)
    params[1].value = to_bk(np.zeros(params[1].shape), "float64")
    params[1].grad = to_bk(grads[1][1], "float64")
    for p, g in zip((params[0], params[2]), (grads[1][0], grads[1][2]), strict=True):
        p.grad = to_bk(g, "float32")
    opt.step()
    assert opt._flat[0] is None
    np.testing.assert_allclose(backend.to_host(params[1].value), -0.1 * grads[1][1], rtol=1e-12)


def test_loading_a_state_dict_into_a_flat_optimizer_continues_exactly(bk, to_bk):
    grads = gradient_sequence(30)
    params, opt = make("adam", to_bk, "float32")
    for g in grads[:10]:
        step_with(opt, params, g, to_bk)
    saved, values = opt.state_dict(), [backend.to_host(p.value) for p in params]
    for g in grads[10:]:
        step_with(opt, params, g, to_bk)
    fresh, resumed = make("adam", to_bk, "float32")
    for p, v in zip(fresh, values, strict=True):
        p.value = to_bk(v, "float32")
    step_with(resumed, fresh, grads[10], to_bk)  # packs the fresh optimizer before the load
    resumed.load_state_dict(saved)
    for p, v in zip(fresh, values, strict=True):
        p.value = to_bk(v, "float32")
    for g in grads[10:]:
        step_with(resumed, fresh, g, to_bk)
    for a, b in zip(fresh, params, strict=True):
        assert np.array_equal(backend.to_host(a.value), backend.to_host(b.value))


def test_a_parameter_without_gradient_is_skipped_on_the_flat_path_too(bk, to_bk):
    results = []
    for flat in (True, False):
        params, opt = make("adam", to_bk, "float32")
        opt.flat = flat
        for step, grads in enumerate(gradient_sequence(6)):
            step_with(opt, params, grads, to_bk)
            if step == 2:
                params[1].grad = None
                opt.step()
        results.append([backend.to_host(p.value) for p in params])
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "name",
    [
        "adam",
        "adam_weight_decay",
        "adam_decay",
        "adamw",
        "sgd",
        "sgd_decay",
        "sgd_momentum",
        "sgd_dampening",
        "sgd_weight_decay",
        "sgd_schedule",
        "adagrad",
        "adagrad_decay_initial",
        "adagrad_weight_decay",
        "rmsprop",
        "rmsprop_decay",
    ],
)
@pytest.mark.parametrize("piece", [None, 7], ids=["whole", "in-pieces"])
@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
def test_fused_numpy_kernels_equal_the_plain_array_api_path_bit_for_bit(name, flat, piece, monkeypatch):
    def move(a, dtype=None):  # type: ignore[no-untyped-def]
        return np.asarray(a, dtype=dtype or np.float32)

    if piece:  # pieces of 7 elements: the flat buffer (33) and the (4, 3) and (2, 3, 2) arrays split
        monkeypatch.setattr(kernels, "_PIECE", piece)
    fused, _ = _run(name, move, flat=flat)
    plain, _ = _run(name, move, flat=flat, fused=False)
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)


def test_fused_kernels_update_non_contiguous_arrays_in_place():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 8)).astype(np.float32)
    value, grad = base.copy()[:, ::2], rng.standard_normal((6, 4)).astype(np.float32)
    expected = value - np.float32(0.5) * grad
    assert not value.flags.c_contiguous and kernels.sgd(value, grad, 0.5)
    assert np.array_equal(value, expected)


def test_fused_adam_applies_only_to_writeable_numpy_arrays():
    value = np.ones(4, dtype=np.float32)
    value.flags.writeable = False
    state = np.zeros(4, dtype=np.float32)
    assert not kernels.adam(
        value, value, state, state.copy(), betas=(0.9, 0.999), step_size=0.1, bias2_root=1.0, eps=1e-8
    )
    assert np.array_equal(value, np.ones(4))


def test_a_model_trained_with_flat_buffers_equals_the_per_parameter_model(bk, to_bk):
    def train(flat: bool) -> list[np.ndarray]:
        model = xpnn.Sequential([xpnn.Dense(6, 5), xpnn.ReLU(), xpnn.Dense(5, 3)], seed=0).to(bk.name)
        opt = Adam(model.parameters(), lr=0.01)
        opt.flat = flat
        loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
        rng = np.random.default_rng(0)
        for _ in range(10):
            x, y = to_bk(rng.standard_normal((8, 6)), "float32"), to_bk(rng.integers(0, 3, 8), "int64")
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
        return [backend.to_host(p.value) for p in model.parameters()]

    for a, b in zip(train(True), train(False), strict=True):
        assert np.array_equal(a, b)


def test_the_in_place_affine_equals_the_plain_expression_through_dense_fused(bk, to_bk, monkeypatch):
    rng = np.random.default_rng(0)
    layer = xpnn.Dense(5, 3, seed=0).to(bk.name)
    layer.bias.value = to_bk(rng.standard_normal(3), "float32")
    x = to_bk(rng.standard_normal((7, 5)), "float32")
    fused = backend.to_host(layer.forward(x))
    monkeypatch.setattr(xpnn.Dense, "fused", False)
    plain = backend.to_host(layer.forward(x))
    assert fused.dtype == np.float32 and np.array_equal(fused, plain)


def _softmax_cross_entropy(to_bk, *, fused):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x, labels = to_bk(rng.standard_normal((9, 4)), "float32"), to_bk(rng.integers(0, 4, 9), "int64")
    loss_fn = xpnn.SoftmaxCrossEntropy()
    loss_fn.fused = fused
    loss = loss_fn.forward(x, labels)
    return backend.to_host(loss), backend.to_host(loss_fn.backward())


def test_add_at_labels_equals_the_boolean_mask_form(bk, to_bk):
    _, fused = _softmax_cross_entropy(to_bk, fused=True)  # integer-array indexing where there is one
    _, plain = _softmax_cross_entropy(to_bk, fused=False)  # xp.where over the label mask
    assert np.array_equal(fused, plain)


def test_take_at_labels_equals_take_along_axis(bk, to_bk):
    fused, _ = _softmax_cross_entropy(to_bk, fused=True)
    plain, _ = _softmax_cross_entropy(to_bk, fused=False)  # take_along_axis
    assert np.array_equal(fused, plain)


def _packed_model(bk, to_bk):  # type: ignore[no-untyped-def]
    """A model whose optimizer has packed it (one step taken), and a batch."""
    model = xpnn.Sequential([xpnn.Dense(6, 5), xpnn.ReLU(), xpnn.Dense(5, 3)], seed=0).to(bk.name)
    opt = Adam(model.parameters(), lr=0.01)
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    rng = np.random.default_rng(0)
    x, y = to_bk(rng.standard_normal((8, 6)), "float32"), to_bk(rng.integers(0, 3, 8), "int64")

    def backward() -> None:
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())

    backward()
    opt.step()
    opt.zero_grad()
    return model, opt, backward


def test_layers_write_gradients_straight_into_the_flat_gradient_buffer(bk, to_bk):
    model, opt, backward = _packed_model(bk, to_bk)
    backward()
    flat = opt._flat[0]
    if bk.name == "numpy":  # the backend with matmul(out=) in xpnn.kernels.dense
        assert all(p.grad is home for p, home in zip(model.parameters(), flat.grad_views, strict=True))
        assert opt._flat[0].gather_grads([p.grad for p in model.parameters()]) is flat.grads
    expected = [backend.to_host(p.grad).copy() for p in model.parameters()]
    backward()  # no zero_grad: a second backward adds into the gradients, as torch does
    for p, single in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(backend.to_host(p.grad), 2 * single, rtol=1e-6)


def test_a_gradient_set_by_hand_beside_written_ones_is_gathered(bk, to_bk):
    model, opt, backward = _packed_model(bk, to_bk)
    backward()
    params = model.parameters()
    params[1].grad = to_bk(np.full(params[1].shape, 0.25), "float32")  # the user's own array
    expected = np.concatenate([backend.to_host(p.grad).ravel() for p in params])
    flat = opt._flat[0]
    if flat is not None:
        assert np.array_equal(backend.to_host(flat.gather_grads([p.grad for p in params])), expected)


def test_matmul_and_sum_rows_into_a_buffer_equal_the_plain_expressions():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 5)).astype(np.float32), rng.standard_normal((7, 3)).astype(np.float32)
    out, out_b = np.empty((5, 3), np.float32), np.empty(3, np.float32)
    assert dense.matmul(a.T, b, out=out) is out and np.array_equal(out, a.T @ b)
    assert dense.sum_rows(b, out=out_b) is out_b and np.array_equal(out_b, np.sum(b, axis=0))
    wrong = np.empty((5, 3), np.float64)  # a buffer that does not fit is not used: the plain path runs
    assert dense.matmul(a.T, b, out=wrong) is None
    assert dense.sum_rows(b, out=np.empty(4, np.float32)).shape == (3,)


def test_moving_the_gradient_buffer_refuses_another_shape_or_dtype_and_changes_nothing():
    model = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.ReLU(), xpnn.Dense(4, 2)], seed=0)
    opt = xpnn.Adam(model.parameters(), lr=0.1)
    loss = xpnn.SoftmaxCrossEntropy()
    loss.forward(model.forward(np.ones((5, 3), dtype=np.float32)), np.array([0, 1, 0, 1, 1]))
    model.backward(loss.backward())
    (buffer,) = opt.gradient_buffers()
    before = [p.grad for p in model.parameters()]
    for bad in (
        np.zeros(3, np.float32),
        np.zeros(buffer.shape, np.float64),
        np.zeros((buffer.size, 1), np.float32),
    ):
        with pytest.raises(ValueError, match="expected"):
            opt.move_gradient_buffer(buffer, bad)
        assert opt.can_move_gradient_buffer(buffer) and all(
            p.grad is g for p, g in zip(model.parameters(), before, strict=True)
        )
    new = buffer.copy()
    opt.move_gradient_buffer(buffer, new)
    assert all(
        np.shares_memory(p.grad, new) and np.shares_memory(p.grad_home, new) for p in model.parameters()
    )
    assert not opt.can_move_gradient_buffer(buffer) and opt.can_move_gradient_buffer(new)
