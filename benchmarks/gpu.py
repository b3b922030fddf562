"""The accelerator benchmark (run by benchmarks/gpu.sh): embed and train on one NVIDIA GPU, without TensorFlow.

Runs under KERAS_BACKEND=jax (default) or torch. Frames cross to the device as uint8 and are scaled inside
the extractor's model (featcache's extractors do that), so host-to-device traffic is 150 KB per 224x224 frame.
Targets (issue 4, one H100/H200 with 16 cores): embed >= 500 UCF-like videos/s (decoding ~186 frames per
video is the limit) and a head epoch on a UCF101-split-1-sized cache (9,537 x 10 x 1280) <= 0.5 s.

Prints each figure as soon as it is measured (a run cut short by its time limit still reports), then a
markdown table; writes gpu_benchmarks.md and gpu_benchmarks.json to --out.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.data import VideoSetParameters, make_ucf_like_videos, ucf101_split1_cache_parameters, write_random_cache
from benchmarks.machine import describe_machine, load_average
from benchmarks.notebook_vs_featcache import head_floor_epoch_seconds, notebook_head, steady_epoch_seconds
from benchmarks.stage_one import bare_inference_frames_per_second, decode_all, embed_pipeline_videos_per_second
from benchmarks.workspace import RANDOM_WEIGHTS_CACHE_DTYPES, benchmark_weights
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.training.train import train
from featcache.video.find import find_videos

EMBED_TARGET_VIDEOS_PER_SECOND = 500.0
EPOCH_TARGET_SECONDS = 0.5
# UCF101's mean clip: 320x240, ~186 frames at 25 fps (UCF101 paper, table 1).
UCF101_FRAMES_PER_VIDEO = 186


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="folder for gpu_benchmarks.md and .json"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "featcache-bench-gpu")
    parser.add_argument("--groups", type=int, default=24, help="video groups; videos = 4 classes x groups x clips")
    parser.add_argument("--clips", type=int, default=16, help="clips per group and class")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per model call when embedding")
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="epochs per head on the UCF101-sized cache (the fastest after the first counts)",
    )
    parser.add_argument(
        "--cache-fraction",
        type=float,
        default=1.0,
        help="shrink the UCF101-sized cache (only to try the script on a CPU)",
    )
    args = parser.parse_args(argv)
    import keras

    figures: dict[str, object] = {
        "machine": describe_machine(),
        "gpu": _gpu_name(),
        "keras_backend": keras.backend.backend(),
    }
    report = _Reporter(figures)
    report.note(f"backend {figures['keras_backend']}, GPU {figures['gpu']}, load {load_average()}")
    if keras.backend.backend() == "tensorflow":
        report.note("KERAS_BACKEND is tensorflow: this benchmark is meant for jax or torch (set KERAS_BACKEND)")
    num_cores = os.cpu_count() or 1

    started = time.perf_counter()
    parameters = VideoSetParameters(4, args.groups, args.clips, UCF101_FRAMES_PER_VIDEO, 320, 240)
    video_root = make_ucf_like_videos(args.work_dir / "videos", parameters)
    _, entries = find_videos(video_root)
    report.figure("videos", len(entries), f"UCF-like videos written in {time.perf_counter() - started:.0f} s")

    config = EmbedConfig(
        extractor=ExtractorConfig(name="mobilenet_v2", weights=benchmark_weights("mobilenet_v2", 224), image_size=224),
        sampling=SamplingConfig(num_frames=10),
        dtype=RANDOM_WEIGHTS_CACHE_DTYPES["mobilenet_v2"],
        batch_size=args.batch_size,
    )
    frames, decode = decode_all(entries, config, 224, num_cores)
    report.figure(
        "decode_videos_per_second",
        decode.videos_per_second,
        f"decode alone, {num_cores} threads ({decode.num_decoded_frames / decode.seconds:,.0f} decoded frames/s)",
    )
    bare_videos = bare_inference_frames_per_second(config, frames) / 10
    del frames
    report.figure(
        "bare_inference_videos_per_second",
        bare_videos,
        f"bare batched MobileNetV2 inference, uint8 frames in memory, batch {args.batch_size}",
    )
    pipeline = embed_pipeline_videos_per_second(entries, config, num_cores)
    report.figure(
        "embed_pipeline_videos_per_second",
        pipeline,
        f"embed pipeline (decode threads overlapping inference), warmed model: {pipeline / bare_videos:.0%} of bare",
    )
    summary = embed(video_root, args.work_dir / "embedded.h5", config, overwrite=True)
    report.figure(
        "embed_call_videos_per_second",
        summary.videos_per_second,
        f"featcache.embed() call incl. first-batch compilation; wall {summary.seconds:.1f} s",
    )

    full_size = ucf101_split1_cache_parameters()
    cache_parameters = replace(
        full_size,
        num_train_videos=round(full_size.num_train_videos * args.cache_fraction),
        num_test_videos=round(full_size.num_test_videos * args.cache_fraction),
    )
    cache_path = write_random_cache(args.work_dir / "ucf101_split1_random.h5", cache_parameters)
    # No validation set: an epoch is one pass over split 1's 9,537 training videos.
    train_config = TrainConfig(epochs=args.epochs, split="ucf101-1", val_fraction=0.0)
    heads = [
        ("default_head", HeadConfig(), train_config.batch_size),
        (
            "default_head_batch_256",
            HeadConfig(),
            256,
        ),  # fewer, larger steps: per-step dispatch dominates small batches on a GPU
        ("notebook_head", notebook_head("mobilenet_v2"), train_config.batch_size),
    ]
    for label, head, batch_size in heads:
        head_train_config = replace(train_config, batch_size=batch_size)
        out_dir = args.work_dir / f"model_{label}"
        shutil.rmtree(out_dir, ignore_errors=True)
        result = train(cache_path, out_dir, head, head_train_config)
        floor = head_floor_epoch_seconds(
            head,
            head_train_config,
            cache_parameters.num_frames,
            cache_parameters.feature_dim,
            cache_parameters.num_classes,
            result.split.num_train,
            result.split.num_val,
        )
        report.figure(
            f"epoch_seconds_{label}",
            steady_epoch_seconds(result.history),
            f"featcache train epoch (fastest after the first), {result.split.num_train:,} training videos, "
            f"{head.head} {head.units} units, "
            f"recurrent_dropout {head.recurrent_dropout}, batch {head_train_config.batch_size}; "
            f"compute floor {floor:.3f} s",
        )
        figures[f"floor_seconds_{label}"] = floor
        figures["num_train_videos"] = result.split.num_train

    figures["tensorflow_imported"] = "tensorflow" in sys.modules
    embed_rate = figures["embed_pipeline_videos_per_second"]
    epoch = figures["epoch_seconds_default_head"]
    epoch_256 = figures["epoch_seconds_default_head_batch_256"]
    tensorflow_imported = figures["tensorflow_imported"]
    embed_met = "yes" if embed_rate >= EMBED_TARGET_VIDEOS_PER_SECOND else "**no**"
    epoch_met = "yes" if epoch <= EPOCH_TARGET_SECONDS else "**no**"
    epoch_256_met = "yes" if epoch_256 <= EPOCH_TARGET_SECONDS else "**no**"
    tensorflow_measured = "imported" if tensorflow_imported else "not imported"
    tensorflow_met = "**no**" if tensorflow_imported else "yes"
    markdown = "\n".join(
        [
            f"# GPU benchmarks ({figures['gpu']}, KERAS_BACKEND={figures['keras_backend']}, {num_cores} cores)",
            "",
            "| figure | value | note |",
            "|---|---|---|",
            *[f"| {name} | {value:,.3f} | {note} |" for name, value, note in report.rows],
            "",
            "| target | measured | met |",
            "|---|---|---|",
            f"| embed ≥ {EMBED_TARGET_VIDEOS_PER_SECOND:.0f} UCF-like videos/s "
            f"| {embed_rate:,.0f} videos/s | {embed_met} |",
            f"| head epoch on {figures['num_train_videos']:,} × 10 × 1280 ≤ {EPOCH_TARGET_SECONDS} s "
            f"(target at 9,537; default head, batch 32) | {epoch:.3f} s | {epoch_met} |",
            f"| the same at batch 256 | {epoch_256:.3f} s | {epoch_256_met} |",
            f"| TensorFlow not imported | {tensorflow_measured} | {tensorflow_met} |",
        ]
    )
    print(markdown, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_benchmarks.md").write_text(markdown + "\n")
    (args.out / "gpu_benchmarks.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 1 if figures["tensorflow_imported"] else 0


class _Reporter:
    """Prints each figure as it comes (flushed), and keeps them for the final table."""

    def __init__(self, figures: dict[str, object]) -> None:
        self.figures = figures
        self.rows: list[tuple[str, float, str]] = []
        self.started = time.perf_counter()

    def note(self, message: str) -> None:
        print(f"[gpu-bench {time.perf_counter() - self.started:6.1f} s] {message}", flush=True)

    def figure(self, name: str, value: float, note: str) -> None:
        self.figures[name] = value
        self.rows.append((name, value, note))
        self.note(f"{name} = {value:,.3f}  ({note})")


def _gpu_name() -> str:
    """The GPU as nvidia-smi names it, or why there is none."""
    try:
        completed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"no nvidia-smi ({err})"
    return completed.stdout.strip() or completed.stderr.strip()


if __name__ == "__main__":
    sys.exit(main())
