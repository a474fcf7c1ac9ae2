"""CSVLogger and TensorBoard: fit callbacks that write each epoch's numbers."""

from __future__ import annotations

import csv
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.train import record

COLUMNS = ["epoch", *record.KEYS]


def blobs(n_per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    x = np.concatenate([c + 0.5 * rng.standard_normal((n_per_class, 2)) for c in centers]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per_class)


def fit(epochs: int, callbacks: list[Any], resume: Any = None, validation: bool = True) -> xpnn.History:
    x, y = blobs()
    model = xpnn.Sequential([xpnn.Dense(2, 8), xpnn.ReLU(), xpnn.Dense(8, 3)], seed=0)
    return model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.Adam(model.parameters(), lr=0.02),
                     epochs=epochs, batch_size=16, validation_split=0.25 if validation else 0.0,
                     callbacks=callbacks, seed=1, verbose=0, resume=resume)  # fmt: skip


def read_rows(path: Path, separator: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file, delimiter=separator))


def test_csv_logger_writes_a_header_and_one_row_per_epoch_with_every_history_key(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    history = fit(3, [xpnn.CSVLogger(path)])
    rows = read_rows(path)
    assert rows[0] == COLUMNS and len(rows) == 4
    for k, row in enumerate(rows[1:]):
        assert int(row[0]) == history.epochs[k] == k
        for key, text in zip(record.KEYS, row[1:], strict=True):
            assert float(text) == history[key][k]  # full precision: the same float back


def test_csv_logger_writes_nan_without_validation_data_and_uses_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    fit(2, [xpnn.CSVLogger(path, separator="\t")], validation=False)
    rows = read_rows(path, "\t")
    assert rows[0] == COLUMNS and len(rows) == 3
    assert math.isnan(float(rows[1][COLUMNS.index("val_loss")]))
    assert math.isfinite(float(rows[1][COLUMNS.index("loss")]))


def test_csv_logger_starts_afresh_unless_appending(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    fit(2, [xpnn.CSVLogger(path)])
    fit(1, [xpnn.CSVLogger(path)])
    assert len(read_rows(path)) == 2  # overwritten: header + 1 row
    fit(2, [xpnn.CSVLogger(path, append=True)])
    rows = read_rows(path)
    assert rows[0] == COLUMNS and COLUMNS not in rows[1:]  # one header only
    assert [row[0] for row in rows[1:]] == ["0", "0", "1"]


def test_csv_logger_of_a_resumed_run_continues_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    whole = fit(4, [])
    fit(2, [xpnn.CSVLogger(path), xpnn.ModelCheckpoint(tmp_path / "e{epoch}.npz")])
    fit(4, [xpnn.CSVLogger(path)], resume=tmp_path / "e2.npz")  # append=False: resuming continues
    rows = read_rows(path)
    assert rows[0] == COLUMNS and [row[0] for row in rows[1:]] == ["0", "1", "2", "3"]
    losses = [float(row[COLUMNS.index("loss")]) for row in rows[1:]]
    assert losses == whole["loss"]  # the resumed rows are the uninterrupted run's


def test_a_resumed_run_drops_the_rows_of_the_epochs_it_repeats(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    whole = fit(4, [])
    # the checkpoint of epoch 2, then a third epoch logged before the run was interrupted
    fit(3, [xpnn.ModelCheckpoint(tmp_path / "e{epoch}.npz"), xpnn.CSVLogger(path)])
    fit(4, [xpnn.CSVLogger(path)], resume=tmp_path / "e2.npz")
    rows = read_rows(path)
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "3"]
    assert [float(row[COLUMNS.index("loss")]) for row in rows[1:]] == whole["loss"]


def test_csv_logger_writes_nothing_off_rank_zero(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    logger = xpnn.CSVLogger(path)
    run = record.TrainingRun(model=None, loss=None, optimizer=None, seed=0, rank=1)  # type: ignore[arg-type]
    logger.on_train_begin(run)
    logger.on_epoch_end(run, 0, {"loss": 1.0})
    logger.on_train_end(run)
    assert not path.exists()


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Parse every TensorBoard event file under ``logdir`` (TFRecord framing with masked CRC-32C
    checks, then tensorboardX's Event protobuf): ``{tag: [(step, value), ...]}``."""
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            header = data[at : at + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8 : at + 12])[0] == masked_crc32c(header)
            body = data[at + 12 : at + 12 + length]
            assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == masked_crc32c(body)
            at += 16 + length
            event = event_pb2.Event.FromString(body)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_readable_scalars_for_every_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")  # in the "test" extra; the missing case is tested below
    history = fit(3, [xpnn.TensorBoard(tmp_path / "tb")])
    scalars = read_scalars(tmp_path / "tb")
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(scalars)
    assert [step for step, _ in scalars["loss"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in scalars["val_loss"]], history["val_loss"], rtol=1e-6)


def test_tensorboard_skips_nan_numbers_and_writes_nothing_off_rank_zero(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")
    fit(1, [xpnn.TensorBoard(tmp_path / "tb")], validation=False)
    assert "val_loss" not in read_scalars(tmp_path / "tb") and "loss" in read_scalars(tmp_path / "tb")
    board = xpnn.TensorBoard(tmp_path / "other")
    run = record.TrainingRun(model=None, loss=None, optimizer=None, seed=0, rank=2)  # type: ignore[arg-type]
    board.on_train_begin(run)
    board.on_epoch_end(run, 0, {"loss": 1.0})
    board.on_train_end(run)
    assert not (tmp_path / "other").exists()


def test_tensorboard_without_tensorboardx_names_the_extra(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now raises ImportError
    with pytest.raises(xpnn.MissingDependencyError, match=r"pip install 'xpnn\[tensorboard\]'") as caught:
        xpnn.TensorBoard(tmp_path)
    assert isinstance(caught.value, ImportError) and "tensorboardX" in str(caught.value)
