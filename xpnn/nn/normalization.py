"""BatchNorm: batch normalization over (N, C) or (N, C, H, W), as torch's BatchNorm1d/2d
(:mod:`xpnn.functional.normalization` holds the equations)."""

from __future__ import annotations

import math
from typing import Any

from xpnn import backend
from xpnn.checks import check_array, check_count, check_flag, check_floating, check_like, check_number
from xpnn.errors import ArgumentError, CheckpointError, ShapeError
from xpnn.functional.normalization import BatchNorm as BatchNormFunction
from xpnn.functional.normalization import Running
from xpnn.nn import init
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any


class BatchNorm(Layer):
    """Normalize each of ``num_features`` channels (axis 1) over the batch and any pixels:
    ``y = (x - mean_c) / sqrt(var_c + eps) * weight[c] + bias[c]``, with ``mean_c`` and the
    biased ``var_c`` over the batch (and pixels) in training, the running estimates in eval.

    ``weight`` (gamma, ones) and ``bias`` (beta, zeros) Parameters when ``affine``; buffers
    ``running_mean`` (zeros) and ``running_var`` (ones) when ``track_running_stats`` (else both
    are None, as torch's, and batch statistics are used in eval mode too). The running estimates follow
    ``r = (1 - f) * r + f * batch`` with ``f = momentum`` (or ``1 / num_batches_tracked`` when
    ``momentum=None``: the cumulative mean). ``num_batches_tracked`` is a counter saved in
    checkpoints: a host int, so that factor never syncs. Under data-parallel training the
    statistics are the global batch's (the communicator ``fit`` hands it).
    """

    function = BatchNormFunction
    nonnegative_buffers = ("running_var",)  # 1 / sqrt(var + eps) of a negative one is NaN

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        self.num_features = check_count("BatchNorm", "num_features", num_features)
        name = self._name()
        self.momentum = None if momentum is None else check_number(name, "momentum", momentum, 0.0, 1.0)
        self.eps = check_number(name, "eps", eps, low=0.0)
        if self.eps == 0.0:
            raise ArgumentError(f"{name}: expected eps > 0 (keeps 1 / sqrt(var + eps) finite), got {eps!r}")
        self.affine = check_flag(name, "affine", affine)
        self.track_running_stats = check_flag(name, "track_running_stats", track_running_stats)
        self.weight = Parameter(None, "weight") if self.affine else None
        self.bias = Parameter(None, "bias") if self.affine else None
        self.communicator: Any = None
        self.values_per_sample: int | None = None  # pixels per channel of the last input (1 for (N, C))
        self.num_batches_tracked = 0
        # without running statistics (torch: None) nothing of num_features is made but gamma
        # and beta, so a file's header cannot make a rebuilt layer allocate what the file lacks
        self.running_mean: Array | None = None
        self.running_var: Array | None = None
        if self.track_running_stats:
            zeros = init.zeros((self.num_features,))
            self.register_buffer("running_mean", zeros)
            self.register_buffer("running_var", zeros + 1.0)
        if self.affine:
            self.weight.value = init.zeros((self.num_features,)) + 1.0  # type: ignore[union-attr]
        self.reset_parameters(backend.host_rng(None))

    def reset_parameters(self, rng: Any) -> None:
        """gamma = 1, beta = 0, running statistics 0 and 1, on the current backend and dtype."""
        self.num_batches_tracked = 0
        like = self.weight.value if self.weight is not None else self.running_mean
        if like is None:  # neither affine nor tracking: nothing to reset
            return
        xp = backend.namespace(like)
        zeros = xp.zeros((self.num_features,), dtype=like.dtype, device=backend.device_of(like))
        if self.track_running_stats:
            self.running_mean, self.running_var = zeros, zeros + 1.0
        if self.weight is not None and self.bias is not None:
            self.weight.value, self.bias.value = zeros + 1.0, zeros + 0.0
            self.weight.grad = self.bias.grad = None

    def set_communicator(self, communicator: Any) -> None:
        self.communicator = communicator

    def _name(self) -> str:
        return f"BatchNorm({self.num_features})"

    def inputs(self) -> tuple[Parameter | None, ...]:
        return (self.weight, self.bias)

    def options(self, x: Array) -> dict[str, Any]:
        name = self._name()
        check_array(name, x)
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}: expected input of shape (batch, {self.num_features}) or "
                f"(batch, {self.num_features}, height, width), got {tuple(x.shape)}"
            )
        check_floating(name, x)
        self.values_per_sample = math.prod(x.shape[2:])  # per channel: fit checks its smallest batch
        if self.weight is not None or self.track_running_stats:  # else: any backend will do
            check_like(name, x, self.running_mean if self.weight is None else self.weight.value)
        if self.training and (self.communicator is None or self.communicator.size == 1):
            if math.prod(x.shape) // self.num_features < 2:
                raise ShapeError(
                    f"{name}: expected more than 1 value per channel in training, got input of shape "
                    f"{tuple(x.shape)}"
                )
        running = None
        if self.track_running_stats:
            factor = 0.0
            if self.training:
                factor = 1.0 / (self.num_batches_tracked + 1) if self.momentum is None else self.momentum
            running = Running(self.running_mean, self.running_var, factor)
        return {
            "training": self.training,
            "running": running,
            "eps": self.eps,
            "communicator": self.communicator,
            "fused": self.fused,
        }

    def after_forward(self, options: dict[str, Any]) -> None:
        running = options["running"]
        if running is not None and self.training:
            self.running_mean, self.running_var = running.mean, running.var
            self.num_batches_tracked += 1

    def counters(self) -> dict[str, int]:
        return {"num_batches_tracked": self.num_batches_tracked} if self.track_running_stats else {}

    def load_counters(self, counters: dict[str, int]) -> None:
        unknown = sorted(set(counters) - set(self.counters()))
        if unknown:
            raise CheckpointError(
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
