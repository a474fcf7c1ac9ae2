"""Data: the IDX format, Fashion-MNIST (search path, download), the device loader, the NNFS
book's synthetic data sets, and text corpora with their window loader. Host file I/O uses
NumPy; the loaders put data on the device."""

from xpnn.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from xpnn.data.idx import read_idx, write_idx
from xpnn.data.loader import DataLoader
from xpnn.data.synthetic import sine_data, spiral_data, vertical_data
from xpnn.data.text import TextCorpus, TextLoader, Vocabulary, load_text

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DataLoader",
    "TextCorpus",
    "TextLoader",
    "Vocabulary",
    "load_fashion_mnist",
    "load_text",
    "read_idx",
    "sine_data",
    "spiral_data",
    "vertical_data",
    "write_idx",
]
