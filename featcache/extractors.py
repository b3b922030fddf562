"""Frozen image models that turn frames into feature vectors: a registry of named extractors.

STUB: interface fixed, body to be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from featcache.config import ExtractorConfig


@dataclass
class Extractor:
    """A loaded, frozen extractor.

    embed_frames: uint8 RGB frames, shape (batch, image_size, image_size, 3) -> float32 (batch, feature_dim).
      Preprocessing (scaling to the model's range) happens inside, on the device.
    provenance: JSON-able dict stored as the cache's `extractor` attribute: name, weights (source as given),
      weights_sha256 (None for random), handle, image_size, preprocessing (text), feature_dim, seed.
    """

    name: str
    image_size: int
    feature_dim: int
    embed_frames: Callable[[np.ndarray], np.ndarray]
    provenance: dict[str, Any] = field(default_factory=dict)


def available_extractors() -> dict[str, str]:
    """Registry names -> one-line description with the output dim at 224x224."""
    raise NotImplementedError


def load_extractor(config: ExtractorConfig) -> Extractor:
    """Build the extractor; raises ExtractorError (one line, says what to do) when it cannot."""
    raise NotImplementedError
