"""Shared test helpers: tiny synthetic videos written with cv2.VideoWriter.

Each frame of a `numbered` video is a flat grey whose level encodes its index (level = 20 * index + 10),
so a test can read back which frame it got even through lossy MJPG compression (error < 5 levels).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite runs the CLI on Keras (`--runtime`'s default from FEATCACHE_RUNTIME): converting each model to
# OpenVINO would cost ~10 s a model on the shared CI budget. tests/test_openvino_runtime.py tests OpenVINO and auto.
os.environ.setdefault("FEATCACHE_RUNTIME", "keras")

import cv2
import numpy as np
import pytest

# embed takes load_extractor from here when it builds a model
import featcache.extractors.registry as extractors_module
from featcache.config import ExtractorConfig
from featcache.extractors.extractor import Extractor

# The OpenVINO tests run in a pytest process of their own, started by tests/test_openvino_isolated.py: in one
# process after the rest of the suite (torch, JAX and TensorFlow loaded), OpenVINO's runtime crashed natively
# (exit 139, no Python trace; first seen when the suite ran them after tests/test_dataset.py). Alone they pass.
ISOLATED_TEST_FILES = ["test_openvino_runtime.py", "test_openvino_int8.py", "test_openvino_start.py"]
ISOLATION_VARIABLE = "FEATCACHE_TEST_ISOLATED"
collect_ignore = [] if os.environ.get(ISOLATION_VARIABLE) else ISOLATED_TEST_FILES


def write_video(path: Path, frames_rgb: np.ndarray, fps: float = 10.0) -> Path:
    """Write uint8 RGB frames (n, h, w, 3) as an MJPG .avi (or mp4v .mp4) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    height, width = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path}"
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def numbered_frames(num_frames: int, size: int = 32) -> np.ndarray:
    """uint8 (num_frames, size, size, 3): frame i is flat grey at level 20 * i + 10 (i < 12)."""
    levels = (20 * np.arange(num_frames) + 10).clip(0, 255).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, size, size, 3)).copy()


def frame_number_from_level(level: float) -> int:
    """Inverse of numbered_frames' level, rounding off compression error."""
    return int(round((level - 10) / 20))


@pytest.fixture
def numbered_video(tmp_path: Path) -> Path:
    """A 12-frame 32x32 MJPG video at 10 fps whose frame i has grey level 20 * i + 10."""
    return write_video(tmp_path / "numbered.avi", numbered_frames(12))


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A UCF101-layout folder: 2 classes x 3 videos, 6-10 frames of 32x32, groups g01..g03."""
    root = tmp_path / "videos"
    rng = np.random.default_rng(0)
    for class_index, class_name in enumerate(["Alpha", "Beta"]):
        for group in range(1, 4):
            num_frames = 6 + 2 * (group - 1)
            frames = rng.integers(0, 256, size=(num_frames, 32, 32, 3), dtype=np.uint8)
            frames[..., class_index] = 255  # classes differ in colour
            write_video(root / class_name / f"v_{class_name}_g{group:02d}_c01.avi", frames)
    return root


def mean_colour_extractor(config: ExtractorConfig) -> Extractor:
    """A stand-in extractor whose feature is the mean R, G, B of a frame: results can be read off the video."""

    def embed_frames(frames: np.ndarray) -> np.ndarray:
        embed_frames.calls.append(len(frames))
        return frames.astype(np.float32).mean(axis=(1, 2))

    embed_frames.calls = []
    provenance = {
        "name": config.name,
        "weights": config.weights,
        "handle": config.handle,
        "image_size": config.image_size,
        "seed": config.seed,
        "weights_sha256": None,
        "feature_dim": 3,
        "preprocessing": "mean colour",
    }
    return Extractor(config.name, config.image_size, 3, embed_frames, provenance)


@pytest.fixture
def fake_extractor(monkeypatch: pytest.MonkeyPatch) -> list[Extractor]:
    """Replace the model with mean_colour_extractor; the list collects each extractor loaded."""
    loaded: list[Extractor] = []

    def load(config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        loaded.append(mean_colour_extractor(config))
        return loaded[-1]

    monkeypatch.setattr(extractors_module, "load_extractor", load)
    return loaded


@pytest.fixture
def dataset_with_bad_files(tiny_dataset: Path) -> Path:
    """tiny_dataset plus a text file named .avi, an empty .avi, and a video cut short to its header."""
    (tiny_dataset / "Alpha" / "v_Alpha_g09_c01.avi").write_text("this is not a video\n")
    (tiny_dataset / "Alpha" / "v_Alpha_g09_c02.avi").write_bytes(b"")
    good = (tiny_dataset / "Beta" / "v_Beta_g01_c01.avi").read_bytes()
    (tiny_dataset / "Beta" / "v_Beta_g09_c03.avi").write_bytes(good[:200])
    return tiny_dataset


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium's path (installed with apt-get where missing and we are root); skips with the reason
    only where it cannot be had. See tests/browser.py."""
    from browser import find_chromium

    path, reason = find_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    return path
