"""Training: the run record (History, Callback), the fit/evaluate/predict loop, callbacks and
training checkpoints. Imports nn, optim and data; nothing below imports it."""

from xpnn.train.callbacks import EarlyStopping, ModelCheckpoint
from xpnn.train.loop import evaluate, fit, predict
from xpnn.train.record import Callback, History, TrainingRun

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "TrainingRun",
    "evaluate",
    "fit",
    "predict",
]
