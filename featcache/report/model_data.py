"""What the model page shows, gathered from the model folder, the cache and (for thumbnails) the source videos."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache, CacheIndex, open_cache
from featcache.cache.reader import uniform_positions
from featcache.inference.evaluate import EvaluationReport, VideoScores, evaluate_with_scores
from featcache.report.images import figure_to_data_uri
from featcache.report.thumbnails import DEFAULT_THUMBNAIL_SIZE, StripRequest, ThumbnailStrip, decode_thumbnail_strips
from featcache.training.curves import learning_curves_figure
from featcache.training.model_folder import ModelFolder, read_history

# Misclassified videos shown with thumbnails; the rest are counted (report.json lists them all).
DEFAULT_MAX_MISCLASSIFIED = 50
# A head on a `--frames 0` cache reads every stored frame (hundreds in a dense cache): a strip shows this many of
# them, evenly spread; a head on T sampled frames (T <= this) shows all T.
MAX_STRIP_FRAMES = 16
TOP_PROBABILITIES = 3
SPLIT_SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoExample:
    """One scored video on the page: true and predicted class, the top classes (name, probability), its frames."""

    path: str
    true: str
    predicted: str
    top: list[tuple[str, float]]
    strip: ThumbnailStrip


@dataclass(frozen=True)
class SplitSummary:
    """The model's split as it applies to this cache: videos per class per subset, groups per subset, warnings.

    rows: (class name, {subset: videos}); leakage: one sentence per problem (same contents or same group across
    train/val and test).
    """

    description: str
    rows: list[tuple[str, dict[str, int]]]
    totals: dict[str, int]
    groups: dict[str, int]
    leakage: list[str]


@dataclass(frozen=True)
class ModelPageData:
    """Everything the model page shows; `evaluation` is what `featcache evaluate` returns."""

    evaluation: EvaluationReport
    provenance: list[tuple[str, str]]
    left_out: list[str]
    learning_curves_uri: str | None
    best_epoch: int
    num_epochs: int
    misclassified: list[VideoExample]
    num_misclassified: int
    confident_correct: list[VideoExample]
    split: SplitSummary
    confusion_shades: list[list[float]]
    num_parameters: int


def gather_model_page(
    model_dir: Path | ModelFolder,
    cache_path: Path | Cache | None = None,
    video_root: Path | None = None,
    subset: str = "default",
    top_k: int | None = None,
    report_dir: Path | None = None,
    max_misclassified: int = DEFAULT_MAX_MISCLASSIFIED,
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE,
) -> ModelPageData:
    """Evaluate the model on the cache (as `featcache evaluate`, writing its report folder) and gather the page.

    cache_path: default the model's training cache (featcache.json's cache path). video_root: the folder the cache
    was embedded from, for thumbnails (None: strips say the folder was not given). Raises what `evaluate` raises.
    """
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.open(Path(model_dir))
    cache = open_cache(cache_path if cache_path is not None else Path(folder.metadata.cache["path"]))
    evaluation, scores = evaluate_with_scores(folder, cache, subset=subset, top_k=top_k, report_dir=report_dir)
    class_names = evaluation.class_names
    wrong_rows, correct_rows = _pick_examples(scores, max_misclassified)
    strips = decode_thumbnail_strips(
        [_strip_request(cache, folder.metadata.num_frames, int(scores.video_indices[row])) for row in wrong_rows]
        + [_strip_request(cache, folder.metadata.num_frames, int(scores.video_indices[row])) for row in correct_rows],
        video_root,
        image_size=thumbnail_size,
    )
    examples = [
        _example(cache.index, scores, row, class_names, strip) for row, strip in zip(wrong_rows + correct_rows, strips)
    ]
    history = read_history(folder.path)
    matrix = np.array(evaluation.confusion_matrix, dtype=np.float64)
    row_totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    return ModelPageData(
        evaluation=evaluation,
        provenance=model_provenance(folder) + [("parameters", f"{scores.num_parameters:,}")],
        left_out=left_out_videos(cache.index, evaluation),
        learning_curves_uri=(
            figure_to_data_uri(learning_curves_figure(history, folder.metadata.best_epoch, width=7.5))
            if history
            else None
        ),
        best_epoch=folder.metadata.best_epoch,
        num_epochs=len(history),
        misclassified=examples[: len(wrong_rows)],
        num_misclassified=len(evaluation.misclassified),
        confident_correct=examples[len(wrong_rows) :],
        split=summarise_split(folder, cache.index),
        confusion_shades=(matrix / row_totals).round(3).tolist(),  # each row's share: readable with skewed classes
        num_parameters=scores.num_parameters,
    )


def _pick_examples(scores: VideoScores, max_misclassified: int) -> tuple[list[int], list[int]]:
    """(rows of the misclassified videos, most confident first, at most max_misclassified;
    per true class the row of its most confident correct video)."""
    predicted = scores.probabilities.argmax(axis=1)
    confidence = scores.probabilities[np.arange(len(predicted)), predicted]
    wrong = [int(row) for row in np.flatnonzero(predicted != scores.true_labels)]
    wrong.sort(key=lambda row: -confidence[row])
    correct_by_class: dict[int, int] = {}
    for row in np.flatnonzero(predicted == scores.true_labels):
        label = int(scores.true_labels[row])
        if label not in correct_by_class or confidence[row] > confidence[correct_by_class[label]]:
            correct_by_class[label] = int(row)
    return wrong[:max_misclassified], [correct_by_class[label] for label in sorted(correct_by_class)]


def _strip_request(cache: Cache, num_frames: int, video: int) -> StripRequest:
    """The frames the head saw of cache row `video`: `num_frames` of its stored frames, uniform (as the reader
    takes them), at most MAX_STRIP_FRAMES of those."""
    with cache.reader() as reader:
        arrays = reader.read_frame_arrays(video)
    positions = uniform_positions(int(cache.index.lengths[video]), num_frames)
    positions = positions[uniform_positions(len(positions), MAX_STRIP_FRAMES)]
    return StripRequest(
        cache.index.paths[video], arrays["frame_indices"][positions], arrays["timestamps_ms"][positions]
    )


def _example(
    index: CacheIndex, scores: VideoScores, row: int, class_names: list[str], strip: ThumbnailStrip
) -> VideoExample:
    probabilities = scores.probabilities[row]
    best = np.argsort(-probabilities, kind="stable")[:TOP_PROBABILITIES]
    return VideoExample(
        path=index.paths[int(scores.video_indices[row])],
        true=class_names[int(scores.true_labels[row])],
        predicted=class_names[int(best[0])],
        top=[(class_names[int(label)], float(probabilities[label])) for label in best],
        strip=strip,
    )


def model_provenance(folder: ModelFolder) -> list[tuple[str, str]]:
    """(label, value) rows: what made the features and the head, and which featcache wrote the model."""
    metadata = folder.metadata
    extractor = metadata.extractor
    return [
        ("extractor", str(extractor.get("name"))),
        ("weights", str(extractor.get("weights"))),
        ("weights sha256", str(extractor.get("weights_sha256") or "-")),
        ("image size", f"{extractor.get('image_size')} px"),
        ("sampling", _settings_text(metadata.sampling)),
        ("feature dim, dtype", f"{metadata.feature_dim}, {metadata.cache_dtype or 'float32'}"),
        ("head", _settings_text(metadata.head_settings)),
        ("training", _settings_text(metadata.training_settings)),
        (
            "kept epoch",
            f"{metadata.best_epoch} (validation accuracy "
            + ("none: no validation set" if metadata.best_val_accuracy is None else f"{metadata.best_val_accuracy:.3f}")
            + f"), {metadata.seconds_per_epoch:.2f} s/epoch",
        ),
        ("training cache", f"{metadata.cache.get('path')} ({metadata.cache.get('num_videos')} videos)"),
        ("trained by", f"featcache {metadata.featcache_version}"),
    ]


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items() if value is not None)


def left_out_videos(index: CacheIndex, evaluation: EvaluationReport) -> list[str]:
    """One sentence per group of videos not scored, and why: not in the evaluated subset, or failed to embed."""
    sentences = []
    num_not_scored = index.num_videos - evaluation.num_videos
    if num_not_scored:
        sentences.append(f"{num_not_scored} cached videos not scored: scored are {evaluation.subset_description}")
    for path, reason in index.failures:
        sentences.append(f"{path}: not in the cache, it failed to embed ({reason})")
    return sentences


def summarise_split(folder: ModelFolder, index: CacheIndex) -> SplitSummary:
    """Videos per class per subset of the model's split.csv (the cache's videos it names), groups, leakage."""
    counts = {name: collections.Counter() for name in index.class_names}
    groups: dict[str, set[str]] = {subset: set() for subset in SPLIT_SUBSETS}
    seen_fingerprints: dict[str, str] = {}
    for path, label, group, fingerprint in zip(
        index.paths, index.labels, index.groups, index.fingerprints or [""] * index.num_videos
    ):
        subset = folder.split.get(path)
        if subset not in SPLIT_SUBSETS:
            continue
        counts[index.class_names[int(label)]][subset] += 1
        if group:
            groups[subset].add(group)
        if fingerprint and subset in ("train", "val"):
            seen_fingerprints.setdefault(fingerprint, path)
    leakage = [
        f"{path} (test) has the same contents as {seen_fingerprints[fingerprint]} (train/val): "
        "the test accuracy is inflated; remove the copy or give both the same group"
        for path, fingerprint in zip(index.paths, index.fingerprints or [""] * index.num_videos)
        if folder.split.get(path) == "test" and fingerprint in seen_fingerprints
    ]
    shared_groups = sorted((groups["train"] | groups["val"]) & groups["test"])
    if shared_groups:
        leakage.append(
            f"{len(shared_groups)} group(s) have videos in both train/val and test ({', '.join(shared_groups[:5])}"
            f"{', ...' if len(shared_groups) > 5 else ''}): near-duplicate clips make the test accuracy optimistic"
        )
    rows = [(name, {subset: counts[name][subset] for subset in SPLIT_SUBSETS}) for name in index.class_names]
    return SplitSummary(
        description=str(folder.metadata.split.get("description", "")),
        rows=rows,
        totals={subset: sum(row[subset] for _, row in rows) for subset in SPLIT_SUBSETS},
        groups={subset: len(names) for subset, names in groups.items()},
        leakage=leakage,
    )
