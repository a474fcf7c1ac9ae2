"""Reverse-mode automatic differentiation over any Array API namespace (define-by-run).

:class:`Tensor` wraps an array and records what is computed from it; ``loss.backward()``
walks the recorded nodes once, newest first, and adds the gradients into the leaves'
``.grad``. :class:`Function` is how a hand-written backward joins the tape (every built-in
layer and loss is one); the recording namespace makes plain Array API code differentiable.
"""

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node, enable_grad, is_grad_enabled, no_grad
from xpnn.autograd.tensor import Tensor, constant

__all__ = ["Function", "Node", "Tensor", "constant", "enable_grad", "is_grad_enabled", "no_grad"]
