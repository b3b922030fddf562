"""The model folder `featcache train` writes and `evaluate`/`predict` read back.

MODEL_DIR/
  model.keras           the trained head (Keras 3 format; custom layers from featcache.training.heads)
  featcache.json        metadata, format 1: head and training configs, class names, num_frames,
                        feature_dim, the cache's extractor and sampling, cache path and size, split summary
                        (description, num_train, num_val, num_test), best epoch, best validation accuracy
                        (null without a validation set), seconds per epoch
  history.csv           epoch,loss,accuracy,val_loss,val_accuracy,seconds (val_* = the validation videos that
                        pick the best epoch, empty without a validation set; never the test videos)
  learning_curves.png   loss and accuracy per epoch
  split.csv             path,subset (train|val|test),fingerprint (content "size:blake2b", "" from a format-1 cache) per video
  evaluation/           reports `featcache evaluate` writes by default; removed when the folder is overwritten

featcache.json is written last, so a folder interrupted while being written reads as incomplete.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featcache.errors import ModelDirError

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "featcache.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "learning_curves.png"
SPLIT_FILE = "split.csv"
EVALUATION_DIR = "evaluation"  # `featcache evaluate` writes its reports here by default
MODEL_DIR_FILES = (MODEL_FILE, METADATA_FILE, HISTORY_FILE, CURVES_FILE, SPLIT_FILE)
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
# Keys every featcache.json of format 1 has; evaluate and predict rely on them.
METADATA_KEYS = (
    "format_version", "featcache_version", "head", "training", "class_names", "num_frames", "feature_dim",
    "extractor", "sampling", "cache", "split", "best_epoch", "best_val_accuracy", "seconds_per_epoch",
)  # fmt: skip


@dataclass
class TrainedModel:
    """A model folder loaded back.

    model: the Keras model; inputs [features float32 (batch, num_frames, feature_dim), lengths int32 (batch,)],
      output softmax float32 (batch, len(class_names)).
    metadata: featcache.json as a dict (see the module docstring).
    class_names: the output order of the model.
    split: cache path (relative, as in the training cache) -> "train" | "val" | "test".
    split_fingerprints: video contents (fingerprint) -> "train" | "val" | "test" (empty for older folders).
    """

    path: Path
    model: Any
    metadata: dict[str, Any]
    class_names: list[str]
    split: dict[str, str]
    split_fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.metadata["num_frames"])

    @property
    def feature_dim(self) -> int:
        return int(self.metadata["feature_dim"])


def read_model_metadata(model_dir: Path) -> dict[str, Any]:
    """featcache.json of a model folder; ModelDirError for a missing, foreign or incomplete folder."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(f"{model_dir}: no such model folder; write one with `featcache train CACHE.h5 --out {model_dir}`")
    metadata_path = model_dir / METADATA_FILE
    if not metadata_path.is_file():
        raise ModelDirError(f"{model_dir}: no {METADATA_FILE}, so not a (finished) featcache model folder; re-run `featcache train`")
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{metadata_path}: unreadable ({err}); re-run `featcache train`") from err
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else None
        raise ModelDirError(f"{metadata_path}: model folder format {found!r}, this featcache reads format {FORMAT_VERSION}; re-run `featcache train`")
    missing = [key for key in METADATA_KEYS if key not in metadata]
    if missing:
        raise ModelDirError(f"{metadata_path}: missing {', '.join(missing)}; re-run `featcache train`")
    return metadata


def read_split_file(split_path: Path) -> dict[str, str]:
    """split.csv -> {path: "train" | "val" | "test"}."""
    return {row["path"]: row["subset"] for row in _split_rows(split_path)}


def read_split_fingerprints(split_path: Path) -> dict[str, str]:
    """split.csv -> {fingerprint: subset}; a fingerprint in train or val wins over test (it was seen)."""
    by_fingerprint: dict[str, str] = {}
    for row in _split_rows(split_path):
        fingerprint = row.get("fingerprint") or ""
        if fingerprint and by_fingerprint.get(fingerprint) not in ("train", "val"):
            by_fingerprint[fingerprint] = row["subset"]
    return by_fingerprint


def _split_rows(split_path: Path) -> list[dict[str, str]]:
    try:
        with open(split_path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as err:
        raise ModelDirError(f"{split_path}: unreadable ({err}); re-run `featcache train`") from err
    if rows and not {"path", "subset"} <= set(rows[0]):
        raise ModelDirError(f"{split_path}: expected columns path,subset; re-run `featcache train`")
    return rows


def load_trained_model(model_dir: Path) -> TrainedModel:
    """Load a model folder written by `featcache train`; ModelDirError when it is missing, incomplete or foreign."""
    model_dir = Path(model_dir)
    metadata = read_model_metadata(model_dir)
    for name in (MODEL_FILE, SPLIT_FILE):
        if not (model_dir / name).is_file():
            raise ModelDirError(f"{model_dir}: {name} is missing, the folder is incomplete; re-run `featcache train`")
    import keras

    import featcache.training.heads  # noqa: F401  (registers the custom layers the saved model refers to)

    try:
        model = keras.saving.load_model(model_dir / MODEL_FILE, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelDirError(f"{model_dir / MODEL_FILE}: cannot be loaded ({err}); re-run `featcache train`") from err
    return TrainedModel(
        path=model_dir,
        model=model,
        metadata=metadata,
        class_names=list(metadata["class_names"]),
        split=read_split_file(model_dir / SPLIT_FILE),
        split_fingerprints=read_split_fingerprints(model_dir / SPLIT_FILE),
    )


def check_model_dir_writable(model_dir: Path, overwrite: bool = False) -> None:
    """ModelDirError unless `model_dir` is absent or empty, or holds a model folder and `overwrite` is set.

    A model folder is never replaced silently: it may be the one a user's reports and evaluation/ describe.
    """
    model_dir = Path(model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ModelDirError(f"--out {model_dir} is a file; pass a folder for the model")
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        return
    ours = {*MODEL_DIR_FILES, EVALUATION_DIR, f".{METADATA_FILE}.tmp"}
    foreign = sorted(entry.name for entry in model_dir.iterdir() if entry.name not in ours)
    if not (model_dir / METADATA_FILE).is_file() and foreign:
        raise ModelDirError(
            f"--out {model_dir} is a folder with other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) "
            "and no featcache.json; pass a new or empty folder"
        )
    if not overwrite:
        raise ModelDirError(
            f"--out {model_dir} already holds a model (and its evaluation reports, if any); "
            "choose another --out, or pass --overwrite to replace it"
        )


def save_model_dir(model_dir: Path, model: Any, metadata: dict[str, Any], history: list[dict[str, float]], split_rows: list[tuple[str, str, str]]) -> None:
    """Write a model folder (see the module docstring); featcache.json last, so an interrupted write reads as incomplete.

    Overwriting a model folder also removes its evaluation/ reports: they describe the previous model.
    history: one dict per epoch with HISTORY_COLUMNS (val_* None without validation);
    split_rows: (cache path, "train" | "val" | "test", fingerprint) for every video.
    """
    model_dir = Path(model_dir)
    missing = [key for key in METADATA_KEYS if key not in metadata]
    assert not missing, f"featcache.json would lack {missing}"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / METADATA_FILE).unlink(missing_ok=True)
    evaluation_dir = model_dir / EVALUATION_DIR
    if evaluation_dir.is_symlink():
        evaluation_dir.unlink()
    elif evaluation_dir.is_dir():
        shutil.rmtree(evaluation_dir)
    model.save(model_dir / MODEL_FILE)
    with open(model_dir / HISTORY_FILE, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    with open(model_dir / SPLIT_FILE, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(("path", "subset", "fingerprint"))
        writer.writerows(split_rows)
    plot_learning_curves(history, model_dir / CURVES_FILE, best_epoch=int(metadata["best_epoch"]))
    temporary_path = model_dir / f".{METADATA_FILE}.tmp"
    temporary_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary_path, model_dir / METADATA_FILE)


def plot_learning_curves(history: list[dict[str, float]], png_path: Path, best_epoch: int) -> None:
    """Loss and accuracy per epoch, training and validation (when there is one), with the kept epoch marked."""
    # The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    epochs = [row["epoch"] for row in history]
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        axes.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        if any(row[f"val_{metric}"] is not None for row in history):
            axes.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
        axes.axvline(best_epoch, color="grey", linestyle="--", label=f"kept epoch {best_epoch}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.legend()
    figure.savefig(png_path, dpi=100)
