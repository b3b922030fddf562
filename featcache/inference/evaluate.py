"""Scoring a trained model on a feature cache: accuracy, top-k, per-class metrics, confusion matrix.

Reads features from the HDF5 cache in blocks (never decodes video), matches classes by name between
the model and the cache, and writes a report folder with `report.json` and a confusion-matrix PNG.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import CacheIndex, open_cache
from featcache.cache.settings import describe_settings_difference, settings_record
from featcache.errors import CacheMismatchError, InputError
from featcache.training.model_folder import ModelFolder, ModelMetadata
from featcache.training.scoring import predict_cached_features

SUBSETS = ("default", "test", "all")
DEFAULT_TOP_K = 3


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (as computed by scikit-learn) and its number of videos."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int

    @property
    def absent(self) -> bool:
        """The class has no video in the evaluated set: recall and F1 are undefined (None), not 0."""
        return self.support == 0


@dataclass(frozen=True)
class Misclassified:
    """One video the model got wrong: its cache path, true and predicted class, and the predicted probability."""

    path: str
    true: str
    predicted: str
    probability: float


@dataclass(frozen=True)
class EvaluationReport:
    """The result of `evaluate`; `to_json()` is the text written to report.json and printed by `--json`.

    confusion_matrix: rows are true classes, columns predicted ones, both in the model's class order.
    subset: "test" (the model's test videos of its training cache, never seen in training or epoch selection)
      or "all" (every video of the cache).
    """

    model_dir: str
    cache: str
    subset: str
    subset_description: str
    num_videos: int
    class_names: list[str]
    accuracy: float
    top_k: int
    top_k_accuracy: float | None  # None when k >= the number of classes (every video would count)
    per_class: dict[str, ClassMetrics]
    confusion_matrix: list[list[int]]
    misclassified: list[Misclassified]
    report_dir: str
    report_json: str
    confusion_matrix_png: str
    model_written_by: str = ""  # the featcache version that trained the model (featcache.json)
    # `featcache zeroshot` only: the preset, prompts and class words that classified (absent from evaluate's JSON).
    zero_shot: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        saved = asdict(self)
        if saved["zero_shot"] is None:
            del saved["zero_shot"]
        return saved

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class VideoScores:
    """What the model said about each scored video, for a report that shows more than the metrics.

    video_indices: int64 (n,), cache rows in scoring order; true_labels: int64 (n,), model class indices;
    probabilities: float32 (n, num_classes), the model's softmax (averaged over clips for a clip-trained head).
    num_parameters: the head's weights, trainable or not (Keras count_params).
    """

    video_indices: np.ndarray
    true_labels: np.ndarray
    probabilities: np.ndarray
    num_parameters: int


def evaluate(
    model_dir: Path | ModelFolder,
    cache_path: Path,
    subset: str = "default",
    top_k: int | None = None,
    report_dir: Path | None = None,
) -> EvaluationReport:
    """Score the model in `model_dir` on the videos of `cache_path` and write the report folder.

    subset: "default" (held-out videos on the model's own training cache, all videos on any other cache),
      "test" (held-out videos; only on the training cache) or "all".
    top_k: k of the top-k accuracy; default min(3, number of model classes - 1) (top-k of every class says nothing).
    report_dir: where report.json and confusion_matrix.png go; default MODEL_DIR/evaluation/<cache stem>/.
    Raises ModelDirError / CacheFormatError for unreadable inputs, CacheMismatchError when the cache was
    embedded differently from the model's training cache, InputError for a cache class the model does not know.
    """
    return evaluate_with_scores(model_dir, cache_path, subset, top_k, report_dir)[0]


def evaluate_with_scores(
    model_dir: Path | ModelFolder,
    cache_path: Path,
    subset: str = "default",
    top_k: int | None = None,
    report_dir: Path | None = None,
) -> tuple[EvaluationReport, VideoScores]:
    """`evaluate`, also returning every scored video's probabilities (what the HTML report shows)."""
    if subset not in SUBSETS:
        raise InputError(f"unknown --subset / subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.open(Path(model_dir))
    model_dir = folder.path
    class_names = folder.class_names
    num_classes = len(class_names)
    top_k = resolve_top_k(top_k, num_classes)

    cache = open_cache(cache_path)  # a path, or a Cache opened once by the caller
    cache_path, index = cache.path, cache.index
    check_cache_matches_model(folder.metadata, index)
    video_indices, used_subset, description = select_videos(index, folder.split, subset, folder.split_fingerprints)
    cache_to_model = map_cache_classes(class_names, index, video_indices)

    true_labels = cache_to_model[index.labels[video_indices]]
    model = folder.load_model()  # Keras loads only once the inputs are known to fit
    probabilities = predict_cached_features(
        model, cache, index, video_indices, folder.metadata.clip_frames, folder.metadata.test_clips
    )

    report_dir = Path(report_dir) if report_dir is not None else model_dir / "evaluation" / cache_path.stem
    report = write_report(
        str(model_dir),
        index,
        video_indices,
        (used_subset, description),
        class_names,
        true_labels,
        probabilities,
        top_k,
        report_dir,
        model_written_by=folder.metadata.featcache_version,
    )
    scores = VideoScores(
        np.asarray(video_indices, np.int64), np.asarray(true_labels, np.int64), probabilities, int(model.count_params())
    )
    return report, scores


def write_report(
    model_description: str,
    index: CacheIndex,
    video_indices: np.ndarray,
    subset: tuple[str, str],
    class_names: list[str],
    true_labels: np.ndarray,
    probabilities: np.ndarray,
    top_k: int,
    report_dir: Path,
    model_written_by: str = "",
    zero_shot: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Compute the metrics of `probabilities` and write report.json and confusion_matrix.png to `report_dir`.

    Shared by `evaluate` (a trained model) and `zeroshot` (text embeddings as the classifier).
    subset: (the subset scored, the sentence describing it). true_labels: int (n,) model class indices;
    probabilities: float (n, num_classes), rows in the order of `video_indices`.
    """
    cache_path = Path(index.path)
    used_subset, description = subset
    metrics = compute_metrics(true_labels, probabilities, class_names, top_k)
    report_dir.mkdir(parents=True, exist_ok=True)
    png_path = report_dir / "confusion_matrix.png"
    json_path = report_dir / "report.json"
    predicted_labels = probabilities.argmax(axis=1)
    misclassified = [
        Misclassified(
            path=index.paths[video],
            true=class_names[true_label],
            predicted=class_names[predicted_label],
            probability=float(probabilities[row, predicted_label]),
        )
        for row, (video, true_label, predicted_label) in enumerate(zip(video_indices, true_labels, predicted_labels))
        if true_label != predicted_label
    ]
    report = EvaluationReport(
        model_dir=model_description,
        cache=str(cache_path),
        subset=used_subset,
        subset_description=description,
        num_videos=int(len(video_indices)),
        class_names=class_names,
        accuracy=metrics["accuracy"],
        top_k=top_k,
        top_k_accuracy=metrics["top_k_accuracy"],
        per_class=metrics["per_class"],
        confusion_matrix=metrics["confusion_matrix"],
        misclassified=misclassified,
        report_dir=str(report_dir),
        report_json=str(json_path),
        confusion_matrix_png=str(png_path),
        model_written_by=model_written_by,
        zero_shot=zero_shot,
    )
    plot_confusion_matrix(
        np.array(report.confusion_matrix), class_names, png_path, title=f"{cache_path.name} ({used_subset})"
    )
    json_path.write_text(report.to_json() + "\n")
    return report


def resolve_top_k(top_k: int | None, num_classes: int) -> int:
    """k of the top-k accuracy: the one asked for (at most the classes), default min(3, num_classes - 1)."""
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k / top_k must be at least 1, got {top_k}")
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, max(1, num_classes - 1))  # top-k of all the classes would say nothing
    return min(top_k, num_classes)  # k beyond the classes means all of them


def check_cache_matches_model(metadata: ModelMetadata, index: CacheIndex) -> None:
    """Raise CacheMismatchError unless the cache's features were made like the model's training features.

    One rule for every stage (`featcache.cache.settings.describe_settings_difference`): extractor identity, weights,
    feature_dim and sampling; the dtype may differ (a float32 cache feeds a float16-trained head). A head trained on
    whole stored sequences also needs the cache's T; one trained on clips takes its frames from any length.
    """
    cache_settings = settings_record(
        {**index.extractor, "feature_dim": index.feature_dim}, index.sampling, None
    )  # any dtype
    problems = [describe_settings_difference(metadata.training_cache_settings, cache_settings)]
    if not metadata.clip_frames and metadata.num_frames != index.num_frames:
        problems.append(f"num_frames {metadata.num_frames} vs {index.num_frames}")
    difference = "; ".join(problem for problem in problems if problem)
    if difference:
        raise CacheMismatchError(
            f"{index.path}: its features were made differently from the model's training cache "
            f"(model vs cache: {difference}). "
            "Re-embed the videos with the model's extractor and sampling (see featcache.json) to evaluate it."
        )


def select_videos(
    index: CacheIndex, split: dict[str, str], subset: str, split_fingerprints: dict[str, str] | None = None
) -> tuple[np.ndarray, str, str]:
    """Pick the videos to score: (cache row indices int64 (n,), "test" | "all", a sentence saying why).

    split: the model's split.csv, {cache path: "train" | "val" | "test"}; only "test" rows are held out (the
    validation rows picked the best epoch). The cache counts as the training cache when every path of the split
    is in it (its features were already checked to match the model's). Another cache can still share videos
    with it (the same root re-embedded, a class subset, another dtype): by default its videos the model trained
    or validated on are left out, since scoring them would inflate the accuracy.
    split_fingerprints: {video contents: subset}; when both the model and the cache know contents, a video
    is "seen" by its contents, not its path (another dataset reusing file names is not the training set,
    and a renamed copy of a training video is still seen).
    """
    if index.num_videos == 0:
        raise InputError(f"{index.path} holds no videos (every video failed to embed?); nothing to evaluate")
    if split_fingerprints and all(index.fingerprints):
        same_contents = all(
            fingerprint in split_fingerprints
            for path, fingerprint in zip(index.paths, index.fingerprints)
            if path in split
        )
        is_training_cache = bool(split) and set(split) <= set(index.paths) and same_contents
        seen = np.array(
            [split_fingerprints.get(fingerprint) in ("train", "val") for fingerprint in index.fingerprints], dtype=bool
        )
    else:
        is_training_cache = bool(split) and set(split) <= set(index.paths)
        seen = np.array([split.get(path) in ("train", "val") for path in index.paths], dtype=bool)
    num_seen = int(seen.sum())
    if subset == "all":
        seen_note = f", {num_seen} of which the model trained or validated on" if num_seen else ""
        return (
            np.arange(index.num_videos),
            "all",
            f"all {index.num_videos} videos of the cache (--subset all{seen_note})",
        )
    if subset == "default" and not is_training_cache:
        if num_seen == 0:
            return (
                np.arange(index.num_videos),
                "all",
                f"all {index.num_videos} videos of the cache (the model was not trained on this cache)",
            )
        unseen = np.flatnonzero(~seen).astype(np.int64)
        if len(unseen) == 0:
            raise InputError(
                f"every one of the {index.num_videos} videos of {index.path} is a video the model trained or "
                "validated on (see its split.csv), so none is left to evaluate fairly; evaluate another cache, "
                "or use --subset all (subset='all') to score them anyway"
            )
        return (
            unseen,
            "all",
            (
                f"all {index.num_videos} videos of the cache except {num_seen} the model trained or validated on "
                f"({len(unseen)} scored; the model was not trained on this cache, "
                "but it shares videos with the training cache)"
            ),
        )
    if not is_training_cache:
        raise InputError(
            f"{index.path} is not the cache the model was trained on (its split.csv videos are not all in it), "
            "so it has no held-out videos; use --subset all (subset='all')"
        )
    held_out = np.array([row for row, path in enumerate(index.paths) if split.get(path) == "test"], dtype=np.int64)
    if len(held_out) == 0:
        raise InputError(f"the model's split.csv holds no test videos of {index.path}; use --subset all (subset='all')")
    return held_out, "test", f"the {len(held_out)} held-out (test) videos of the model's training cache"


def map_cache_classes(model_class_names: list[str], index: CacheIndex, video_indices: np.ndarray) -> np.ndarray:
    """Map cache label indices to model label indices by class name: int64 (num cache classes,), -1 if unknown.

    Raises InputError naming every class that has videos among `video_indices` but is unknown to the model.
    """
    model_positions = {name: position for position, name in enumerate(model_class_names)}
    cache_to_model = np.array([model_positions.get(name, -1) for name in index.class_names], dtype=np.int64)
    used_labels = np.unique(index.labels[video_indices])
    unknown = [index.class_names[label] for label in used_labels if cache_to_model[label] < 0]
    if unknown:
        raise InputError(
            f"{index.path} has videos of class(es) the model does not know: {', '.join(unknown)}; "
            f"the model knows {', '.join(model_class_names)}"
        )
    return cache_to_model


def compute_metrics(
    true_labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], top_k: int
) -> dict[str, Any]:
    """Accuracy, top-k accuracy, per-class metrics and the confusion matrix over the model's classes.

    true_labels: int, shape (n,), model class indices. probabilities: float, shape (n, num_classes).
    Returns JSON-able values: accuracy and top_k_accuracy floats, per_class {name: ClassMetrics},
    confusion_matrix as nested lists of ints (rows true, columns predicted).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    all_labels = np.arange(len(class_names))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted, labels=all_labels, zero_division=0
    )
    # sklearn's top_k_accuracy_score wants 1-d scores for two classes and warns when k >= classes; this is its rule.
    # With k >= the classes every video counts as a hit: None, not a meaningless 1.0.
    top_k_labels = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    top_k_accuracy = (
        float(np.mean((top_k_labels == true_labels[:, None]).any(axis=1))) if top_k < len(class_names) else None
    )
    num_predicted = np.bincount(predicted, minlength=len(class_names))
    return {
        "accuracy": float(np.mean(predicted == true_labels)),
        "top_k_accuracy": top_k_accuracy,
        "per_class": {
            name: ClassMetrics(
                # A class absent from the videos has no recall or F1; its precision exists only if it was predicted.
                float(precision[i]) if num_predicted[i] else None,
                float(recall[i]) if support[i] else None,
                float(f1[i]) if support[i] else None,
                int(support[i]),
            )
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(true_labels, predicted, labels=all_labels).astype(int).tolist(),
    }


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """Write the confusion matrix (rows true, columns predicted) as a PNG with counts in the cells."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    size = max(4.0, 0.5 * len(class_names) + 2.0)
    figure = Figure(figsize=(size + 1.0, size))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(class_names)), class_names, rotation=90)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(class_names) <= 30:  # beyond that the numbers are unreadable anyway
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(
                column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black"
            )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _metric(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.3f}"


def format_report(report: EvaluationReport, max_misclassified: int = 20) -> str:
    """The report as text for a terminal: accuracy, per-class table, confusion matrix, misclassified videos."""
    names = report.class_names
    name_width = max(len("class"), *(len(name) for name in names))
    lines = [
        f"Model {report.model_dir}"
        + (f" (trained by featcache {report.model_written_by})" if report.model_written_by else "")
        + f" on {report.cache}",
        *(
            [f"Prompts: {' | '.join(report.zero_shot['prompts'])}"]
            if report.zero_shot and report.zero_shot.get("prompts")
            else []
        ),
        f"Videos: {report.num_videos}, {report.subset_description}",
        f"Accuracy: {report.accuracy:.4f}",
        *([] if report.top_k_accuracy is None else [f"Top-{report.top_k} accuracy: {report.top_k_accuracy:.4f}"]),
        "",
        f"{'class':<{name_width}}  precision  recall      f1  support",
    ]
    for name in names:
        metrics = report.per_class[name]
        if metrics.absent:
            lines.append(f"{name:<{name_width}}  {_metric(metrics.precision, 9)}  absent from these videos")
            continue
        lines.append(
            f"{name:<{name_width}}  {_metric(metrics.precision, 9)}  "
            f"{metrics.recall:6.3f}  {metrics.f1:6.3f}  {metrics.support:7d}"
        )
    cell_width = max(5, *(len(str(count)) for row in report.confusion_matrix for count in row))
    lines += ["", "Confusion matrix (rows: true class, columns: predicted, in this order):"]
    lines.append(
        " " * (name_width + 8) + " ".join(f"{f'[{position}]':>{cell_width}}" for position in range(len(names)))
    )
    for position, (name, row) in enumerate(zip(names, report.confusion_matrix)):
        lines.append(
            f"{name:<{name_width}}  {f'[{position}]':>5} " + " ".join(f"{count:>{cell_width}}" for count in row)
        )
    lines += ["", f"Misclassified: {len(report.misclassified)}"]
    for wrong in report.misclassified[:max_misclassified]:
        lines.append(f"  {wrong.path}: {wrong.true} -> {wrong.predicted} ({wrong.probability:.3f})")
    if len(report.misclassified) > max_misclassified:
        lines.append(f"  ... and {len(report.misclassified) - max_misclassified} more in {report.report_json}")
    lines += ["", f"Confusion matrix PNG: {report.confusion_matrix_png}", f"Report JSON: {report.report_json}"]
    return "\n".join(lines)
