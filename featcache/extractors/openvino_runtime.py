"""The OpenVINO side of `--runtime openvino` (and `auto` on a CPU): the compile cache and the compiled model.

A built Keras extractor is converted once (openvino_conversion.py) and saved as OpenVINO IR into a small compile
cache (`compile_cache_folder`, one folder per compile key), then compiled for the CPU with the throughput hint and
f32 inference precision: OpenVINO's default precision on CPUs with bf16 support gives other features (issue 20
measured a min cosine of 0.998). Each batch is split over the compiled model's infer requests (an
AsyncInferQueue), which run in parallel with the GIL released, so the decode threads keep feeding frames meanwhile.

Right after compiling, a probe batch runs through OpenVINO and is compared with Keras's features of it
(`check_same_features`): a conversion that does not give the Keras features is refused, never used. This module
imports no Keras.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.errors import ExtractorError
from featcache.extractors.frame_batches import check_frames
from featcache.extractors.weights import error_summary
from featcache.files import write_atomically, write_folder_atomically

CACHE_DIR_VARIABLE = "FEATCACHE_CACHE_DIR"
IR_FILE = "model.xml"  # its weights are model.bin beside it
# Keras's features of the probe frames, saved beside the IR when it is converted: every later start checks
# OpenVINO against them without running Keras, whose first call (tracing the graph) costs about a second.
KERAS_PROBE_FEATURES_FILE = "keras_probe_features.npy"
# What "the same features" means (issue 20): within float16 storage precision of the Keras features.
MAX_ABS_DIFF_PER_SCALE = 1e-3
MIN_COSINE = 0.99999
PROBE_FRAMES = 4  # frames of seeded noise the conversion is checked on before use
OUTPUT_NAME = "features"
# The compiled model's settings: f32 so its features are the Keras ones; throughput so requests run in parallel.
COMPILE_PROPERTIES = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}


def openvino_version() -> str | None:
    """The installed OpenVINO's version, None when `featcache[openvino]` is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__


def compile_cache_folder() -> Path:
    """Where converted models are kept: $FEATCACHE_CACHE_DIR/openvino,
    else $XDG_CACHE_HOME (default ~/.cache)/featcache/openvino."""
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE]).expanduser() / "openvino"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "featcache" / "openvino"


def cached_ir(key: str, convert: Callable[[], Any]) -> Path:
    """The IR file of `key` in the compile cache, converted by `convert()` and saved (atomically) when absent."""
    import openvino

    folder = compile_cache_folder() / key
    if not (folder / IR_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        model = convert()
        # compress_to_fp16=False: the default stores weights as float16, which are not the Keras weights.
        write_folder_atomically(
            folder,
            lambda temporary: (
                temporary.mkdir(),
                openvino.save_model(model, str(temporary / IR_FILE), compress_to_fp16=False),
            ),
        )
    return folder / IR_FILE


@dataclass
class OpenVINOExtractor:
    """A compiled OpenVINO model with the extractor's embed_frames contract.

    embed_frames: uint8 (batch, image_size, image_size, 3) -> float32 (batch, feature_dim).
    """

    compiled: Any
    image_size: int
    feature_dim: int
    ir_path: Path  # the IR it was compiled from, in the compile cache (int8 quantizes that file)

    def __post_init__(self) -> None:
        import openvino

        self.queue = openvino.AsyncInferQueue(self.compiled)
        self.num_requests = len(self.queue)

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        check_frames(frames, self.image_size)
        features = np.empty((len(frames), self.feature_dim), dtype=np.float32)
        if len(frames) == 0:
            return features
        # One slice per infer request: they run in parallel on the CPU's streams, each writes its own rows.
        bounds = np.linspace(0, len(frames), min(self.num_requests, len(frames)) + 1).astype(int)

        def keep_rows(request: Any, rows: slice) -> None:
            features[rows] = request.get_output_tensor(0).data

        self.queue.set_callback(keep_rows)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            self.queue.start_async({0: np.ascontiguousarray(frames[start:stop])}, slice(start, stop))
        self.queue.wait_all()
        return features


def compile_ir(ir_path: Path, image_size: int, feature_dim: int) -> OpenVINOExtractor:
    """The IR compiled for this machine's CPU with COMPILE_PROPERTIES; ExtractorError (delete and run again) when
    the compile cache's files cannot be compiled (a truncated model.bin, a missing file)."""
    import openvino

    try:
        compiled = openvino.Core().compile_model(str(ir_path), "CPU", COMPILE_PROPERTIES)
    # OpenVINO raises RuntimeError (its own subclasses too) for any model it cannot read or compile.
    except RuntimeError as err:
        raise ExtractorError(
            f"OpenVINO cannot compile {ir_path} ({error_summary(err)}): delete {Path(ir_path).parent} and run again"
        ) from err
    return OpenVINOExtractor(compiled, image_size, feature_dim, Path(ir_path))


def feature_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float, float]:
    """(max abs difference / feature scale, min cosine, mean cosine) of two (num_frames, feature_dim) arrays.

    Feature scale: the reference's largest absolute value. A frame whose two vectors are both zero counts as
    cosine 1.
    """
    reference, candidate = reference.astype(np.float64), candidate.astype(np.float64)
    scale = float(np.abs(reference).max()) or 1.0
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    both_zero = (np.linalg.norm(reference, axis=1) == 0) & (np.linalg.norm(candidate, axis=1) == 0)
    cosines = np.where(both_zero, 1.0, (reference * candidate).sum(axis=1) / np.where(norms > 0, norms, 1.0))
    return float(np.abs(reference - candidate).max() / scale), float(cosines.min()), float(cosines.mean())


def probe_frames(image_size: int, num_frames: int = PROBE_FRAMES) -> np.ndarray:
    """Seeded noise frames, uint8 (num_frames, image_size, image_size, 3): the same on every run."""
    return np.random.default_rng(0).integers(0, 256, (num_frames, image_size, image_size, 3), dtype=np.uint8)


def keras_probe_features(ir_path: Path, keras_embed: Callable[[np.ndarray], np.ndarray], image_size: int) -> np.ndarray:
    """Keras's features of the probe frames, float32 (PROBE_FRAMES, feature_dim): saved beside the IR (computed and
    saved when absent, as for a compile cache written before they were), so Keras runs once per conversion."""
    path = Path(ir_path).parent / KERAS_PROBE_FEATURES_FILE
    if not path.is_file():
        features = np.asarray(keras_embed(probe_frames(image_size)), dtype=np.float32)
        write_atomically(path, lambda temporary: np.save(temporary, features), temporary_suffix=".npy")
        return features
    return stored_probe_features(ir_path)


def stored_probe_features(ir_path: Path) -> np.ndarray:
    """The Keras probe features saved beside the IR; ExtractorError (delete and run again) when unreadable."""
    path = Path(ir_path).parent / KERAS_PROBE_FEATURES_FILE
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ExtractorError(
            f"the compile cache's {path} cannot be read ({err}): delete {path.parent} and run again"
        ) from err


def check_same_features(name: str, reference: np.ndarray, candidate: OpenVINOExtractor) -> None:
    """Raise ExtractorError unless OpenVINO gives `reference`, Keras's features of the probe frames
    (within MAX_ABS_DIFF_PER_SCALE and MIN_COSINE)."""
    frames = probe_frames(candidate.image_size)
    if reference.shape != (len(frames), candidate.feature_dim):
        raise ExtractorError(
            f"the compile cache's {KERAS_PROBE_FEATURES_FILE} for {name} has shape {reference.shape}, not "
            f"{(len(frames), candidate.feature_dim)}: delete {Path(candidate.ir_path).parent} and run again"
        )
    relative_difference, min_cosine, _ = feature_agreement(reference, candidate.embed_frames(frames))
    if relative_difference > MAX_ABS_DIFF_PER_SCALE or min_cosine < MIN_COSINE:
        raise ExtractorError(
            f"OpenVINO does not give {name}'s Keras features (max abs difference {relative_difference:.2g} of the "
            f"feature scale, min cosine {min_cosine:.6f}); use --runtime keras"
        )
