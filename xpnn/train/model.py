"""The public ``xpnn.Module`` and ``xpnn.Sequential``: the modules of :mod:`xpnn.nn` with the
training conveniences composed on, as Keras 3 composes ``Model(Trainer, Layer)``.

:class:`Trainer` gives ``fit``, ``evaluate``, ``predict``, ``lr_find`` and ``save``; the
modules below it never import the training loop (the arrows of the layout point one way).
Every module of :mod:`xpnn.nn`, built-in layers included, counts as an ``xpnn.Module``
(``isinstance(xpnn.Dense(2, 3), xpnn.Module)`` is True); subclass ``xpnn.Module`` for a
model of your own, and it can train itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from xpnn import nn
from xpnn.io import safetensors_model, serialization
from xpnn.io.file_checks import check_arrays
from xpnn.io.safetensors_file import is_safetensors
from xpnn.train import evaluation, loop
from xpnn.train.lr_find import LRFinderResult
from xpnn.train.lr_find import lr_find as range_test

Array = Any


class Trainer:
    """``fit`` / ``evaluate`` / ``predict`` / ``lr_find`` / ``save`` for any Module."""

    def fit(
        self,
        x: Array,
        y: Array,
        *,
        loss: Any,
        optimizer: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Array, Array] | None = None,
        validation_split: float = 0.0,
        callbacks: Iterable[Any] = (),
        seed: int | None = None,
        verbose: int = 1,
        shuffle: bool = True,
        resume: str | os.PathLike[str] | None = None,
        communicator: Any = None,
    ) -> Any:
        """Train on ``(x, y)`` (Keras-style); returns a :class:`~xpnn.History`.

        ``loss``: an xpnn Loss (``xpnn.SoftmaxCrossEntropy()``, ...) or a function
        ``(pred, y) -> 0-d Tensor`` (cross-entropy plus a penalty, say): it is differentiated by
        the tape. ``x`` may be host NumPy, device arrays, or uint8 images (cast and scaled by
        1/255 on the device). ``callbacks``: :class:`~xpnn.EarlyStopping`,
        :class:`~xpnn.ModelCheckpoint` or plain callables ``hook(epoch, logs)``; ``resume``: a
        training checkpoint to continue from. Metrics accumulate on the device and synchronise
        once per epoch. ``communicator`` (from :func:`xpnn.distributed.init`): data-parallel
        training, where ``batch_size`` is the global batch split across ranks.

        Every argument is checked before the first step (named ``XpnnError``s). ``epochs=0``
        returns an empty History. Integer ``x`` must be uint8 images (other integer dtypes are
        refused with ``DTypeError``: cast them). A NaN or infinite epoch loss stops training
        with ``NonFiniteLossError`` before callbacks (checkpoints) see the epoch.
        """
        return loop.fit(
            self,
            x,
            y,
            loss=loss,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            callbacks=callbacks,
            seed=seed,
            verbose=verbose,
            shuffle=shuffle,
            resume=resume,
            communicator=communicator,
        )

    def evaluate(
        self, x: Array, y: Array, *, loss: Any = None, batch_size: int = 256, communicator: Any = None
    ) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``(x, y)`` in eval mode (one host sync); the
        loss defaults to the one of the last ``fit``; ``communicator``: split across ranks."""
        return evaluation.evaluate(self, x, y, loss=loss, batch_size=batch_size, communicator=communicator)

    def predict(self, x: Array, *, batch_size: int = 256, communicator: Any = None) -> Array:
        """Outputs for ``x`` in eval mode, as one plain array on the model's device (no graph);
        ``communicator``: split across ranks, the whole array returned on every rank."""
        return evaluation.predict(self, x, batch_size=batch_size, communicator=communicator)

    def lr_find(self, x: Array, y: Array, *, loss: Any, optimizer: Any, **keywords: Any) -> LRFinderResult:
        """The learning-rate range test (:func:`xpnn.lr_find`); model and optimizer restored."""
        return range_test(self, x, y, loss=loss, optimizer=optimizer, **keywords)

    def save(self, path: str | os.PathLike[str], *, optimizer: Any = None) -> None:
        """Save the weights (and an optimizer's state) atomically; see :func:`xpnn.save`."""
        save(self, path, optimizer=optimizer)


class _AnyModule(type):
    """``isinstance(m, xpnn.Module)`` holds for every module of :mod:`xpnn.nn` (the built-in
    layers are modules too, without the training conveniences)."""

    def __instancecheck__(cls, instance: Any) -> bool:
        if cls is Module:
            return isinstance(instance, nn.Module)
        return super().__instancecheck__(instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        if cls is Module:
            return issubclass(subclass, nn.Module)
        return super().__subclasscheck__(subclass)


class Module(Trainer, nn.Module, metaclass=_AnyModule):
    """A model of your own: assign Parameters and Modules in ``__init__``, write ``forward``.

    ``super().__init__()`` is optional. See :class:`xpnn.nn.Module` for the tree (named
    parameters, buffers, ``state_dict``, ``to``, ``train``/``eval``) and :class:`Trainer` for
    ``fit``, ``evaluate``, ``predict``, ``lr_find`` and ``save``.
    """


class Sequential(Trainer, nn.Sequential):
    """Layers applied in order (see :class:`xpnn.nn.Sequential`), with ``fit`` and friends."""


def save(model: Any, path: str | os.PathLike[str], *, optimizer: Any = None) -> None:
    """Save ``model``'s weights (and optionally an optimizer's state) atomically to an ``.npz``
    file: data and a JSON header, never pickle. A Sequential of built-in layers also records
    its architecture, so :func:`load` rebuilds it; any module loads back into an instance with
    ``load(path, into=model)``. A path ending in ``.safetensors`` writes that format instead
    (:mod:`xpnn.io.safetensors_model`: torch's names and layouts, no optimizer state)."""
    if is_safetensors(path):
        safetensors_model.save(path, model, optimizer=optimizer)
        return
    serialization.save(path, model, optimizer=optimizer)


def load(path: str | os.PathLike[str], *, backend: str = "numpy", into: Any = None) -> Any:
    """Rebuild a saved Sequential on ``backend`` (NumPy by default, whatever it was saved on),
    or, with ``into=model``, load the file's weights into that module (checked whole first;
    a refused file changes nothing) and return it. Nothing named in a file is imported or
    called: only built-in layers are rebuilt from a file. The suffix picks the format
    (``.safetensors``, else the ``.npz`` of :func:`save`)."""
    if is_safetensors(path):
        if into is None:
            return safetensors_model.load(path, Sequential, backend)
        safetensors_model.load_into(path, into)
        return into
    if into is not None:
        serialization.load_into(path, into)
        return into
    header, opened, layers = serialization.read(path)
    model = Sequential(layers, seed=header.get("model_seed"))
    check_arrays(opened.path, opened, model)
    serialization.fill(model, header, serialization.read_arrays(opened, model), move=False)
    return model.to(backend) if backend != "numpy" else model
