"""Optimizers: the base class (loop, state, groups, hooks), the update equations, saved state,
flat buffers, gradient clipping, learning-rate schedules and parameter groups (weight decay
on the matrices only: :func:`decay_groups`)."""

from xpnn.optim import schedules
from xpnn.optim.base import Optimizer
from xpnn.optim.groups import decay_groups
from xpnn.optim.optimizers import SGD, AdaGrad, Adam, AdamW, RMSProp

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp", "decay_groups", "schedules"]
