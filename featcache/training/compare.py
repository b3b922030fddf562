"""Comparing heads on one cache: the same features, the same split, the same seed; one row per head.

The cache is read and split once (train / val / test); each head then trains from `train_config.seed`, its
best epoch is picked on the validation videos, and it is scored on the test videos, which no head saw in
training or in picking its epoch.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache
from featcache.config import HEAD_NAMES, HeadConfig, TrainConfig, config_from_dict
from featcache.errors import InputError
from featcache.files import write_atomically
from featcache.text.zeroshot import cache_class_texts, video_embeddings, zero_shot_scores
from featcache.training.epochs import Progress
from featcache.training.model_folder import check_model_dir_writable
from featcache.training.model_integrity import model_folder_lock
from featcache.training.scoring import score_accuracy
from featcache.training.train import fit_head, save_trained_head
from featcache.training.training_data import TrainingData, load_training_data

COMPARISON_FILE = "comparison.json"
ZERO_SHOT_ROW = "zero-shot"  # the row of `compare --zero-shot`: no head, no epochs, no parameters


@dataclass(frozen=True)
class ComparisonRow:
    """One head's result: test accuracy of its kept epoch, that epoch's validation accuracy (None without a
    validation set), the kept epoch, mean seconds per epoch, trainable size."""

    head: str
    test_accuracy: float
    best_val_accuracy: float | None
    best_epoch: int
    seconds_per_epoch: float
    num_parameters: int
    warnings: list[str] = field(default_factory=list)
    model_dir: str | None = None  # with out_dir: where this head's model folder was written


def compare_heads(
    cache_path: Path | Cache,
    head_names: list[str],
    head_overrides: dict[str, Any] | None = None,
    train_config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    out_dir: Path | None = None,
    overwrite: bool = False,
    zero_shot: bool = False,
) -> list[ComparisonRow]:
    """Train and score each named head on the same cache and split.

    head_overrides: HeadConfig fields (units, dense, dropout, ...) applied to every head; the rest are defaults.
    out_dir: also keep each head's model folder as out_dir/<head>/ (refused where one exists, unless
    `overwrite`) and the rows as out_dir/comparison.json.
    zero_shot: also a "zero-shot" row first (the cache's text tower on class names, nothing trained; needs a
    cache of a CLIP-like KerasHub preset), scored on the same test videos; checked before any head trains.
    Returns one ComparisonRow per head, in the order asked.
    """
    unknown = [name for name in head_names if name not in HEAD_NAMES]
    if unknown or not head_names:
        raise InputError(
            f"--heads / head_names: unknown or no head(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(HEAD_NAMES)}"
        )
    base_config = config_from_dict(HeadConfig, dict(head_overrides or {}))
    head_configs = [replace(base_config, head=name) for name in head_names]
    with contextlib.ExitStack() as locks:
        if out_dir is not None:
            locks.enter_context(model_folder_lock(Path(out_dir)))  # one writer per --out folder
            for name in head_names:  # before hours of training, not after
                locks.enter_context(model_folder_lock(Path(out_dir) / name))
                check_model_dir_writable(Path(out_dir) / name, overwrite)
        return _compare_into(cache_path, head_configs, train_config, progress, out_dir, zero_shot)


def _compare_into(
    cache_path: Path | Cache,
    head_configs: list[HeadConfig],
    train_config: TrainConfig,
    progress: Progress | None,
    out_dir: Path | None,
    zero_shot: bool,
) -> list[ComparisonRow]:
    data = load_training_data(cache_path, train_config)  # a path or an opened Cache
    if progress is not None:
        progress(f"split: {data.split.description}")
    rows = [zero_shot_row(data)] if zero_shot else []
    for head_config in head_configs:
        if progress is not None:
            progress(f"training {head_config.head} ...")
        result = fit_head(data, head_config, train_config)
        if out_dir is not None:
            save_trained_head(Path(out_dir) / head_config.head, data, head_config, train_config, result)
        rows.append(
            ComparisonRow(
                head=head_config.head,
                test_accuracy=score_accuracy(result.model, data, "test", train_config),
                best_val_accuracy=result.best_val_accuracy,
                best_epoch=result.best_epoch,
                seconds_per_epoch=result.seconds_per_epoch,
                num_parameters=result.num_parameters,
                warnings=result.warnings,
                model_dir=None if result.model_dir is None else str(result.model_dir),
            )
        )
    if out_dir is not None:
        table = comparison_as_json(rows) + "\n"
        write_atomically(Path(out_dir) / COMPARISON_FILE, lambda path: path.write_text(table, encoding="utf-8"))
    return rows


def zero_shot_row(data: TrainingData) -> ComparisonRow:
    """The zero-shot classifier (featcache.text) scored on the split's test videos, as a comparison row."""
    texts, _ = cache_class_texts(data.index, data.index.class_names)
    test_rows = data.split.test_indices
    scores = zero_shot_scores(video_embeddings(data.cache or data.index.path, test_rows), texts)
    accuracy = float(np.mean(scores.argmax(axis=1) == data.index.labels[test_rows]))
    return ComparisonRow(ZERO_SHOT_ROW, accuracy, None, 0, 0.0, 0)


def comparison_as_json(rows: list[ComparisonRow]) -> str:
    """The rows as one JSON object {"heads": [...]} (what `compare --json` prints and `--out` keeps)."""
    return json.dumps({"heads": [asdict(row) for row in rows]}, indent=2)


def format_comparison(rows: list[ComparisonRow]) -> str:
    """A plain-text table, one line per head: test accuracy first (the number to compare),
    then the kept epoch's validation accuracy."""
    header = (
        f"{'head':<10} {'test accuracy':>13} {'val accuracy':>12} {'best epoch':>10} {'s/epoch':>8} {'parameters':>11}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        val_accuracy = "-" if row.best_val_accuracy is None else f"{row.best_val_accuracy:.3f}"
        if row.head == ZERO_SHOT_ROW:  # nothing trained: no epoch, time per epoch or parameters to show
            lines.append(f"{row.head:<10} {row.test_accuracy:>13.3f} {val_accuracy:>12} {'-':>10} {'-':>8} {'-':>11}")
            continue
        lines.append(
            f"{row.head:<10} {row.test_accuracy:>13.3f} {val_accuracy:>12} {row.best_epoch:>10d} "
            f"{row.seconds_per_epoch:>8.3f} {row.num_parameters:>11,d}"
        )
    return "\n".join(lines)
