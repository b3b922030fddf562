"""The model folder `featcache train` writes and `evaluate`/`predict` read back.

MODEL_DIR/
  model.keras           the trained head (Keras 3 format; custom layers from featcache.training.heads), or
  model.npz             for a baseline (model_kind "linear" / "knn": featcache.training.baselines), its arrays
                        (numbers only, read without pickle)
  featcache.json        metadata, format 1 (ModelMetadata): head and training configs, class names, num_frames,
                        feature_dim, the cache's extractor, sampling and dtype, cache path and size, split summary
                        (description, num_train, num_val, num_test), best epoch, best validation accuracy
                        (null without a validation set), seconds per epoch
  history.csv           epoch,loss,accuracy,val_loss,val_accuracy,seconds (val_* = the validation videos that
                        pick the best epoch, empty without a validation set; never the test videos)
  learning_curves.png   loss and accuracy per epoch
  split.csv             path,subset (train|val|test),fingerprint (content "size:blake2b", "" from a format-1
                        cache) per video
  evaluation/           reports `featcache evaluate` writes by default; removed when the folder is overwritten

featcache.json is written last (atomically: featcache.files.write_atomically), so a folder interrupted while being
written reads as incomplete. This module is the only reader and writer of featcache.json: `ModelMetadata` is its
content, `ModelFolder` a folder opened once (metadata and split read, the Keras model loaded on request).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import CacheIndex
from featcache.cache.settings import settings_record
from featcache.config import ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig, config_from_dict
from featcache.errors import ModelDirError
from featcache.files import sha256_file, write_atomically, write_folder_atomically
from featcache.training.curves import plot_learning_curves
from featcache.training.model_integrity import check_class_names, class_names_digest, output_width_of
from featcache.training.splits import Split
from featcache.version import __version__, newer_writer_problem

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
BASELINE_MODEL_FILE = "model.npz"
SEQUENCE_HEAD_KIND = "sequence_head"
METADATA_FILE = "featcache.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "learning_curves.png"
SPLIT_FILE = "split.csv"
EVALUATION_DIR = "evaluation"  # `featcache evaluate` writes its reports here by default
MODEL_DIR_FILES = (MODEL_FILE, BASELINE_MODEL_FILE, METADATA_FILE, HISTORY_FILE, CURVES_FILE, SPLIT_FILE)
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass(frozen=True)
class ModelMetadata:
    """featcache.json (format 1): what a model folder's head was trained on, and how. Field names are its keys.

    head, training: HeadConfig and TrainConfig as saved (`head_config`, `train_config` rebuild them).
    class_names: the model's output order. num_frames: the head's input frames (a clip's with train --frames T).
    extractor: the training cache's extractor provenance (name, handle, image_size, weights, weights_sha256, ...);
    sampling: its SamplingConfig fields. cache: {"path": absolute, "num_videos"}. split: {"description",
    "num_train", "num_val", "num_test"}. best_val_accuracy: None without a validation set (the last epoch was kept).

    A field with a default is optional on disk: a folder written before it existed reads as that default, and
    a field left at None is not written. So a new field goes last with a default (None where "not recorded" is
    the honest value). Keys this featcache does not know (a later featcache's, within format 1) are skipped;
    a change an older reader must not skip needs a new FORMAT_VERSION.
    """

    format_version: int
    featcache_version: str
    head: dict[str, Any]
    training: dict[str, Any]
    class_names: tuple[str, ...]
    num_frames: int
    feature_dim: int
    extractor: dict[str, Any]
    sampling: dict[str, Any]
    cache: dict[str, Any]
    split: dict[str, Any]
    best_epoch: int
    best_val_accuracy: float | None
    seconds_per_epoch: float
    # Added after format 1 was first written; None: the head saw its features unrounded (float32).
    cache_dtype: str | None = None
    # What model.* holds: None (folders from before it was recorded) or "sequence_head" = a Keras head in
    # model.keras; "linear" / "knn" = a baseline on mean-pooled features in model.npz.
    model_kind: str | None = None
    # A baseline's choice: {"setting": "C" | "k", "value", "candidates", "chosen_on"} (None for sequence heads).
    baseline: dict[str, Any] | None = None
    # Integrity (added later still; None in older folders, which are checked against the model's width only):
    # sha256 of model.keras; the model's output width (= len(class_names)); sha256 of model_sha256 and the class
    # names in order, so a class renamed or reordered by hand in featcache.json no longer matches its model.
    model_sha256: str | None = None
    output_width: int | None = None
    class_names_sha256: str | None = None
    # train --init-from-text: {"preset", "prompts", "class_words", "logit_scale"} the final layer started from.
    text_init: dict[str, Any] | None = None

    @classmethod
    def of_training_run(
        cls,
        index: CacheIndex,
        split: Split,
        head_config: HeadConfig,
        train_config: TrainConfig,
        best_epoch: int,
        best_val_accuracy: float | None,
        seconds_per_epoch: float,
        baseline: dict[str, Any] | None = None,
        text_init: dict[str, Any] | None = None,
    ) -> ModelMetadata:
        """The metadata of a head just trained on `index`'s cache with these settings and this split
        (`baseline`: a linear / knn baseline's choice, see featcache.training.baselines)."""
        return cls(
            format_version=FORMAT_VERSION,
            featcache_version=__version__,
            head=dataclasses.asdict(head_config),
            training=dataclasses.asdict(train_config),
            class_names=tuple(index.class_names),
            num_frames=train_config.frames or index.num_frames,
            feature_dim=index.feature_dim,
            extractor=dict(index.extractor),
            sampling=dict(index.sampling),
            cache={"path": str(Path(index.path).resolve()), "num_videos": index.num_videos},
            split={
                "description": split.description,
                "num_train": split.num_train,
                "num_val": split.num_val,
                "num_test": split.num_test,
            },
            best_epoch=int(best_epoch),
            best_val_accuracy=None if best_val_accuracy is None else float(best_val_accuracy),
            seconds_per_epoch=float(seconds_per_epoch),
            cache_dtype=index.dtype,  # predict rounds new features the same way the head saw them
            model_kind=head_config.head if baseline is not None else SEQUENCE_HEAD_KIND,
            baseline=baseline,
            text_init=text_init,
        )

    @classmethod
    def read(cls, model_dir: Path) -> ModelMetadata:
        """featcache.json of a model folder; ModelDirError for a missing, foreign or incomplete folder."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelDirError(
                f"{model_dir}: no such model folder; write one with `featcache train CACHE.h5 --out {model_dir}`"
            )
        metadata_path = model_dir / METADATA_FILE
        if not metadata_path.is_file():
            raise ModelDirError(
                f"{model_dir}: no {METADATA_FILE}, so not a (finished) featcache model folder; re-run `featcache train`"
            )
        try:
            saved = json.loads(metadata_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelDirError(f"{metadata_path}: unreadable ({err}); re-run `featcache train`") from err
        return cls.from_dict(saved, metadata_path)

    @classmethod
    def from_dict(cls, saved: Any, source: Path) -> ModelMetadata:
        """Rebuild from featcache.json's content; `source` names the file in errors."""
        newer = (
            newer_writer_problem(str(saved.get("featcache_version", "")), str(source.parent))
            if isinstance(saved, dict)
            else ""
        )
        if newer:
            raise ModelDirError(newer)
        if not isinstance(saved, dict) or saved.get("format_version") != FORMAT_VERSION:
            found = saved.get("format_version") if isinstance(saved, dict) else None
            raise ModelDirError(
                f"{source}: model folder format {found!r}, this featcache reads format {FORMAT_VERSION}; "
                "re-run `featcache train`"
            )
        missing = [key for key in METADATA_KEYS if key not in saved]
        if missing:
            raise ModelDirError(f"{source}: missing {', '.join(missing)}; re-run `featcache train`")
        values = {field.name: saved[field.name] for field in dataclasses.fields(cls) if field.name in saved}
        try:
            values["class_names"] = tuple(str(name) for name in values["class_names"])
            for name in ("num_frames", "feature_dim", "best_epoch"):
                values[name] = int(values[name])
            if values.get("output_width") is not None:
                values["output_width"] = int(values["output_width"])
            values["seconds_per_epoch"] = float(values["seconds_per_epoch"])
            if values["best_val_accuracy"] is not None:
                values["best_val_accuracy"] = float(values["best_val_accuracy"])
            for name in ("head", "training", "extractor", "sampling", "cache", "split"):
                if not isinstance(values[name], dict):
                    raise TypeError(f"{name} is {type(values[name]).__name__}, expected an object")
        except (TypeError, ValueError) as err:
            raise ModelDirError(f"{source}: malformed ({err}); re-run `featcache train`") from err
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """featcache.json's content: every required key, and the optional ones that are set."""
        saved = dataclasses.asdict(self)
        saved["class_names"] = list(self.class_names)
        return {key: value for key, value in saved.items() if key in METADATA_KEYS or value is not None}

    def write(self, model_dir: Path) -> None:
        """Replace MODEL_DIR/featcache.json atomically: a reader sees the old file, the new one, or none."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        write_atomically(
            Path(model_dir) / METADATA_FILE, lambda temporary: temporary.write_text(text, encoding="utf-8")
        )

    @property
    def kind(self) -> str:
        """ "sequence_head" (also for folders written before the kind was recorded), "linear" or "knn"."""
        return self.model_kind or SEQUENCE_HEAD_KIND

    @property
    def model_file(self) -> str:
        """The file in the folder that holds the model: model.keras, or model.npz for a baseline."""
        return MODEL_FILE if self.kind == SEQUENCE_HEAD_KIND else BASELINE_MODEL_FILE

    @property
    def head_settings(self) -> dict[str, Any]:
        """The saved head settings, with the defaults of settings added since it was saved (it trained at those)."""
        return {**dataclasses.asdict(HeadConfig()), **self.head}

    @property
    def training_settings(self) -> dict[str, Any]:
        """The saved training settings, with the defaults of settings added since it was saved."""
        return {**dataclasses.asdict(TrainConfig()), **self.training}

    @property
    def head_config(self) -> HeadConfig:
        return config_from_dict(HeadConfig, self.head)

    @property
    def train_config(self) -> TrainConfig:
        """The training settings; on the model's own cache they give back its split exactly (choose_split is seeded)."""
        return config_from_dict(TrainConfig, self.training)

    @property
    def clip_frames(self) -> int:
        """T > 0: the head was trained on T-frame clips of the stored frames (train --frames T);
        0: on them as stored."""
        return int(self.training.get("frames") or 0)

    @property
    def test_clips(self) -> int:
        """Uniform clips whose softmax is averaged per video when scoring a clip-trained head (train --test-clips)."""
        return int(self.training.get("test_clips") or 1)

    @property
    def feature_rounding_dtype(self) -> np.dtype:
        """The dtype new features are rounded through before the head sees them, as its training features were."""
        return np.dtype(self.cache_dtype or "float32")

    @property
    def training_cache_settings(self) -> dict[str, Any]:
        """The training cache's settings record (featcache.cache.settings): extractor with feature_dim, sampling,
        dtype (None for folders from before it was recorded: not compared)."""
        return settings_record({**self.extractor, "feature_dim": self.feature_dim}, self.sampling, self.cache_dtype)

    @property
    def extractor_config(self) -> ExtractorConfig:
        """The ExtractorConfig to embed new videos with, from the stored provenance (only its config fields)."""
        fields = {name: self.extractor[name] for name in ExtractorConfig.__dataclass_fields__ if name in self.extractor}
        return config_from_dict(ExtractorConfig, fields)

    @property
    def sampling_config(self) -> SamplingConfig:
        """The SamplingConfig of the training cache, to sample new videos' frames the same way."""
        fields = {name: self.sampling[name] for name in SamplingConfig.__dataclass_fields__ if name in self.sampling}
        return config_from_dict(SamplingConfig, fields)


# Keys every featcache.json of format 1 has: the fields without a default.
METADATA_KEYS = tuple(field.name for field in dataclasses.fields(ModelMetadata) if field.default is dataclasses.MISSING)


@dataclass(frozen=True)
class ModelFolder:
    """A model folder written by `featcache train`, opened once: its metadata and split; the model loads on request.

    split: cache path (relative, as in the training cache) -> "train" | "val" | "test".
    split_fingerprints: video contents (fingerprint) -> "train" | "val" | "test" (empty for older folders).
    """

    path: Path
    metadata: ModelMetadata
    split: dict[str, str]
    split_fingerprints: dict[str, str]

    @classmethod
    def open(cls, model_dir: Path) -> ModelFolder:
        """Read featcache.json and split.csv; ModelDirError when the folder is missing, incomplete or foreign."""
        model_dir = Path(model_dir)
        metadata = ModelMetadata.read(model_dir)
        for name in (metadata.model_file, SPLIT_FILE):
            if not (model_dir / name).is_file():
                raise ModelDirError(
                    f"{model_dir}: {name} is missing, the folder is incomplete; re-run `featcache train`"
                )
        check_class_names(model_dir, metadata)
        rows = _split_rows(model_dir / SPLIT_FILE)
        return cls(
            path=model_dir,
            metadata=metadata,
            split=split_subsets(rows),
            split_fingerprints=split_fingerprint_subsets(rows),
        )

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.class_names)

    def load_model(self) -> Any:
        """The model (each call reads its file again): inputs [features float32 (batch, num_frames, feature_dim),
        lengths int32 (batch,)], output softmax float32 (batch, len(class_names)), through `predict_on_batch` and
        `predict`. A Keras model for a sequence head (imports Keras), a numpy one for a baseline. ModelDirError when
        the file is not the one featcache.json recorded (sha256) or scores another number of classes."""
        model_path = self.path / self.metadata.model_file
        recorded = self.metadata.model_sha256
        if recorded is not None and sha256_file(model_path) != recorded:
            raise ModelDirError(
                f"{model_path} is not the model {METADATA_FILE} describes (its sha256 differs: replaced or damaged); "
                f"re-run `featcache train`"
            )
        model = self._load_baseline(model_path) if self.metadata.kind != SEQUENCE_HEAD_KIND else _load_head(model_path)
        width = output_width_of(model)
        if width != len(self.class_names):
            raise ModelDirError(
                f"{model_path} gives {width} outputs, {METADATA_FILE} names {len(self.class_names)} classes "
                "(a model file of another head?); re-run `featcache train`"
            )
        return model

    def _load_baseline(self, model_path: Path) -> Any:
        from featcache.training.baselines import BASELINE_KINDS, load_baseline_model

        if self.metadata.kind not in BASELINE_KINDS:
            raise ModelDirError(
                f"{self.path / METADATA_FILE}: model_kind {self.metadata.kind!r} is unknown to this featcache "
                f"(it knows {SEQUENCE_HEAD_KIND}, {', '.join(BASELINE_KINDS)}); upgrade featcache"
            )
        return load_baseline_model(model_path, self.metadata.kind)


def _load_head(model_path: Path) -> Any:
    """A sequence head's model.keras (imports Keras, quietly: `predict` and `evaluate` of a baseline never do)."""
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    import keras

    import featcache.training.heads  # noqa: F401  (registers the custom layers the saved model refers to)

    try:
        return keras.saving.load_model(model_path, compile=False)
    except (OSError, ValueError, TypeError, KeyError, EOFError) as err:
        raise ModelDirError(f"{model_path}: cannot be loaded ({err}); re-run `featcache train`") from err


def open_finished_model_folder(model_dir: Path) -> ModelFolder | None:
    """The model folder at `model_dir`, or None while it has no featcache.json (none yet, or a run interrupted before
    its last write: a folder to train again). With featcache.json, any problem (a newer format, a corrupt file)
    is a ModelDirError to show, not a reason to train over the folder."""
    if not (Path(model_dir) / METADATA_FILE).is_file():
        return None
    return ModelFolder.open(model_dir)


def read_split_file(split_path: Path) -> dict[str, str]:
    """A split.csv -> {path: "train" | "val" | "test"}."""
    return split_subsets(_split_rows(split_path))


def split_subsets(rows: list[dict[str, str]]) -> dict[str, str]:
    """split.csv rows -> {path: subset}."""
    return {row["path"]: row["subset"] for row in rows}


def split_fingerprint_subsets(rows: list[dict[str, str]]) -> dict[str, str]:
    """split.csv rows -> {fingerprint: subset}; a fingerprint in train or val wins over test (it was seen)."""
    by_fingerprint: dict[str, str] = {}
    for row in rows:
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


def check_model_dir_writable(model_dir: Path, overwrite: bool = False) -> None:
    """ModelDirError unless `model_dir` is absent or empty, or holds a model folder and `overwrite` is set.

    A model folder is never replaced silently: it may be the one a user's reports and evaluation/ describe.
    """
    model_dir = Path(model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise ModelDirError(f"--out / out_dir {model_dir} is a file; pass a folder for the model")
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        return
    foreign = sorted(entry.name for entry in model_dir.iterdir() if not _is_model_folder_entry(entry.name))
    if not (model_dir / METADATA_FILE).is_file() and foreign:
        raise ModelDirError(
            f"--out / out_dir {model_dir} is a folder with other files "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}) "
            "and no featcache.json; pass a new or empty folder"
        )
    if not overwrite:
        raise ModelDirError(
            f"--out / out_dir {model_dir} already holds a model (and its evaluation reports, if any); "
            "choose another --out, or pass --overwrite (overwrite=True) to replace it"
        )


def _is_model_folder_entry(name: str) -> bool:
    """A file or folder a model folder holds, or a featcache.json left half-written by an interrupted run."""
    is_metadata_temporary = name.startswith(f".{METADATA_FILE}.") and name.endswith(
        ".tmp"
    )  # featcache.files.temporary_path_for
    return name in MODEL_DIR_FILES or name == EVALUATION_DIR or is_metadata_temporary


def save_model_folder(
    model_dir: Path,
    model: Any,
    metadata: ModelMetadata,
    history: list[dict[str, float]],
    split_rows: list[tuple[str, str, str]],
) -> ModelMetadata:
    """Write a model folder (see the module docstring) into a temporary folder and rename it into place, so a failed
    write (a full disk) leaves the previous folder or none, nothing that blocks a rerun. Returns the metadata as
    written (with model.keras' sha256 and output width).

    Overwriting a model folder also removes its evaluation/ reports: they describe the previous model.
    history: one dict per epoch with HISTORY_COLUMNS (val_* None without validation);
    split_rows: (cache path, "train" | "val" | "test", fingerprint) for every video.
    """
    written: list[ModelMetadata] = []

    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        model.save(folder / metadata.model_file)  # Keras' save, or featcache.training.baselines' arrays
        model_sha256 = sha256_file(folder / metadata.model_file)
        final = dataclasses.replace(
            metadata,
            model_sha256=model_sha256,
            output_width=output_width_of(model),
            class_names_sha256=class_names_digest(model_sha256, metadata.class_names),
        )
        with open(folder / HISTORY_FILE, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        with open(folder / SPLIT_FILE, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(("path", "subset", "fingerprint"))
            writer.writerows(split_rows)
        plot_learning_curves(history, folder / CURVES_FILE, best_epoch=metadata.best_epoch)
        final.write(folder)
        written.append(final)

    Path(model_dir).parent.mkdir(parents=True, exist_ok=True)
    write_folder_atomically(Path(model_dir), write)
    return written[0]


def read_history(model_dir: Path) -> list[dict[str, float | None]]:
    """history.csv as written by `save_model_folder`: one dict per epoch (HISTORY_COLUMNS; empty val_* -> None).

    Raises ModelDirError when the file is missing or unreadable.
    """
    history_path = Path(model_dir) / HISTORY_FILE
    try:
        with open(history_path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        return [
            {
                column: (int(row[column]) if column == "epoch" else float(row[column]))
                if row.get(column) not in (None, "")
                else None
                for column in HISTORY_COLUMNS
            }
            for row in rows
        ]
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(f"{history_path}: unreadable ({err}); re-run `featcache train`") from err
