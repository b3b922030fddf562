"""A tiny world for the report tests: real source videos, a cache recording which of their frames it sampled,
and a model folder whose every prediction is known (the first-frame softmax model of test_evaluate).

9 videos of 3 classes (Alpha, Beta, Gamma), 12 frames of 32x32 at 10 fps; each cached video recorded the frames
FRAME_INDICES. Rows 0, 3, 6 (one per class) are train, the other 6 test (what the report scores by default).
Of the test videos, WRONG maps path -> the class the model predicts instead of the true one; the others are
predicted right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import numbered_frames, write_video
from test_evaluate import CLASS_NAMES, EXTRACTOR, SAMPLING, write_model_folder

from featcache.cache import VideoRows, write_cache

FRAME_INDICES = np.array([1, 4, 7, 10], dtype=np.int32)
VIDEO_FPS = 10.0
NUM_VIDEOS = 9
TRAIN_ROWS = (0, 3, 6)
# Test videos the model gets wrong: path -> predicted class (their first-frame feature points there).
WRONG = {"Alpha/v3.avi": "Beta", "Gamma/v8.avi": "Alpha"}
HISTORY = (
    "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n"
    "1,1.10,0.35,1.09,0.33,0.5\n2,0.90,0.55,0.95,0.50,0.5\n3,0.70,0.72,0.85,0.66,0.5\n4,0.60,0.80,0.88,0.60,0.5\n"
)
BEST_EPOCH = 3


@dataclass(frozen=True)
class ReportWorld:
    video_root: Path
    cache: Path
    model_dir: Path
    paths: list[str]
    labels: list[str]

    @property
    def test_paths(self) -> list[str]:
        return [path for row, path in enumerate(self.paths) if row not in TRAIN_ROWS]


def video_paths() -> tuple[list[str], list[str]]:
    """(paths sorted as the cache sorts them, their class names): video i is <Class i % 3>/v<i>.avi."""
    labelled = sorted((f"{CLASS_NAMES[row % 3]}/v{row}.avi", CLASS_NAMES[row % 3]) for row in range(NUM_VIDEOS))
    return [path for path, _ in labelled], [label for _, label in labelled]


def write_source_videos(video_root: Path, paths: list[str], discs: bool = False) -> None:
    """Each path as a 12-frame video: numbered frames (frame i has grey level 20 * i + 10), or with `discs` a
    coloured disc moving over a background (what a person can tell apart on a screenshot)."""
    for row, path in enumerate(paths):
        write_video(video_root / path, disc_frames(row) if discs else numbered_frames(12), fps=VIDEO_FPS)


def disc_frames(seed: int, num_frames: int = 12, size: int = 64) -> np.ndarray:
    """uint8 (num_frames, size, size, 3): a disc of a colour of its own crossing a tinted gradient."""
    import cv2

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.4, 1.0, size)[:, None, None] * rng.integers(30, 110, size=3)[None, None, :]
    background = np.broadcast_to(ramp, (size, size, 3)).astype(np.uint8)
    colour = tuple(int(value) for value in rng.integers(120, 256, size=3))
    frames = []
    for index in range(num_frames):
        frame = background.copy()
        centre = (int(8 + (size - 16) * index / (num_frames - 1)), int(size / 2 + 12 * np.sin(index + seed)))
        cv2.circle(frame, centre, 9, colour, thickness=-1)
        frames.append(frame)
    return np.stack(frames)


def build_report_world(tmp_path: Path, discs: bool = False, fingerprints: list[str] | None = None):
    """Write the videos (numbered, or with `discs` moving discs), the cache (with `fingerprints`, default all
    distinct) and the model folder."""
    paths, labels = video_paths()
    video_root = tmp_path / "videos"
    write_source_videos(video_root, paths, discs)
    rows = report_video_rows(paths, labels)
    num_frames, num_classes = len(FRAME_INDICES), len(CLASS_NAMES)
    fingerprints = fingerprints or [f"{row}:contents{row}" for row in range(NUM_VIDEOS)]
    cache = tmp_path / "cache.h5"
    write_cache(
        cache,
        [rows],
        paths,
        CLASS_NAMES,
        [("Beta/broken.avi", "no decodable frame")],
        {"extractor": EXTRACTOR, "sampling": SAMPLING},
        num_frames,
        num_classes,
        "float32",
        fingerprints=dict(zip(paths, fingerprints)),
    )
    split = {path: "train" if row in TRAIN_ROWS else "test" for row, path in enumerate(paths)}
    model_dir = write_model_folder(tmp_path / "model", CLASS_NAMES, split, fingerprints=dict(zip(paths, fingerprints)))
    (model_dir / "history.csv").write_text(HISTORY)
    metadata = json.loads((model_dir / "featcache.json").read_text())
    metadata.update(best_epoch=BEST_EPOCH, best_val_accuracy=0.66, cache={"path": str(cache), "num_videos": 9})
    (model_dir / "featcache.json").write_text(json.dumps(metadata))
    return ReportWorld(video_root, cache, model_dir, paths, labels)


def report_video_rows(paths: list[str], labels: list[str]) -> VideoRows:
    """The cache rows of the world: first-frame features that make the model predict WRONG's classes."""
    num_frames, num_classes = len(FRAME_INDICES), len(CLASS_NAMES)
    features = np.zeros((NUM_VIDEOS, num_frames, num_classes), dtype=np.float32)
    for row, (path, label) in enumerate(zip(paths, labels)):
        # The first-frame model predicts the class whose feature is high; a second, lower one gives a top-2.
        predicted = CLASS_NAMES.index(WRONG.get(path, label))
        features[row, 0, predicted] = 3.0 + 0.1 * row
        features[row, 0, (predicted + 1) % num_classes] = 1.0
    return VideoRows(
        features=features,
        frame_indices=np.tile(FRAME_INDICES, (NUM_VIDEOS, 1)),
        timestamps_ms=np.tile(FRAME_INDICES / VIDEO_FPS * 1000.0, (NUM_VIDEOS, 1)).astype(np.float32),
        lengths=np.full(NUM_VIDEOS, num_frames, dtype=np.int32),
        video_fps=np.full(NUM_VIDEOS, VIDEO_FPS, dtype=np.float32),
        video_num_frames=np.full(NUM_VIDEOS, 12, dtype=np.int32),
        video_width=np.full(NUM_VIDEOS, 32, dtype=np.int32),
        video_height=np.full(NUM_VIDEOS, 32, dtype=np.int32),
        labels=labels,
        paths=paths,
        groups=[f"g{row % 4}" for row in range(NUM_VIDEOS)],
    )
