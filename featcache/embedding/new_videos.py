"""Embedding videos that are not in a cache exactly as a cache's videos were: `predict` and `neighbors --file`.

The extractor and sampling are rebuilt from a stored settings record (a cache's, or a model folder's copy of its
training cache's), checked against what loading found, and the features rounded through the stored dtype, so a
new video's features are what embedding it into that cache would have written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache.settings import DEFAULT_PRECISION, describe_settings_difference, record_precision, settings_record
from featcache.config import ExtractorConfig, SamplingConfig, config_from_dict
from featcache.embedding.batching import decode_videos, embed_decoded_videos
from featcache.embedding.resources import default_decode_workers
from featcache.errors import ExtractorError, VideoDecodeError
from featcache.extractors.extractor import Extractor
from featcache.extractors.openvino_start import start_extractor
from featcache.video.find import VideoEntry

FRAMES_PER_BATCH = 64  # frames per extractor call, gathered across videos as `embed` does


@dataclass(frozen=True)
class EmbeddingRecipe:
    """How a cache's features were made, loaded: the extractor, its config, the sampling, the dtype rounded through."""

    extractor: Extractor
    extractor_config: ExtractorConfig
    sampling: SamplingConfig
    rounding_dtype: np.dtype


def extractor_config_of(extractor_record: dict[str, Any]) -> ExtractorConfig:
    """The ExtractorConfig stored in an extractor provenance record (only its config fields)."""
    fields = {name: extractor_record[name] for name in ExtractorConfig.__dataclass_fields__ if name in extractor_record}
    return config_from_dict(ExtractorConfig, fields)


def sampling_config_of(sampling_record: dict[str, Any]) -> SamplingConfig:
    """The SamplingConfig stored in a sampling record (only its config fields)."""
    fields = {name: sampling_record[name] for name in SamplingConfig.__dataclass_fields__ if name in sampling_record}
    return config_from_dict(SamplingConfig, fields)


def load_recipe(
    extractor_record: dict[str, Any],
    sampling_record: dict[str, Any],
    feature_dim: int,
    dtype: str | None,
    runtime: str = "auto",
) -> tuple[EmbeddingRecipe, str]:
    """Load the extractor a settings record names, on `runtime` ("auto", "keras", "openvino": the same features);
    also returns '' or how the loaded one differs from the record (weights file changed, another output width) for
    the caller to refuse in its own words.

    Raises ExtractorError when the extractor cannot be built (offline weights missing, unknown name), or when the
    record is of int8 features: an int8 model is quantized on its cache's own frames, which a new video's embedding
    cannot rebuild, and f32 features beside int8 ones would be other numbers.
    """
    precision = record_precision(extractor_record)
    if precision != DEFAULT_PRECISION:
        raise ExtractorError(
            f"the cache holds {precision} features, and a new video is embedded with the f32 extractor only; "
            "use a cache embedded with --precision f32"
        )
    extractor_config = extractor_config_of(extractor_record)
    sampling = sampling_config_of(sampling_record)
    extractor = start_extractor(extractor_config, runtime)
    stored = settings_record({**extractor_record, "feature_dim": feature_dim}, sampling_record, None)
    loaded = settings_record(
        {**extractor_record, **extractor.provenance, "feature_dim": extractor.feature_dim}, sampling_record, None
    )
    recipe = EmbeddingRecipe(extractor, extractor_config, sampling, np.dtype(dtype or "float32"))
    return recipe, describe_settings_difference(stored, loaded)


def embed_new_videos(
    video_paths: list[Path],
    extractor: Extractor,
    extractor_config: ExtractorConfig,
    sampling: SamplingConfig,
    rounding_dtype: np.dtype,
    progress: Callable[[int, int, int], None] | None = None,
    decoder: str = "auto",
) -> Iterator[tuple[int, np.ndarray | VideoDecodeError]]:
    """Decode and embed each video; yields (its position in video_paths, float32 (length, feature_dim) features
    rounded through `rounding_dtype`, or the VideoDecodeError saying why it failed), as videos finish (not in order).

    progress(done, total, failed) is called as each video finishes; decoder: "auto", "seek" or "sequential" (the
    same frames whichever decodes, featcache.video.decode).
    """
    entries = [VideoEntry(path=Path(path), relative_path=str(path), label="", group="") for path in video_paths]
    decoded = decode_videos(entries, sampling, extractor_config.image_size, default_decode_workers(), decoder)
    # Failures come back before the videos still waiting for a full batch: match outcomes by entry.
    position_of = {id(entry): position for position, entry in enumerate(entries)}
    num_done = num_failed = 0
    for entry, _, features in embed_decoded_videos(decoded, extractor, FRAMES_PER_BATCH):
        num_done += 1
        num_failed += isinstance(features, VideoDecodeError)
        if progress is not None:
            progress(num_done, len(entries), num_failed)
        if isinstance(features, VideoDecodeError):
            yield position_of[id(entry)], features
        else:
            yield position_of[id(entry)], features.astype(rounding_dtype).astype(np.float32)
