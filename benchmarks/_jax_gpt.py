"""The JAX peer: the GPT of ``examples/gpt.py`` in ``jax.numpy``, its whole training step under
one ``jax.jit``, from an xpnn GPT's weights.

What a JAX engineer writes for speed on a CPU: forward (pre-LayerNorm blocks, causal attention,
the GELU MLP, the head tied to the token embedding), mean cross-entropy, ``jax.grad`` and AdamW
in one jitted function, so XLA fuses the elementwise work around its GEMMs; the carried state
(parameters, both moments, the step count) is donated, so XLA updates it in place. AdamW is
written out with torch.optim's equations (optax is not needed): ``p *= 1 - lr * decay`` (the
matrices only), then Adam's update with the bias corrections.

Import this module only after setting ``XLA_FLAGS`` (the benchmark sets one-thread flags for
its one-thread process): XLA reads them once, when its CPU client starts.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from xpnn import backend

Params = dict[str, jax.Array]


def _layer_norm(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    centered = x - x.mean(axis=-1, keepdims=True)
    return centered / jnp.sqrt((centered * centered).mean(axis=-1, keepdims=True) + 1e-5) * w + b


def _attention(p: Params, pre: str, h: jax.Array, heads: int) -> jax.Array:
    batch, time, width = h.shape
    d = width // heads
    qkv = h @ p[pre + "attn.qkv.weight"] + p[pre + "attn.qkv.bias"]
    q, k, v = jnp.transpose(qkv.reshape(batch, time, 3, heads, d), (2, 0, 3, 1, 4))
    scores = (q @ jnp.swapaxes(k, -1, -2)) * (d**-0.5)
    causal = jnp.tril(jnp.ones((time, time), dtype=bool))
    weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
    merged = jnp.transpose(weights @ v, (0, 2, 1, 3)).reshape(batch, time, width)
    return merged @ p[pre + "attn.out.weight"] + p[pre + "attn.out.bias"]


def loss(p: Params, ids: jax.Array, targets: jax.Array, sizes: tuple[int, int, bool]) -> jax.Array:
    """The mean cross-entropy of the GPT's next-symbol predictions (``sizes``: layers, heads,
    whether GELU is the tanh form)."""
    layers, heads, tanh = sizes
    x = p["tok.weight"][ids] + p["pos.weight"][: ids.shape[1]]
    for i in range(layers):
        pre = f"blocks.{i}."
        x = x + _attention(p, pre, _layer_norm(x, p[pre + "ln1.weight"], p[pre + "ln1.bias"]), heads)
        h = (
            _layer_norm(x, p[pre + "ln2.weight"], p[pre + "ln2.bias"]) @ p[pre + "fc.weight"]
            + p[pre + "fc.bias"]
        )
        x = x + jax.nn.gelu(h, approximate=tanh) @ p[pre + "proj.weight"] + p[pre + "proj.bias"]
    logits = _layer_norm(x, p["ln.weight"], p["ln.bias"]) @ p["tok.weight"].T
    logits = logits.reshape(-1, logits.shape[-1])
    picked = jnp.take_along_axis(logits, targets.reshape(-1, 1), axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _step(state: tuple[Any, ...], ids: jax.Array, targets: jax.Array, *, sizes: tuple[int, int, bool],
          hyper: tuple[float, float, float, float, float]) -> tuple[tuple[Any, ...], jax.Array]:  # fmt: skip
    """One AdamW step (torch.optim.AdamW's equations; decay on the 2-D parameters only)."""
    p, m, v, t = state
    lr, beta1, beta2, eps, decay = hyper
    value, grads = jax.value_and_grad(loss)(p, ids, targets, sizes)
    t = t + 1.0
    step_size, bias2_root = lr / (1.0 - beta1**t), jnp.sqrt(1.0 - beta2**t)
    new_p, new_m, new_v = {}, {}, {}
    for name, g in grads.items():
        shrunk = p[name] * (1.0 - lr * decay) if p[name].ndim >= 2 else p[name]
        new_m[name] = beta1 * m[name] + (1.0 - beta1) * g
        new_v[name] = beta2 * v[name] + (1.0 - beta2) * g * g
        new_p[name] = shrunk - step_size * new_m[name] / (jnp.sqrt(new_v[name]) / bias2_root + eps)
    return (new_p, new_m, new_v, t), value


class JaxGPT:
    """The xpnn GPT ``model``'s weights in JAX, trained by a jitted AdamW step (constant rate)."""

    def __init__(self, model: Any, lr: float, *, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.1) -> None:  # fmt: skip
        config = model.config()
        params = {name: jnp.asarray(backend.to_host(p.value)) for name, p in model.named_parameters()}
        m, v = ({name: jnp.zeros_like(value) for name, value in params.items()} for _ in range(2))
        self.state = (params, m, v, jnp.zeros((), jnp.float32))  # donated: no buffer twice
        sizes = (config["layers"], config["heads"], config["gelu"] == "tanh")
        hyper = (lr, betas[0], betas[1], 1e-8, weight_decay)
        self._step = jax.jit(lambda state, ids, targets: _step(state, ids, targets, sizes=sizes, hyper=hyper),
                             donate_argnums=0)  # fmt: skip

    def step(self, ids: np.ndarray, targets: np.ndarray) -> jax.Array:
        """One training step on host int batches; returns the loss (not waited for)."""
        self.state, value = self._step(self.state, jnp.asarray(ids), jnp.asarray(targets))
        return value
