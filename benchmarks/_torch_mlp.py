"""The PyTorch peer: ``nn.Sequential`` of ``Linear`` and ``ReLU``, ``CrossEntropyLoss`` and
``torch.optim``, the loop a PyTorch user writes, from given initial weights."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

Epoch = Callable[[np.ndarray], tuple[float, float]]


def torch_epoch(
    initial: list[tuple[np.ndarray, np.ndarray]],
    device: str,
    x: np.ndarray,
    y: np.ndarray,
    spec: tuple,
    flush: bool = False,
) -> Epoch:
    """PyTorch's own loop; ``flush``: with ``torch.set_flush_denormal(True)`` during the epoch,
    the setting xpnn's optimizer step uses (see xpnn/backend/denormals.py)."""
    widths, batch, optimizer, lr = spec
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(widths) - 2 else [])
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
        for linear, (w, b) in zip(linears, initial, strict=True):
            linear.weight.copy_(torch.from_numpy(w.T))
            linear.bias.copy_(torch.from_numpy(b))
    model = model.to(device)
    params = model.parameters()
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    images, labels = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def epoch(order: np.ndarray) -> tuple[float, float]:
        torch.set_flush_denormal(flush)
        try:
            return run(order)
        finally:
            torch.set_flush_denormal(False)

    def run(order: np.ndarray) -> tuple[float, float]:
        index = torch.from_numpy(order).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, len(order) - batch + 1, batch):
            idx = index[start : start + batch]
            xb, yb = images.index_select(0, idx), labels.index_select(0, idx)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss_sum += loss.detach() * batch
            correct += (logits.detach().argmax(dim=1) == yb).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        n = (len(order) // batch) * batch
        return float(loss_sum) / n, float(correct) / n

    return epoch
