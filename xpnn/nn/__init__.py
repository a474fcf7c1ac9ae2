"""Models: Parameter, initializers, layers, activations, losses, metrics, Sequential and its
saving. Every numeric line uses the Array API namespace of the arrays at hand."""

from xpnn.nn.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.nn.layers import Dense, Dropout, Flatten, Layer
from xpnn.nn.losses import MAE, MSE, BinaryCrossEntropy, CategoricalCrossEntropy, Loss, SoftmaxCrossEntropy
from xpnn.nn.parameter import Parameter
from xpnn.nn.sequential import Sequential, load, save

__all__ = [
    "MAE",
    "MSE",
    "BinaryCrossEntropy",
    "CategoricalCrossEntropy",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "Loss",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "load",
    "save",
]
