"""The NNFS book's optimizers (chapter 10): each drives ONE core optimizer (:class:`xpnn.SGD`,
:class:`xpnn.AdaGrad`, :class:`xpnn.RMSProp`, :class:`xpnn.Adam`) in the book's calling
style, ``pre_update_params`` / ``update_params(layer)`` / ``post_update_params``.
"""

from __future__ import annotations

from typing import Any

from xpnn.errors import OptimizerError
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter
from xpnn.nnfs.layers import Layer_Dense
from xpnn.optim.base import Optimizer
from xpnn.optim.optimizers import SGD, AdaGrad, Adam, RMSProp


class _BookOptimizer:
    """The book's optimizer calling style over ONE core optimizer (``self.core``).

    ``update_params(layer)`` registers the layer's parameters with the core optimizer the
    first time it sees the layer, then runs a core step restricted to that layer (the other
    parameters' gradients are set aside for it) at step count ``t`` = the ``iterations`` of
    the last ``pre_update_params``, so the learning rate is the book's
    ``current_learning_rate``. State (momentum, caches) is the core's, per parameter; Adam's
    bias correction counts the parameter's own updates, which is the book's
    ``iterations + 1`` when every layer is updated once per iteration, as its loop does.
    """

    def __init__(self, learning_rate: float, decay: float) -> None:
        self.learning_rate = float(learning_rate)
        self.current_learning_rate = self.learning_rate
        self.decay = float(decay)
        self.iterations = 0
        self.core: Optimizer | None = None
        self._layers: dict[int, tuple[Any, list[Parameter]]] = {}
        self._t = 0

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        raise NotImplementedError

    def pre_update_params(self) -> None:
        """Before the updates of an iteration: ``current_learning_rate = lr / (1 + decay * iterations)``."""
        self._t = self.iterations
        if self.core is not None:
            self.current_learning_rate = self.core.lr_at(self._t)

    def update_params(self, layer: Any) -> None:
        """One update of ``layer``'s weights and biases (a ``Layer_Dense`` or an ``xpnn.Dense``)."""
        params = self._parameters_of(layer)
        core: Any = self.core
        others = [p for p in core.parameters() if all(p is not q for q in params)]
        set_aside = [p.grad for p in others]
        for p in others:
            p.grad = None
        core.t = self._t
        try:
            core.step()
        finally:
            for p, grad in zip(others, set_aside, strict=True):
                p.grad = grad

    def post_update_params(self) -> None:
        """After the updates of an iteration: ``iterations += 1``."""
        self.iterations += 1

    def _parameters_of(self, layer: Any) -> list[Parameter]:
        """The layer's core Parameters (registered with the core optimizer at first sight)."""
        who = f"{type(self).__name__}.update_params"
        known = self._layers.get(id(layer))
        if known is None or known[0] is not layer:
            dense = layer.dense if isinstance(layer, Layer_Dense) else layer
            if not isinstance(dense, Layer) or not dense.parameters():
                raise OptimizerError(
                    f"{who}: expected a layer with weights and dweights (a Layer_Dense), "
                    f"got {type(layer).__name__}, which has none"
                )
            params = dense.parameters()
            if self.core is None:
                self.core = self._make_core(params)
            else:
                self.core.add_param_group({"params": params})
            known = self._layers[id(layer)] = (layer, params)
        for p in known[1]:
            if p.grad is None:
                raise OptimizerError(
                    f"{who}: {type(layer).__name__} has no gradient for its {p.name} "
                    "(dweights / dbiases is None): call backward before update_params"
                )
        return known[1]


class Optimizer_SGD(_BookOptimizer):
    """The book's SGD: ``v = momentum * v - lr_t * dw; w += v`` (plain ``w -= lr_t * dw`` without
    momentum), ``lr_t = learning_rate / (1 + decay * iterations)``: :class:`xpnn.SGD` with
    ``momentum_style="nnfs"``."""

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, momentum: float = 0.0) -> None:
        super().__init__(learning_rate, decay)
        self.momentum = float(momentum)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        lr, momentum = self.learning_rate, self.momentum
        return SGD(params, lr, momentum=momentum, decay=self.decay, momentum_style="nnfs")


class Optimizer_Adagrad(_BookOptimizer):
    """The book's AdaGrad: ``cache += dw**2; w -= lr_t * dw / (sqrt(cache) + epsilon)``
    (:class:`xpnn.AdaGrad`)."""

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = float(epsilon)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        return AdaGrad(params, self.learning_rate, decay=self.decay, eps=self.epsilon)


class Optimizer_RMSprop(_BookOptimizer):
    """The book's RMSprop: ``cache = rho * cache + (1 - rho) * dw**2;
    w -= lr_t * dw / (sqrt(cache) + epsilon)`` (:class:`xpnn.RMSProp`)."""

    def __init__(
        self, learning_rate: float = 0.001, decay: float = 0.0, epsilon: float = 1e-7, rho: float = 0.9
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.rho = float(epsilon), float(rho)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        return RMSProp(params, self.learning_rate, rho=self.rho, eps=self.epsilon, decay=self.decay)


class Optimizer_Adam(_BookOptimizer):
    """The book's Adam: bias-corrected moments ``m_hat / (sqrt(v_hat) + epsilon)``
    (:class:`xpnn.Adam`; the book's default epsilon is 1e-7)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.beta_1, self.beta_2 = float(epsilon), float(beta_1), float(beta_2)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        betas = (self.beta_1, self.beta_2)
        return Adam(params, self.learning_rate, betas=betas, eps=self.epsilon, decay=self.decay)
