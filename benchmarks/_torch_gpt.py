"""The PyTorch twin of ``examples/gpt.py``: the same GPT in ``torch.nn`` (Linear, LayerNorm,
Embedding, ``scaled_dot_product_attention(is_causal=True)``, GELU), started from an xpnn
GPT's weights (Dense weights transposed into Linear's layout), trained with ``torch.optim.AdamW``
over the same two parameter groups. The benchmark and the equality test both use it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xpnn import backend


class Block(torch.nn.Module):
    def __init__(self, width: int, heads: int, gelu: str) -> None:
        super().__init__()
        self.heads, self.gelu = heads, gelu
        self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.fc, self.proj = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (a.view(b, t, self.heads, c // self.heads).transpose(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, c))
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate=self.gelu))


class TorchGPT(torch.nn.Module):
    def __init__(
        self, vocab_size: int, *, layers: int, heads: int, width: int, context: int, gelu: str
    ) -> None:
        super().__init__()
        self.tok, self.pos = torch.nn.Embedding(vocab_size, width), torch.nn.Embedding(context, width)
        self.blocks = torch.nn.ModuleList([Block(width, heads, gelu) for _ in range(layers)])
        self.ln = torch.nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos.weight[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.T  # the head, tied to the token embedding

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _torch_name(name: str) -> str:
    """An xpnn GPT parameter name as the twin's (``blocks.0.attn.qkv.weight`` ->
    ``blocks.0.qkv.weight``)."""
    return name.replace(".attn.", ".")


def from_xpnn(model: Any, dtype: torch.dtype = torch.float32) -> TorchGPT:
    """The twin of the xpnn GPT ``model``, with its weights (Dense weights transposed)."""
    twin = TorchGPT(**model.config()).to(dtype)
    params = dict(twin.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            value = backend.to_host(p.value)
            target = params[_torch_name(name)]
            if target.ndim == 2 and not name.endswith(("tok.weight", "pos.weight")):
                value = value.T  # Dense (n_in, n_out) -> Linear (n_out, n_in)
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(dtype))
    return twin


def decay_groups(model: TorchGPT, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's groups: 2-D and up decay, the rest does not."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]  # fmt: skip
