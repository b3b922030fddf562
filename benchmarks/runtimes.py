"""`python3 -m benchmarks.runtimes`: Keras-TF vs OpenVINO f32 vs OpenVINO int8, side by side in one run.

Per extractor: images/s of bare batched inference on the same decoded frames (best of a few batches of 64), the
features' agreement with Keras (max abs difference / feature scale, min and mean cosine), then videos/s of
`featcache embed` as whole commands (a fresh process each: start-up, model build, conversion from the compile
cache, decode and embed). ImageNet weights cannot be downloaded here: mobilenet_v2 uses
benchmarks/calibrated_weights.py (random weights with BatchNorm statistics set so features vary), the others
random weights; the figures are speed and agreement, not accuracy.

`python -m benchmarks --sections runtimes` runs it in the suite (`--quick`: scratch_cnn at the quick suite's size
on 3 videos, a smoke test of every runtime, not figures); `python3 -m benchmarks.runtimes` alone writes the raw
figures as JSON (what BENCHMARKS.md's section 14 comes from).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import featcache  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before Keras imports TensorFlow)
from benchmarks.machine import describe_machine, load_average
from benchmarks.report import SectionResult, Table, Target
from benchmarks.workspace import QUICK, Workspace, benchmark_weights

BATCH = 64
REPEATS = 3
# Extractor and image size: the notebook's two extractors and one `keras:` family with other layers (issue 20).
BARE_INFERENCE_MAX_FRAMES = 576
FULL_MODELS = (("mobilenet_v2", 224), ("scratch_cnn", 112), ("keras:EfficientNetB0", 224))
QUICK_MODELS = (("scratch_cnn", QUICK.image_size),)
# `featcache embed` per runtime; int8 with the gate off, so its speed is measured whatever its cosine.
RUNTIME_OPTIONS = (
    ("keras", ["--runtime", "keras"]),
    ("openvino f32", ["--runtime", "openvino"]),
    ("openvino int8", ["--runtime", "openvino", "--precision", "int8", "--int8-min-cosine", "-1"]),
)
# Issue 20's targets on a 2-core CPU.
F32_INFERENCE_TARGET = 1.7
INT8_INFERENCE_TARGET = 3.0
INT8_MIN_MEAN_COSINE = 0.99
F32_EMBED_TARGET = 1.5
MAX_FAILURE_CHARACTERS = 120  # of a failed `embed` command's error, in its table row
COMPILE_CACHE_VARIABLE = "FEATCACHE_CACHE_DIR"  # featcache.extractors.openvino_runtime.CACHE_DIR_VARIABLE


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


def embed_in_batches(embed_frames, frames: np.ndarray) -> np.ndarray:
    """Features of `frames`, BATCH at a time as `embed` hands them over: one call on hundreds of frames holds all
    their activations at once (ConvNeXtTiny under TensorFlow: 8 GB for 192 frames, killed for want of memory at
    576 on this 23.5 GiB machine)."""
    return np.concatenate([embed_frames(frames[start : start + BATCH]) for start in range(0, len(frames), BATCH)])


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
    from featcache.extractors.openvino_start import start_extractor
    from featcache.extractors.registry import load_extractor

    config = ExtractorConfig(name=name, weights=weights, image_size=image_size)
    frames, paths = decoded_frames(video_root, image_size, num_frames)
    # At most this many frames for the agreement checks and the images/s passes (a larger run's extra videos are
    # for the `embed` commands, whose start-up they amortize).
    frames, paths = frames[:BARE_INFERENCE_MAX_FRAMES], paths[: BARE_INFERENCE_MAX_FRAMES // num_frames]
    keras_extractor = load_extractor(config, "keras")
    converting = time.perf_counter()
    # As `embed` starts it: also saves the start record, so each `embed --runtime openvino` below is a later start.
    openvino_extractor = start_extractor(config, "openvino")
    convert_seconds = time.perf_counter() - converting
    reference = embed_in_batches(keras_extractor.embed_frames, frames)
    relative, min_cosine, mean_cosine = feature_agreement(
        reference, embed_in_batches(openvino_extractor.embed_frames, frames)
    )
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
    _, int8_min, int8_mean = feature_agreement(reference, embed_in_batches(int8_model.embed_frames, frames))
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
        # A failed command's summary is its last stderr line: featcache's one-line error.
        "summary": summary[0] if summary else (finished.stderr.strip().splitlines() or [""])[-1],
        "runtime_line": runtime[0] if runtime else "",
    }


def onednn_state() -> str:
    """Whether TensorFlow's oneDNN path is on: TF_ENABLE_ONEDNN_OPTS, else TF's own default for this CPU."""
    from tensorflow.python.util import _pywrap_util_port

    return f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}, " + (
        f"oneDNN {'on' if _pywrap_util_port.IsMklEnabled() else 'off'} (IsMklEnabled)"
    )


@contextlib.contextmanager
def default_compile_cache(folder: Path) -> Iterator[None]:
    """FEATCACHE_CACHE_DIR=folder (a fresh one: every first conversion is timed) unless it is set; restored after,
    so the suite's later sections see the environment they had."""
    was_set = COMPILE_CACHE_VARIABLE in os.environ
    os.environ.setdefault(COMPILE_CACHE_VARIABLE, str(folder))
    try:
        yield
    finally:
        if not was_set:
            os.environ.pop(COMPILE_CACHE_VARIABLE, None)


def measure_runtimes(
    work: Path, models: tuple[tuple[str, int], ...], videos_per_class: int, num_frames: int, log: Callable[[str], None]
) -> dict:
    """Bare inference and `embed` commands of every runtime for each (extractor, image size) of `models`, on demo
    videos written into `work`; returns the raw figures (what benchmarks/results/runtimes.json holds)."""
    video_root = work / "videos"
    subprocess.run([sys.executable, "-m", "featcache", "demo-data", str(video_root), "--videos-per-class",
                    str(videos_per_class), "-q"], check=True)  # fmt: skip
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    results = {"machine": describe_machine(), "load_average_before": load_average(), "onednn": onednn_state()}
    results["bare"], results["embed"] = [], []
    with default_compile_cache(work / "compile-cache"):
        for name, size in models:
            weights = benchmark_weights(name, size)
            log(f"bare inference {name}")
            results["bare"].append(bare_inference(name, weights, size, video_root, num_frames))
            for label, extra in RUNTIME_OPTIONS:
                log(f"embed {name} {label}")
                row = embed_command(
                    video_root, work / "cache.h5", name, weights, size, [*extra, "--frames", str(num_frames)]
                )
                results["embed"].append({"extractor": name, **row, "runtime": label})
    results["load_average_after"] = load_average()
    return results


def embedding_rate(summary: str) -> float | None:
    """Videos/s of the embedding phase, from `embed`'s summary line ("... (embedding 0.3 videos/s, ...")."""
    found = re.search(r"embedding ([\d.]+) videos/s", summary)
    return float(found.group(1)) if found else None


def runtimes_section(results: dict) -> SectionResult:
    """BENCHMARKS.md's section 14 from `measure_runtimes`' figures: the bare-inference and the `embed` tables, and
    issue 20's targets per extractor."""
    bare_rows, embed_rows, targets = [], [], []
    for bare in results["bare"]:
        keras_rate = bare["keras_images_per_s"]
        f32_ratio = bare["openvino_f32_images_per_s"] / keras_rate
        int8 = (
            f"{bare['int8_images_per_s']:.0f} ({bare['int8_images_per_s'] / keras_rate:.2f}×)"
            if "int8_images_per_s" in bare
            else f"failed: {bare['int8_error']}"
        )
        int8_cosines = (
            f"{bare['int8_mean_cosine_all_frames']:.4f} / {bare['int8_min_cosine_all_frames']:.4f}"
            if "int8_images_per_s" in bare
            else "—"
        )
        bare_rows.append(
            [
                f"{bare['extractor']} ({bare['image_size']} px)",
                f"{keras_rate:.0f}",
                f"{bare['openvino_f32_images_per_s']:.0f} ({f32_ratio:.2f}×)",
                int8,
                f"{bare['f32_max_abs_diff_per_scale']:.1e}, {bare['f32_min_cosine']:.6f}",
                int8_cosines,
                f"{bare['first_conversion_s']:.0f} s",
            ]
        )
        targets += _inference_targets(bare, f32_ratio)
    for extractor in dict.fromkeys(row["extractor"] for row in results["embed"]):
        rows = {row["runtime"]: row for row in results["embed"] if row["extractor"] == extractor}
        embed_rows += _embed_rows(extractor, rows)
        targets.append(_embed_target(extractor, rows))
    frames = results["bare"][0]["frames"] if results["bare"] else 0
    load_before, load_after = results["load_average_before"], results["load_average_after"]
    bare_table = Table(
        f"Bare inference, the same {frames} decoded frames, batches of {BATCH}, best of {REPEATS}; int8 calibrated "
        "on every other of the first frames, its cosines over all of them",
        [
            "extractor (size)",
            "Keras-TF images/s",
            "OpenVINO f32 images/s (× TF)",
            "OpenVINO int8 images/s (× TF)",
            "f32 vs Keras: max abs diff / scale, min cosine",
            "int8 vs Keras: mean / min cosine",
            "first conversion",
        ],
        bare_rows,
        notes=[
            f"TensorFlow's oneDNN path: {results['onednn']}.",
            "Weights: mobilenet_v2 calibrated random weights (benchmarks/calibrated_weights.py), the others random: "
            "speed and agreement figures, not accuracy.",
            f"Load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end.",
        ],
    )
    embed_table = Table(
        "`featcache embed` as whole commands (a fresh process each), int8 with `--int8-min-cosine -1`",
        ["extractor", "runtime", "exit", "wall s", "embedding phase videos/s", "× Keras, wall", "× Keras, embedding"],
        embed_rows,
    )
    return SectionResult(
        "14. OpenVINO runtimes (issue 20): Keras-TF vs OpenVINO f32 vs OpenVINO int8",
        [bare_table, embed_table],
        targets,
    )


def _inference_targets(bare: dict, f32_ratio: float) -> list[Target]:
    name = bare["extractor"]
    targets = [
        Target(
            f"{name}: OpenVINO f32 inference ≥ {F32_INFERENCE_TARGET}× Keras-TF",
            f"{f32_ratio:.2f}×",
            f32_ratio >= F32_INFERENCE_TARGET,
        )
    ]
    if "int8_images_per_s" not in bare:
        targets.append(Target(f"{name}: int8 inference", f"failed: {bare['int8_error']}", False))
        return targets
    int8_ratio = bare["int8_images_per_s"] / bare["keras_images_per_s"]
    mean_cosine = bare["int8_mean_cosine_all_frames"]
    targets.append(
        Target(
            f"{name}: int8 inference ≥ {INT8_INFERENCE_TARGET}× Keras-TF at mean cosine ≥ {INT8_MIN_MEAN_COSINE}",
            f"{int8_ratio:.2f}×, mean cosine {mean_cosine:.4f}",
            int8_ratio >= INT8_INFERENCE_TARGET and mean_cosine >= INT8_MIN_MEAN_COSINE,
        )
    )
    return targets


def _embed_rows(extractor: str, rows: dict[str, dict]) -> list[list[str]]:
    keras = rows.get("keras", {})
    keras_rate = embedding_rate(keras.get("summary", "")) if keras.get("exit") == 0 else None
    table_rows = []
    for label, row in rows.items():
        if row["exit"] != 0:
            failure = row["summary"][:MAX_FAILURE_CHARACTERS] + (
                "…" if len(row["summary"]) > MAX_FAILURE_CHARACTERS else ""
            )
            table_rows.append([extractor, label, str(row["exit"]), f"{row['wall_s']:.1f}", failure, "—", "—"])
            continue
        rate = embedding_rate(row["summary"])
        wall_ratio = f"{keras['wall_s'] / row['wall_s']:.2f}×" if keras_rate is not None else "—"
        rate_ratio = f"{rate / keras_rate:.2f}×" if keras_rate and rate else "—"
        rate_text = f"{rate:.2f}" if rate is not None else "—"
        table_rows.append([extractor, label, "0", f"{row['wall_s']:.1f}", rate_text, wall_ratio, rate_ratio])
    return table_rows


def _embed_target(extractor: str, rows: dict[str, dict]) -> Target:
    goal = f"{extractor}: `embed` with OpenVINO f32 ≥ {F32_EMBED_TARGET}× Keras-TF end to end (wall)"
    keras, f32 = rows.get("keras"), rows.get("openvino f32")
    if not keras or not f32 or keras["exit"] != 0 or f32["exit"] != 0:
        return Target(goal, "not measured: an `embed` command failed (see the table)", None)
    ratio = keras["wall_s"] / f32["wall_s"]
    return Target(goal, f"{ratio:.2f}×", ratio >= F32_EMBED_TARGET)


def run_runtimes(workspace: Workspace) -> SectionResult:
    """The suite's section: FULL_MODELS on 12 demo videos (QUICK_MODELS on 3 with --quick), in the run's folder."""
    quick = workspace.sizes is QUICK
    results = measure_runtimes(
        workspace.folder / "runtimes",
        QUICK_MODELS if quick else FULL_MODELS,
        1 if quick else 4,
        workspace.sizes.num_frames,
        _log,
    )
    return runtimes_section(results)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.runtimes", description=__doc__)
    parser.add_argument("--videos-per-class", type=int, default=4)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "featcache-bench-runtimes.json")
    parser.add_argument(
        "--extractors",
        nargs="+",
        default=[f"{name}:{size}" for name, size in FULL_MODELS],
        help="NAME:IMAGE_SIZE each (default: all three)",
    )
    args = parser.parse_args(argv)
    models = tuple((name, int(size)) for name, _, size in (each.rpartition(":") for each in args.extractors))
    work = Path(tempfile.mkdtemp(prefix="featcache-bench-runtimes-"))
    results = measure_runtimes(work, models, args.videos_per_class, args.frames, _log)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
