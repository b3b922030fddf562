"""Frozen settings for each stage, saved with each stage's output and rebuilt with `Config(**saved)`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from featcache.errors import InputError

SAMPLING_MODES = ("uniform", "fps")
FEATURE_DTYPES = ("float16", "float32")
COMPRESSIONS = ("none", "gzip", "lzf")


@dataclass(frozen=True)
class SamplingConfig:
    """Which frames of a video are decoded, in temporal order.

    uniform: `num_frames` frames spread evenly over the whole video (first and last frame included).
    fps: one frame every 1/`fps` seconds from the start, at most `num_frames`.
    """

    num_frames: int = 10
    mode: str = "uniform"
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.num_frames}")
        if self.mode not in SAMPLING_MODES:
            raise InputError(f"unknown sampling {self.mode!r}; choose one of {', '.join(SAMPLING_MODES)}")
        if self.mode == "fps" and (self.fps is None or self.fps <= 0):
            raise InputError("--sampling fps needs --fps F with F > 0 (frames per second to take)")
        if self.mode == "uniform" and self.fps is not None:
            raise InputError("--fps only applies to --sampling fps")


@dataclass(frozen=True)
class ExtractorConfig:
    """Which frozen image model turns a frame into a feature vector.

    weights: "imagenet" (Keras downloads it), "random" (explicit, seeded by `seed`) or a file path.
    handle: TF-Hub URL or local SavedModel folder (only for the `tfhub` extractor).
    image_size: the square input size frames are resized to.
    """

    name: str = "mobilenet_v2"
    weights: str = "imagenet"
    handle: str | None = None
    image_size: int = 224
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise InputError(f"--image-size must be at least 8 pixels, got {self.image_size}")


@dataclass(frozen=True)
class EmbedConfig:
    """Everything `featcache embed` needs besides the video list and the output path."""

    extractor: ExtractorConfig = ExtractorConfig()
    sampling: SamplingConfig = SamplingConfig()
    dtype: str = "float16"
    compression: str = "none"
    batch_size: int = 64
    num_decode_workers: int = 0  # 0: one per CPU core

    def __post_init__(self) -> None:
        if self.dtype not in FEATURE_DTYPES:
            raise InputError(f"unknown --dtype {self.dtype!r}; choose one of {', '.join(FEATURE_DTYPES)}")
        if self.compression not in COMPRESSIONS:
            raise InputError(f"unknown --compression {self.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.num_decode_workers < 0:
            raise InputError(f"--workers must be 0 (one per core) or more, got {self.num_decode_workers}")


ConfigT = TypeVar("ConfigT")


def config_from_dict(config_class: type[ConfigT], saved: dict[str, Any]) -> ConfigT:
    """Rebuild a config dataclass from its saved dict; unknown keys are an error, not ignored."""
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise InputError(f"{config_class.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return config_class(**saved)


def config_to_json(config: Any) -> str:
    """A stable JSON text of a config dataclass (sorted keys), for files and attributes."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)
