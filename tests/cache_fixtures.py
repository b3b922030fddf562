"""Tiny feature caches written directly with h5py in the format of featcache/cache.py (format 1).

Writing them by hand, not with `featcache embed`, keeps the training tests free of video decoding and
checks that training reads the documented format, not whatever the writer happens to produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

STRING_DTYPE = h5py.string_dtype(encoding="utf-8")
EXTRACTOR = {
    "name": "mobilenet_v2",
    "weights": "random",
    "weights_sha256": None,
    "handle": None,
    "image_size": 32,
    "preprocessing": "scale to [-1, 1]",
    "seed": 0,
}


def write_cache(
    path: Path,
    features: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    paths: list[str] | None = None,
    groups: list[str] | None = None,
    dtype: str = "float16",
) -> Path:
    """Write a format-1 cache; features (N, T, D) are zeroed beyond each length as the writer does.

    paths default to UCF101-style `Class/v_Class_gGG_cCC.avi` names; groups to "" (none).
    """
    features = np.array(features, dtype=np.float32)
    num_videos, num_frames, feature_dim = features.shape
    lengths = np.asarray(lengths, dtype=np.int32)
    labels = np.asarray(labels, dtype=np.int32)
    frame_positions = np.arange(num_frames)[None, :]
    is_padding = frame_positions >= lengths[:, None]
    features[is_padding] = 0.0
    if paths is None:
        paths = [f"{class_names[label]}/v_{class_names[label]}_g01_c{row:03d}.avi" for row, label in enumerate(labels)]
    if groups is None:
        groups = [""] * num_videos
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        chunks = (1, num_frames, feature_dim) if num_videos else None
        handle.create_dataset("features", data=features.astype(dtype), chunks=chunks)
        handle["lengths"] = lengths
        handle["frame_indices"] = np.where(is_padding, -1, frame_positions).astype(np.int32)
        handle["timestamps_ms"] = np.where(is_padding, -1.0, frame_positions * 100.0).astype(np.float32)
        handle["labels"] = labels
        handle.create_dataset("paths", data=list(paths), dtype=STRING_DTYPE)
        handle.create_dataset("groups", data=list(groups), dtype=STRING_DTYPE)
        handle["video_fps"] = np.full(num_videos, 10.0, dtype=np.float32)
        handle["video_num_frames"] = lengths.copy()
        handle["video_width"] = np.full(num_videos, 32, dtype=np.int32)
        handle["video_height"] = np.full(num_videos, 32, dtype=np.int32)
        handle.create_dataset(
            "failures", shape=(0,), dtype=np.dtype([("path", STRING_DTYPE), ("reason", STRING_DTYPE)])
        )
        handle.attrs["class_names"] = json.dumps(class_names)
        handle.attrs["extractor"] = json.dumps({**EXTRACTOR, "feature_dim": feature_dim}, sort_keys=True)
        handle.attrs["sampling"] = json.dumps(
            {"num_frames": num_frames, "mode": "uniform", "fps": None}, sort_keys=True
        )
        handle.attrs["dtype"] = dtype
        handle.attrs["compression"] = "none"
        handle.attrs["featcache_version"] = "0.1.0"
        handle.attrs["created"] = "2024-01-01T00:00:00+00:00"
        handle.attrs["format_version"] = 1
    return path


def ordered_sequences(num_per_class: int, num_frames: int = 8, feature_dim: int = 4, seed: int = 0, noise: float = 0.1):
    """Two classes that differ only in time order: features rise over a video's frames (class 0) or fall (class 1).

    The ramp runs along one fixed direction; each video has a random offset and a random length in
    [num_frames // 2, num_frames]. The ramp is centred on the video's real frames, so the mean over real frames
    is the offset (plus noise) for both classes: an order-blind head sits at chance, a recurrent one separates them.
    Returns features float32 (N, T, D), lengths int32 (N,), labels int32 (N,), N = 2 * num_per_class.
    """
    rng = np.random.default_rng(seed)
    num_videos = 2 * num_per_class
    labels = np.repeat(np.arange(2, dtype=np.int32), num_per_class)
    lengths = rng.integers(num_frames // 2, num_frames + 1, size=num_videos).astype(np.int32)
    features = np.zeros((num_videos, num_frames, feature_dim), dtype=np.float32)
    # The same direction for every seed, so sets drawn with different seeds share one task.
    direction = np.random.default_rng(feature_dim).normal(size=feature_dim)
    direction /= np.linalg.norm(direction)
    for row in range(num_videos):
        length = lengths[row]
        ramp = np.linspace(-1.0, 1.0, length) * (1.0 if labels[row] == 0 else -1.0)
        offset = rng.normal(size=feature_dim)
        features[row, :length] = offset + ramp[:, None] * direction + noise * rng.normal(size=(length, feature_dim))
    return features, lengths, labels


def ucf101_like_cache(
    path: Path,
    num_classes: int = 3,
    num_groups: int = 25,
    clips_per_group: int = 1,
    num_frames: int = 6,
    feature_dim: int = 8,
    seed: int = 0,
    mislabelled_groups: range = range(0),
) -> Path:
    """A cache with UCF101 paths and groups "1".."num_groups" for every class; classes differ in mean feature.

    Videos of `mislabelled_groups` get the mean feature of the next class instead of their own, so a model that
    learns the other groups scores about 0 on them.
    """
    rng = np.random.default_rng(seed)
    class_names = [f"Action{letter}" for letter in "ABCDEFGHIJ"[:num_classes]]
    paths, groups, labels = [], [], []
    for label, class_name in enumerate(class_names):
        for group in range(1, num_groups + 1):
            for clip in range(1, clips_per_group + 1):
                paths.append(f"{class_name}/v_{class_name}_g{group:02d}_c{clip:02d}.avi")
                groups.append(str(group))
                labels.append(label)
    labels = np.array(labels, dtype=np.int32)
    centres = rng.normal(size=(num_classes, feature_dim)) * 2.0
    looks_like = np.where(
        np.isin(np.array(groups, dtype=int), list(mislabelled_groups)), (labels + 1) % num_classes, labels
    )
    features = centres[looks_like][:, None, :] + rng.normal(size=(len(labels), num_frames, feature_dim))
    lengths = np.full(len(labels), num_frames, dtype=np.int32)
    order = np.argsort(paths)  # the writer stores rows sorted by path
    return write_cache(
        path,
        features[order],
        lengths[order],
        labels[order],
        class_names,
        paths=[paths[row] for row in order],
        groups=[groups[row] for row in order],
    )
