"""The JAX + optax peer: the benchmarked MLP's whole training step under one ``jax.jit``.

What a JAX engineer writes for speed on a CPU: the batch gather (and, for the ``fit`` peer,
the uint8 -> float32 cast and 1/255 scale), the forward pass, softmax cross-entropy, its
gradient, the optax update and the epoch's loss and correct-count sums all inside one jitted
function, so XLA fuses every elementwise pass around its GEMMs; the carried state (parameters,
optimizer state, sums) is donated, so XLA updates it in place. The Python loop calls the step
once per batch and synchronises once per epoch (``block_until_ready``), as xpnn's loop does.

Import this module only after setting ``XLA_FLAGS`` (train_loop.py sets one-thread flags):
XLA reads them once, when its CPU client starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

Carry = tuple[Any, Any, jax.Array, jax.Array]  # parameters, optimizer state, loss sum, correct


def _logits(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """``x @ W + b`` per layer, ReLU between layers (W is (n_in, n_out), as in xpnn)."""
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _mean_loss(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = _logits(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def _step(
    tx: optax.GradientTransformation,
    carry: Carry,
    images: jax.Array,
    labels: jax.Array,
    order: jax.Array,
    start: jax.Array,
    *,
    size: int,
) -> Carry:
    """One optimisation step on the batch ``order[start : start + size]``."""
    params, opt_state, loss_sum, correct = carry
    idx = lax.dynamic_slice(order, (start,), (size,))
    xb, yb = jnp.take(images, idx, axis=0), jnp.take(labels, idx, axis=0)
    if xb.dtype == jnp.uint8:  # the fit peer: cast and scale on the device, as xpnn's loader
        xb = xb.astype(jnp.float32) * jnp.float32(1.0 / 255.0)
    (loss, logits), grads = jax.value_and_grad(_mean_loss, has_aux=True)(params, xb, yb)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    hits = jnp.sum(jnp.argmax(logits, axis=1) == yb, dtype=jnp.int32)
    return params, opt_state, loss_sum + loss * size, correct + hits


class JaxMLP:
    """The ReLU MLP from given initial weights, trained with optax Adam or SGD under jit."""

    def __init__(self, initial: list[tuple[np.ndarray, np.ndarray]], optimizer: str, lr: float):
        params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in initial]
        tx = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8) if optimizer == "adam" else optax.sgd(lr)
        self.carry: Carry = (params, tx.init(params), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        step = functools.partial(_step, tx)
        self.step = jax.jit(step, static_argnames="size", donate_argnums=0)

    def epoch(self, images: jax.Array, labels: jax.Array, order: np.ndarray, batch: int, partial: bool):
        """Train over ``order`` in batches of ``batch`` (the last, smaller one too where
        ``partial``); returns (mean loss, accuracy) after the epoch's one synchronisation."""
        params, opt_state, _, _ = self.carry
        self.carry = (params, opt_state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        index = jnp.asarray(order.astype(np.int32))
        n = len(order) if partial else (len(order) // batch) * batch
        for start in range(0, n, batch):
            self.carry = self.step(self.carry, images, labels, index, start, size=min(batch, n - start))
        loss_sum, correct = jax.block_until_ready(self.carry[2:])
        return float(loss_sum) / n, int(correct) / n


def jax_epoch(
    initial: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, y: np.ndarray, spec: tuple
) -> Callable[[np.ndarray], tuple[float, float]]:
    """The public-loop peer: float32 images ``X[idx]`` gathered in the step, full batches only."""
    _, batch, optimizer, lr = spec
    model = JaxMLP(initial, optimizer, lr)
    images, labels = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    return lambda order: model.epoch(images, labels, order, batch, partial=False)


def jax_fit_epoch(
    initial: list[tuple[np.ndarray, np.ndarray]],
    x_uint8: np.ndarray,
    y: np.ndarray,
    spec: tuple,
    fit_order: np.ndarray,
) -> Callable[[np.ndarray], tuple[float, float]]:
    """The ``fit`` peer: uint8 images kept on the device, each batch gathered, cast and scaled
    in the step, in ``fit_order`` (xpnn's loader order for the seed), last partial batch too."""
    _, batch, optimizer, lr = spec
    model = JaxMLP(initial, optimizer, lr)
    images, labels = jnp.asarray(x_uint8), jnp.asarray(y.astype(np.int32))
    return lambda _order: model.epoch(images, labels, fit_order, batch, partial=True)
