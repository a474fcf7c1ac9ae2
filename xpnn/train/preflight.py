"""Before anything changes: a one-sample rehearsal of the model, and every label checked once.

``fit``, ``evaluate``, ``predict`` and ``lr_find`` first call the model on ONE sample, in eval
mode and without recording (``no_grad``): BatchNorm then reads its running statistics and
Dropout is the identity, so nothing in the model changes (each module's mode is put back as
it was). That rehearsal finds, before a step or a checkpoint could change anything: a Module
without ``forward``, an input of the wrong shape (the error names the sub-module by its dotted
path: ``Net at 'blocks.1': Dense(8 -> 8): ...``), a ``forward`` that returns no Tensor, a
loss function that returns no 0-d Tensor, and the output width of a model that does not
declare one, against which integer labels are then checked (one host sync per data set).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from xpnn import backend
from xpnn.autograd.graph import no_grad
from xpnn.autograd.tensor import Tensor
from xpnn.data.loader import DataLoader
from xpnn.errors import ArgumentTypeError, BackendMismatchError, DTypeError, LabelError, ShapeError
from xpnn.nn.losses import Loss
from xpnn.nn.normalization import BatchNorm
from xpnn.train.checks import raise_not_scalar
from xpnn.train.record import Model

Array = Any
_NAMED = (ShapeError, DTypeError, BackendMismatchError)  # what a layer says about its input


def model_backend(model: Model) -> tuple[backend.Backend, str]:
    """The model's resolved backend and parameter dtype name."""
    params = model.parameters()
    dtype = backend.dtype_name(params[0].value.dtype) if params else "float32"
    return backend.resolve(model.backend), dtype


def model_seed(model: Model) -> int | None:
    """The seed a Sequential was built with (fit shuffles by it when given none), or None: a
    ``seed`` attribute of a user's Module may be anything, so only an int counts."""
    seed = getattr(model, "seed", None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def modes_of(model: Model) -> list[tuple[Any, bool]]:
    """Each module's train/eval mode, to be put back by :func:`restore_modes` (``model.train(m)``
    would set one mode for all: a sub-module the user put in eval mode would be lost)."""
    return [(module, module.training) for module in model.modules()]


def restore_modes(modes: list[tuple[Any, bool]]) -> None:
    for module, training in modes:
        module.training = training


def _culprit(model: Model, trace: TracebackType | None) -> str | None:
    """The dotted name of the innermost sub-module (not ``model`` itself) whose method is on
    the traceback ``trace``, or None: read from the frames only after an error."""
    names = {id(module): name for name, module in model.named_modules() if name}
    found = None
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        if id(owner) in names:
            found = names[id(owner)]
        trace = trace.tb_next
    return found


@contextmanager
def culprit_named(model: Model) -> Iterator[None]:
    """Re-raise a layer's shape, dtype or backend error with the path of the sub-module that
    raised it, so a model holding several ``Dense(8 -> 8)`` says which one."""
    try:
        yield
    except _NAMED as error:
        where = _culprit(model, error.__traceback__) if type(error).__module__ == "xpnn.errors" else None
        if where is None:
            raise
        named = type(error)(f"{model.who()} at {where!r}: {error}")
        raise named.with_traceback(error.__traceback__) from None


def first_samples(model: Model, x: Array, count: int = 4) -> Array:
    """The first ``count`` samples of ``x`` as the model sees them (its backend and dtype)."""
    bk, dtype = model_backend(model)
    return next(
        DataLoader(x[:count, ...], batch_size=count, shuffle=False, target=bk, dtype=dtype).batches(0)
    )[0]


def rehearse(model: Model, x: Array, y: Array | None = None, loss: Any = None) -> int | None:
    """Call ``model`` on the first sample of ``x`` as described above (and a loss function on
    its output and ``y``'s first label); returns the output width (the size of the last axis
    of a (batch, width) output), or None where the output is of another rank."""
    bk, dtype = model_backend(model)
    first = (x[:1, ...], None if y is None else y[:1, ...])  # `...`: the standard's index of a whole axis
    one = DataLoader(*first, batch_size=1, shuffle=False, target=bk, dtype=dtype)
    xb, yb = next(one.batches(0))
    modes = modes_of(model)
    model.eval()
    try:
        with no_grad(), culprit_named(model):
            pred = model(Tensor(xb))
            if not isinstance(pred, Tensor):
                raise ArgumentTypeError(
                    f"{model.who()}.forward returned a {type(pred).__name__}; expected a Tensor (compute it "
                    "from the input Tensor with Tensor operations, layers and xpnn.functional)"
                )
            if loss is not None and not isinstance(loss, Loss):
                value = loss(pred, yb)
                if not isinstance(value, Tensor) or value.ndim != 0:
                    raise_not_scalar(loss, value)
    finally:
        restore_modes(modes)
    return pred.shape[1] if pred.ndim == 2 else None


def check_batch_statistics(model: Model, n: int, batch_size: int) -> None:
    """Refuse, before training, a fit whose smallest batch gives some BatchNorm a single value
    per channel (33 samples in batches of 16 leave a last batch of 1: a (N, C) input then has
    one value per channel, whose variance is undefined: torch raises, a running variance would
    become NaN). Needs the rehearsal first (it tells each BatchNorm its input's pixels per
    channel); under data-parallel training the statistics are the global batch's, so the same."""
    smallest = min(batch_size, n) if n % batch_size == 0 else n % batch_size
    for name, module in model.named_modules():
        pixels = getattr(module, "values_per_sample", None) if isinstance(module, BatchNorm) else None
        if pixels is not None and n and smallest * pixels < 2:
            where = f"{model.who()} at {name!r}: " if name else ""
            raise ShapeError(
                f"fit: {where}{module!r} would see {smallest * pixels} value per channel in the last "
                f"batch ({n} samples in batches of {batch_size} leave {smallest}); training statistics "
                "need more than 1: pick a batch_size that leaves no batch of 1 sample, or drop a sample"
            )


def validate_labels(model: Model, loss: Any, y: Array, classes: int | None = None) -> None:
    """Check every integer label once, up front (one host sync), so steps can skip it: against
    ``classes`` (the rehearsal's output width), else the width the model declares."""
    classes = classes if classes is not None else model.output_width()
    if not getattr(loss, "takes_labels", False) or classes is None or y.ndim != 1:
        return
    xp = backend.namespace(y)
    if not xp.isdtype(y.dtype, "integral") or y.shape[0] == 0:
        return
    low, high = (int(v) for v in backend.to_host(xp.stack([xp.min(y), xp.max(y)])))
    if low < 0 or high >= classes:
        raise LabelError(
            f"{type(loss).__name__}: labels must be in [0, {classes}) (the model's output width), "
            f"got values in [{low}, {high}]"
        )
