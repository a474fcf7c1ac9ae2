"""The optimizers, in order of increasing complexity: SGD, AdaGrad, RMSProp, Adam, AdamW.

Each class is its update equation and nothing else; the loop, state, step count, learning
rate schedule, clipping and saving live in :class:`~xpnn.optim.base.Optimizer`. Beside the
plain ``update``, ``update_fast`` hands the same equation's scalars to its fast form in
:mod:`xpnn.kernels.optimizers` (NumPy in place, numba loops), found there by name. The
equations are torch.optim's (same keyword, same number, 50 steps to rtol 1e-10 in the tests).
In the pseudo-code ``lr_t`` is the rate of this step: the schedule at ``t`` times
``1 / (1 + decay * t)``, ``t`` counting steps from 0; ``k`` is the parameter's own step count
from 1. Every array expression is elementwise, so a flat buffer of all parameters works too.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.backend import assign, namespace
from xpnn.errors import OptimizerError
from xpnn.kernels import optimizers as fast
from xpnn.optim import hyper
from xpnn.optim.base import Optimizer
from xpnn.optim.hyper import Hyper

Array = Any
Group = dict[str, Any]
State = dict[str, Any]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    ``momentum_style="torch"`` (torch.optim.SGD; Sutskever et al. 2013)::

        g = grad + weight_decay * w
        b = g at k = 1, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        w = w - lr_t * g

    ``momentum_style="nnfs"`` (NNFS book ch. 10, Keras, Chainer's MomentumSGD)::

        v = momentum * v - lr_t * g
        w = w + (momentum * v - lr_t * g if nesterov else v)

    The two agree while ``lr_t`` is constant and differ once it decays (torch scales the
    whole velocity by the current rate, the book only the newest gradient).
    """

    hyperparameters: tuple[Hyper, ...] = (
        hyper.MOMENTUM,
        hyper.DAMPENING,
        hyper.NESTEROV,
        hyper.WEIGHT_DECAY,
        hyper.DECAY,
        hyper.MOMENTUM_STYLE,
    )

    def check_group(self, group: Group) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise OptimizerError(
                f"SGD: nesterov needs momentum > 0 and dampening = 0, "
                f"got momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )
        if group["momentum_style"] == "nnfs" and group["dampening"] != 0:
            raise OptimizerError(
                f"SGD: dampening has no meaning with momentum_style='nnfs', got {group['dampening']!r}"
            )

    def state_names(self, group: Group) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    def update(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> Array:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay:
            grad = grad + weight_decay * value
        if not momentum:
            return value - lr * grad
        buf = state["momentum_buffer"]
        if group["momentum_style"] == "nnfs":
            velocity = state["momentum_buffer"] = assign(buf, momentum * buf - lr * grad)
            return value + (momentum * velocity - lr * grad if group["nesterov"] else velocity)
        if state["step"] == 1:  # torch starts the buffer at the first gradient, not at zero
            buf = assign(buf, grad)
        else:
            buf = assign(buf, momentum * buf + (1.0 - group["dampening"]) * grad)
        state["momentum_buffer"] = buf
        return value - lr * (grad + momentum * buf if group["nesterov"] else buf)

    def update_fast(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> bool:
        """Plain SGD, and torch-style momentum after the first step (not Nesterov)."""
        momentum = group["momentum"]
        if momentum and (group["momentum_style"] != "torch" or group["nesterov"] or state["step"] == 1):
            return False
        buf = state["momentum_buffer"] if momentum else None
        if not fast.applies(value, grad, *([] if buf is None else [buf])):
            return False
        grad = _coupled_decay(value, grad, group)
        return fast.sgd(value, grad, lr, buf, momentum=momentum, dampening=group["dampening"])


class AdaGrad(Optimizer):
    """Adaptive gradient (Duchi, Hazan & Singer 2011; NNFS book ch. 10; torch.optim.Adagrad)::

        g = grad + weight_decay * w
        s = s + g * g                      (s starts at initial_accumulator_value)
        w = w - lr_t * g / (sqrt(s) + eps)

    ``decay`` equals torch's ``lr_decay`` (both divide by ``1 + decay * t``, t from 0);
    ``eps`` defaults to the book's and Keras' 1e-7 (torch: 1e-10).
    """

    nonnegative_state = ("sum",)  # a square root of them is taken

    hyperparameters: tuple[Hyper, ...] = (
        hyper.DECAY,
        hyper.EPS,
        hyper.INITIAL_ACCUMULATOR_VALUE,
        hyper.WEIGHT_DECAY,
    )

    def state_names(self, group: Group) -> tuple[str, ...]:
        return ("sum",)

    def init_state(self, value: Array, group: Group) -> State:
        return {"sum": namespace(value).full_like(value, group["initial_accumulator_value"])}

    def update(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> Array:
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * value
        total = state["sum"] = assign(state["sum"], state["sum"] + grad * grad)
        return value - lr * (grad / (namespace(value).sqrt(total) + group["eps"]))

    def update_fast(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> bool:
        if not fast.applies(value, grad, state["sum"]):
            return False
        return fast.rms(value, _coupled_decay(value, grad, group), state["sum"], lr=lr, eps=group["eps"])


class RMSProp(Optimizer):
    """Root-mean-square propagation (Hinton, Coursera lecture 6e; NNFS book ch. 10; torch.optim.RMSprop)::

        g = grad + weight_decay * w
        a = rho * a + (1 - rho) * g * g
        centered: m = rho * m + (1 - rho) * g;  d = sqrt(a - m * m) + eps,  else d = sqrt(a) + eps
        momentum > 0: b = momentum * b + g / d;  w = w - lr_t * b,  else w = w - lr_t * g / d

    ``rho`` is torch's ``alpha``. Defaults are the book's and Keras' (rho 0.9, eps 1e-7).
    """

    nonnegative_state = ("square_avg",)  # a square root of them is taken

    hyperparameters: tuple[Hyper, ...] = (
        hyper.RHO,
        hyper.EPS,
        hyper.MOMENTUM,
        hyper.CENTERED,
        hyper.WEIGHT_DECAY,
        hyper.DECAY,
    )

    def state_names(self, group: Group) -> tuple[str, ...]:
        names: tuple[str, ...] = ("square_avg",)
        names += ("grad_avg",) if group["centered"] else ()
        return names + (("momentum_buffer",) if group["momentum"] else ())

    def update(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> Array:
        xp, rho = namespace(value), group["rho"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * value
        square = state["square_avg"] = assign(
            state["square_avg"], rho * state["square_avg"] + (1.0 - rho) * (grad * grad)
        )
        if group["centered"]:
            mean = state["grad_avg"] = assign(state["grad_avg"], rho * state["grad_avg"] + (1.0 - rho) * grad)
            denom = xp.sqrt(square - mean * mean) + group["eps"]
        else:
            denom = xp.sqrt(square) + group["eps"]
        if not group["momentum"]:
            return value - lr * (grad / denom)
        buf = state["momentum_buffer"]
        buf = state["momentum_buffer"] = assign(buf, group["momentum"] * buf + grad / denom)
        return value - lr * buf

    def update_fast(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> bool:
        """Plain RMSProp (neither centered nor with momentum)."""
        if group["centered"] or group["momentum"] or not fast.applies(value, grad, state["square_avg"]):
            return False
        grad = _coupled_decay(value, grad, group)
        return fast.rms(value, grad, state["square_avg"], lr=lr, eps=group["eps"], rho=group["rho"])


class Adam(Optimizer):
    """Adaptive moments (Kingma & Ba 2015; AMSGrad: Reddi et al. 2018; NNFS book ch. 10)::

        g = grad + weight_decay * w        (AdamW instead: w = w * (1 - lr_t * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        amsgrad: v_max = max(v_max, v), used in place of v below (torch: uncorrected max)
        w = w - m * (lr_t / (1 - beta1**k) * c / (sqrt(v) + eps * c)),  c = sqrt(1 - beta2**k)

    That is the book's ``m_hat / (sqrt(v_hat) + eps)`` and torch.optim.Adam's update with the
    bias corrections folded into two scalars: five array operations after the moments
    instead of six (equal to torch's arrangement up to rounding).
    """

    nonnegative_state = ("exp_avg_sq", "max_exp_avg_sq")  # a square root of them is taken

    decoupled = False
    lr_default = 1e-3
    hyperparameters: tuple[Hyper, ...] = (
        hyper.BETAS,
        hyper.ADAM_EPS,
        hyper.WEIGHT_DECAY,
        hyper.AMSGRAD,
        hyper.DECAY,
    )

    def state_names(self, group: Group) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def scalars(self, group: Group, step: int, lr: float) -> tuple[float, float, float]:
        """``(shrink, step_size, bias2_root)``: AdamW's decay factor ``1 - lr_t * weight_decay``
        (1 for Adam), ``lr_t / (1 - beta1**k)`` and ``sqrt(1 - beta2**k)``; computed once a step,
        for the plain equation and its fast form alike."""
        (beta1, beta2), weight_decay = group["betas"], group["weight_decay"]
        shrink = 1.0 - lr * weight_decay if weight_decay and self.decoupled else 1.0
        return shrink, lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step)

    def update(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> Array:
        (beta1, beta2), weight_decay = group["betas"], group["weight_decay"]
        shrink, step_size, bias2_root = self.scalars(group, state["step"], lr)
        if weight_decay and not self.decoupled:
            grad = grad + weight_decay * value
        if shrink != 1.0:
            value = value * shrink
        m = state["exp_avg"] = assign(state["exp_avg"], beta1 * state["exp_avg"] + (1.0 - beta1) * grad)
        v = state["exp_avg_sq"] = assign(
            state["exp_avg_sq"], beta2 * state["exp_avg_sq"] + (1.0 - beta2) * (grad * grad)
        )
        xp = namespace(value)
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = assign(
                state["max_exp_avg_sq"], xp.maximum(state["max_exp_avg_sq"], v)
            )
        denom = xp.sqrt(v) + group["eps"] * bias2_root
        return value - m * ((step_size * bias2_root) / denom)

    def update_fast(self, value: Array, grad: Array, state: State, group: Group, lr: float) -> bool:
        """Adam / AdamW without AMSGrad."""
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if group["amsgrad"] or not fast.applies(value, grad, m, v):
            return False
        shrink, step_size, bias2_root = self.scalars(group, state["step"], lr)
        grad = grad if self.decoupled else _coupled_decay(value, grad, group)
        return fast.adam(value, grad, m, v, betas=group["betas"], step_size=step_size, bias2_root=bias2_root,
                         eps=group["eps"], shrink=shrink)  # fmt: skip


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019; torch.optim.AdamW)::

        w = w * (1 - lr_t * weight_decay), then Adam's update with g = grad

    ``weight_decay`` defaults to 1e-2, as torch's.
    """

    decoupled = True
    hyperparameters = hyper.with_default(Adam.hyperparameters, "weight_decay", 1e-2)


def _coupled_decay(value: Array, grad: Array, group: Group) -> Array:
    """``grad + weight_decay * value`` (L2 added to the gradient), or ``grad`` without decay."""
    return grad + group["weight_decay"] * value if group["weight_decay"] else grad


__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "Optimizer", "RMSProp"]
