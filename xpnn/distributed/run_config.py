"""What the ranks of one data-parallel run must agree on, written out as lines of text.

Ranks that differ in anything that shapes the computation would train apart without a word:
another activation (``Tanh`` where rank 0 has ``ReLU``), an extra ``Softmax``, another dropout
rate, Adam with another learning rate, another batch size or data set. So ``fit`` describes the
whole run: the architecture (every module's type and settings, parameter-free layers too, every
parameter, buffer and frozen flag), the loss, the optimizer's type, hyperparameters and
clipping, the batch size, epochs, the data's size, dtype and a fingerprint of a few samples.
Each rank hashes its lines and the ranks compare hashes in one exchange
(:func:`xpnn.distributed.consistency.handshake`); only on a difference are the lines sent, so
the error names the first differing line. What a user's ``forward`` does is code, which no
description catches: :func:`~xpnn.distributed.consistency.check_same_outputs` compares outputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from xpnn import backend
from xpnn.optim.base import Optimizer

Array = Any
_SIMPLE = (bool, int, float, str, type(None), tuple)


def spec(array: Array) -> str:
    """``shape (2, 3), dtype float32``."""
    return f"shape {tuple(int(n) for n in array.shape)}, dtype {backend.dtype_name(array.dtype)}"


def describe_architecture(model: Any) -> list[str]:
    """One line per module, in the tree's order: its path, type and constructor settings."""
    lines = []
    for name, module in model.named_modules():
        config = getattr(module, "config", None)
        settings = config() if callable(config) else {}
        lines.append(f"module {name or '(model)'}: {type(module).__qualname__} {_text(settings)}")
    return lines


def describe_tensors(model: Any) -> list[str]:
    """One line per parameter (a frozen one says so: ranks that freeze different parameters
    would average a gradient with none) and per buffer: name, shape, dtype."""
    lines = [f"{len(model.parameters())} parameters"]
    lines += [
        f"parameter {name}: {spec(p.value)}{'' if p.requires_grad else ', frozen'}"
        for name, p in model.named_parameters()
    ]
    return lines + [
        f"buffer {name}: {spec(value)}" for name, value in getattr(model, "buffers", dict)().items()
    ]


def describe_optimizer(optimizer: Optimizer) -> list[str]:
    """Type, every group's hyperparameters and size, clipping, and the state arrays."""
    lines = [f"optimizer {type(optimizer).__name__}, clipping {optimizer.clipping!r}"]
    for index, group in enumerate(optimizer.param_groups):
        hyper = {k: v for k, v in group.items() if k != "params"}
        lines.append(f"optimizer group {index}: {len(group['params'])} parameters, {_text(hyper)}")
    for position, entry in sorted(optimizer.state.items()):
        lines += [
            f"optimizer state {position}.{k}: {spec(v)}" for k, v in sorted(entry.items()) if k != "step"
        ]
    return lines


def describe_loss(loss: Any) -> str:
    """A Loss object's type and settings, or a loss function's qualified name."""
    if loss is None:
        return "loss none"
    if callable(loss) and hasattr(loss, "__qualname__"):
        return f"loss function {getattr(loss, '__module__', '?')}.{loss.__qualname__}"
    settings = (
        {k: v for k, v in vars(loss).items() if isinstance(v, _SIMPLE)} if hasattr(loss, "__dict__") else {}
    )
    return f"loss {type(loss).__qualname__} {_text(settings)}"


def describe_data(name: str, x: Array, y: Array | None = None) -> list[str]:
    """Size, shape and dtype of a data set and its labels, and a fingerprint of three samples
    (first, middle, last: one small host copy per fit, enough to catch another file)."""
    if x is None:
        return [f"{name}: none"]
    n = int(x.shape[0])
    shape = tuple(int(d) for d in x.shape[1:])
    lines = [f"{name}: {n} samples of shape {shape}, dtype {backend.dtype_name(x.dtype)}"]
    if y is not None:
        lines.append(f"{name} labels: {spec(y)}")
    rows = sorted({0, n // 2, max(n - 1, 0)}) if n else []
    fingerprint = hashlib.sha256()
    for data in (x, y) if y is not None else (x,):
        for row in rows:
            fingerprint.update(backend.to_host(data[row : row + 1, ...]).tobytes())
    return [*lines, f"{name} fingerprint {fingerprint.hexdigest()[:16]}"]


def describe_settings(**settings: Any) -> str:
    """``batch_size 32, epochs 3, shuffle True``: the loop's own settings, sorted by name."""
    return ", ".join(f"{k} {v!r}" for k, v in sorted(settings.items()))


def _text(settings: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(settings.items())) + "}"


def digest(lines: Sequence[str]) -> bytes:
    """16 bytes that differ where the lines differ."""
    return hashlib.sha256("\n".join(lines).encode()).digest()[:16]


def describe_inference(model: Any, loss: Any, data: tuple[Array, Array | None], **settings: Any) -> list[str]:
    """What the ranks of one ``evaluate`` or ``predict`` must share: model, loss, data, settings."""
    lines = describe_architecture(model) + describe_tensors(model) + [describe_loss(loss)]
    return [*lines, *describe_data("data", *data), describe_settings(**settings)]


def describe_fit(model: Any, loss: Any, optimizer: Optimizer, data: tuple[Array, Array], validation: Any,
                 resume: str | os.PathLike[str] | None = None, **settings: Any) -> list[str]:  # fmt: skip
    """Everything the ranks of one ``fit`` must share: model, loss, optimizer, data, settings,
    and the checkpoint it resumes from (path and size: every rank reads the same file)."""
    lines = describe_architecture(model) + describe_tensors(model) + describe_optimizer(optimizer)
    lines += [describe_loss(loss), *describe_data("training data", *data)]
    lines += describe_data("validation data", *(validation if validation is not None else (None, None)))
    if resume is not None:
        size = os.stat(resume).st_size if os.path.exists(resume) else "missing"
        lines.append(f"resume from {os.fspath(resume)!r} ({size} bytes)")
    return [*lines, describe_settings(**settings)]
