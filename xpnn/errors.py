"""The exceptions of xpnn: each names the culprit, the expected and the actual."""

from __future__ import annotations


class XpnnError(Exception):
    """Base class of every error xpnn raises on purpose."""


class ShapeError(XpnnError, ValueError):
    """An array has the wrong shape or rank for the layer or loss it was given to."""


class DTypeError(XpnnError, TypeError):
    """An array has the wrong dtype (integer where float is needed, float64 vs float32, ...)."""


class BackendMismatchError(XpnnError, TypeError):
    """An array belongs to another namespace or device than the model's parameters."""


class LabelError(XpnnError, ValueError):
    """Labels are out of range or of the wrong shape for the loss."""


class NonFiniteLossError(XpnnError, FloatingPointError):
    """The loss is NaN or infinite (checked only where the user asks for it)."""


class BackendUnavailableError(XpnnError, ImportError):
    """A backend's library or device is missing; the message says what to install."""


class OptimizerError(XpnnError, ValueError):
    """Bad optimizer arguments, gradients or state dicts."""


class NotAParameterError(OptimizerError, TypeError):
    """An optimizer was given something other than an ``xpnn.Parameter`` to update."""


class CheckpointError(XpnnError, ValueError):
    """A checkpoint is corrupt, of another format version, or of another architecture."""


class DataFormatError(XpnnError, ValueError):
    """A data file (IDX) is corrupt, truncated, or disagrees with its header."""


class DataNotFoundError(XpnnError, FileNotFoundError):
    """A data set is in none of the places searched and cannot be downloaded; says how to get it."""


class NotALayerError(XpnnError, TypeError):
    """Something other than a layer was given where one is needed (the NNFS book's
    ``Loss.regularization_loss(layer)``, for instance)."""


class DistributedError(XpnnError, RuntimeError):
    """Data-parallel training cannot go on: an unsupported backend or communicator, or ranks
    that disagree (on the model, the data or the run)."""


class ModelMismatchError(DistributedError, ValueError):
    """Ranks of a data-parallel run hold different models (parameter count, shapes, dtypes)."""


class MissingDependencyError(XpnnError, ImportError):
    """An optional dependency (matplotlib, tensorboardX, ...) is not installed; names the extra."""


class ExportError(XpnnError, ValueError):
    """A model cannot be written in another format (ONNX): an operation without an ONNX form,
    a layer in training mode, a value the recorded graph does not hold; names the culprit."""


class ForwardFirstError(XpnnError, RuntimeError):
    """``backward`` was called on a layer or loss before any ``forward`` gave it something to
    differentiate."""


class ArgumentError(XpnnError, ValueError):
    """A constructor or function argument is outside its documented range (``Dense(0, 3)``,
    ``fit(batch_size=0)``, ``epochs=-1``); the message names the argument, the range and the value."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument is of the wrong type (``Dense("4", 3)``, ``loss=None``): still a ``TypeError``."""


class TooLargeError(ArgumentError, MemoryError):
    """A layer's arguments ask for more memory than this machine has (``Conv2D(1, 1, 10**6)``:
    a weight of 10**12 numbers); raised before anything is allocated. Still a ``MemoryError``."""


class GradientError(XpnnError, RuntimeError):
    """A backward that cannot run: of a tensor that needs no gradient, through a graph already
    consumed (without ``retain_graph``), or of a non-scalar tensor without ``grad``."""


class MissingForwardError(XpnnError, NotImplementedError):
    """A Module subclass was called (directly or by ``fit``) without a ``forward`` of its own."""
