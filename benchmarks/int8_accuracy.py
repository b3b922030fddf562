"""`python3 -m benchmarks.int8_accuracy`: what `--precision int8` costs, against OpenVINO f32, in one run.

Per extractor, on the demo videos (`featcache demo-data`, 3 classes, 8 groups):
- bare inference on every sampled frame of the first videos: images/s of f32, of plain int8 (no gate) and of
  the int8 model the default gate accepts (plain int8, or the layers that hurt most kept in float), with their
  mean / min cosine to f32 on the held-out frames and on all the frames;
- head accuracy: the demo videos embedded with f32 and with `--precision int8` (default gate), the default
  head trained on each cache with the same settings, split and seeds, test accuracy on the held-out videos.
ImageNet weights cannot be downloaded here: mobilenet_v2 uses benchmarks/calibrated_weights.py (random, features
with no class information: heads at chance) or, with `--mobilenet-weights trained`, benchmarks/trained_weights.py
(trained to locate a disc on synthetic images, so a head can classify the demo videos by them); scratch_cnn random
weights. The accuracies are the demo task's, not ImageNet features'.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import featcache  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before Keras imports TensorFlow)
from benchmarks.calibrated_weights import calibrated_mobilenet_v2_weights
from benchmarks.runtimes import best_rate, decoded_frames
from benchmarks.trained_weights import trained_mobilenet_v2_weights
from featcache.config import DEFAULT_INT8_MIN_COSINE, EmbedConfig, ExtractorConfig, SamplingConfig, TrainConfig
from featcache.errors import ExtractorError

NUM_FRAMES = 12
DEFAULT_SEEDS = [0, 1, 2]  # split and head weights


def bare_inference(config: ExtractorConfig, video_root: Path, num_frames: int) -> dict:
    """Images/s and cosines to f32 of plain int8 and of the int8 model the default gate accepts."""
    from featcache.extractors.openvino_int8 import quantize_extractor, split_calibration_frames
    from featcache.extractors.openvino_runtime import feature_agreement
    from featcache.extractors.registry import load_extractor

    frames, paths = decoded_frames(video_root, config.image_size, num_frames)
    frames = frames[: 2 * 128]  # as `embed --precision int8` with the default --calibration-frames
    f32 = load_extractor(config, "openvino").openvino_model
    reference = f32.embed_frames(frames)
    row = {"frames": len(frames), "f32_images_per_s": best_rate(f32.embed_frames, frames)}
    for label, gate in [("plain_int8", -1.0), ("gated_int8", DEFAULT_INT8_MIN_COSINE)]:
        started = time.perf_counter()
        try:
            model, record = quantize_extractor(f32, frames, paths, gate)
        except ExtractorError as err:
            row[label] = {"refused": str(err)}
            continue
        _, min_cosine, mean_cosine = feature_agreement(reference, model.embed_frames(frames))
        row[label] = {
            "quantize_s": time.perf_counter() - started,
            "images_per_s": best_rate(model.embed_frames, frames),
            "held_out_mean_cosine": record.mean_cosine,
            "held_out_min_cosine": record.min_cosine,
            "all_frames_mean_cosine": mean_cosine,
            "all_frames_min_cosine": min_cosine,
            "float_layers": record.float_layers,
            "num_held_out_frames": len(split_calibration_frames(frames)[1]),
        }
    return row


def head_accuracies(config: ExtractorConfig, video_root: Path, work: Path, epochs: int, seeds: list[int]) -> dict:
    """Test accuracy of the default head on the f32 and the int8 cache of the demo videos, per seed."""
    from featcache.cache import read_cache_index
    from featcache.config import HeadConfig
    from featcache.embedding.embed import embed
    from featcache.training.compare import compare_heads

    row = {}
    for precision in ["f32", "int8"]:
        cache_path = work / f"{config.name.replace(':', '_')}-{precision}.h5"
        embed_config = EmbedConfig(
            extractor=config, sampling=SamplingConfig(num_frames=NUM_FRAMES), runtime="openvino", precision=precision
        )
        try:
            embed(video_root, cache_path, embed_config, overwrite=True)
        except ExtractorError as err:
            row[precision] = {"refused": str(err)}
            continue
        accuracies = [
            compare_heads(cache_path, [HeadConfig().head], None, TrainConfig(epochs=epochs, seed=seed))[0].test_accuracy
            for seed in seeds
        ]
        calibration = read_cache_index(cache_path).extractor.get("int8_calibration")
        row[precision] = {"test_accuracy_per_seed": accuracies, "mean_test_accuracy": float(np.mean(accuracies))}
        if calibration:
            row[precision]["int8_calibration"] = {key: calibration[key] for key in calibration if key != "videos"}
    return row


def mobilenet_v2_weights(kind: str, image_size: int) -> str:
    """The weights file of `kind` ("calibrated" or "trained") for mobilenet_v2 at `image_size`."""
    if kind == "trained":
        return str(trained_mobilenet_v2_weights(image_size))
    return str(calibrated_mobilenet_v2_weights(image_size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.int8_accuracy", description=__doc__)
    parser.add_argument("--extractors", nargs="+", default=["scratch_cnn:112", "mobilenet_v2:224"])
    parser.add_argument("--videos-per-class", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULT_SEEDS)
    parser.add_argument("--mobilenet-weights", choices=["calibrated", "trained"], default="calibrated")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "featcache-int8-accuracy.json")
    args = parser.parse_args(argv)
    from featcache.extractors.keras_loader import import_keras_quietly
    from featcache.video.demo_data import make_demo_data

    work = Path(tempfile.mkdtemp(prefix="featcache-int8-accuracy-"))
    os.environ.setdefault("FEATCACHE_CACHE_DIR", str(work / "compile-cache"))
    video_root = make_demo_data(work / "videos", videos_per_class=args.videos_per_class, num_groups=8)
    import_keras_quietly()
    results = {
        "videos": 3 * args.videos_per_class,
        "frames_per_video": NUM_FRAMES,
        "seeds": args.seeds,
        "mobilenet_weights": args.mobilenet_weights,
    }
    for spec in args.extractors:
        name, size = spec.rsplit(":", 1)
        weights = mobilenet_v2_weights(args.mobilenet_weights, int(size)) if name == "mobilenet_v2" else "random"
        config = ExtractorConfig(name=name, weights=weights, image_size=int(size))
        print(f"[int8] {spec}", file=sys.stderr, flush=True)
        results[spec] = {
            "bare": bare_inference(config, video_root, NUM_FRAMES),
            "heads": head_accuracies(config, video_root, work, args.epochs, args.seeds),
        }
        args.out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
