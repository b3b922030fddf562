"""The near-duplicate audit (featcache.search.audit) on a training split: `featcache audit`, and train's warning.

The split is the one `train` would choose (a split name, a split file, a model folder: featcache.training.datasets'
rule) or a trained model's own split.csv, so the audit looks at exactly the videos a test score comes from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featcache.cache import Cache, open_cache
from featcache.cache.reader import CachePath
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.search.audit import DEFAULT_THRESHOLD, AuditReport, audit_split, audit_vectors
from featcache.search.pooled import pool_sequences, pooled_features
from featcache.training.datasets import split_config
from featcache.training.model_folder import ModelFolder
from featcache.training.splits import choose_split
from featcache.training.training_data import TrainingData


def audit_cache(
    cache: CachePath | Cache,
    split: TrainConfig | str | Path | None = None,
    model_dir: Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> AuditReport:
    """Pairs across a split (train/val vs test) whose pooled features are at least `threshold` cosine-similar.

    split: as `featcache.dataset`'s (None: train's defaults; a split name; a split file; a model folder's settings);
    model_dir: instead, that model's split.csv as written (videos of the cache it does not list are left out).
    """
    if split is not None and model_dir is not None:
        raise InputError("give --split or --model, not both")
    opened = open_cache(cache)
    index = opened.index
    if model_dir is not None:
        folder = ModelFolder.open(Path(model_dir))
        subsets = [folder.split.get(path, "") for path in index.paths]
        listed = sum(1 for subset in subsets if subset)
        if not listed:
            raise InputError(
                f"none of {index.path}'s videos is in {model_dir}'s split.csv; "
                "audit the model's own training cache, or pass --split"
            )
        unlisted = index.num_videos - listed
        description = f"the split of model {model_dir}" + (
            f" ({unlisted} video(s) of the cache not in it, left out)" if unlisted else ""
        )
    else:
        chosen = choose_split(index, split_config(split))
        subsets = chosen.subsets(index.num_videos)
        description = chosen.description
    return audit_split(opened, subsets, threshold, description)


def audit_training_data(data: TrainingData, threshold: float = DEFAULT_THRESHOLD) -> AuditReport:
    """The audit of a training run's split, pooled from the features already in memory when they are
    (no second read), else read block by block."""
    index = data.index
    split = data.split
    subsets = split.subsets(index.num_videos)
    if data.in_memory:
        vectors = np.zeros((index.num_videos, index.feature_dim), dtype=np.float32)
        sides = [(split.train_indices, data.train_inputs), (split.test_indices, data.test_inputs)]
        if data.val_inputs is not None:
            sides.append((split.val_indices, data.val_inputs))
        for rows, ((features, lengths), _) in sides:
            if len(rows):
                vectors[rows] = pool_sequences(features, lengths)
    else:
        vectors = pooled_features(data.cache or index.path).vectors
    return audit_vectors(
        index.paths,
        vectors,
        subsets,
        index.fingerprints,
        threshold,
        cache=str(index.path),
        split_description=split.description,
    )


def near_duplicate_warning(report: AuditReport, cache_path: Path, model_dir: Path) -> str | None:
    """A training warning when some test videos have a near-duplicate in training, with the command listing them."""
    if not report.num_test_with_duplicate:
        return None
    return (
        f"{report.summary}: their test accuracy is inflated; see the pairs with "
        f"`featcache audit {cache_path} --model {model_dir}`, and group such videos together (CSV group column)"
    )
