"""What a user must hear about a training run: test videos duplicating training ones, a head at chance,
a too-small split."""

from __future__ import annotations

import math
import warnings

import numpy as np

from featcache.cache import CacheIndex
from featcache.training.epochs import Progress
from featcache.training.splits import Split


def training_warnings(
    split: Split, labels: np.ndarray, history: list[dict[str, float | None]], best_epoch: int, num_classes: int
) -> list[str]:
    """What a user must hear about a finished training run: a head at chance level, a too-small split.

    labels: int32 (N,), every cached video's label; history: the run's rows (KeepBestEpoch.history).
    """
    messages = split_warnings(split, labels, num_classes)
    kept = next(row for row in history if row["epoch"] == best_epoch)
    chance = 1.0 / num_classes

    # Near chance: within a tenth of the way from chance to perfect, and the loss within 5% of ln(classes),
    # the loss of a uniform guess. Both together: a head that learned nothing, not a hard dataset.
    def near_chance(accuracy: float | None) -> bool:
        return accuracy is None or accuracy <= chance + 0.1 * (1.0 - chance)

    if (
        near_chance(kept["accuracy"])
        and near_chance(kept["val_accuracy"])
        and abs(kept["loss"] - math.log(num_classes)) <= 0.05 * math.log(num_classes)
    ):
        messages.append(
            f"the head ended at chance level (training accuracy {kept['accuracy']:.3f}, chance {chance:.3f}; "
            f"loss {kept['loss']:.3f} ≈ ln {num_classes} = {math.log(num_classes):.3f}): "
            "the features likely carry no information about the classes "
            "(random-init MobileNetV2 weights do that). Embed with real weights (--weights imagenet, or a file from "
            "`featcache weights fetch mobilenet_v2 --out FILE`), "
            "or try `--extractor scratch_cnn --weights random` without network"
        )
    return messages


def split_warnings(split: Split, labels: np.ndarray, num_classes: int, minimum_per_class: int = 2) -> list[str]:
    """A warning per subset (val, test) holding fewer than `minimum_per_class` videos of some class:
    its accuracy means little."""
    fixes = {
        "val": "raise --val-fraction / val_fraction or embed more videos",
        "test": "raise --test-fraction / test_fraction or embed more videos",
    }
    messages = []
    for subset, rows in (("val", split.val_indices), ("test", split.test_indices)):
        if len(rows) == 0:
            continue
        counts = np.bincount(labels[rows], minlength=num_classes)
        if counts.min() < minimum_per_class:
            messages.append(
                f"the {'validation' if subset == 'val' else 'test'} set has {len(rows)} videos, "
                f"and {int(np.sum(counts < minimum_per_class))} of the {num_classes} classes "
                f"have fewer than {minimum_per_class} videos in it: its accuracy means little; {fixes[subset]}"
            )
    return messages


def find_leaked_duplicates(index: CacheIndex, split: Split) -> list[tuple[str, str]]:
    """(train/val path, test path) pairs with identical contents (fingerprint): the test score would be inflated."""
    subsets = split.subsets(index.num_videos)
    seen: dict[str, str] = {}
    for path, fingerprint, subset in zip(index.paths, index.fingerprints, subsets):
        if fingerprint and subset in ("train", "val"):
            seen.setdefault(fingerprint, path)
    return [
        (seen[fingerprint], path)
        for path, fingerprint, subset in zip(index.paths, index.fingerprints, subsets)
        if subset == "test" and fingerprint in seen
    ]


def warn_about_leaks(leaks: list[tuple[str, str]], progress: Progress | None) -> None:
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
