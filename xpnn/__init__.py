"""xpnn: a small, fast neural-network framework written once against the Array API standard.

The same layers, losses and optimizers run on NumPy, CuPy, PyTorch tensors,
array-api-strict and JAX.
"""

from xpnn import backend, datasets, nnfs, schedules, testing
from xpnn.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.callbacks import EarlyStopping, ModelCheckpoint
from xpnn.checkpoint import load
from xpnn.data import DataLoader, load_fashion_mnist
from xpnn.errors import (
    BackendMismatchError,
    BackendUnavailableError,
    CheckpointError,
    DataFormatError,
    DTypeError,
    LabelError,
    NonFiniteLossError,
    OptimizerError,
    ShapeError,
    XpnnError,
)
from xpnn.layers import Dense, Dropout, Flatten, Layer
from xpnn.losses import MAE, MSE, BinaryCrossEntropy, CategoricalCrossEntropy, Loss, SoftmaxCrossEntropy
from xpnn.model import Sequential
from xpnn.optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp
from xpnn.parameter import Parameter
from xpnn.training import History

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSProp",
    "schedules",
    "DataLoader",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "load",
    "load_fashion_mnist",
    "MAE",
    "MSE",
    "BackendMismatchError",
    "BackendUnavailableError",
    "BinaryCrossEntropy",
    "CategoricalCrossEntropy",
    "CheckpointError",
    "DTypeError",
    "DataFormatError",
    "Dense",
    "Dropout",
    "Flatten",
    "LabelError",
    "Layer",
    "LeakyReLU",
    "Loss",
    "NonFiniteLossError",
    "OptimizerError",
    "Parameter",
    "ReLU",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "XpnnError",
    "__version__",
    "backend",
    "datasets",
    "nnfs",
    "testing",
]
