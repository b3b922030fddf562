"""`--precision int8`: the OpenVINO f32 extractor quantized by NNCF on frames of the user's own videos, behind a gate.

INT8 features are other features than f32 (issue 20 measured a mean cosine of 0.94 for MobileNetV2 calibrated on
91 frames), so precision is part of the settings record (the extractor record's `precision`, absent = f32) and
a cache never mixes them. Calibration takes every other frame of the run's first sampled frames; the frames in
between are held out: int8 and f32 features are compared on them and the run is refused, in one line with the
measured mean cosine, when it is below the threshold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from featcache.config import DEFAULT_INT8_MIN_COSINE
from featcache.errors import ExtractorError
from featcache.extractors.openvino_runtime import OpenVINOExtractor, cached_ir, compile_ir, feature_agreement

INT8 = "int8"
MIN_CALIBRATION_FRAMES = 8  # calibration + held out: below this the gate's cosine says nothing


@dataclass(frozen=True)
class Int8Calibration:
    """What the int8 model was calibrated on and how close it came to f32 on the held-out frames."""

    video_paths: list[str]
    num_calibration_frames: int
    num_held_out_frames: int
    frames_sha256: str
    mean_cosine: float
    min_cosine: float

    def record(self) -> dict[str, Any]:
        """JSON-able, as the settings record's extractor `int8_calibration` stores it."""
        return {
            "videos": list(self.video_paths),
            "num_calibration_frames": self.num_calibration_frames,
            "num_held_out_frames": self.num_held_out_frames,
            "frames_sha256": self.frames_sha256,
            "held_out_mean_cosine": round(self.mean_cosine, 6),
            "held_out_min_cosine": round(self.min_cosine, 6),
        }


def split_calibration_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held out): every other frame, so both sets come from the same videos."""
    return frames[0::2], frames[1::2]


def quantize_extractor(
    f32_extractor: OpenVINOExtractor,
    frames: np.ndarray,
    video_paths: list[str],
    min_mean_cosine: float = DEFAULT_INT8_MIN_COSINE,
) -> tuple[OpenVINOExtractor, Int8Calibration]:
    """The f32 OpenVINO extractor quantized to int8 on half of `frames`, checked on the other half.

    frames: uint8 (num_frames, size, size, 3), the run's first sampled frames (from `video_paths`).
    Raises ExtractorError (one line, with the measured mean cosine) when int8 is below `min_mean_cosine`.
    """
    calibration, held_out = split_calibration_frames(frames)
    if len(held_out) < MIN_CALIBRATION_FRAMES // 2:
        raise ExtractorError(
            f"--precision int8 calibrates on the run's frames, and it has only {len(frames)} "
            f"(at least {MIN_CALIBRATION_FRAMES} needed); embed more videos or use --precision f32"
        )
    frames_sha256 = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
    key = f"{f32_extractor.ir_path.parent.name}-int8-{frames_sha256[:24]}"
    ir_path = cached_ir(key, lambda: _nncf_quantize(f32_extractor, calibration))
    int8_extractor = compile_ir(ir_path, f32_extractor.image_size, f32_extractor.feature_dim)
    _, min_cosine, mean_cosine = feature_agreement(
        f32_extractor.embed_frames(held_out), int8_extractor.embed_frames(held_out)
    )
    if mean_cosine < min_mean_cosine:
        raise ExtractorError(
            f"int8 features are too far from f32: mean cosine {mean_cosine:.4f} on {len(held_out)} held-out frames "
            f"(the gate is {min_mean_cosine:g}); use --precision f32"
        )
    return int8_extractor, Int8Calibration(
        video_paths, len(calibration), len(held_out), frames_sha256, mean_cosine, min_cosine
    )


def _nncf_quantize(f32_extractor: OpenVINOExtractor, calibration: np.ndarray) -> Any:
    """NNCF post-training quantization of the f32 IR, one calibration frame per item."""
    import nncf
    import openvino

    model = openvino.Core().read_model(str(f32_extractor.ir_path))
    dataset = nncf.Dataset([calibration[index : index + 1] for index in range(len(calibration))])
    return nncf.quantize(
        model,
        dataset,
        subset_size=len(calibration),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        target_device=nncf.TargetDevice.CPU,
    )
