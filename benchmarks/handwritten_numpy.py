"""A plain, hand-written NumPy MLP training step: the "from scratch" loop xpnn is measured against.

What a careful NNFS reader writes: Dense layers as ``x @ W + b``, ReLU, fused softmax
cross-entropy, and the optimizer update per array. ``input_grad`` keeps or drops the
first layer's input gradient (a whole GEMM no one needs), as the issue's table reports both.
"""

from __future__ import annotations

import numpy as np


class HandwrittenMLP:
    """ReLU MLP with Adam or SGD, float32, updated in place."""

    def __init__(
        self, initial: list[tuple[np.ndarray, np.ndarray]], optimizer: str, lr: float, input_grad: bool = True
    ):
        self.weights = [w.copy() for w, _ in initial]
        self.biases = [b.copy() for _, b in initial]
        self.optimizer, self.lr, self.input_grad, self.t = optimizer, lr, input_grad, 0
        params = self.weights + self.biases
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[np.float32, np.int64]:
        """One batch: forward, loss, backward, update; returns (summed loss, correct count)."""
        acts = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(self.weights) - 1 else z)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss_sum = np.sum(np.log(total[:, 0]) - shifted[rows, y])
        correct = np.count_nonzero(logits.argmax(axis=1) == y)
        d = exp / total
        d[rows, y] -= 1.0
        d /= len(y)
        grads_w, grads_b = [], []
        for i in range(len(self.weights) - 1, -1, -1):
            grads_w.append(acts[i].T @ d)
            grads_b.append(d.sum(axis=0))
            if i > 0 or self.input_grad:
                d = d @ self.weights[i].T
                if i > 0:
                    d *= acts[i] > 0
        self._update(grads_w[::-1] + grads_b[::-1])
        return loss_sum, correct

    def _update(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        params = self.weights + self.biases
        if self.optimizer == "sgd":
            for p, g in zip(params, grads, strict=True):
                p -= self.lr * g
            return
        b1, b2, eps = 0.9, 0.999, 1e-8
        step = self.lr / (1 - b1**self.t)
        root_c2 = (1 - b2**self.t) ** 0.5
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= step * m / (np.sqrt(v) / root_c2 + eps)
