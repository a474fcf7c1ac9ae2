"""The CNN of ``conv.py`` in each framework, as a step on a given batch: xpnn (``train_step``,
what ``fit`` runs), PyTorch (its own loop) and JAX + optax (the whole step under one ``jax.jit``).

The CNN of issue 14: conv3x3 1->32 pad 1, ReLU, maxpool 2, conv3x3 32->64 pad 1, ReLU, maxpool
2, dense 3136->128, ReLU, dense 10; Adam 1e-3; softmax cross-entropy. Import this module only
after setting ``XLA_FLAGS`` (conv.py sets one-thread flags): XLA reads them once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from xpnn.kernels.memory import keep_freed_memory
from xpnn.train.loop import train_step

Step = Callable[[np.ndarray, np.ndarray], Any]  # (float32 images (N, 1, 28, 28), int64 labels)


def xpnn_model() -> xpnn.Sequential:
    return xpnn.Sequential(
        [xpnn.Conv2D(1, 32, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Conv2D(32, 64, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2), xpnn.Flatten(),
         xpnn.Dense(3136, 128), xpnn.ReLU(), xpnn.Dense(128, 10)],
        seed=0,
    )  # fmt: skip


def xpnn_step() -> tuple[Step, xpnn.Sequential]:
    keep_freed_memory()  # as fit does: the step's freed arrays stay mapped (no page faults)
    model = xpnn_model()
    loss, optimizer = xpnn.SoftmaxCrossEntropy(), xpnn.Adam(model.parameters(), lr=1e-3)
    return (lambda x, y: train_step(model, loss, optimizer, x, y)), model


def torch_step(threads: int) -> Step:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: np.ndarray, y: np.ndarray) -> Any:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
        return loss

    return step


def jax_step() -> Step:
    import jax
    import jax.numpy as jnp
    import optax

    keys = jax.random.split(jax.random.key(0), 4)
    shapes = [(32, 1, 3, 3), (64, 32, 3, 3), (3136, 128), (128, 10)]
    params = [
        (0.05 * jax.random.normal(k, s), jnp.zeros(s[0] if len(s) == 4 else s[1]))
        for k, s in zip(keys, shapes, strict=True)
    ]

    def conv_block(h: Any, w: Any, b: Any) -> Any:
        h = jax.lax.conv_general_dilated(
            h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        h = jax.nn.relu(h + b[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p: Any, xb: Any, yb: Any) -> Any:
        h = conv_block(conv_block(xb, *p[0]), *p[1]).reshape(xb.shape[0], -1)
        logits = jax.nn.relu(h @ p[2][0] + p[2][1]) @ p[3][0] + p[3][1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    optimizer = optax.adam(1e-3)
    state = {"params": params, "opt": optimizer.init(params)}

    @jax.jit
    def update(p: Any, opt_state: Any, xb: Any, yb: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    def step(x: np.ndarray, y: np.ndarray) -> Any:
        state["params"], state["opt"], loss = update(state["params"], state["opt"], jnp.asarray(x),
                                                     jnp.asarray(y.astype(np.int32)))  # fmt: skip
        return loss.block_until_ready()

    return step
