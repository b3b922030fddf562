"""The near-duplicate threshold of `featcache audit`: how similar a video is to its own altered copies, and how
similar different videos of one class are, in cosine of L2-normalized mean-pooled features.

    python3 -m benchmarks.near_duplicates [--extractor scratch_cnn|mobilenet_v2] [--videos-per-class 6]

Videos: the demo data generator's (featcache/video/demo_data.py: 3 classes, groups sharing background, tint and
noise). Each original gets three copies written with OpenCV: re-encoded (MJPG .avi -> mp4v .mp4), resized (3/4 of
the side, mp4v) and cropped (the central 80 % of each side, MJPG). Weights: scratch_cnn with random weights, or
mobilenet_v2 with calibrated random weights (benchmarks/calibrated_weights.py: features that vary with the input;
no ImageNet weights offline). Everything is embedded into one cache, then every pair is compared twice: plain cosine
of the L2-normalized mean-pooled vectors (what `neighbors` ranks by) and the audit's centered cosine
(featcache.search.audit.centered_vectors).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import cv2
import numpy as np

ALTERATIONS = ("reencoded", "resized", "cropped")


def read_frames(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 12.0
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                return frames, fps
            frames.append(frame)
    finally:
        capture.release()


def write_frames(path: Path, frames: list[np.ndarray], fps: float, codec: str) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def altered_copy(source: Path, alteration: str) -> Path:
    """Write one altered copy of `source` next to it; its name says which alteration."""
    frames, fps = read_frames(source)
    stem = source.with_suffix("").name
    if alteration == "reencoded":
        return write_frames(source.with_name(f"{stem}_reencoded.mp4"), frames, fps, "mp4v")
    if alteration == "resized":
        height, width = frames[0].shape[:2]
        size = (width * 3 // 4, height * 3 // 4)
        resized = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]
        return write_frames(source.with_name(f"{stem}_resized.mp4"), resized, fps, "mp4v")
    height, width = frames[0].shape[:2]
    top, left = height // 10, width // 10
    cropped = [np.ascontiguousarray(frame[top : height - top, left : width - left]) for frame in frames]
    return write_frames(source.with_name(f"{stem}_cropped.avi"), cropped, fps, "MJPG")


def extractor_config(name: str, image_size: int):
    from featcache.config import ExtractorConfig

    if name == "mobilenet_v2":
        from benchmarks.calibrated_weights import calibrated_mobilenet_v2_weights

        return ExtractorConfig(
            name=name, weights=str(calibrated_mobilenet_v2_weights(image_size)), image_size=image_size
        )
    return ExtractorConfig(name=name, weights="random", image_size=image_size)


def measure(work_dir: Path, extractor: str, videos_per_class: int, image_size: int, num_frames: int) -> dict:
    """{kind: float array of similarities} for copies (per alteration), same class (same group / other group)
    and other class pairs."""
    from featcache.config import EmbedConfig, SamplingConfig
    from featcache.embedding.embed import embed
    from featcache.search.audit import centered_vectors
    from featcache.search.pooled import pooled_features
    from featcache.video.demo_data import make_demo_data

    videos = work_dir / "videos"
    make_demo_data(videos, num_classes=3, videos_per_class=videos_per_class, num_groups=3, image_size=64)
    originals = sorted(videos.rglob("*.avi"))
    originals = [path for path in originals if not path.stem.endswith(ALTERATIONS)]
    for source, alteration in itertools.product(originals, ALTERATIONS):
        altered_copy(source, alteration)
    cache_path = work_dir / f"{extractor}.h5"
    config = EmbedConfig(
        extractor=extractor_config(extractor, image_size), sampling=SamplingConfig(num_frames=num_frames)
    )
    embed(videos, cache_path, config, overwrite=True)
    pooled = pooled_features(cache_path)
    return {
        "plain": compare_pairs(pooled.paths, pooled.vectors),
        "centered": compare_pairs(pooled.paths, centered_vectors(pooled.vectors)),
    }


def compare_pairs(paths: list[str], vectors: np.ndarray) -> dict:
    vector_of = dict(zip(paths, vectors))
    similarities: dict[str, list[float]] = {
        kind: [] for kind in (*ALTERATIONS, "same group", "other group", "other class")
    }
    original_paths = [path for path in paths if not Path(path).stem.endswith(ALTERATIONS)]
    for path in original_paths:
        stem, suffix = path.rsplit(".", 1)[0], {"reencoded": ".mp4", "resized": ".mp4", "cropped": ".avi"}
        for alteration in ALTERATIONS:
            similarities[alteration].append(
                float(vector_of[path] @ vector_of[f"{stem}_{alteration}{suffix[alteration]}"])
            )
    for first, second in itertools.combinations(original_paths, 2):
        similarity = float(vector_of[first] @ vector_of[second])
        first_class, second_class = first.split("/")[0], second.split("/")[0]
        if first_class != second_class:
            similarities["other class"].append(similarity)
        elif first.split("_g")[1][:2] == second.split("_g")[1][:2]:
            similarities["same group"].append(similarity)
        else:
            similarities["other group"].append(similarity)
    return {kind: np.array(values) for kind, values in similarities.items()}


def format_table(similarities: dict, title: str) -> str:
    lines = [
        f"| {title}: pairs | n | min | median | max |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "reencoded": "video vs its re-encoded copy (mp4v)",
        "resized": "video vs its resized copy (3/4 side, mp4v)",
        "cropped": "video vs its cropped copy (central 80 %)",
        "same group": "different videos, same class, same group",
        "other group": "different videos, same class, other group",
        "other class": "different classes",
    }
    for kind, values in similarities.items():
        lines.append(
            f"| {names[kind]} | {len(values)} | {values.min():.4f} | {np.median(values):.4f} | {values.max():.4f} |"
        )
    copies = np.concatenate([similarities[kind] for kind in ALTERATIONS])
    different = np.concatenate([similarities[kind] for kind in ("same group", "other group", "other class")])
    lines.append("")
    lines.append(
        f"lowest copy {copies.min():.4f}, highest different-video pair {different.max():.4f}: "
        f"{'separable' if copies.min() > different.max() else 'overlapping'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.near_duplicates", description=__doc__)
    parser.add_argument("--extractor", choices=("scratch_cnn", "mobilenet_v2"), default="mobilenet_v2")
    parser.add_argument("--videos-per-class", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="featcache-near-duplicates-"))
    similarities = measure(work_dir, args.extractor, args.videos_per_class, args.image_size, args.frames)
    for kind, table in similarities.items():
        print(format_table(table, f"{args.extractor}, {kind} cosine"))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
