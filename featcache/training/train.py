"""Training a head on a feature cache: read the index, split, feed features, keep the best epoch, save.

The split is three-way (featcache.training.splits): the head fits the train videos, the validation videos pick the
best epoch (whose weights are restored; with no validation set the last epoch is kept), and the test videos
are never seen by training or by that choice, so their accuracy (`featcache evaluate`, `featcache compare`)
is an unbiased estimate.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from featcache.cache import Cache
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import InputError
from featcache.search.pooled import pool_sequences, pooled_features
from featcache.text.zeroshot import ZERO_SHOT_LOGIT_SCALE, cache_class_texts
from featcache.training.baselines import BASELINE_KINDS, fit_baseline
from featcache.training.batches import Batch, EpochBatches
from featcache.training.diagnostics import find_leaked_duplicates, training_warnings, warn_about_leaks
from featcache.training.epochs import KeepBestEpoch, Progress, seconds_per_epoch
from featcache.training.heads import build_head, compile_head, with_text_initialised_output
from featcache.training.leakage import audit_training_data, near_duplicate_warning
from featcache.training.model_folder import ModelMetadata, check_model_dir_writable, save_model_folder
from featcache.training.model_integrity import model_folder_lock
from featcache.training.splits import Split
from featcache.training.training_data import TrainingData, load_training_data


class KerasBatches(keras.utils.PyDataset):
    """EpochBatches (featcache.training.batches) as a Keras PyDataset: `fit` asks for batches by number, and each
    epoch's end moves on to the next epoch's order (and random clips).

    Reading from the file holds at most one batch of features (plus Keras' prefetch queue of one worker thread).
    """

    def __init__(self, batches: EpochBatches) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.batches = batches
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, batch_number: int) -> Batch:
        return self.batches.batch(self.epoch, batch_number)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def close(self) -> None:
        self.batches.close()


def training_batches(data: TrainingData, train_config: TrainConfig) -> list[KerasBatches]:
    """The batches `fit` reads when training streams from the file or on clips: [train] or [train, validation].

    Training batches are shuffled every epoch and take train_config.clip_sampling clips; validation batches
    keep their order and take uniform clips, as scoring does.
    """
    sides = [(data.split.train_indices, True, data.train_inputs, train_config.clip_sampling)]
    if data.split.num_val:
        sides.append((data.split.val_indices, False, data.val_inputs, "uniform"))
    return [
        KerasBatches(
            EpochBatches(
                data.cache or data.index.path,
                data.index,
                rows,
                train_config.batch_size,
                shuffle,
                train_config.seed,
                frames=train_config.frames,
                clip_sampling=clip_sampling,
                features=None if in_memory is None else in_memory[0][0],
            )
        )
        for rows, shuffle, in_memory, clip_sampling in sides
    ]


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
    split_labels: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int32)
    )  # int32 (N,): every cached video's label
    stopped_early: bool = False
    model_dir: Path | None = None
    metadata: ModelMetadata | None = None  # set once the model folder is written (its featcache.json)
    warnings: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # a linear / knn baseline's choice (BaselineFit.choice)
    text_init: dict | None = None  # train --init-from-text: the preset, prompts and class words the head started from


def fit_head(
    data: TrainingData,
    head_config: HeadConfig,
    train_config: TrainConfig,
    progress: Progress | None = None,
    text_embeddings: np.ndarray | None = None,
) -> TrainResult:
    """Train one head on `data` from `train_config.seed`; the best epoch by validation accuracy is restored.

    Only the train and validation videos are read; with no validation set the last epoch is kept.
    A baseline (head "linear" or "knn") is fitted instead, its candidates standing for epochs (fit_baseline_head).
    text_embeddings: float32 (num_classes, feature_dim), unit rows in the cache's class order: the final layer
    starts from them (heads.with_text_initialised_output), so the untrained head is the zero-shot classifier.
    """
    if head_config.head in BASELINE_KINDS:
        return fit_baseline_head(data, head_config, train_config)
    keras.utils.set_random_seed(train_config.seed)
    index = data.index
    validates = data.split.num_val > 0
    model = build_head(head_config, train_config.frames or index.num_frames, index.feature_dim, len(index.class_names))
    if text_embeddings is not None:
        model = with_text_initialised_output(model, text_embeddings, ZERO_SHOT_LOGIT_SCALE)
    model = compile_head(model, train_config.learning_rate)
    best_epoch = KeepBestEpoch(train_config.epochs, progress, validates, train_config.patience)
    callbacks: list[keras.callbacks.Callback] = [best_epoch]
    if train_config.tensorboard_dir is not None:
        callbacks.append(tensorboard_callback(train_config.tensorboard_dir))
    class_weight = training_class_weights(
        index.labels[data.split.train_indices], len(index.class_names), train_config.class_weight
    )
    if data.in_memory and not train_config.frames:
        # Whole sequences in memory: Keras' own array path (its shuffling, seeded above) is the fastest; the one
        # way of training whose batch order is not EpochBatches'.
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
            class_weight=class_weight,
            verbose=0,
        )
    else:
        # Streamed from the file, or clips (in memory or streamed).
        batches = training_batches(data, train_config)
        try:
            model.fit(
                batches[0],
                epochs=train_config.epochs,
                validation_data=batches[1] if validates else None,
                callbacks=callbacks,
                class_weight=class_weight,
                verbose=0,
            )
        finally:
            for batch_source in batches:
                batch_source.close()
    # Model folders are loaded with compile=False, so the optimizer's state (Adam: 2 floats per parameter) is dead
    # weight from here on; a fresh optimizer frees it and keeps it out of model.keras, which Keras writes through an
    # in-memory buffer (measured on a 25.7M-parameter LSTM head: peak RSS 2.55 -> 2.36 GB, model.keras 312 -> 104 MB).
    compile_head(model, train_config.learning_rate)
    result = TrainResult(
        model=model,
        history=best_epoch.history,
        best_epoch=best_epoch.best_epoch,
        best_val_accuracy=best_epoch.best_val_accuracy,
        seconds_per_epoch=seconds_per_epoch(best_epoch.history),
        num_parameters=int(model.count_params()),
        split=data.split,
        split_labels=index.labels,
        stopped_early=best_epoch.stopped_early,
    )
    result.warnings = training_warnings(
        data.split, index.labels, result.history, result.best_epoch, len(index.class_names)
    )
    return result


def fit_baseline_head(data: TrainingData, head_config: HeadConfig, train_config: TrainConfig) -> TrainResult:
    """Fit a linear / knn baseline on the mean-pooled train videos, its C or k chosen on the validation videos."""
    if train_config.frames:
        raise InputError(
            f"--head {head_config.head} pools every stored frame of a video; --frames / frames "
            f"{train_config.frames} (clips) applies to the sequence heads: leave it at 0"
        )
    if train_config.class_weight != "none":
        raise InputError(f"--class-weight / class_weight applies to the sequence heads, not --head {head_config.head}")
    index = data.index
    train_vectors, train_labels = pooled_subset(data, "train")
    val_vectors, val_labels = pooled_subset(data, "val") if data.split.num_val else (None, None)
    fitted = fit_baseline(
        head_config.head,
        train_vectors,
        train_labels,
        val_vectors,
        val_labels,
        len(index.class_names),
        train_config.seed,
    )
    result = TrainResult(
        model=fitted.model,
        history=fitted.history,
        best_epoch=fitted.best_candidate,
        best_val_accuracy=fitted.best_val_accuracy,
        seconds_per_epoch=fitted.seconds_per_candidate,
        num_parameters=fitted.model.count_params(),
        split=data.split,
        split_labels=index.labels,
        baseline=fitted.choice,
    )
    result.warnings = training_warnings(
        data.split, index.labels, result.history, result.best_epoch, len(index.class_names)
    )
    return result


def pooled_subset(data: TrainingData, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors float32 (n, D), labels int32 (n,)) of one subset: pooled from memory when the features are
    there, else read from the cache block by block."""
    rows = {"train": data.split.train_indices, "val": data.split.val_indices, "test": data.split.test_indices}[subset]
    if data.in_memory:
        (features, lengths), labels = {"train": data.train_inputs, "val": data.val_inputs, "test": data.test_inputs}[
            subset
        ]
        return pool_sequences(features, lengths), labels
    return pooled_features(data.cache or data.index.path, rows).vectors, data.index.labels[rows]


def training_class_weights(train_labels: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Keras' class_weight for `mode` ("none": None; "balanced": {class: n / (num_classes * n_class)}).

    Counted on the training videos only (validation and test videos are not trained on). Every class has
    training videos here (the split is stratified and check_trainable refuses empty classes); a class that
    still has none gets weight 0, since nothing of it is trained on.
    """
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    weights = np.where(counts > 0, len(train_labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return {label: float(weight) for label, weight in enumerate(weights)}


def tensorboard_callback(log_dir: str) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard logger; InputError when the `tensorboard` package it writes with is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError(
            f"--tensorboard / tensorboard_dir {log_dir} needs the tensorboard package: `pip install tensorboard`, "
            "or leave --tensorboard out"
        )
    return keras.callbacks.TensorBoard(log_dir=log_dir)


def train(
    cache_path: Path | Cache,
    out_dir: Path,
    head_config: HeadConfig = HeadConfig(),
    train_config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    overwrite: bool = False,
    init_from_text: bool = False,
    prompts: list[str] | tuple[str, ...] = (),
    class_texts: dict[str, str] | None = None,
) -> TrainResult:
    """Train a head on a cache and write MODEL_DIR (see featcache.training.model_folder for its files).

    init_from_text: the final layer starts from the class text embeddings of the cache's preset (prompts and
    class_texts as for `featcache zeroshot`), so training starts at the zero-shot accuracy; recorded in
    featcache.json as `text_init`. Raises ExtractorError for a cache without a text tower.
    Raises InputError (or a subclass) for a missing or unusable cache, a bad split, a foreign out_dir, or
    an out_dir that already holds a model unless `overwrite` (which also removes its evaluation reports).
    Warnings a user must see (a head at chance, a too-small validation or test set) are in result.warnings.
    """
    out_dir = Path(out_dir)
    with model_folder_lock(out_dir):  # one writer per model folder: a second `train --out` is refused at once
        check_model_dir_writable(out_dir, overwrite)
        return _train_into(
            cache_path, out_dir, head_config, train_config, progress, init_from_text, tuple(prompts), class_texts
        )


def _train_into(
    cache_path: Path | Cache,
    out_dir: Path,
    head_config: HeadConfig,
    train_config: TrainConfig,
    progress: Progress | None,
    init_from_text: bool,
    prompts: tuple[str, ...],
    class_texts: dict[str, str] | None,
) -> TrainResult:
    if init_from_text and head_config.head in BASELINE_KINDS:
        raise InputError(f"--init-from-text starts a sequence head's final layer; --head {head_config.head} has none")
    data = load_training_data(cache_path, train_config)
    index = data.index
    text_embeddings, text_init = None, None
    if init_from_text:
        texts, tower = cache_class_texts(index, index.class_names, prompts, class_texts)
        text_embeddings, text_init = texts.embeddings, {**texts.provenance(tower), "logit_scale": ZERO_SHOT_LOGIT_SCALE}
        if progress is not None:
            progress(f"final layer from the text embeddings of {tower.preset} ({len(texts.prompts)} prompt(s))")
    if progress is not None:
        where = (
            "in memory"
            if data.in_memory
            else f"streamed from disk (over the {train_config.memory_budget_mb} MB memory budget)"
        )
        progress(
            f"cache: {index.num_videos} videos, {len(index.class_names)} classes, "
            f"{index.num_frames} frames x {index.feature_dim} dims, "
            f"{data.feature_megabytes:.1f} MB as float32, {where}"
        )
        progress(f"split: {data.split.description}")
        if train_config.class_weight != "none":
            weights = training_class_weights(
                index.labels[data.split.train_indices], len(index.class_names), train_config.class_weight
            )
            progress(
                "class weights (balanced): "
                + ", ".join(f"{name} {weights[label]:.2f}" for label, name in enumerate(index.class_names))
            )
        if train_config.frames:
            progress(
                f"clips: {train_config.frames} of each video's stored frames, "
                f"{train_config.clip_sampling} positions for training "
                f"(validation: uniform; scoring: {train_config.test_clips} uniform clip(s) averaged)"
            )
        head_settings = ", ".join(f"{key}={value}" for key, value in head_config.used_settings().items())
        if head_config.head in BASELINE_KINDS:
            head_settings = "on mean-pooled features; its setting is chosen on the validation videos"
        progress(f"head: {head_config.head} ({head_settings})")
    warn_about_leaks(find_leaked_duplicates(index, data.split), progress)
    near_duplicates = audit_training_data(data)
    result = fit_head(data, head_config, train_config, progress, text_embeddings)
    result.text_init = text_init
    save_trained_head(out_dir, data, head_config, train_config, result)
    warning = near_duplicate_warning(near_duplicates, index.path, out_dir)
    if warning:
        result.warnings.append(warning)
    return result


def save_trained_head(
    out_dir: Path, data: TrainingData, head_config: HeadConfig, train_config: TrainConfig, result: TrainResult
) -> None:
    """Write `result` as a model folder (train, and compare --out); sets result.metadata and result.model_dir."""
    index = data.index
    metadata = ModelMetadata.of_training_run(
        index,
        data.split,
        head_config,
        train_config,
        result.best_epoch,
        result.best_val_accuracy,
        result.seconds_per_epoch,
        baseline=result.baseline,
        text_init=result.text_init,
    )
    split_rows = list(
        zip(index.paths, data.split.subsets(index.num_videos), index.fingerprints or [""] * index.num_videos)
    )
    result.metadata = save_model_folder(out_dir, result.model, metadata, result.history, split_rows)
    result.model_dir = Path(out_dir)
