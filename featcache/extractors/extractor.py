"""What a loaded extractor is (Extractor), without Keras.

Both runtimes hand out an Extractor: Keras's (registry.load_extractor) and OpenVINO's, which may start from its
compile cache without importing Keras at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featcache.extractors.runtimes import KERAS


@dataclass
class Extractor:
    """A loaded, frozen extractor.

    embed_frames: uint8 RGB frames, shape (batch, image_size, image_size, 3) -> float32 (batch, feature_dim).
      Preprocessing (scaling to the model's range) happens inside, on the device.
    provenance: JSON-able dict stored as the cache's `extractor` attribute: every ExtractorConfig field (name,
      weights as given, handle, image_size, seed), then weights_sha256 (None for random), preprocessing (text),
      feature_dim, keras_version, backend.
    runtime: what runs the model, "keras" or "openvino" (featcache.extractors.runtimes): not part of the
      provenance, since both give the same features; each shard records its own.
    runtime_note: with --runtime auto, why it runs on Keras ('' when it did not fall back).
    openvino_model: on OpenVINO, the compiled model (openvino_runtime.OpenVINOExtractor), else None.
    """

    name: str
    image_size: int
    feature_dim: int
    embed_frames: Callable[[np.ndarray], np.ndarray]
    provenance: dict[str, Any] = field(default_factory=dict)
    runtime: str = KERAS
    runtime_note: str = ""
    openvino_model: Any = None
