"""`featcache zeroshot`: classify a cache's videos from class names alone, with the report `evaluate` writes.

The classifier is the text tower of the preset the cache was embedded with (featcache.text): each class's
prompts, ensembled, against each video's mean normalized frame embedding. Nothing is trained, so every video
is fair to score ("all"); "test" scores the test videos of the split `train` would make with the same options,
so the number sits beside the trained heads' (`compare --zero-shot` does that on one table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featcache.cache import Cache, open_cache
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.extractors.catalog import KERAS_HUB_PREFIX
from featcache.inference.evaluate import EvaluationReport, map_cache_classes, resolve_top_k, write_report
from featcache.text.wording import read_class_texts
from featcache.text.zeroshot import (
    ZERO_SHOT_LOGIT_SCALE,
    cache_class_texts,
    scores_as_probabilities,
    video_embeddings,
    zero_shot_scores,
)
from featcache.training.splits import choose_split

ZERO_SHOT_SUBSETS = ("all", "test")


def zeroshot(
    cache_path: Path | Cache,
    class_names: list[str] | None = None,
    prompts: list[str] | tuple[str, ...] = (),
    class_texts_csv: Path | None = None,
    subset: str = "all",
    train_config: TrainConfig = TrainConfig(),
    top_k: int | None = None,
    report_dir: Path | None = None,
) -> EvaluationReport:
    """Score the cache's videos zero-shot and write report.json and confusion_matrix.png to `report_dir`.

    class_names: the classes to choose from (default: the cache's); every scored video's class must be among them
      (more may be given, as distractors). prompts: templates with one `{}` (default featcache.text.wording's).
    class_texts_csv: a CSV `class,text` overriding the words of some classes.
    subset: "all" (every video) or "test" (the test videos of the split `train_config` describes).
    report_dir: default CACHE_STEM-zeroshot/ beside the cache.
    Raises ExtractorError (one line) for a cache without a text tower, InputError for bad classes or prompts.
    """
    if subset not in ZERO_SHOT_SUBSETS:
        raise InputError(f"unknown --subset / subset {subset!r}; choose one of {', '.join(ZERO_SHOT_SUBSETS)}")
    cache = open_cache(cache_path)
    index = cache.index
    if index.num_videos == 0:
        raise InputError(f"{index.path} holds no videos (every video failed to embed?); nothing to classify")
    class_names = list(class_names) if class_names else list(index.class_names)
    if len(set(class_names)) != len(class_names) or len(class_names) < 2:
        raise InputError(f"--classes / class_names: give at least 2 distinct classes, got {', '.join(class_names)}")
    if subset == "test":
        split = choose_split(index, train_config)
        video_indices, description = split.test_indices, f"the {split.num_test} test videos of {split.description}"
    else:
        video_indices, description = np.arange(index.num_videos), f"all {index.num_videos} videos of the cache"
    cache_to_classes = map_cache_classes(class_names, index, video_indices)
    class_texts = read_class_texts(class_texts_csv) if class_texts_csv is not None else None
    texts, tower = cache_class_texts(index, class_names, prompts, class_texts)
    scores = zero_shot_scores(video_embeddings(cache, video_indices), texts)
    report_dir = Path(report_dir) if report_dir is not None else cache.path.parent / f"{cache.path.stem}-zeroshot"
    return write_report(
        f"zero-shot {KERAS_HUB_PREFIX}{tower.preset}",
        index,
        video_indices,
        (subset, description),
        class_names,
        cache_to_classes[index.labels[video_indices]],
        scores_as_probabilities(scores),
        resolve_top_k(top_k, len(class_names)),
        report_dir,
        zero_shot={**texts.provenance(tower), "logit_scale": ZERO_SHOT_LOGIT_SCALE},
    )
