"""BatchNorm: batch normalization over (N, C) or (N, C, H, W), as torch's BatchNorm1d/2d.

Training: per channel, over the batch (and pixels), ``mean = S1 / m``,
``var = S2 / m - mean**2`` (biased) from the sums ``S1 = sum x``, ``S2 = sum x**2`` of the
``m`` values; ``xhat = (x - mean) / sqrt(var + eps)``, ``y = weight * xhat + bias``. The
running estimates follow ``r = (1 - f) * r + f * batch`` with ``f = momentum`` (or
``1 / num_batches_tracked`` when ``momentum=None``: the cumulative mean), the running
variance taking the unbiased ``var * m / (m - 1)``. Eval mode normalizes with the running
estimates. Backward (training): ``dx = weight / sqrt(var + eps) * (dy - (T1 + xhat * T2) / m)``
with ``T1 = sum dy``, ``T2 = sum dy * xhat``; ``dbias = T1``, ``dweight = T2``.

Under data-parallel training the statistics are those of the GLOBAL batch: ``[m, S1, S2]``
and ``[T1, T2]`` are each summed over ranks by one ``communicator.allreduce_sum`` call (``T``
weighted by the rank's share of the batch, since each rank's ``dy`` is that of its own batch
mean), so N ranks compute what one process computes on the whole batch. That is why the variance comes
from the sums rather than a two-pass ``var``: sums add across ranks. (In float32 this loses
digits only when a channel's mean is large against its spread, ~|mean|/std * 1e-7 relative.)
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import backend
from xpnn.errors import ShapeError
from xpnn.nn.checks import check_array, check_floating, check_like
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any


class BatchNorm(Layer):
    """Normalize each of ``num_features`` channels (axis 1) over the batch and any pixels.

    ``weight`` (gamma, ones) and ``bias`` (beta, zeros) Parameters when ``affine``; buffers
    ``running_mean`` (zeros) and ``running_var`` (ones) when ``track_running_stats`` (else batch
    statistics are used in eval mode too). ``num_batches_tracked`` is a counter saved in
    checkpoints: a host int, so ``momentum=None``'s factor ``1 / n`` never syncs.
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        if num_features < 1:
            raise ValueError(f"BatchNorm: num_features must be >= 1, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm({num_features}): momentum must be in [0, 1] or None, got {momentum}")
        if not eps > 0.0:
            raise ValueError(f"BatchNorm({num_features}): eps must be > 0, got {eps}")
        self.num_features = int(num_features)
        self.momentum = None if momentum is None else float(momentum)
        self.eps, self.affine, self.track_running_stats = float(eps), bool(affine), bool(track_running_stats)
        self.buffer_names = ("running_mean", "running_var") if self.track_running_stats else ()
        self.weight = Parameter(None, "weight") if affine else None
        self.bias = Parameter(None, "bias") if affine else None
        self.communicator: Any = None
        self.num_batches_tracked = 0
        self.running_mean = backend.host_zeros((self.num_features,))
        self.running_var = self.running_mean + 1.0
        self.reset_parameters(backend.host_rng(None))

    def reset_parameters(self, rng: Any) -> None:
        """gamma = 1, beta = 0, running statistics 0 and 1, on the current backend and dtype."""
        has_weight = self.weight is not None and self.weight.value is not None
        like = self.weight.value if self.weight is not None and has_weight else self.running_mean
        xp = backend.namespace(like)
        zeros = xp.zeros((self.num_features,), dtype=like.dtype, device=like.device)
        self.running_mean, self.running_var = zeros, zeros + 1.0
        self.num_batches_tracked = 0
        if self.weight is not None and self.bias is not None:
            self.weight.value, self.bias.value = zeros + 1.0, zeros + 0.0
            self.weight.grad = self.bias.grad = None

    def parameters(self) -> list[Parameter]:
        return [] if self.weight is None or self.bias is None else [self.weight, self.bias]

    def set_communicator(self, communicator: Any) -> None:
        self.communicator = communicator

    def _name(self) -> str:
        return f"BatchNorm({self.num_features})"

    def _check(self, x: Array) -> None:
        name = self._name()
        check_array(name, x)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}: expected input of shape (batch, {self.num_features}) or "
                f"(batch, {self.num_features}, height, width), got {tuple(x.shape)}"
            )
        check_floating(name, x)
        if self.weight is not None or self.track_running_stats:  # else: any backend will do
            check_like(name, x, self.running_mean if self.weight is None else self.weight.value)

    def _global(self) -> bool:
        return self.communicator is not None and self.communicator.size > 1

    def forward(self, x: Array) -> Array:
        self._check(x)
        xp = backend.namespace(x)
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)
        self.shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        self.batch_stats = self.training or not self.track_running_stats
        if self.batch_stats:
            mean, var = self._batch_statistics(x)
        else:
            mean, var = self.running_mean, self.running_var
        self.invstd = 1.0 / xp.sqrt(var + self.eps)
        self.xhat = (x - xp.reshape(mean, self.shape)) * xp.reshape(self.invstd, self.shape)
        if self.weight is None or self.bias is None:
            return self.xhat
        return self.xhat * xp.reshape(self.weight.value, self.shape) + xp.reshape(self.bias.value, self.shape)

    def _batch_statistics(self, x: Array) -> tuple[Array, Array]:
        """Mean and biased variance of the (global) batch; updates the running estimates."""
        xp = backend.namespace(x)
        local = math.prod(x.shape) // self.num_features
        sums = [xp.sum(x, axis=self.axes), xp.sum(x * x, axis=self.axes)]
        count: Any = float(local)
        if self._global():
            totals = self.communicator.allreduce_sum(xp.stack([xp.full_like(sums[0], count), *sums]))
            count, sums = totals[0, ...], [totals[1, ...], totals[2, ...]]
        elif local < 2 and self.training:
            raise ShapeError(
                f"{self._name()}: expected more than 1 value per channel in training, got input "
                f"of shape {tuple(x.shape)}"
            )
        mean = sums[0] / count
        var = xp.maximum(sums[1] / count - mean * mean, 0.0)
        self.count, self.local = count, float(local)
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            f = 1.0 / self.num_batches_tracked if self.momentum is None else self.momentum
            unbiased = var * (count / (count - 1.0))
            self.running_mean = backend.assign(self.running_mean, (1.0 - f) * self.running_mean + f * mean)
            self.running_var = backend.assign(self.running_var, (1.0 - f) * self.running_var + f * unbiased)
        return mean, var

    def backward(self, dout: Array) -> Array:
        xp = backend.namespace(dout)
        dbias = xp.sum(dout, axis=self.axes)
        dweight = xp.sum(dout * self.xhat, axis=self.axes)
        if self.weight is not None and self.bias is not None:
            self.weight.accumulate(dweight)
            self.bias.accumulate(dbias)
        scale = self.invstd if self.weight is None else self.invstd * self.weight.value
        if not self.batch_stats:
            return dout * xp.reshape(scale, self.shape)
        t1, t2, m = dbias, dweight, self.count
        if self._global():
            # each rank's dout is the gradient of ITS batch mean: weighted by w = m_local / m it is
            # the global mean's, whose sums add over ranks; dx returns to the local scale (/ w),
            # where the optimizer's share-weighted gradient average expects it
            share = self.local / self.count
            totals = self.communicator.allreduce_sum(xp.stack([t1 * share, t2 * share]))
            t1, t2, m = totals[0, ...], totals[1, ...], self.local
        t1, t2 = xp.reshape(t1 / m, self.shape), xp.reshape(t2 / m, self.shape)
        return xp.reshape(scale, self.shape) * (dout - (t1 + self.xhat * t2))

    def counters(self) -> dict[str, int]:
        return {"num_batches_tracked": self.num_batches_tracked} if self.track_running_stats else {}

    def load_counters(self, counters: dict[str, int]) -> None:
        unknown = sorted(set(counters) - set(self.counters()))
        if unknown:
            raise ValueError(
                f"{self._name()}: unknown counters {unknown}; expected {sorted(self.counters())}"
            )
        self.num_batches_tracked = int(counters.get("num_batches_tracked", 0))

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "momentum": self.momentum,
            "eps": self.eps,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    def __repr__(self) -> str:
        return self._name()
