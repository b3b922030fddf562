"""Classifying new videos with a trained model, embedded exactly as its training cache was.

The extractor and the sampling are rebuilt from the model's featcache.json, so a video is decoded,
resized, preprocessed and embedded the same way as the videos the head was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache.reader import uniform_positions
from featcache.cache.settings import DEFAULT_PRECISION, describe_settings_difference, record_precision, settings_record
from featcache.config import ExtractorConfig, SamplingConfig, check_decoder
from featcache.embedding.new_videos import embed_new_videos
from featcache.errors import CacheMismatchError, ExtractorError, InputError, VideoDecodeError
from featcache.extractors.extractor import Extractor
from featcache.extractors.openvino_start import start_extractor
from featcache.training.clips import predict_over_clips
from featcache.training.model_folder import ModelFolder, ModelMetadata
from featcache.video.find import VIDEO_EXTENSIONS, find_videos

DEFAULT_TOP_K = 3
VIDEOS_PER_HEAD_CALL = 64  # features waiting for the head: 64 x T x D float32, small


@dataclass(frozen=True)
class VideoPrediction:
    """The model's answer for one video: the top-k (class name, probability), best first, or why it failed."""

    path: str
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    true_label: str = ""  # from a CSV list's label column; "" when not known

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["top_k"] = [{"class_name": name, "probability": probability} for name, probability in self.top_k]
        return result


def check_extractor_matches(extractor: Extractor, metadata: ModelMetadata) -> None:
    """Raise CacheMismatchError when the loaded extractor differs from the one the model was trained on.

    The same rule as embed and evaluate (`featcache.cache.settings.describe_settings_difference`).
    """
    # The extractor was built from the stored record, so what can differ is what loading found: the
    # weights file's contents and the output dimension.
    loaded = settings_record(
        {**metadata.extractor, **extractor.provenance, "feature_dim": extractor.feature_dim}, metadata.sampling, None
    )
    difference = describe_settings_difference(metadata.training_cache_settings, loaded)
    if difference:
        raise CacheMismatchError(
            f"the extractor built from featcache.json differs from the one the model was trained on "
            f"(trained vs now: {difference}); "
            "restore the original weights file or retrain on a cache embedded with the current one"
        )


@dataclass(frozen=True)
class PreparedModel:
    """A trained head with the extractor and sampling of its training cache, ready to embed new videos.

    cache_dtype: the training cache's feature dtype; new features are rounded through it, as the head saw them.
    """

    model: Any
    class_names: list[str]
    extractor: Extractor
    extractor_config: ExtractorConfig
    sampling: SamplingConfig
    num_frames: int
    cache_dtype: np.dtype
    clip_frames: int = 0  # > 0: the head was trained on clips of this many frames (train --frames T)
    test_clips: int = 1  # clips averaged per video for such a head (train --test-clips)


def prepare_model(model_dir: Path | ModelFolder, runtime: str = "auto") -> PreparedModel:
    """Load a model folder and rebuild its extractor on `runtime` (featcache.extractors.runtimes: either gives the
    training cache's features); raises ModelDirError, ExtractorError or CacheMismatchError."""
    folder = model_dir if isinstance(model_dir, ModelFolder) else ModelFolder.open(Path(model_dir))
    metadata = folder.metadata
    extractor_config = metadata.extractor_config
    if record_precision(metadata.extractor) != DEFAULT_PRECISION:
        # Its features came from a model quantized on the training videos' frames, which predict cannot rebuild.
        raise ExtractorError(
            f"{folder.path} was trained on {record_precision(metadata.extractor)} features; predict embeds with the "
            "f32 extractor only: train on a cache embedded with --precision f32"
        )
    extractor = start_extractor(extractor_config, runtime)
    check_extractor_matches(extractor, metadata)
    return PreparedModel(
        model=folder.load_model(),
        class_names=folder.class_names,
        extractor=extractor,
        extractor_config=extractor_config,
        sampling=metadata.sampling_config,
        num_frames=metadata.num_frames,
        cache_dtype=metadata.feature_rounding_dtype,
        clip_frames=metadata.clip_frames,
        test_clips=metadata.test_clips,
    )


def collect_videos(inputs: list[Path]) -> list[tuple[Path, str]]:
    """(video path, true label or "") for each input: a file is itself; a folder gives every video file below it
    (sorted); a .csv list (path,label[,group]) gives its rows with their labels. A path that does not exist is
    kept, so that it gets its own error like any unreadable video.
    """
    videos: list[tuple[Path, str]] = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted(
                found
                for found in path.rglob("*")
                if found.is_file() and found.suffix.lower() in VIDEO_EXTENSIONS and not found.name.startswith(".")
            )
            if not found:
                raise InputError(f"{path}: no video files ({' '.join(VIDEO_EXTENSIONS)}) in this folder or below it")
            videos += [(video, "") for video in found]
        elif path.suffix.lower() == ".csv" and path.is_file():
            _, entries = find_videos(path)
            videos += [(entry.path, entry.label) for entry in entries]
        else:
            videos.append((path, ""))
    return videos


def write_predictions_csv(predictions: list[VideoPrediction], csv_path: Path) -> Path:
    """One row per video: path, true_label, predicted, probability, then class_N/probability_N for the top k, error."""
    import csv

    top_k = max((len(prediction.top_k) for prediction in predictions), default=0)
    header = [
        "path",
        "true_label",
        "predicted",
        "probability",
        *[f"{column}_{rank}" for rank in range(2, top_k + 1) for column in ("class", "probability")],
        "error",
    ]
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for prediction in predictions:
            ranked = [value for name, probability in prediction.top_k for value in (name, f"{probability:.6f}")]
            ranked += [""] * (2 * top_k - len(ranked))
            writer.writerow([prediction.path, prediction.true_label, *ranked, prediction.error or ""])
    return csv_path


def predict_videos(
    model_dir: Path,
    video_paths: list[Path],
    top_k: int = DEFAULT_TOP_K,
    progress: Callable[[int, int, int], None] | None = None,
    runtime: str = "auto",
    decoder: str = "auto",
) -> list[VideoPrediction]:
    """Top-k classes of each video, embedded with the extractor and sampling stored with the model.

    video_paths: files, folders (every video below them) or CSV lists (see collect_videos).
    progress(done, total, failed) is called as videos finish embedding.
    runtime: what runs the extractor, "auto", "keras" or "openvino" (featcache.extractors.runtimes).
    decoder: "auto", "seek" or "sequential" (featcache.video.decode; the same frames whichever decodes).
    Returns one VideoPrediction per path, in the order given; a video that cannot be decoded gets an
    `error` (path and reason) and the others are still predicted.
    Raises ModelDirError for a missing or foreign model folder, InputError for a bad top_k or decoder, ExtractorError
    when the stored extractor cannot be built, CacheMismatchError when its weights changed since training.
    """
    folder = ModelFolder.open(Path(model_dir))  # read once; the model and extractor load after the cheap checks
    class_names = folder.class_names
    if top_k < 1:
        raise InputError(f"--top-k / top_k must be at least 1, got {top_k}")
    check_decoder(decoder)
    top_k = min(top_k, len(class_names))  # as evaluate does: k beyond the classes lists all of them
    labelled = collect_videos(video_paths)
    video_paths = [path for path, _ in labelled]
    prepared = prepare_model(folder, runtime)
    outcomes: dict[int, VideoPrediction | np.ndarray] = {}
    waiting: list[tuple[int, np.ndarray]] = []  # (position, features) not yet through the head
    for position, features in embed_new_videos(
        video_paths,
        prepared.extractor,
        prepared.extractor_config,
        prepared.sampling,
        prepared.cache_dtype,
        progress,
        decoder,
    ):
        if isinstance(features, VideoDecodeError):
            outcomes[position] = VideoPrediction(path=str(video_paths[position]), error=str(features))
            continue
        waiting.append((position, features))
        if len(waiting) == VIDEOS_PER_HEAD_CALL:
            outcomes.update(
                classify_padded(prepared.model, waiting, prepared.num_frames, prepared.clip_frames, prepared.test_clips)
            )
            waiting.clear()
    outcomes.update(
        classify_padded(prepared.model, waiting, prepared.num_frames, prepared.clip_frames, prepared.test_clips)
    )
    return [
        replace(_top_k(str(path), outcomes[position], class_names, top_k), true_label=label)
        for position, (path, label) in enumerate(labelled)
    ]


def classify_padded(
    model: Any, videos: list[tuple[Any, np.ndarray]], num_frames: int, clip_frames: int = 0, test_clips: int = 1
) -> dict[Any, np.ndarray]:
    """Pad each video's float32 (length, feature_dim) features to `num_frames` and run the head once; a head
    trained on T-frame clips (clip_frames T > 0) sees `test_clips` uniform clips of each video, softmax averaged.

    Returns {key: float32 probabilities, shape (num_classes,)} for each (key, features) given.
    """
    if not videos:
        return {}
    feature_dim = videos[0][1].shape[1]
    if not clip_frames:
        # A head on whole sequences of a `--frames 0` cache (T = its longest video) meets a longer new video:
        # the reader's rule, T frames uniform over the stored ones.
        videos = [
            (key, video_features[uniform_positions(len(video_features), num_frames)]) for key, video_features in videos
        ]
    lengths = np.array([len(video_features) for _, video_features in videos], dtype=np.int32)
    padded_frames = max(num_frames, int(lengths.max()))
    assert clip_frames or padded_frames == num_frames, "the stored sampling never yields more than num_frames frames"
    features = np.zeros((len(videos), padded_frames, feature_dim), dtype=np.float32)
    for row, (_, video_features) in enumerate(videos):
        features[row, : len(video_features)] = video_features
    probabilities = predict_over_clips(
        lambda clips, clip_lengths: model.predict_on_batch([clips, clip_lengths]),
        features,
        lengths,
        clip_frames,
        test_clips,
    )
    return {position: probabilities[row] for row, (position, _) in enumerate(videos)}


def _top_k(path: str, outcome: VideoPrediction | np.ndarray, class_names: list[str], top_k: int) -> VideoPrediction:
    if isinstance(outcome, VideoPrediction):
        return outcome
    best = np.argsort(-outcome, kind="stable")[:top_k]
    return VideoPrediction(path=path, top_k=[(class_names[label], float(outcome[label])) for label in best])


def describe_failure(prediction: VideoPrediction) -> str:
    """Why a video could not be predicted, naming it once (decode errors usually start with the path already)."""
    return (
        prediction.error if prediction.error.startswith(prediction.path) else f"{prediction.path}: {prediction.error}"
    )


def format_predictions(predictions: list[VideoPrediction]) -> str:
    """One block per predicted video for a terminal: its top-k classes with probabilities
    (failures: describe_failure)."""
    lines = []
    for prediction in predictions:
        if prediction.error is not None:
            continue
        lines.append(f"{prediction.path}:" + (f" (labelled {prediction.true_label})" if prediction.true_label else ""))
        lines += [f"  {probability:.4f}  {name}" for name, probability in prediction.top_k]
    return "\n".join(lines)
