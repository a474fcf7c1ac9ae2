"""Optimizers: the base class (loop, state, groups, hooks), the update equations, saved state,
flat buffers, gradient clipping and learning-rate schedules."""

from xpnn.optim import schedules
from xpnn.optim.base import Optimizer
from xpnn.optim.optimizers import SGD, AdaGrad, Adam, AdamW, RMSProp

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp", "schedules"]
