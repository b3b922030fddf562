"""Training a head on a feature cache: read the index, split, feed features, keep the best epoch, save.

The split is three-way (featcache.splits): the head fits the train videos, the validation videos pick the
best epoch (whose weights are restored; with no validation set the last epoch is kept), and the test videos
are never seen by training or by that choice, so their accuracy (`featcache evaluate`, `featcache compare`)
is an unbiased estimate.
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from featcache import __version__
from featcache.cache import Cache, CacheIndex, CacheReader, open_cache
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import InputError
from featcache.heads import build_head, compile_head
from featcache.model_dir import FORMAT_VERSION, check_model_dir_writable, save_model_dir
from featcache.splits import Split, choose_split

Progress = Callable[[str], None]
BYTES_PER_MB = 2**20
FLOAT32_BYTES = 4


class CacheBatches(keras.utils.PyDataset):
    """Batches of ((features, lengths), labels) read from the cache file on demand, for caches larger than memory.

    Holds at most one batch of features (plus Keras' prefetch queue). The HDF5 file is opened lazily by the
    first batch read, in the reading process. Each epoch draws a new random batch order from `seed`;
    rows inside a batch are read in sorted order (one pass over the file's chunks).
    """

    def __init__(
        self, cache: Cache, rows: np.ndarray, labels: np.ndarray, lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int, num_frames: int
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.cache = cache
        self.num_frames = num_frames
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.order = self._epoch_order()
        self._reader: CacheReader | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, batch_number: int):
        positions = np.sort(self.order[batch_number * self.batch_size : (batch_number + 1) * self.batch_size])
        if self._reader is None:
            self._reader = self.cache.reader().__enter__()
        features = self._reader.read(self.rows[positions], self.num_frames)
        return (features, self.lengths[positions]), self.labels[positions]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._epoch_order()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.__exit__(None, None, None)
            self._reader = None

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))


@dataclass
class TrainingData:
    """A cache's index, the split, and its features per subset when in memory: ((features, lengths), labels).

    val_inputs is None when there is no validation set. test_inputs is only for scoring a finished model
    (score_accuracy); fit_head never reads it.
    """

    index: CacheIndex
    split: Split
    in_memory: bool
    cache: Cache | None = None
    num_frames: int = 0  # T, the frames the head takes per video
    train_inputs: Any = None
    val_inputs: Any = None
    test_inputs: Any = None

    @property
    def feature_megabytes(self) -> float:
        return self.index.num_videos * self.num_frames * self.index.feature_dim * FLOAT32_BYTES / BYTES_PER_MB

    @property
    def lengths(self) -> np.ndarray:
        """int32 (N,): the frames the head sees per video at T = num_frames."""
        return self.index.lengths_for(self.num_frames)


@dataclass
class TrainResult:
    """What a training run produced. history rows: epoch (1-based), loss, accuracy, val_loss, val_accuracy, seconds.

    val_loss, val_accuracy and best_val_accuracy are None when there was no validation set (the last epoch is kept).
    """

    model: keras.Model
    history: list[dict[str, float | None]]
    best_epoch: int
    best_val_accuracy: float | None
    seconds_per_epoch: float
    num_parameters: int
    split: Split
    model_dir: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def load_training_data(cache: "Path | Cache", train_config: TrainConfig) -> TrainingData:
    """Read a cache's index (or take an opened Cache), choose the split and load the features (in memory within the budget).

    The head takes T = train_config.num_frames frames per video (0: the cache's T), uniform over each video's stored frames.
    """
    cache = open_cache(cache)
    index = cache.index
    check_trainable(index)
    split = choose_split(index, train_config)
    data = TrainingData(index=index, split=split, in_memory=False, cache=cache, num_frames=train_config.num_frames or index.num_frames)
    data.in_memory = data.feature_megabytes <= train_config.memory_budget_mb
    if data.in_memory:
        # Each side is read straight from the file: holding all features and then copies of the
        # sides would double the peak memory.
        with cache.reader() as reader:
            data.train_inputs = _arrays(reader, data, split.train_indices)
            data.val_inputs = _arrays(reader, data, split.val_indices) if split.num_val else None
            data.test_inputs = _arrays(reader, data, split.test_indices)
    return data


def find_leaked_duplicates(index: CacheIndex, split: Split) -> list[tuple[str, str]]:
    """(train/val path, test path) pairs with identical contents (fingerprint): the test score would be inflated."""
    subsets = split.subsets(index.num_videos)
    seen: dict[str, str] = {}
    for path, fingerprint, subset in zip(index.paths, index.fingerprints, subsets):
        if fingerprint and subset in ("train", "val"):
            seen.setdefault(fingerprint, path)
    return [(seen[fingerprint], path) for path, fingerprint, subset in zip(index.paths, index.fingerprints, subsets) if subset == "test" and fingerprint in seen]


def check_trainable(index: CacheIndex) -> None:
    """InputError unless the cache has videos of at least 2 classes and every listed class has videos."""
    if index.num_videos == 0:
        raise InputError(f"{index.path}: the cache holds no videos; embed some with `featcache embed`")
    counts = np.bincount(index.labels, minlength=len(index.class_names))
    if len(index.class_names) < 2:
        raise InputError(f"{index.path}: a classifier needs at least 2 classes, the cache has {len(index.class_names)} ({', '.join(index.class_names)})")
    empty = [name for name, count in zip(index.class_names, counts) if count == 0]
    if empty:
        raise InputError(
            f"{index.path}: class(es) {', '.join(empty)} have no videos in the cache (failed or removed); "
            "add videos for them or re-embed without their folders"
        )


def _arrays(reader: CacheReader, data: TrainingData, rows: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    return (reader.read(rows, data.num_frames), data.lengths[rows]), data.index.labels[rows]


def fit_head(data: TrainingData, head_config: HeadConfig, train_config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train one head on `data` from `train_config.seed`; the best epoch by validation accuracy is restored.

    Only the train and validation videos are read; with no validation set the last epoch is kept.
    """
    keras.utils.set_random_seed(train_config.seed)
    index = data.index
    validates = data.split.num_val > 0
    model = compile_head(
        build_head(head_config, data.num_frames, index.feature_dim, len(index.class_names)),
        train_config.learning_rate,
    )
    best_epoch = KeepBestEpoch(train_config.epochs, progress, validates)
    callbacks: list[keras.callbacks.Callback] = [best_epoch]
    if train_config.tensorboard_dir is not None:
        callbacks.append(tensorboard_callback(train_config.tensorboard_dir))
    if data.in_memory:
        (train_features, train_lengths), train_labels = data.train_inputs
        validation_data = None
        if validates:
            (val_features, val_lengths), val_labels = data.val_inputs
            validation_data = ([val_features, val_lengths], val_labels)
        model.fit(
            [train_features, train_lengths],
            train_labels,
            batch_size=train_config.batch_size,
            epochs=train_config.epochs,
            shuffle=True,
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=0,
        )
    else:
        sides = [(data.split.train_indices, True)] + ([(data.split.val_indices, False)] if validates else [])
        batches = [
            CacheBatches(data.cache, rows, index.labels[rows], data.lengths[rows], train_config.batch_size, shuffle, train_config.seed, data.num_frames)
            for rows, shuffle in sides
        ]
        try:
            model.fit(batches[0], epochs=train_config.epochs, validation_data=batches[1] if validates else None, callbacks=callbacks, verbose=0)
        finally:
            for batch_source in batches:
                batch_source.close()
    return TrainResult(
        model=model,
        history=best_epoch.history,
        best_epoch=best_epoch.best_epoch,
        best_val_accuracy=best_epoch.best_val_accuracy,
        seconds_per_epoch=seconds_per_epoch(best_epoch.history),
        num_parameters=int(model.count_params()),
        split=data.split,
    )


def score_accuracy(model: keras.Model, data: TrainingData, subset: str = "test") -> float:
    """Accuracy of a finished model on one subset ("train", "val" or "test") of `data`'s split.

    For scoring after training (compare's test column); reads the features from memory or, block by block,
    from the cache.
    """
    rows = {"train": data.split.train_indices, "val": data.split.val_indices, "test": data.split.test_indices}[subset]
    if len(rows) == 0:
        raise InputError(f"the split has no {subset} videos to score")
    if data.in_memory:
        (features, lengths), labels = {"train": data.train_inputs, "val": data.val_inputs, "test": data.test_inputs}[subset]
        probabilities = model.predict([features, lengths], batch_size=256, verbose=0)
    else:
        from featcache.evaluate import predict_cached_features

        labels = data.index.labels[rows]
        probabilities = predict_cached_features(model, data.cache, data.index, rows, data.num_frames)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def tensorboard_callback(log_dir: str) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard logger; InputError when the `tensorboard` package it writes with is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError(f"--tensorboard {log_dir} needs the tensorboard package: `pip install tensorboard`, or leave --tensorboard out")
    return keras.callbacks.TensorBoard(log_dir=log_dir)


def seconds_per_epoch(history: list[dict[str, float]]) -> float:
    """Mean epoch time, leaving out epoch 1 (it also traces and compiles the model) when there are more."""
    seconds = [row["seconds"] for row in history]
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return float(np.mean(steady))


class KeepBestEpoch(keras.callbacks.Callback):
    """Times each epoch, records the history, reports progress, and restores the best validation-accuracy weights.

    Ties keep the earlier epoch. validates False (no validation set): val_* are None and the last epoch is kept.
    """

    def __init__(self, epochs: int, progress: Progress | None, validates: bool = True) -> None:
        super().__init__()
        self.epochs = epochs
        self.progress = progress
        self.validates = validates
        self.history: list[dict[str, float | None]] = []
        self.best_epoch = 0
        self.best_val_accuracy: float | None = None
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
            is_best = self.best_val_accuracy is None or row["val_accuracy"] > self.best_val_accuracy
            if is_best:
                self.best_epoch, self.best_val_accuracy = row["epoch"], row["val_accuracy"]
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

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def train(
    cache_path: "Path | Cache",
    out_dir: Path,
    head_config: HeadConfig = HeadConfig(),
    train_config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
) -> TrainResult:
    """Train a head on a cache and write MODEL_DIR (see featcache.model_dir for its files).

    cache_path: a cache path or an opened `Cache`.
    Raises InputError (or a subclass) for a missing or unusable cache, a bad split or a foreign out_dir.
    Warns (progress, else `warnings.warn`) when the same video (by content) is in train/val and in test.
    """
    out_dir = Path(out_dir)
    check_model_dir_writable(out_dir)
    data = load_training_data(cache_path, train_config)
    index = data.index
    if progress is not None:
        where = "in memory" if data.in_memory else f"streamed from disk (over the {train_config.memory_budget_mb} MB memory budget)"
        progress(
            f"cache: {index.num_videos} videos, {len(index.class_names)} classes, {data.num_frames} frames x {index.feature_dim} dims, "
            f"{data.feature_megabytes:.1f} MB as float32, {where}"
        )
        progress(f"split: {data.split.description}")
        progress(f"head: {head_config.head} ({', '.join(f'{key}={value}' for key, value in asdict(head_config).items() if key != 'head')})")
    _warn_about_leaks(find_leaked_duplicates(index, data.split), progress)
    result = fit_head(data, head_config, train_config, progress)
    result.metadata = model_metadata(index, data.split, head_config, train_config, result)
    result.metadata["num_frames"] = data.num_frames
    save_model_dir(
        out_dir,
        result.model,
        result.metadata,
        result.history,
        list(zip(index.paths, data.split.subsets(index.num_videos), index.fingerprints or [""] * index.num_videos)),
    )
    result.model_dir = out_dir
    return result


def _warn_about_leaks(leaks: list[tuple[str, str]], progress: Progress | None) -> None:
    if not leaks:
        return
    examples = "; ".join(f"{seen} = {test}" for seen, test in leaks[:3])
    message = (
        f"warning: {len(leaks)} test video(s) have the same contents as a train/val video ({examples}); "
        "the test accuracy will be inflated: remove the copies or group them (CSV group column)"
    )
    if progress is not None:
        progress(message)
    else:
        warnings.warn(message, stacklevel=3)


def model_metadata(index: CacheIndex, split: Split, head_config: HeadConfig, train_config: TrainConfig, result: TrainResult) -> dict[str, Any]:
    """featcache.json's content (format 1; see featcache.model_dir). best_val_accuracy is None without validation."""
    return {
        "format_version": FORMAT_VERSION,
        "featcache_version": __version__,
        "head": asdict(head_config),
        "training": asdict(train_config),
        "class_names": list(index.class_names),
        "num_frames": index.num_frames,
        "feature_dim": index.feature_dim,
        "cache_dtype": index.dtype,  # predict rounds new features the same way the head saw them
        "extractor": index.extractor,
        "sampling": index.sampling,
        "cache": {"path": str(Path(index.path).resolve()), "num_videos": index.num_videos},
        "split": {"description": split.description, "num_train": split.num_train, "num_val": split.num_val, "num_test": split.num_test},
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "seconds_per_epoch": result.seconds_per_epoch,
    }
