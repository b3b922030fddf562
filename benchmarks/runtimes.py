"""`python3 -m benchmarks.runtimes`: Keras-TF vs OpenVINO f32 vs OpenVINO int8, side by side in one run.

Per extractor: images/s of bare batched inference on the same decoded frames (best of a few batches of 64), the
features' agreement with Keras (max abs difference / feature scale, min and mean cosine), then videos/s of
`featcache embed` as whole commands (a fresh process each: start-up, model build, conversion from the compile
cache, decode and embed). ImageNet weights cannot be downloaded here: mobilenet_v2 uses
benchmarks/calibrated_weights.py (random weights with BatchNorm statistics set so features vary), the others
random weights; the figures are speed and agreement, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import featcache  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before Keras imports TensorFlow)
from benchmarks.calibrated_weights import calibrated_mobilenet_v2_weights
from benchmarks.machine import describe_machine, load_average

BATCH = 64
REPEATS = 3


def best_rate(embed_frames, frames: np.ndarray) -> float:
    """Images/s of the best of REPEATS passes over `frames` in batches of BATCH (after one warm-up batch)."""
    embed_frames(frames[:BATCH])
    best = 0.0
    for _ in range(REPEATS):
        started = time.perf_counter()
        for start in range(0, len(frames), BATCH):
            embed_frames(frames[start : start + BATCH])
        best = max(best, len(frames) / (time.perf_counter() - started))
    return best


def decoded_frames(video_root: Path, image_size: int, num_frames: int) -> tuple[np.ndarray, list[str]]:
    from featcache.config import SamplingConfig
    from featcache.embedding.batching import decode_videos
    from featcache.video.find import find_videos

    _, entries = find_videos(video_root)
    frames, paths = [], []
    for entry, sampled in decode_videos(entries, SamplingConfig(num_frames=num_frames), image_size, 2):
        frames.append(sampled.frames)
        paths.append(entry.relative_path)
    return np.concatenate(frames), paths


def bare_inference(name: str, weights: str, image_size: int, video_root: Path, num_frames: int) -> dict:
    from featcache.config import ExtractorConfig
    from featcache.extractors.openvino_int8 import quantize_extractor
    from featcache.extractors.openvino_runtime import feature_agreement
    from featcache.extractors.registry import load_extractor

    config = ExtractorConfig(name=name, weights=weights, image_size=image_size)
    frames, paths = decoded_frames(video_root, image_size, num_frames)
    keras_extractor = load_extractor(config, "keras")
    converting = time.perf_counter()
    openvino_extractor = load_extractor(config, "openvino")
    convert_seconds = time.perf_counter() - converting
    reference = keras_extractor.embed_frames(frames)
    relative, min_cosine, mean_cosine = feature_agreement(reference, openvino_extractor.embed_frames(frames))
    row = {
        "extractor": name,
        "image_size": image_size,
        "frames": len(frames),
        "keras_images_per_s": best_rate(keras_extractor.embed_frames, frames),
        "openvino_f32_images_per_s": best_rate(openvino_extractor.embed_frames, frames),
        "f32_max_abs_diff_per_scale": relative,
        "f32_min_cosine": min_cosine,
        "f32_mean_cosine": mean_cosine,
        "first_conversion_s": convert_seconds,
    }
    calibration = frames[: 2 * 128]
    try:
        int8_model, record = quantize_extractor(openvino_extractor.openvino_model, calibration, paths, -1.0)
    except Exception as err:  # a benchmark row says why int8 failed instead of stopping the run
        row["int8_error"] = str(err)
        return row
    _, int8_min, int8_mean = feature_agreement(reference, int8_model.embed_frames(frames))
    row.update(
        int8_images_per_s=best_rate(int8_model.embed_frames, frames),
        int8_mean_cosine_all_frames=int8_mean,
        int8_min_cosine_all_frames=int8_min,
        int8_held_out_mean_cosine=record.mean_cosine,
    )
    return row


def embed_command(video_root: Path, out: Path, name: str, weights: str, image_size: int, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "featcache", "embed", str(video_root), "--out", str(out), "--overwrite"]
    command += ["--extractor", name, "--weights", weights, "--image-size", str(image_size), *extra]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "FEATCACHE_RUNTIME": ""})
    wall = time.perf_counter() - started
    summary = [line for line in finished.stdout.splitlines() if "embedded," in line]
    runtime = [line for line in finished.stdout.splitlines() if line.startswith("extractor runtime")]
    return {
        "command": " ".join(["featcache embed VIDEOS --out X", *command[8:]]),
        "exit": finished.returncode,
        "wall_s": wall,
        "summary": summary[0] if summary else finished.stderr.strip()[-300:],
        "runtime": runtime[0] if runtime else "",
    }


def onednn_state() -> str:
    """Whether TensorFlow's oneDNN path is on: TF_ENABLE_ONEDNN_OPTS, else TF's own default for this CPU."""
    from tensorflow.python.util import _pywrap_util_port

    return f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}, " + (
        f"oneDNN {'on' if _pywrap_util_port.IsMklEnabled() else 'off'} (IsMklEnabled)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.runtimes", description=__doc__)
    parser.add_argument("--videos-per-class", type=int, default=4)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "featcache-bench-runtimes.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="featcache-bench-runtimes-"))
    os.environ.setdefault("FEATCACHE_CACHE_DIR", str(work / "compile-cache"))
    video_root = work / "videos"
    subprocess.run([sys.executable, "-m", "featcache", "demo-data", str(video_root), "--videos-per-class",
                    str(args.videos_per_class), "-q"], check=True)  # fmt: skip
    models = [
        ("mobilenet_v2", str(calibrated_mobilenet_v2_weights(224)), 224),
        ("scratch_cnn", "random", 112),
        ("keras:EfficientNetB0", "random", 224),
    ]
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    results = {"machine": describe_machine(), "load_average_before": load_average(), "onednn": onednn_state()}
    results["bare"], results["embed"] = [], []
    for name, weights, size in models:
        print(f"[bench] bare inference {name}", file=sys.stderr, flush=True)
        results["bare"].append(bare_inference(name, weights, size, video_root, args.frames))
        for label, extra in [
            ("keras", ["--runtime", "keras"]),
            ("openvino f32", ["--runtime", "openvino"]),
            ("openvino int8", ["--runtime", "openvino", "--precision", "int8", "--int8-min-cosine", "-1"]),
        ]:
            print(f"[bench] embed {name} {label}", file=sys.stderr, flush=True)
            row = embed_command(
                video_root, work / "cache.h5", name, weights, size, [*extra, "--frames", str(args.frames)]
            )
            results["embed"].append({"extractor": name, "runtime": label, **row})
    results["load_average_after"] = load_average()
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
