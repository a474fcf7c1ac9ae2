"""The three models of issue 26 (the showcase's MLP and CNN, a small residual network written
as an xpnn.Module), their torch twins (same architecture, same attribute names), and a batch
of Fashion-MNIST test images (seeded noise where the data set is not installed)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

import xpnn
from tests.examples.loading import load_example
from xpnn import functional as F

MODELS = ("mlp", "cnn", "resnet")


class Block(xpnn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (He et al. 2016's basic block)."""

    def __init__(self, channels: int) -> None:
        self.conv1 = xpnn.Conv2D(channels, channels, 3, padding=1, bias=False)
        self.bn1 = xpnn.BatchNorm(channels)
        self.conv2 = xpnn.Conv2D(channels, channels, 3, padding=1, bias=False)
        self.bn2 = xpnn.BatchNorm(channels)

    def forward(self, x: Any) -> Any:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(h)))


class ResNet(xpnn.Module):
    """A stem, two residual blocks, global average pooling and a Dense head (10 classes)."""

    def __init__(self, channels: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.stem = xpnn.Conv2D(1, channels, 3, padding=1)
        self.bn = xpnn.BatchNorm(channels)
        self.pool = xpnn.MaxPool2D(2)
        self.blocks = [Block(channels), Block(channels)]
        self.head_pool = xpnn.GlobalAvgPool2D()
        self.head = xpnn.Dense(channels, 10)
        self.reset_parameters(rng)

    def forward(self, x: Any) -> Any:
        h = self.pool(F.relu(self.bn(self.stem(x))))
        for block in self.blocks:
            h = block(h)
        return self.head(self.head_pool(h))


def build(kind: str, seed: int = 0) -> Any:
    """A model of ``kind`` with seeded weights and BatchNorm statistics other than 0 and 1 (so
    a mapping that forgets them shows)."""
    model = ResNet(seed=seed) if kind == "resnet" else load_example("fashion_mnist").build_model(kind, seed)
    rng = np.random.default_rng(seed + 1)
    for _, module in model.named_modules():
        if isinstance(module, xpnn.BatchNorm):
            n = module.num_features
            module.running_mean = rng.normal(0, 0.2, n).astype(np.float32)
            module.running_var = rng.uniform(0.5, 2.0, n).astype(np.float32)
            module.weight.value = rng.uniform(0.5, 1.5, n).astype(np.float32)
            module.bias.value = rng.normal(0, 0.1, n).astype(np.float32)
            module.num_batches_tracked = int(rng.integers(1, 1000))
    return model


@functools.cache
def _test_images() -> np.ndarray:
    """The first 256 test images (uint8 rows), or seeded noise where the data set is absent."""
    try:
        _, (x, _) = xpnn.load_fashion_mnist(download_missing=False)
        return x[:256].reshape(256, 784)
    except xpnn.XpnnError:
        return np.random.default_rng(5).integers(0, 256, (256, 784), dtype=np.uint8)


def images(n: int = 64, *, flat: bool = False) -> np.ndarray:
    """``n`` (<= 256) Fashion-MNIST test images as float32 in [0, 1], NCHW (or flat rows)."""
    batch = _test_images()[:n].astype(np.float32) / 255.0
    return batch if flat else batch.reshape(n, 1, 28, 28)


def inputs_for(kind: str, n: int = 64) -> np.ndarray:
    return images(n, flat=kind == "mlp")


def torch_twin(kind: str) -> Any:
    """The torch module of the same architecture, with torch's own initial weights."""
    import torch
    from torch import nn

    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                             nn.Dropout(0.2), nn.Linear(128, 10))  # fmt: skip
    if kind == "cnn":
        layers: list[Any] = []
        for c_in, c_out in ((1, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]  # fmt: skip
        return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                             nn.Dropout(0.3), nn.Linear(128, 10))  # fmt: skip

    class TorchBlock(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(h)))

    class TorchResNet(nn.Module):
        def __init__(self, c: int = 8) -> None:
            super().__init__()
            self.stem, self.bn, self.pool = nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.MaxPool2d(2)
            self.blocks = nn.ModuleList([TorchBlock(c), TorchBlock(c)])
            self.head = nn.Linear(c, 10)

        def forward(self, x: Any) -> Any:
            h = self.pool(torch.relu(self.bn(self.stem(x))))
            for block in self.blocks:
                h = block(h)
            return self.head(h.mean(dim=(2, 3)))

    return TorchResNet()


def torch_logits(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def assert_same_logits(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Equal to ``rtol`` in the 2-norm over the batch (float32 sums in another order differ by
    a few ulps of their terms, not of a logit that happens to lie near zero: a 3136-term dot
    product's rounding is ~1e-6 of the terms, so elementwise rtol 1e-6 would test luck), and
    the same predicted class for every image."""
    error = float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))
    assert error <= rtol, f"relative error {error:.3g} in the 2-norm, expected <= {rtol}"
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
