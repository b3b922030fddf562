"""Zero-shot scores from a cache: each video's embedding against each class's text embedding.

A video's embedding is the mean over its stored frames of the L2-normalized frame embeddings, normalized
again; its score for a class is the cosine with the class's (prompt-ensembled) text embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache, CacheIndex, open_cache
from featcache.errors import ExtractorError
from featcache.text.prompts import ClassTexts, class_text_embeddings, l2_normalize
from featcache.text.tower import TextTower, load_text_tower

# CLIP's logit scale: the learned temperature, clipped at 100 in training (Radford et al. 2021, section 2.5).
# Cosines times it give the softmax "probabilities" reports list; the ranking is the cosines'.
ZERO_SHOT_LOGIT_SCALE = 100.0
# Videos whose frames are read at a time (a video of 10 x 768 float32 frames is 30 kB).
VIDEO_BLOCK_SIZE = 512


def video_embeddings(cache: Path | Cache, rows: np.ndarray) -> np.ndarray:
    """float32 (len(rows), feature_dim), unit rows: per video, the mean of its normalized stored frames, normalized."""
    cache = open_cache(cache)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), cache.index.feature_dim), dtype=np.float32)
    with cache.reader() as reader:
        for start in range(0, len(rows), VIDEO_BLOCK_SIZE):
            block = rows[start : start + VIDEO_BLOCK_SIZE]
            for position, frames in enumerate(reader.read_sequences(block.tolist()), start=start):
                out[position] = l2_normalize(frames).mean(axis=0)
    return l2_normalize(out)


def zero_shot_scores(video_vectors: np.ndarray, class_texts: ClassTexts) -> np.ndarray:
    """float32 (num_videos, num_classes): cosine of each (unit) video embedding with each class's text embedding."""
    return np.asarray(video_vectors @ class_texts.embeddings.T, dtype=np.float32)


def scores_as_probabilities(scores: np.ndarray, logit_scale: float = ZERO_SHOT_LOGIT_SCALE) -> np.ndarray:
    """float32 softmax over classes of logit_scale x cosine (CLIP's zero-shot probabilities)."""
    logits = logit_scale * np.asarray(scores, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def cache_class_texts(
    index: CacheIndex,
    class_names: list[str],
    prompts: list[str] | tuple[str, ...] = (),
    class_texts: dict[str, str] | None = None,
    tower: TextTower | None = None,
) -> tuple[ClassTexts, TextTower]:
    """The class text embeddings for a cache's videos, from the text tower of the preset it was embedded with.

    Raises ExtractorError (one line) for a cache without a text tower or a tower whose width is not the cache's.
    """
    tower = tower or load_text_tower(index.extractor, where=str(index.path))
    check_tower_fits(tower, index)
    return class_text_embeddings(tower, class_names, prompts, class_texts), tower


def check_tower_fits(tower: TextTower, index: CacheIndex) -> None:
    if tower.embedding_dim != index.feature_dim:
        raise ExtractorError(
            f"{index.path}: its features are {index.feature_dim}-d but the text tower of {tower.preset} gives "
            f"{tower.embedding_dim}-d embeddings; zero-shot needs the preset's projected image embeddings "
            "(a cache embedded by featcache's keras_hub extractor)"
        )


def text_query_vector(cache_or_settings: Path | str | Cache | dict[str, Any], text: str) -> np.ndarray:
    """float32 (feature_dim,), unit length: `text` embedded by the text tower of the cache's preset, comparable by
    cosine with `video_embeddings` (for `featcache neighbors --text`).

    cache_or_settings: a cache path, an opened Cache, or a settings record {"extractor": {...}, ...}.
    Raises ExtractorError (one line) when the cache's extractor has no text tower or it cannot be loaded.
    """
    if isinstance(cache_or_settings, dict):
        extractor_record, where = cache_or_settings["extractor"], "the settings record"
        feature_dim = extractor_record.get("feature_dim")
    else:
        index = open_cache(cache_or_settings).index
        extractor_record, where, feature_dim = index.extractor, str(index.path), index.feature_dim
    tower = load_text_tower(extractor_record, where)
    if feature_dim is not None and int(feature_dim) != tower.embedding_dim:
        raise ExtractorError(
            f"{where}: features are {feature_dim}-d but the text tower of {tower.preset} gives "
            f"{tower.embedding_dim}-d embeddings"
        )
    return l2_normalize(tower.embed_texts([text])[0])
