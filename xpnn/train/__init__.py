"""Training: the run record (History, Callback), the fit/evaluate/predict loop, callbacks and
training checkpoints. Imports nn, optim and data; nothing below imports it."""

from xpnn.train.callbacks import EarlyStopping, ModelCheckpoint
from xpnn.train.evaluation import evaluate, predict
from xpnn.train.logs import CSVLogger, TensorBoard
from xpnn.train.loop import fit
from xpnn.train.lr_find import LRFinderResult, lr_find
from xpnn.train.model import Module, Sequential, Trainer, load, save
from xpnn.train.record import Callback, History, TrainingRun

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LRFinderResult",
    "Module",
    "ModelCheckpoint",
    "Sequential",
    "TensorBoard",
    "Trainer",
    "TrainingRun",
    "evaluate",
    "fit",
    "load",
    "lr_find",
    "predict",
    "save",
]
