"""A character-level GPT in xpnn: token and position embeddings, pre-LayerNorm blocks of causal
multi-head attention and a GELU MLP of width 4x, a final LayerNorm and a linear head tied to
the token embedding (GPT-2's shape, nanoGPT's initial weights). ``char_lm.py`` trains it;
``benchmarks/char_lm.py`` times it against the same model in PyTorch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import xpnn
from xpnn import backend
from xpnn import functional as F

Array = Any


class Block(xpnn.Module):
    """``x + attn(ln1(x))``, then ``x + proj(gelu(fc(ln2(x))))``."""

    def __init__(self, width: int, heads: int, gelu: str = "tanh") -> None:
        self.ln1 = xpnn.LayerNorm(width)
        self.attn = xpnn.MultiHeadAttention(width, heads, causal=True)
        self.ln2 = xpnn.LayerNorm(width)
        self.fc = xpnn.Dense(width, 4 * width)
        self.act = xpnn.GELU(gelu)
        self.proj = xpnn.Dense(4 * width, width)

    def forward(self, x: xpnn.Tensor) -> xpnn.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(self.act(self.fc(self.ln2(x))))


class GPT(xpnn.Module):
    """``ids (batch, time) -> logits (batch, time, vocab_size)`` for ``time <= context``."""

    def __init__(self, vocab_size: int, *, layers: int = 4, heads: int = 4, width: int = 128,
                 context: int = 64, gelu: str = "tanh", seed: int = 0) -> None:  # fmt: skip
        self.sizes = {"vocab_size": vocab_size, "layers": layers, "heads": heads, "width": width,
                       "context": context, "gelu": gelu}  # fmt: skip
        self.tok = xpnn.Embedding(vocab_size, width)
        self.pos = xpnn.Embedding(context, width)
        self.blocks = [Block(width, heads, gelu) for _ in range(layers)]
        self.ln = xpnn.LayerNorm(width)
        self.reset_parameters(backend.host_rng(seed))

    def reset_parameters(self, rng: Any) -> None:
        """nanoGPT's initial weights: every matrix from N(0, 0.02), the two projections that
        end a residual branch from N(0, 0.02 / sqrt(2 * layers)); biases 0, LayerNorms 1 and 0."""
        residual_std = 0.02 / math.sqrt(2 * len(self.blocks))
        for name, module in self.named_modules():
            if isinstance(module, xpnn.LayerNorm):
                module.reset_parameters(rng)
            elif isinstance(module, xpnn.Dense | xpnn.Embedding):
                std = residual_std if name.endswith(("attn.out", "proj")) else 0.02
                weight = module.weight
                weight.value = backend.move_like(
                    std * rng.standard_normal(weight.shape, np.float32), weight.value
                )
                if getattr(module, "bias", None) is not None:
                    module.bias.value = backend.move_like(
                        np.zeros(module.bias.shape, np.float32), weight.value
                    )
        self.zero_grad()

    def forward(self, ids: Any) -> xpnn.Tensor:
        batch, time = ids.shape
        x = self.tok(ids) + self.pos.weight[:time, :]
        for block in self.blocks:
            x = block(x)
        h = self.ln(x).reshape(batch * time, -1)
        logits = h @ self.tok.weight.T  # the head: the token embedding, tied
        return logits.reshape(batch, time, -1)

    def config(self) -> dict[str, Any]:
        """The constructor's sizes (saved in checkpoints: ``GPT(**config)`` rebuilds it)."""
        return dict(self.sizes)

    def loss(self, ids: Any, targets: Any) -> xpnn.Tensor:
        """The mean cross-entropy (nats per character) of the next-symbol predictions."""
        logits = self(ids)
        vocab = logits.shape[-1]
        labels = backend.namespace(targets).reshape(targets, (-1,))
        return F.cross_entropy(logits.reshape(-1, vocab), labels)


def generate(
    model: GPT, prompt: list[int], length: int, *, temperature: float = 1.0, seed: int = 0
) -> list[int]:
    """``length`` ids sampled one at a time after ``prompt`` from ``softmax(logits / temperature)``
    of the last ``context`` ids (``temperature`` 0: the most likely id each time)."""
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    like = model.tok.weight.value
    target = backend.Backend(backend.backend_name(like), backend.namespace(like), backend.device_of(like))
    model.eval()
    with xpnn.no_grad():
        for _ in range(length):
            window = np.asarray(ids[-model.sizes["context"] :], dtype=np.int64)[None, :]
            logits = backend.to_host(model(backend.from_host(window, target)).value)[0, -1].astype(np.float64)
            if temperature <= 0.0:
                ids.append(int(np.argmax(logits)))
                continue
            z = logits / temperature
            p = np.exp(z - z.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return ids[len(prompt) :]
