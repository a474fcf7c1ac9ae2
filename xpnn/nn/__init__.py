"""Models: Parameter, Module, initializers, layers, activations, losses, metrics, Sequential
and its saving. Every numeric line lives in :mod:`xpnn.functional`; this package holds the
parameters, the checks and the tree. ``xpnn.Module`` / ``xpnn.Sequential`` add ``fit`` and
friends on top (:mod:`xpnn.train.model`)."""

from xpnn.nn.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnn.nn.attention import MultiHeadAttention
from xpnn.nn.conv import Conv2D
from xpnn.nn.dense import Dense
from xpnn.nn.layers import Dropout, Flatten, Layer
from xpnn.nn.losses import MAE, MSE, BinaryCrossEntropy, CategoricalCrossEntropy, Loss, SoftmaxCrossEntropy
from xpnn.nn.module import Module
from xpnn.nn.normalization import BatchNorm
from xpnn.nn.parameter import Parameter
from xpnn.nn.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from xpnn.nn.sequential import Sequential
from xpnn.nn.transformer import GELU, Embedding, LayerNorm

__all__ = [
    "MAE",
    "MSE",
    "AvgPool2D",
    "BatchNorm",
    "BinaryCrossEntropy",
    "CategoricalCrossEntropy",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GELU",
    "GlobalAvgPool2D",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Loss",
    "MaxPool2D",
    "Module",
    "MultiHeadAttention",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
]
