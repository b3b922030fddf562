"""Section 4b: backbones. Frames per second of a few keras.applications extractors at their own input sizes.

Random weights (the machine has no network for ImageNet files; the arithmetic is the same), uint8 frames
through `load_extractor(...).embed_frames` exactly as `embed` calls it, one warm-up batch, then timed batches.
All in one process, one after another, so the ratios compare like with like.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.report import SectionResult, Table, rate, ratio
from benchmarks.workspace import QUICK, Workspace
from featcache.config import ExtractorConfig
from featcache.extractors.catalog import KERAS_APPLICATIONS
from featcache.extractors.registry import load_extractor

FULL_BACKBONES = ("MobileNetV2", "EfficientNetV2B0", "ResNet50", "ConvNeXtTiny")
FULL_BATCH, FULL_TIMED_BATCHES = 32, 3
# The smoke test: one small model at 32 px, one batch.
QUICK_BACKBONES, QUICK_SIZE, QUICK_BATCH, QUICK_TIMED_BATCHES = ("MobileNetV2",), 32, 4, 1


def run_backbones(workspace: Workspace) -> SectionResult:
    quick = workspace.sizes is QUICK
    names = QUICK_BACKBONES if quick else FULL_BACKBONES
    batch, timed_batches = (QUICK_BATCH, QUICK_TIMED_BATCHES) if quick else (FULL_BATCH, FULL_TIMED_BATCHES)
    rows, baseline = [], None
    for name in names:
        application = KERAS_APPLICATIONS[name]
        size = QUICK_SIZE if quick else application.default_image_size
        extractor = load_extractor(ExtractorConfig(name=f"keras:{name}", weights="random", image_size=size))
        frames = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        extractor.embed_frames(frames)  # warm-up: graph tracing
        started = time.perf_counter()
        for _ in range(timed_batches):
            extractor.embed_frames(frames)
        frames_per_second = batch * timed_batches / (time.perf_counter() - started)
        baseline = baseline or frames_per_second
        rows.append(
            [
                f"`keras:{name}`",
                str(size),
                str(application.feature_dim),
                rate(frames_per_second, "frames/s"),
                ratio(frames_per_second / baseline),
            ]
        )
    notes = [
        f"random weights, batches of {batch} uint8 frames through `embed_frames` "
        f"({timed_batches} timed after one warm-up), "
        "TensorFlow backend on this CPU; the ratio is against the first row",
    ]
    table = Table("Frames per second per backbone", ["extractor", "input px", "dim", "speed", "vs first"], rows, notes)
    return SectionResult("4b. Backbones", [table])
