"""The ResNet of ``examples/fashion_mnist.py --model resnet`` in PyTorch, trained by the same recipe.

Same architecture (stem conv 16 + BatchNorm + ReLU, basic blocks 16, 16->32 and 32->64 with
stride-2 1x1 projections, global average pooling, Dense 10), same data split (the first 54,000
training images; the last 6,000 are the validation set), AdamW with torch's OneCycleLR peaking
at ``--lr`` (3e-3, the example's), cross-entropy with ``--label-smoothing`` (0.1, the example's),
batch 128, 15 epochs, no augmentation. ``--init glorot`` draws the convolutions and the head
from Glorot-uniform, as xpnn's Conv2D and Dense do; ``--init torch`` keeps torch's defaults.
Prints validation and test accuracy after each epoch: the reference the example's accuracy is
compared with (README).

    python benchmarks/resnet_torch.py --init torch --seed 0
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import xpnn

TRAIN = 54_000  # the example's validation_split=0.1 holds out the last 6,000


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def resnet(init: str) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16), Block(16, 32, 2), Block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip
    if init == "glorot":
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return net


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        hits = sum(
            int((net(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(x), 1000)
        )
    return hits / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--init", choices=["torch", "glorot"], default="torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3, help="OneCycleLR's peak (the example's)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="the loss's (the example's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    (x, y), (x_test, y_test) = xpnn.load_fashion_mnist()

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a.reshape(-1, 1, 28, 28), dtype=torch.float32) / 255

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a.astype(np.int64))

    x_train, y_train, x_val, y_val = (
        images(x[:TRAIN]),
        labels(y[:TRAIN]),
        images(x[TRAIN:]),
        labels(y[TRAIN:]),
    )
    x_test_t, y_test_t = images(x_test), labels(y_test)
    net = resnet(args.init)
    batch, steps = 128, math.ceil(TRAIN / 128) * args.epochs
    optimizer = torch.optim.AdamW(net.parameters(), args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps)
    order = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        net.train()
        perm = torch.randperm(TRAIN, generator=order)
        for i in range(0, TRAIN, batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx], label_smoothing=args.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - start
        print(f"epoch {epoch + 1}: {seconds:.1f} s, val accuracy {accuracy(net, x_val, y_val):.4f}, "
              f"test accuracy {accuracy(net, x_test_t, y_test_t):.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
