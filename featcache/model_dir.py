"""The model folder `featcache train` writes and `evaluate`/`predict` read back.

MODEL_DIR/
  model.keras           the trained head (Keras 3 format; custom layers from featcache.heads)
  featcache.json        metadata, format 1: head and training configs, class names, num_frames,
                        feature_dim, the cache's extractor and sampling, cache path and size, split summary,
                        best epoch, best held-out accuracy, seconds per epoch
  history.csv           epoch,loss,accuracy,val_loss,val_accuracy,seconds (val_* = the held-out split)
  learning_curves.png   loss and accuracy per epoch
  split.csv             path,subset (train|test) for every video of the training cache

featcache.json is written last, so a folder interrupted while being written reads as incomplete.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featcache.errors import ModelDirError

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "featcache.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "learning_curves.png"
SPLIT_FILE = "split.csv"
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
    split: cache path (relative, as in the training cache) -> "train" | "test".
    """

    path: Path
    model: Any
    metadata: dict[str, Any]
    class_names: list[str]
    split: dict[str, str]

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
    """split.csv -> {path: "train" | "test"}."""
    try:
        with open(split_path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as err:
        raise ModelDirError(f"{split_path}: unreadable ({err}); re-run `featcache train`") from err
    if rows and not {"path", "subset"} <= set(rows[0]):
        raise ModelDirError(f"{split_path}: expected columns path,subset; re-run `featcache train`")
    return {row["path"]: row["subset"] for row in rows}


def load_trained_model(model_dir: Path) -> TrainedModel:
    """Load a model folder written by `featcache train`; ModelDirError when it is missing, incomplete or foreign."""
    model_dir = Path(model_dir)
    metadata = read_model_metadata(model_dir)
    for name in (MODEL_FILE, SPLIT_FILE):
        if not (model_dir / name).is_file():
            raise ModelDirError(f"{model_dir}: {name} is missing, the folder is incomplete; re-run `featcache train`")
    import keras

    import featcache.heads  # noqa: F401  (registers the custom layers the saved model refers to)

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
    )
