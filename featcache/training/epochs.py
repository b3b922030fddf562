"""Epochs of a training run: timing them, keeping the best one, stopping early (a Keras callback)."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np

Progress = Callable[[str], None]


def seconds_per_epoch(history: list[dict[str, float]]) -> float:
    """Mean epoch time, leaving out epoch 1 (it also traces and compiles the model) when there are more."""
    seconds = [row["seconds"] for row in history]
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return float(np.mean(steady))


class KeepBestEpoch(keras.callbacks.Callback):
    """Times each epoch, records the history, reports progress, restores the best epoch's weights, stops early.

    The best epoch has the highest validation accuracy; among epochs tied on it (common: a small validation
    set gives few distinct accuracies), the lowest validation loss. Accuracy alone kept the FIRST epoch to
    reach the best accuracy, e.g. a barely trained epoch 1 (val loss 1.03) over epoch 15 (val loss 0.0004)
    at the same accuracy. `patience` > 0 stops training after that many epochs without a better epoch.
    validates False (no validation set): val_* are None and the last epoch is kept.
    """

    def __init__(self, epochs: int, progress: Progress | None, validates: bool = True, patience: int = 0) -> None:
        super().__init__()
        self.epochs = epochs
        self.progress = progress
        self.validates = validates
        self.patience = patience
        self.history: list[dict[str, float | None]] = []
        self.best_epoch = 0
        self.best_val_accuracy: float | None = None
        self.best_val_loss: float | None = None
        self.stopped_early = False
        self._best_weights: list[np.ndarray] | None = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        row: dict[str, float | None] = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._epoch_start}
        for key in ("loss", "accuracy"):
            row[key] = float(logs[key])
        for key in ("val_loss", "val_accuracy"):
            row[key] = float(logs[key]) if self.validates else None
        self.history.append(row)
        if self.validates:
            is_best = self._is_better(row["val_accuracy"], row["val_loss"])
            if is_best:
                self.best_epoch, self.best_val_accuracy, self.best_val_loss = (
                    row["epoch"],
                    row["val_accuracy"],
                    row["val_loss"],
                )
                self._best_weights = self.model.get_weights()
            validation = f"val loss {row['val_loss']:.4f}  val accuracy {row['val_accuracy']:.3f}  "
        else:
            is_best = False
            self.best_epoch = row["epoch"]
            validation = ""
        if self.progress is not None:
            self.progress(
                f"epoch {row['epoch']}/{self.epochs}  loss {row['loss']:.4f}  accuracy {row['accuracy']:.3f}  "
                f"{validation}{row['seconds']:.2f}s{'  *best' if is_best else ''}"
            )
        if self.validates and self.patience and row["epoch"] - self.best_epoch >= self.patience:
            self.stopped_early = True
            self.model.stop_training = True
            if self.progress is not None:
                self.progress(
                    f"stopped early: no better epoch in the last {self.patience} (--patience {self.patience})"
                )

    def _is_better(self, val_accuracy: float, val_loss: float) -> bool:
        if self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy:
            return True
        return val_accuracy == self.best_val_accuracy and val_loss < self.best_val_loss

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
            self._best_weights = None  # the copy (the size of the weights) is not needed past this point
