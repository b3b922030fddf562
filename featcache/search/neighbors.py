"""Nearest videos of a cache by cosine similarity of their pooled vectors: exact top-k in numpy, block by block.

    nearest(vectors, query, k)               -> [(row, similarity), ...] best first, for vectors in memory
    search_cache(cache, query_vector, k)     -> [Neighbor, ...], the cache's vectors streamed block by block
    find_neighbors(cache, video=... | file=... | query_vector=..., k=10) -> NeighborsResult (`featcache neighbors`)

Exact search: on a cache of N videos a query costs one (N x D) matrix-vector product, read in blocks; no index to
build or keep in step with the cache. (An approximate index such as faiss pays only when many queries hit one
large cache; BENCHMARKS.md section 11, "Exact search in numpy vs faiss", has the measurement.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featcache.cache import Cache, open_cache
from featcache.cache.reader import CachePath
from featcache.errors import CacheMismatchError, InputError
from featcache.search.pooled import iter_pooled_blocks, normalize_rows, pool_sequences, pooled_features

DEFAULT_K = 10
# Vectors compared per matrix product in `nearest`: bounds the (block,) similarity buffer, not the result.
SIMILARITY_BLOCK = 65536


def nearest(
    vectors: np.ndarray, query: np.ndarray, k: int = DEFAULT_K, exclude: Sequence[int] = ()
) -> list[tuple[int, float]]:
    """The k rows of `vectors` most cosine-similar to `query`, best first (ties: lower row first).

    vectors: float (n, D), unit L2 norm (as pooled_features gives them); query: float (D,), any norm (normalized
    here); exclude: rows never returned (the query's own row). Returns [(row, similarity float)], at most k.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    blocks = (
        (np.arange(start, min(start + SIMILARITY_BLOCK, len(vectors))), vectors[start : start + SIMILARITY_BLOCK])
        for start in range(0, len(vectors), SIMILARITY_BLOCK)
    )
    return nearest_in_blocks(blocks, query, k, exclude)


def nearest_in_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], query: np.ndarray, k: int = DEFAULT_K, exclude: Sequence[int] = ()
) -> list[tuple[int, float]]:
    """`nearest` over vectors that come in blocks of (row ids int (b,), unit vectors float (b, D)): only the best k
    so far are kept between blocks, so the vectors never need to be in memory together."""
    if k < 1:
        raise InputError(f"--k / k must be at least 1, got {k}")
    query = normalize_rows(np.asarray(query, dtype=np.float32).reshape(1, -1))[0]
    excluded = np.asarray(list(exclude), dtype=np.int64)
    best_rows = np.zeros(0, dtype=np.int64)
    best_similarities = np.zeros(0, dtype=np.float32)
    for rows, vectors in blocks:
        rows = np.asarray(rows, dtype=np.int64)
        if vectors.shape[-1] != query.shape[0]:
            raise InputError(f"the query has {query.shape[0]} dimensions, the vectors {vectors.shape[-1]}")
        similarities = np.asarray(vectors, dtype=np.float32) @ query
        keep = ~np.isin(rows, excluded)
        best_rows = np.concatenate([best_rows, rows[keep]])
        best_similarities = np.concatenate([best_similarities, similarities[keep]])
        if len(best_rows) > k:
            # Sort by similarity (descending), then row, and keep the first k: deterministic under ties.
            order = np.lexsort((best_rows, -best_similarities))[:k]
            best_rows, best_similarities = best_rows[order], best_similarities[order]
    order = np.lexsort((best_rows, -best_similarities))[:k]
    return [(int(row), float(similarity)) for row, similarity in zip(best_rows[order], best_similarities[order])]


@dataclass(frozen=True)
class Neighbor:
    """One video found: its rank (1 = nearest), cache row and path, class, cosine similarity, and whether its
    contents (fingerprint) are the query's: an exact copy."""

    rank: int
    row: int
    path: str
    label: str
    similarity: float
    same_contents: bool = False


@dataclass(frozen=True)
class NeighborsResult:
    """What `featcache neighbors` prints: the cache, how the query was given, k, and the neighbours best first."""

    cache: str
    query: str
    k: int
    neighbors: list[Neighbor] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def search_cache(
    cache: CachePath | Cache,
    query_vector: np.ndarray,
    k: int = DEFAULT_K,
    exclude_rows: Sequence[int] = (),
    query_fingerprint: str = "",
    normalize_frames: bool = False,
) -> list[Neighbor]:
    """The k videos of the cache whose pooled vectors are most cosine-similar to `query_vector` (float (D,), any
    norm), best first; the cache's features are read and pooled block by block, never all at once.

    exclude_rows: cache rows never returned; query_fingerprint: marks neighbours with these contents as copies;
    normalize_frames: pool L2-normalized frames (match how query_vector was made, e.g. a CLIP text query).
    """
    opened = open_cache(cache)
    index = opened.index
    if np.asarray(query_vector).shape != (index.feature_dim,):
        raise InputError(
            f"the query vector has shape {np.asarray(query_vector).shape}, "
            f"the cache's features have {index.feature_dim} dimensions"
        )
    found = nearest_in_blocks(
        iter_pooled_blocks(opened, normalize_frames=normalize_frames), query_vector, k, exclude_rows
    )
    fingerprints = index.fingerprints or [""] * index.num_videos
    return [
        Neighbor(
            rank=rank,
            row=row,
            path=index.paths[row],
            label=index.class_names[index.labels[row]],
            similarity=similarity,
            same_contents=bool(query_fingerprint) and fingerprints[row] == query_fingerprint,
        )
        for rank, (row, similarity) in enumerate(found, start=1)
    ]


def row_of_path(cache: CachePath | Cache, path_in_cache: str) -> int:
    """The cache row of a video by its cache path (as `featcache ls` lists it); InputError naming a near one."""
    index = open_cache(cache).index
    wanted = path_in_cache.strip().replace("\\", "/").removeprefix("./")
    for row, path in enumerate(index.paths):
        if path == wanted:
            return row
    for row, path in enumerate(index.paths):
        if path.lower() == wanted.lower():
            return row
    example = index.paths[0] if index.paths else "(the cache is empty)"
    raise InputError(
        f"--video / video {path_in_cache!r} is not a video of {index.path} (its paths look like {example!r}); "
        "pass the path as `featcache ls` lists it, or --file for a video outside the cache"
    )


def embed_file_like_cache(
    cache: CachePath | Cache, video_path: Path, runtime: str = "auto", decoder: str = "auto"
) -> np.ndarray:
    """A new video's features, float32 (length, D), made as the cache's were (its stored extractor, weights,
    sampling and dtype; the path `predict` embeds by). runtime and decoder: as `predict`'s (the same features
    whichever runs).

    Raises InputError for a missing file, VideoDecodeError when it cannot be decoded, ExtractorError when the
    stored extractor cannot be built, CacheMismatchError when its weights changed since the cache was made.
    """
    from featcache.embedding.new_videos import embed_new_videos, load_recipe

    opened = open_cache(cache)
    index = opened.index
    video_path = Path(video_path)
    if not video_path.is_file():
        raise InputError(f"--file / file {video_path}: no such video file")
    recipe, difference = load_recipe(index.extractor, index.sampling, index.feature_dim, index.dtype, runtime)
    if difference:
        raise CacheMismatchError(
            f"the extractor built from {index.path}'s settings differs from the one that embedded it "
            f"(cache vs now: {difference}); restore the original weights file or re-embed the cache"
        )
    for _, features in embed_new_videos(
        [video_path], recipe.extractor, recipe.extractor_config, recipe.sampling, recipe.rounding_dtype, decoder=decoder
    ):
        if isinstance(features, Exception):
            raise features
        return features
    raise AssertionError("embed_new_videos yields one outcome per video")


def file_query_vector(
    cache: CachePath | Cache,
    video_path: Path,
    normalize_frames: bool = False,
    runtime: str = "auto",
    decoder: str = "auto",
) -> np.ndarray:
    """float32 (D,): the pooled, L2-normalized vector of a new video embedded as the cache's videos were.

    The frames pooled are those a cached video of this length would contribute (the cache's T, uniform over more).
    """
    from featcache.cache.reader import uniform_positions

    index = open_cache(cache).index
    features = embed_file_like_cache(cache, video_path, runtime, decoder)
    features = features[uniform_positions(len(features), index.num_frames)]
    return pool_sequences(features[None], np.array([len(features)]), normalize_frames)[0]


def find_neighbors(
    cache: CachePath | Cache,
    video: str | None = None,
    file: Path | None = None,
    query_vector: np.ndarray | None = None,
    query_description: str = "a query vector",
    k: int = DEFAULT_K,
    normalize_frames: bool = False,
    text: str | None = None,
    runtime: str = "auto",
    decoder: str = "auto",
) -> NeighborsResult:
    """The k nearest videos of a cache to exactly one query: `video` (a cache path: that video, itself left out),
    `file` (a new video, embedded as the cache was) or `query_vector` (float (D,) in the cache's feature space,
    e.g. a text embedding; `query_description` names it in the result) or `text` (embedded by the text tower of the
    cache's CLIP-like preset; compared with frame-normalized pooled vectors, as `featcache zeroshot` scores videos).

    runtime, decoder: what embeds and decodes a `file` query (embed_file_like_cache).
    Raises InputError for no query or several, an unknown cache path or a bad k; see embed_file_like_cache for --file.
    """
    given = [
        name
        for name, value in (("--video", video), ("--file", file), ("--text", text), ("a query vector", query_vector))
        if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            "give exactly one query: --video PATH_IN_CACHE, --file NEW_VIDEO or --text TEXT; "
            f"got {', '.join(given) or 'none'}"
        )
    if k < 1:
        raise InputError(f"--k / k must be at least 1, got {k}")
    opened = open_cache(cache)
    index = opened.index
    if index.num_videos == 0:
        raise InputError(f"{index.path} holds no videos; nothing to search")
    exclude: list[int] = []
    fingerprint = ""
    if video is not None:
        row = row_of_path(opened, video)
        exclude = [row]
        fingerprint = (index.fingerprints or [""] * index.num_videos)[row]
        query_vector = pooled_features(opened, [row], normalize_frames).vectors[0]
        query_description = f"video {index.paths[row]}"
    elif file is not None:
        query_vector = file_query_vector(opened, Path(file), normalize_frames, runtime, decoder)
        query_description = f"file {file}"
        from featcache.video.fingerprints import fingerprint_file

        fingerprint = fingerprint_file(Path(file)).fingerprint
    elif text is not None:
        from featcache.text.zeroshot import text_query_vector

        query_vector = text_query_vector(opened, text)
        query_description = f"text {text!r}"
        normalize_frames = True  # the text tower's space holds each frame's unit embedding, as zero-shot scores them
    neighbors = search_cache(opened, query_vector, k, exclude, fingerprint, normalize_frames)
    return NeighborsResult(cache=str(index.path), query=query_description, k=k, neighbors=neighbors)


def format_neighbors(result: NeighborsResult) -> str:
    """A table for a terminal: rank, similarity, class, path (copies marked)."""
    lines = [f"Nearest {len(result.neighbors)} of {result.cache} to {result.query} (cosine of mean-pooled features):"]
    for neighbor in result.neighbors:
        copy = "  (same contents)" if neighbor.same_contents else ""
        lines.append(f"{neighbor.rank:>4}  {neighbor.similarity:7.4f}  {neighbor.label:<20} {neighbor.path}{copy}")
    return "\n".join(lines)
