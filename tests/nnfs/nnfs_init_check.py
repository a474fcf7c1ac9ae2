"""Run by test_nnfs.py in a subprocess: ``nnfs.init()`` patches NumPy for the whole process.

Under ``nnfs.init()`` the book's float32 weights and data must be bit-identical to xpnn's.
"""

import nnfs
import numpy as np
from nnfs.datasets import spiral_data as book_spiral

from tests.helpers import nnfs_book as book
from xpnn import nnfs as ours
from xpnn.data.synthetic import spiral_data

nnfs.init()
x_book, y_book = book_spiral(samples=100, classes=3)
layers_book = book.Layer_Dense(2, 64), book.Layer_Dense(64, 3)
nnfs.init()
x, y = spiral_data(samples=100, classes=3)
layers = ours.Layer_Dense(2, 64), ours.Layer_Dense(64, 3)
assert x.dtype == x_book.dtype == np.float32 and np.array_equal(x, x_book) and np.array_equal(y, y_book)
for mine, theirs in zip(layers, layers_book, strict=True):
    assert mine.weights.dtype == theirs.weights.dtype == np.float32, (
        mine.weights.dtype,
        theirs.weights.dtype,
    )
    assert np.array_equal(mine.weights, theirs.weights) and np.array_equal(mine.biases, theirs.biases)
print("ok")
