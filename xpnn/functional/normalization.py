"""Batch normalization over (N, C) or (N, C, H, W), as torch's ``batch_norm``.

Training: per channel, over the batch (and pixels) of ``m`` values, ``mean = sum x / m`` and
the biased ``var = sum (x - mean)**2 / m`` (two passes: finite wherever torch's is);
``xhat = (x - mean) / sqrt(var + eps)``, ``y = weight * xhat + bias``. The running estimates
follow ``r = (1 - f) * r + f * batch`` (the running variance takes the unbiased
``var * m / (m - 1)``). Eval normalizes with the running estimates. Backward (training):
``dx = weight / sqrt(var + eps) * (dy - (T1 + xhat * T2) / m)`` with
``T1 = sum dy``, ``T2 = sum dy * xhat``; ``dbias = T1``, ``dweight = T2``.

Under data-parallel training the statistics are those of the GLOBAL batch: ``[m, S1, S2]``
and ``[T1, T2]`` are each summed over ranks by one ``communicator.allreduce_sum`` call (``T``
weighted by the rank's share of the batch, since each rank's ``dy`` is that of its own batch
mean), so N ranks compute what one process computes on the whole batch. That is why the
global variance comes from the sums ``S1 = sum x``, ``S2 = sum x**2`` (``var = S2 / m -
mean**2``) rather than two passes: sums add across ranks. (In float32 this loses digits when a
channel's mean is large against its spread, and ``x**2`` overflows from |x| > 1.8e19.)

Fast path (``fused``, NumPy, one process, training over (N, C, H, W)):
:mod:`xpnn.kernels.batch_norm`, two numba passes each way around NumPy's own sums, the same bits.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.autograd.tensor import plain
from xpnn.backend import assign, backend_name, namespace, to_host
from xpnn.errors import ShapeError
from xpnn.kernels import batch_norm as batch_norm_kernels

Array = Any


class Running:
    """The running estimates a training call updates (rebound: JAX's arrays are immutable)."""

    __slots__ = ("factor", "mean", "var")

    def __init__(self, mean: Array, var: Array, factor: float) -> None:
        self.mean, self.var, self.factor = mean, var, factor


class BatchNorm(Function):
    name = "batch_norm"

    @staticmethod
    def forward(
        ctx: Node,
        x: Array,
        weight: Array | None = None,
        bias: Array | None = None,
        *,
        training: bool,
        running: Running | None = None,
        eps: float = 1e-5,
        communicator: Any = None,
        fused: bool = True,
    ) -> Array:
        xp = namespace(x)
        channels = x.shape[1]
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, channels) + (1,) * (x.ndim - 2)
        count = local = float(math.prod(x.shape) // channels)
        batch_stats = training or running is None
        fast = None
        if fused and batch_stats and weight is not None and bias is not None and not _global(communicator):
            if training:
                _refuse_one_value(local, x)
            fast = batch_norm_kernels.forward(x, weight, bias, eps)
        if fast is not None:
            y, xhat, mean, var, invstd = fast
            _update_running(running, mean, var, count, training)
            ctx.saved = (xhat, invstd, weight, axes, shape, True, count, local, communicator, fused)
            return y
        centered = None
        if training or running is None:  # batch_stats, spelled out for the type checker
            mean, var, count, centered = _batch_statistics(xp, x, axes, communicator, training, running)
        else:
            mean, var = running.mean, running.var
        invstd = 1.0 / xp.sqrt(var + eps)
        centered = x - xp.reshape(mean, shape) if centered is None else centered
        xhat = centered * xp.reshape(invstd, shape)
        ctx.saved = (
            xhat,
            invstd,
            weight,
            axes,
            shape,
            batch_stats,
            count,
            local,
            communicator,
            fused,
        )
        if weight is None or bias is None:
            return xhat
        return xhat * xp.reshape(weight, shape) + xp.reshape(bias, shape)

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        xhat, invstd, weight, axes, shape, batch_stats, count, local, communicator, fused = ctx.saved
        xp = namespace(g)
        scale = invstd if weight is None else invstd * weight
        needs = ctx.needs
        fast = None
        if fused and batch_stats and not _global(communicator):
            fast = batch_norm_kernels.backward(g, xhat, scale, count)
        if fast is not None:
            dx, dweight, dbias = fast
            return (
                dx if needs[0] else None,
                dweight if len(needs) > 1 and needs[1] else None,
                dbias if len(needs) > 2 and needs[2] else None,
            )
        dbias = xp.sum(g, axis=axes)
        dweight = xp.sum(g * xhat, axis=axes)
        grads = (
            None,
            dweight if len(needs) > 1 and needs[1] else None,
            dbias if len(needs) > 2 and needs[2] else None,
        )
        if not needs[0]:
            return grads
        if not batch_stats:
            return (g * xp.reshape(scale, shape), *grads[1:])
        t1, t2, m = dbias, dweight, count
        if _global(communicator):
            # each rank's g is the gradient of ITS batch mean: weighted by w = m_local / m it is
            # the global mean's, whose sums add over ranks; dx returns to the local scale (/ w),
            # where the optimizer's share-weighted gradient average expects it
            share = local / count
            totals = communicator.allreduce_sum(xp.stack([t1 * share, t2 * share]))
            t1, t2, m = totals[0, ...], totals[1, ...], local
        t1, t2 = xp.reshape(t1 / m, shape), xp.reshape(t2 / m, shape)
        return (xp.reshape(scale, shape) * (g - (t1 + xhat * t2)), *grads[1:])


def _global(communicator: Any) -> bool:
    return communicator is not None and communicator.size > 1


def _refuse_one_value(count: float, x: Array, where: str = "") -> None:
    """A variance needs more than 1 value per channel (torch raises too)."""
    if count < 2:
        raise ShapeError(
            f"batch_norm: expected more than 1 value per channel in training, got {count:g}{where} "
            f"(input of shape {tuple(x.shape)})"
        )


def _batch_statistics(
    xp: Any, x: Array, axes: tuple[int, ...], communicator: Any, training: bool, running: Running | None
) -> tuple[Array, Array, Any, Array | None]:
    """Mean and biased variance of the (global) batch, its count and, in one process, ``x -
    mean`` (the forward's next pass); updates ``running``."""
    local = math.prod(x.shape) // x.shape[1]
    count: Any = float(local)
    centered = None
    if _global(communicator):
        mean, var, count = _global_statistics(xp, x, axes, communicator, count)
        # the same total on every rank: all raise, before the statistics change. Read only where
        # the sums are host memory (the backends MPI serves), free; on a device it would be a
        # sync per step: there fit refuses a one-sample global batch once, before training
        if training and backend_name(count) in ("numpy", "torch"):
            _refuse_one_value(float(to_host(count[:1])[0]), x, " in the global batch")
    else:  # two passes: x * x of the sums form overflows float32 from |x| > 1.8e19 (torch's stays finite)
        if training:
            _refuse_one_value(local, x)
        mean = xp.mean(x, axis=axes)
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        centered = x - xp.reshape(mean, shape)
        var = xp.mean(centered * centered, axis=axes)
    _update_running(running, mean, var, count, training)
    return mean, var, count, centered


def _update_running(running: Running | None, mean: Array, var: Array, count: Any, training: bool) -> None:
    """``r = (1 - f) * r + f * batch`` of the mean and the unbiased variance, in training."""
    if training and running is not None:  # not differentiated: on Tensors, by their arrays
        f, batch_mean, batch_var = running.factor, plain(mean), plain(var)
        unbiased = batch_var * (count / (count - 1.0))
        running.mean = assign(running.mean, (1.0 - f) * running.mean + f * batch_mean)
        running.var = assign(running.var, (1.0 - f) * running.var + f * unbiased)


def _global_statistics(
    xp: Any, x: Array, axes: tuple[int, ...], communicator: Any, local: float
) -> tuple[Array, Array, Any]:
    """The global batch's mean, biased variance and count from ``[m, S1, S2]`` summed over
    ranks in one all-reduce (sums add across ranks; see the module docstring)."""
    sums = [xp.sum(x, axis=axes), xp.sum(x * x, axis=axes)]
    totals = communicator.allreduce_sum(xp.stack([xp.full_like(sums[0], local), *sums]))
    count, total, squares = totals[0, ...], totals[1, ...], totals[2, ...]
    mean = total / count
    return mean, xp.maximum(squares / count - mean * mean, 0.0), count
