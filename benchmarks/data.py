"""The inputs every benchmark shares: UCF101-like synthetic videos and caches of random features.

UCF101 and ImageNet weights cannot be downloaded here, so the suite measures cost, not accuracy:
videos are featcache's demo motions upscaled to UCF101's 320x240 at 25 fps, with per-pixel noise,
written as MPEG-4 part 2 (XVID, UCF101's own codec), so decoding costs about what a UCF101 clip costs.
Nothing here imports TensorFlow (benchmarks/gpu.py runs where it is absent).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from featcache.cache import VideoRows, write_cache
from featcache.video.demo_data import available_demo_classes, make_demo_data

MARKER_FILE_NAME = "ucf-like.json"
# UCF101 clips are 320x240 at 25 fps, 7 s (~186 frames) on average (UCF101 paper, table 1).
UCF101_VIDEO_FPS = 25.0
# The size demo frames are drawn at before upscaling: drawing is then cheap, the motion stays smooth.
RENDER_SIZE = 80
# UCF101 split 1: 9,537 training and 3,783 test videos (trainlist01.txt / testlist01.txt), 101 classes,
# 25 groups of which 1-7 are the test groups.
UCF101_SPLIT1_TRAIN_VIDEOS = 9537
UCF101_SPLIT1_TEST_VIDEOS = 3783
UCF101_NUM_CLASSES = 101
UCF101_NUM_GROUPS = 25
UCF101_SPLIT1_TEST_GROUPS = 7


@dataclass(frozen=True)
class VideoSetParameters:
    """A UCF-like video set: `num_classes` x `num_groups` x `clips_per_group` videos.

    Each group is drawn from its own seed (its own background, tint and noise level), so a split by
    group holds out scenes the training side never saw, as UCF101's groups do.
    """

    num_classes: int
    num_groups: int
    clips_per_group: int
    num_frames: int
    width: int
    height: int
    seed: int = 0

    @property
    def num_videos(self) -> int:
        return self.num_classes * self.num_groups * self.clips_per_group


def make_ucf_like_videos(root: Path, parameters: VideoSetParameters, num_processes: int | None = None) -> Path:
    """Write `root/<Class>/v_<Class>_gGG_cCC.avi` (XVID, width x height, 25 fps) and return root.

    A folder that already holds this very set (its marker file matches) is reused as it is; one group
    is drawn per process. Any other non-empty folder is replaced.
    """
    root = Path(root)
    marker_path = root / MARKER_FILE_NAME
    if marker_path.is_file() and json.loads(marker_path.read_text()) == asdict(parameters):
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    num_processes = num_processes or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=min(num_processes, parameters.num_groups)) as pool:
        list(pool.map(_write_group, [(root, parameters, group) for group in range(1, parameters.num_groups + 1)]))
    marker_path.write_text(json.dumps(asdict(parameters)))
    return root


def _write_group(job: tuple[Path, VideoSetParameters, int]) -> None:
    root, parameters, group = job
    with tempfile.TemporaryDirectory(prefix=f"ucf-like-g{group}-") as scratch:
        drawn = make_demo_data(
            Path(scratch) / "demo",
            num_classes=parameters.num_classes,
            videos_per_class=parameters.clips_per_group,
            num_groups=1,
            num_frames=parameters.num_frames,
            image_size=RENDER_SIZE,
            seed=parameters.seed * 1000 + group,
        )
        rng = np.random.default_rng([parameters.seed, group])
        for class_name in available_demo_classes()[: parameters.num_classes]:
            for clip, source in enumerate(sorted((drawn / class_name).glob("*.avi")), start=1):
                target = root / class_name / f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"
                _upscale_video(source, target, parameters.width, parameters.height, rng)


def _upscale_video(source: Path, target: Path, width: int, height: int, rng: np.random.Generator) -> None:
    """Re-encode `source` at width x height as XVID, adding per-pixel noise so the codec has real work."""
    target.parent.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(source))
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"XVID"), UCF101_VIDEO_FPS, (width, height))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write XVID to {target}")
        while True:
            read, frame = capture.read()
            if not read:
                break
            upscaled = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
            writer.write(cv2.add(upscaled, rng.integers(0, 12, upscaled.shape, dtype=np.uint8)))
    finally:
        capture.release()
        writer.release()


def write_video_list(path: Path, root: Path, relative_paths: list[str]) -> Path:
    """A featcache CSV list (path,label) of some videos under `root`; the class is the first folder."""
    # Paths relative to the CSV's folder: featcache refuses rows outside it unless --allow-outside-root.
    lines = ["path,label"] + [
        f"{Path(os.path.relpath(root / relative, path.parent)).as_posix()},{relative.split('/')[0]}"
        for relative in relative_paths
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class RandomCacheParameters:
    """A cache of random features in UCF101's naming; the first `num_test_videos` are in test groups 1-7."""

    num_train_videos: int
    num_test_videos: int
    num_frames: int
    feature_dim: int
    num_classes: int
    dtype: str = "float16"
    compression: str = "none"
    seed: int = 0

    @property
    def num_videos(self) -> int:
        return self.num_train_videos + self.num_test_videos


def ucf101_split1_cache_parameters(feature_dim: int = 1280, num_frames: int = 10) -> RandomCacheParameters:
    """UCF101 split 1's size: 9,537 training + 3,783 test videos (`--split ucf101-1` picks them)."""
    return RandomCacheParameters(
        UCF101_SPLIT1_TRAIN_VIDEOS, UCF101_SPLIT1_TEST_VIDEOS, num_frames, feature_dim, UCF101_NUM_CLASSES
    )


def write_random_cache(path: Path, parameters: RandomCacheParameters, block_size: int = 256) -> Path:
    """Write a real featcache cache (featcache.cache.write_cache) of random features, block by block.

    Features are ReLU-like (half zeros, like a CNN's pooled output) so compression sees realistic sparsity.
    Groups follow UCF101 split 1: test videos in groups 1-7, training videos in groups 8-25. Memory stays
    within one block of features whatever the cache's size.
    """
    class_names = [f"Class{index:03d}" for index in range(parameters.num_classes)]
    all_paths = [_random_video_path(row, parameters, class_names) for row in range(parameters.num_videos)]
    write_cache(
        Path(path),
        row_sources=_random_rows(parameters, class_names, all_paths, block_size),
        all_paths=all_paths,
        class_names=class_names,
        failures=[],
        attributes={
            "extractor": {"name": "random", "feature_dim": parameters.feature_dim},
            "sampling": {"num_frames": parameters.num_frames},
        },
        num_frames=parameters.num_frames,
        feature_dim=parameters.feature_dim,
        dtype=parameters.dtype,
        compression=parameters.compression,
    )
    return Path(path)


def _random_video_path(row: int, parameters: RandomCacheParameters, class_names: list[str]) -> str:
    class_name = class_names[row % parameters.num_classes]
    if row < parameters.num_test_videos:
        group = 1 + row % UCF101_SPLIT1_TEST_GROUPS
    else:
        group = UCF101_SPLIT1_TEST_GROUPS + 1 + row % (UCF101_NUM_GROUPS - UCF101_SPLIT1_TEST_GROUPS)
    return f"{class_name}/v_{class_name}_g{group:02d}_c{row:05d}.avi"


def _random_rows(
    parameters: RandomCacheParameters, class_names: list[str], all_paths: list[str], block_size: int
) -> Iterator[VideoRows]:
    rng = np.random.default_rng(parameters.seed)
    num_frames = parameters.num_frames
    for start in range(0, parameters.num_videos, block_size):
        paths = all_paths[start : start + block_size]
        count = len(paths)
        features = rng.standard_normal((count, num_frames, parameters.feature_dim), dtype=np.float32)
        yield _rows(np.maximum(features, 0.0).astype(parameters.dtype), paths, [path.split("/")[0] for path in paths])


def rows_from_features(
    features: np.ndarray, labels: list[str], prefix: str = "", groups: list[int] | None = None
) -> VideoRows:
    """VideoRows for full-length feature sequences, (N, T, D), named `<label>/v_<label>_g<group>_c<prefix><row>.avi`.

    groups: each row's group number (its `gNN`); None puts every row in group 08 (one group: no group-aware split).
    """
    groups = groups if groups is not None else [8] * len(labels)
    paths = [
        f"{label}/v_{label}_g{group:02d}_c{prefix}{row:05d}.avi"
        for row, (label, group) in enumerate(zip(labels, groups))
    ]
    return _rows(features, paths, labels)


def _rows(features: np.ndarray, paths: list[str], labels: list[str]) -> VideoRows:
    count, num_frames = features.shape[:2]
    frame_positions = np.broadcast_to(np.arange(num_frames, dtype=np.int32), (count, num_frames))
    return VideoRows(
        features=features,
        frame_indices=frame_positions.copy(),
        timestamps_ms=(frame_positions * 40.0).astype(np.float32),
        lengths=np.full(count, num_frames, dtype=np.int32),
        video_fps=np.full(count, UCF101_VIDEO_FPS, dtype=np.float32),
        video_num_frames=np.full(count, 186, dtype=np.int32),
        video_width=np.full(count, 320, dtype=np.int32),
        video_height=np.full(count, 240, dtype=np.int32),
        labels=labels,
        paths=paths,
        groups=[str(int(path.rsplit("_g", 1)[1][:2])) for path in paths],
    )


def permuted_segments(
    num_per_class: int,
    num_classes: int = 6,
    num_segments: int = 3,
    num_frames: int = 12,
    feature_dim: int = 16,
    seed: int = 0,
    noise: float = 0.3,
):
    """Order-only features, harder than a ramp: every class shows the same `num_segments` prototype vectors, each
    for a third (1 / num_segments) of the video, in its own order (class c: the c-th permutation).

    Lengths are random multiples of num_segments in [num_frames // 2, num_frames], so every segment lasts exactly
    as long in every video and the mean over real frames is the same for every class (plus a random per-video
    offset and noise): an order-blind head sits at chance (1 / num_classes); telling the classes apart needs the
    order of the segments. The prototypes do not depend on `seed`, so sets drawn with different seeds share one task.
    Returns features float32 (N, num_frames, feature_dim), zero beyond each length, lengths int32 (N,), labels int32
    (N,).
    """
    import itertools

    orders = list(itertools.permutations(range(num_segments)))
    if not 2 <= num_classes <= len(orders):
        raise ValueError(f"{num_segments} segments give 2 to {len(orders)} classes, not {num_classes}")
    prototypes = np.random.default_rng(1000 + feature_dim).normal(size=(num_segments, feature_dim))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), num_per_class)
    segment_counts = np.arange(max(1, num_frames // 2 // num_segments), num_frames // num_segments + 1)
    lengths = (rng.choice(segment_counts, size=len(labels)) * num_segments).astype(np.int32)
    features = np.zeros((len(labels), num_frames, feature_dim), dtype=np.float32)
    for row, (label, length) in enumerate(zip(labels, lengths)):
        segment_of_frame = np.repeat(orders[label], length // num_segments)
        offset = 0.5 * rng.normal(size=feature_dim)
        features[row, :length] = prototypes[segment_of_frame] + offset + noise * rng.normal(size=(length, feature_dim))
    return features, lengths, labels


def write_feature_cache(
    path: Path,
    features: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    dtype: str = "float32",
    extractor: dict | None = None,
) -> Path:
    """A cache of given feature sequences (N, T, D), real up to each length, no groups (a stratified random split).

    extractor: the extractor record to store (default: a "synthetic" one), e.g. a KerasHub preset's for zero-shot.
    """
    rows = rows_from_features(np.asarray(features, dtype=dtype), [class_names[label] for label in labels])
    is_padding = np.arange(features.shape[1])[None, :] >= np.asarray(lengths)[:, None]
    rows = dataclasses.replace(
        rows,
        lengths=np.asarray(lengths, dtype=np.int32),
        frame_indices=np.where(is_padding, -1, rows.frame_indices).astype(np.int32),
        timestamps_ms=np.where(is_padding, -1.0, rows.timestamps_ms).astype(np.float32),
        groups=[""] * len(labels),
    )
    attributes = {
        "extractor": extractor or {"name": "synthetic", "weights": "none", "feature_dim": int(features.shape[2])},
        "sampling": {"num_frames": int(features.shape[1]), "mode": "uniform", "fps": None},
    }
    write_cache(
        path, [rows], rows.paths, sorted(class_names), [], attributes, features.shape[1], features.shape[2], dtype
    )
    return path
