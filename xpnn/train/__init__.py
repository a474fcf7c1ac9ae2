"""Training: the run record (History, Callback), the fit/evaluate/predict loop, callbacks and
training checkpoints. Imports nn, optim and data; nothing below imports it."""

from xpnn.train.callbacks import EarlyStopping, ModelCheckpoint
from xpnn.train.evaluation import evaluate, predict
from xpnn.train.logs import CSVLogger, TensorBoard
from xpnn.train.loop import fit
from xpnn.train.lr_find import LRFinderResult, lr_find
from xpnn.train.record import Callback, History, TrainingRun

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LRFinderResult",
    "ModelCheckpoint",
    "TensorBoard",
    "TrainingRun",
    "evaluate",
    "fit",
    "lr_find",
    "predict",
]
