"""A zoo of graphs, each written once with xpnn Tensors and F and once with torch: forward and
every leaf's gradient equal torch.autograd's to rtol 1e-10 in float64, on every backend.
Broadcasting, reductions over axes, batched matmul, slicing and repeated integer indices,
attention, a residual MLP, a small CNN with BatchNorm and a skip connection, plain Array API
code, a Dense layer called twice, a custom loss with an L2 penalty, and retain_graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnn
from tests.helpers.finite_differences import check_matches_torch
from tests.helpers.optional import require_torch
from xpnn import Tensor, backend
from xpnn import functional as F
from xpnn.testing import assert_close

LABELS = [2, 0, 1, 2]


def normal(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape)


def labels_on(t: Tensor, values: list[int]) -> Any:
    return backend.from_host(
        np.asarray(values, dtype=np.int64), backend.resolve(backend.backend_name(t.value))
    )


def torch_module() -> Any:
    return require_torch()


def tf() -> Any:
    return require_torch().nn.functional


# -- the graphs: (xpnn function, torch function, inputs) ------------------------------------------------
def broadcasting() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(a, b, c):
        return ((a * b + c) / (1.5 + (b - c) ** 2)).exp()

    def torch_f(a, b, c):
        return ((a * b + c) / (1.5 + (b - c) ** 2)).exp()

    return xpnn_f, torch_f, [normal(2, 1, 3, scale=0.5), normal(4, 1, seed=1, scale=0.5), normal(3, seed=2)]


def reductions() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(x):
        centered = x - x.mean(axis=0, keepdims=True)
        return (centered**2).sum(axis=(0, 2)) / x.max(axis=1).sum() + x.var(axis=-1).min(
            axis=0, keepdims=True
        )

    def torch_f(x):
        centered = x - x.mean(dim=0, keepdim=True)
        variance = x.var(dim=-1, unbiased=False)
        return (centered**2).sum(dim=(0, 2)) / x.amax(dim=1).sum() + variance.amin(dim=0, keepdim=True)

    return xpnn_f, torch_f, [normal(3, 4, 2)]


def batched_matmul() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(a, b, c):
        return (a @ b).tanh() @ c + (a.mT @ a).sum()

    def torch_f(a, b, c):
        return (a @ b).tanh() @ c + (a.mT @ a).sum()

    return xpnn_f, torch_f, [normal(2, 3, 4), normal(1, 4, 2, seed=1), normal(2, seed=2)]


def indexing() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    repeated = [3, 0, 3, 3, 1]

    def xpnn_f(x):
        index = labels_on(x, repeated)
        return x[1:, ::2] * 2.0 + x[index][:3, 1:3] * x[:, index][:3, :2] + x[None, 0, :2] * x[1:, -1:]

    def torch_f(x):
        index = torch_module().tensor(repeated)
        return x[1:, ::2] * 2.0 + x[index][:3, 1:3] * x[:, index][:3, :2] + x[None, 0, :2] * x[1:, -1:]

    return xpnn_f, torch_f, [normal(4, 4)]


def attention() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(q, k, v):
        return F.softmax(q @ k.mT / 2.0, axis=-1) @ v

    def torch_f(q, k, v):
        return (q @ k.mT / 2.0).softmax(dim=-1) @ v

    return xpnn_f, torch_f, [normal(2, 3, 4), normal(2, 5, 4, seed=1), normal(2, 5, 2, seed=2)]


def residual_mlp() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(x, w1, b1, w2, b2, w3):
        h = F.relu(F.linear(x, w1, b1))
        h = h + F.tanh(F.linear(h, w2, b2))  # the residual connection
        return F.cross_entropy(F.linear(h, w3), labels_on(x, LABELS))

    def torch_f(x, w1, b1, w2, b2, w3):
        h = tf().relu(tf().linear(x, w1.T, b1))
        h = h + (tf().linear(h, w2.T, b2)).tanh()
        return tf().cross_entropy(tf().linear(h, w3.T), torch_module().tensor(LABELS))

    shapes = [(4, 5), (5, 6), (6,), (6, 6), (6,), (6, 3)]
    return xpnn_f, torch_f, [normal(*s, seed=k) for k, s in enumerate(shapes)]


def small_cnn() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(x, w1, b1, gamma, beta, w2, w3):
        y = F.conv2d(x, w1, b1, padding=1)
        y = F.relu(F.batch_norm(y, None, None, gamma, beta, training=True))
        z = F.batch_norm(F.conv2d(y, w2, padding="same"), None, None, training=True)
        z = F.relu(z + y)  # the skip connection
        pooled = F.max_pool2d(z, 2)
        features = (
            F.global_avg_pool2d(pooled) + F.avg_pool2d(z, 2).reshape(z.shape[0], -1).mean(axis=1)[:, None]
        )
        return F.cross_entropy(F.linear(features, w3), labels_on(x, LABELS), label_smoothing=0.1)

    def torch_f(x, w1, b1, gamma, beta, w2, w3):
        y = tf().conv2d(x, w1, b1, padding=1)
        y = tf().relu(tf().batch_norm(y, None, None, gamma, beta, training=True))
        z = tf().batch_norm(tf().conv2d(y, w2, padding="same"), None, None, training=True)
        z = tf().relu(z + y)
        pooled = tf().max_pool2d(z, 2)
        features = (
            pooled.mean(dim=(2, 3)) + tf().avg_pool2d(z, 2).reshape(z.shape[0], -1).mean(dim=1)[:, None]
        )
        return tf().cross_entropy(
            tf().linear(features, w3.T), torch_module().tensor(LABELS), label_smoothing=0.1
        )

    shapes = [(4, 2, 4, 4), (3, 2, 3, 3), (3,), (3,), (3,), (3, 3, 3, 3), (3, 3)]
    return xpnn_f, torch_f, [normal(*s, seed=k) for k, s in enumerate(shapes)]


def plain_array_api_code() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def layer_norm(x: Any, weight: Any) -> Any:  # written once against the standard, for any array
        xp = array_api_compat.array_namespace(x, weight)
        mean = xp.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        scale = xp.sqrt(xp.mean(xp.square(centered), axis=-1, keepdims=True) + 1e-5)
        return xp.concat([centered / scale * weight, xp.take(x, xp.asarray([0, 0]), axis=1)], axis=1)

    def torch_f(x, weight):
        return torch_module().cat([tf().layer_norm(x, (4,), weight, None, eps=1e-5), x[:, [0, 0]]], dim=1)

    return layer_norm, torch_f, [normal(3, 4), normal(4, seed=1)]


def custom_loss() -> tuple[Callable[..., Any], Callable[..., Any], list[np.ndarray]]:
    def xpnn_f(x, w, b):
        logits = x @ w + b
        return F.cross_entropy(logits, labels_on(x, LABELS)) + 0.01 * (w**2).sum() + 0.001 * b.abs().sum()

    def torch_f(x, w, b):
        logits = x @ w + b
        return (
            tf().cross_entropy(logits, torch_module().tensor(LABELS))
            + 0.01 * (w**2).sum()
            + 0.001 * b.abs().sum()
        )

    return xpnn_f, torch_f, [normal(4, 5), normal(5, 3, seed=1), normal(3, seed=2)]


GRAPHS = {
    "broadcasting": broadcasting,
    "reductions_with_axes": reductions,
    "batched_matmul_with_broadcast": batched_matmul,
    "slicing_and_repeated_integer_indices": indexing,
    "attention": attention,
    "residual_mlp": residual_mlp,
    "small_cnn_with_batch_norm_and_a_skip_connection": small_cnn,
    "plain_array_api_code": plain_array_api_code,
    "cross_entropy_plus_l2_penalty": custom_loss,
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_graph_forward_and_gradients_equal_torch_autograd(graph, bk):
    xpnn_f, torch_f, inputs = GRAPHS[graph]()
    check_matches_torch(bk, xpnn_f, torch_f, *inputs, rtol=1e-10, atol=1e-13)


# -- modules and the tape's bookkeeping ----------------------------------------------------------------
def test_a_dense_layer_called_twice_in_one_graph_gets_both_gradients_as_torch(bk):
    torch = torch_module()
    weight, bias, x = normal(3, 3, seed=1), normal(3, seed=2), normal(4, 3)
    dense = xpnn.Dense(3, 3).to(bk, dtype="float64")
    dense.weight.value, dense.bias.value = backend.from_host(weight, bk), backend.from_host(bias, bk)
    xt = Tensor(backend.from_host(x, bk), requires_grad=True)
    loss = (dense(F.relu(dense(xt))) ** 2).mean()
    loss.backward()

    tw, tb, tx = (torch.tensor(a, requires_grad=True) for a in (weight.T.copy(), bias, x))
    expected = (tf().linear(tf().relu(tf().linear(tx, tw, tb)), tw, tb) ** 2).mean()
    expected.backward()
    assert_close(loss.value, expected.detach().numpy(), what="loss")
    assert_close(dense.weight.grad, tw.grad.numpy().T, what="weight gradient (both calls)")
    assert_close(dense.bias.grad, tb.grad.numpy(), what="bias gradient (both calls)")
    assert_close(xt.grad, tx.grad.numpy(), what="input gradient")


def test_backward_twice_with_retain_graph_adds_the_gradients_as_torch(bk):
    torch = torch_module()
    values = normal(3, 4)
    t = Tensor(backend.from_host(values, bk), requires_grad=True)
    y = (F.softmax(t * 2.0) * t).sum()
    y.backward(retain_graph=True)
    y.backward()

    tt = torch.tensor(values, requires_grad=True)
    expected = ((tt * 2.0).softmax(dim=-1) * tt).sum()
    expected.backward(retain_graph=True)
    expected.backward()
    assert_close(t.grad, tt.grad.numpy(), what="gradient of two backward passes")


def test_a_graph_shared_by_two_losses_gives_each_leaf_the_sum_as_torch(bk):
    torch = torch_module()
    values = normal(3, 4)
    t = Tensor(backend.from_host(values, bk), requires_grad=True)
    hidden = (t @ t.T).tanh()
    (hidden.sum() + hidden.max(axis=0).mean()).backward()

    tt = torch.tensor(values, requires_grad=True)
    th = (tt @ tt.T).tanh()
    (th.sum() + th.amax(dim=0).mean()).backward()
    assert_close(t.grad, tt.grad.numpy(), what="gradient through a shared hidden tensor")
