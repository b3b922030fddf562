"""`--precision int8`: the OpenVINO f32 extractor quantized by NNCF on frames of the user's own videos, behind a gate.

INT8 features are other features than f32 (issue 20 measured a mean cosine of 0.94 for MobileNetV2 calibrated on
91 frames), so precision is part of the settings record (the extractor record's `precision`, absent = f32) and
a cache never mixes them. Calibration takes every other frame of the run's first sampled frames; the frames in
between are held out: int8 and f32 features are compared on them and the run is refused, in one line with the
measured mean cosine, when it is below the threshold.

When plain int8 is below the gate, a second attempt keeps in float the layers that hurt most (chosen by NNCF's
accuracy control on the calibration frames, nncf_quantization.py) and the gate decides again on the held-out
frames; the better of the two is refused when neither passes. The layers kept in float are part of the int8
model's compile-cache key and of the calibration record, so a later run on the cache rebuilds that same model;
so is the bias correction NNCF applied (a calibration recorded before it was recorded used the fast one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.config import DEFAULT_INT8_MIN_COSINE
from featcache.errors import ExtractorError
from featcache.extractors.nncf_quantization import BIAS_CORRECTIONS, layers_to_keep_in_float, quantize_ir
from featcache.extractors.openvino_runtime import OpenVINOExtractor, cached_ir, compile_ir, feature_agreement

INT8 = "int8"
MIN_CALIBRATION_FRAMES = 8  # calibration + held out: below this the gate's cosine says nothing
# The layers kept in float are chosen to keep 3/4 of the gate's allowed drop on the calibration frames: held-out
# frames, which the choice does not see, land lower, and every layer in float costs speed. MobileNetV2 (calibrated
# random weights) on 128 + 128 demo frames, gate 0.99: the whole drop kept 1 layer in float, 0.9899 held out
# (refused); 3/4: 4 layers, 0.9929; 1/2: 12 layers, 0.9952 but f32's images/s (benchmarks/int8_accuracy.py, with
# NNCF's fast bias correction, the default then).
CALIBRATION_DROP_SHARE = 0.75
# NNCF's full bias correction for a new calibration: it corrects each layer's bias on the calibration frames
# layer by layer, where the fast one corrects from one pass. MobileNetV2 (calibrated random weights, 128 + 128
# demo frames, benchmarks/int8_accuracy.py): held-out mean cosine 0.9878 with the fast one (below the gate: the
# retry then kept 4 layers in float, quantizing for 66 s), 0.9905 with the full one (passes with no layer in
# float, quantized in 14 s); BENCHMARKS.md section 14.
BIAS_CORRECTION = "full"
# What a calibration recorded before featcache recorded the bias correction used.
UNRECORDED_BIAS_CORRECTION = "fast"


@dataclass(frozen=True)
class Int8Calibration:
    """What the int8 model was calibrated on, which layers stayed in float, and how close it came to f32 on the
    held-out frames."""

    video_paths: list[str]
    num_calibration_frames: int
    num_held_out_frames: int
    frames_sha256: str
    mean_cosine: float
    min_cosine: float
    float_layers: list[str]
    bias_correction: str

    def record(self) -> dict[str, Any]:
        """JSON-able, as the settings record's extractor `int8_calibration` stores it."""
        return {
            "videos": list(self.video_paths),
            "num_calibration_frames": self.num_calibration_frames,
            "num_held_out_frames": self.num_held_out_frames,
            "frames_sha256": self.frames_sha256,
            "held_out_mean_cosine": round(self.mean_cosine, 6),
            "held_out_min_cosine": round(self.min_cosine, 6),
            "float_layers": list(self.float_layers),
            "bias_correction": self.bias_correction,
        }


@dataclass(frozen=True)
class _Attempt:
    """One int8 model and its agreement with f32 on the held-out frames."""

    extractor: OpenVINOExtractor
    float_layers: list[str]
    mean_cosine: float
    min_cosine: float


def split_calibration_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held out): every other frame, so both sets come from the same videos."""
    return frames[0::2], frames[1::2]


def int8_compile_key(f32_ir_path: Path, frames_sha256: str, float_layers: list[str], bias_correction: str) -> str:
    """The int8 IR's compile-cache key: the f32 model's, the calibration frames' hash, the layers kept in float and
    the bias correction (none kept and the fast one: the key plain int8 always had)."""
    key = f"{f32_ir_path.parent.name}-int8-{frames_sha256[:24]}"
    if float_layers:
        key += "-float-" + hashlib.sha256(json.dumps(sorted(float_layers)).encode()).hexdigest()[:16]
    return key if bias_correction == UNRECORDED_BIAS_CORRECTION else f"{key}-{bias_correction}-bias"


def quantize_extractor(
    f32_extractor: OpenVINOExtractor,
    frames: np.ndarray,
    video_paths: list[str],
    min_mean_cosine: float = DEFAULT_INT8_MIN_COSINE,
    float_layers: list[str] | None = None,
    bias_correction: str = BIAS_CORRECTION,
) -> tuple[OpenVINOExtractor, Int8Calibration]:
    """The f32 OpenVINO extractor quantized to int8 on half of `frames`, checked on the other half.

    frames: uint8 (num_frames, size, size, 3), the run's first sampled frames (from `video_paths`).
    float_layers: None to choose (plain int8, then the worst layers kept in float if it is below the gate);
    a list (a cache's recorded calibration) to build exactly that model, with its recorded `bias_correction`.
    Raises ExtractorError (one line, with the best attempt's mean cosine) when int8 is below `min_mean_cosine`,
    or the recorded bias correction is one this featcache does not know.
    """
    if bias_correction not in BIAS_CORRECTIONS:
        raise ExtractorError(
            f"the cache's int8 calibration used bias correction {bias_correction!r}, which this featcache does "
            f"not know ({', '.join(BIAS_CORRECTIONS)}); upgrade featcache or re-embed with --overwrite"
        )
    calibration, held_out = split_calibration_frames(frames)
    if len(held_out) < MIN_CALIBRATION_FRAMES // 2:
        raise ExtractorError(
            f"--precision int8 calibrates on the run's frames, and it has only {len(frames)} "
            f"(at least {MIN_CALIBRATION_FRAMES} needed); embed more videos or use --precision f32"
        )
    frames_sha256 = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    reference = f32_extractor.embed_frames(held_out)

    def attempt(layers: list[str]) -> _Attempt:
        ir_path = cached_ir(
            int8_compile_key(f32_extractor.ir_path, frames_sha256, layers, bias_correction),
            lambda: quantize_ir(f32_extractor.ir_path, calibration, layers, bias_correction),
        )
        extractor = compile_ir(ir_path, f32_extractor.image_size, f32_extractor.feature_dim)
        _, min_cosine, mean_cosine = feature_agreement(reference, extractor.embed_frames(held_out))
        return _Attempt(extractor, layers, mean_cosine, min_cosine)

    best = attempt(list(float_layers or []))
    if float_layers is None and best.mean_cosine < min_mean_cosine:
        chosen = layers_to_keep_in_float(
            f32_extractor.ir_path,
            best.extractor.ir_path,
            calibration,
            f32_extractor.embed_frames(calibration),
            max_drop=CALIBRATION_DROP_SHARE * (1.0 - min_mean_cosine),
            bias_correction=bias_correction,
        )
        if chosen:
            best = max(best, attempt(chosen), key=lambda each: each.mean_cosine)
    if best.mean_cosine < min_mean_cosine:
        num_float_layers = len(best.float_layers)
        raise ExtractorError(
            f"int8 features are too far from f32: mean cosine {best.mean_cosine:.6f} on {len(held_out)} held-out "
            f"frames with {num_float_layers} layer{'' if num_float_layers == 1 else 's'} kept in float "
            f"(the gate is {min_mean_cosine:g}); "
            "use --precision f32"
        )
    return best.extractor, Int8Calibration(
        video_paths,
        len(calibration),
        len(held_out),
        frames_sha256,
        best.mean_cosine,
        best.min_cosine,
        best.float_layers,
        bias_correction,
    )
