"""Data: the IDX format, Fashion-MNIST (search path, download), the device loader, and the
NNFS book's synthetic data sets. Host file I/O uses NumPy; the loader puts data on the device."""

from xpnn.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from xpnn.data.idx import read_idx, write_idx
from xpnn.data.loader import DataLoader
from xpnn.data.synthetic import sine_data, spiral_data, vertical_data

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DataLoader",
    "load_fashion_mnist",
    "read_idx",
    "sine_data",
    "spiral_data",
    "vertical_data",
    "write_idx",
]
