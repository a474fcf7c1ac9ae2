"""The NNFS book's classes ("Neural Networks from Scratch in Python", Kinsley & Kukiela), over xpnn.

The book's names, constructor signatures, defaults, attributes and calling style, as a thin
layer over xpnn's core: ``Layer_Dense`` is an :class:`xpnn.Dense` (``init="nnfs"``), the
activations and losses are xpnn's, and each book optimizer drives ONE core optimizer
(:class:`xpnn.SGD`, :class:`xpnn.AdaGrad`, :class:`xpnn.RMSProp`, :class:`xpnn.Adam`). No
equation lives here twice. The book's loop runs unchanged on any backend: give it arrays of
that backend (``np.argmax`` / ``np.mean`` for the accuracy replaced by the namespace's own).

Differences from the book, all deliberate:

- A layer's weights follow its input at the first forward (after construction or after its
  ``weights`` / ``biases`` are assigned): moved to the input's backend, device and floating
  dtype, once. Later mismatches raise xpnn's ``BackendMismatchError`` / ``DTypeError``.
- The losses return the book's numbers: ``Loss_CategoricalCrossentropy.forward`` the
  per-sample losses of probabilities clipped to [1e-7, 1 - 1e-7], ``calculate`` their mean,
  and the fused softmax + loss that same clipped mean (xpnn's core ``SoftmaxCrossEntropy``
  stays exact). Labels changed in place are seen; their values are checked (one host sync)
  the first time an array is given, afterwards on the device (out of range: NaN, no sync).
- Softmax backward is the Jacobian-vector product, not the per-sample Jacobian matrix:
  the same numbers, O(classes) instead of O(classes**2) per sample.

Modules: ``layers`` (Layer_Dense and the activations), ``losses`` (the losses and the fused
softmax + cross-entropy), ``optimizers`` (the chapter-10 optimizers).
"""

from xpnn.nnfs.layers import Activation_ReLU, Activation_Softmax, Layer_Dense
from xpnn.nnfs.losses import (
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Loss,
    Loss_CategoricalCrossentropy,
)
from xpnn.nnfs.optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD

__all__ = [
    "Activation_ReLU",
    "Activation_Softmax",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Layer_Dense",
    "Loss",
    "Loss_CategoricalCrossentropy",
    "Optimizer_Adagrad",
    "Optimizer_Adam",
    "Optimizer_RMSprop",
    "Optimizer_SGD",
]
