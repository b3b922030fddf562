"""Near-duplicate leakage across a split: test videos whose pooled vectors are nearly those of a train/val video.

A byte-identical copy is caught by its fingerprint; a re-encoded, resized or cropped copy, or a clip of the same
actor and background (UCF101's groups), is not, yet it inflates the test accuracy as much. The audit compares
videos by the cosine similarity of their mean-pooled features after centering: the mean vector of the audited
videos is subtracted before L2 normalization (SimpleShot's "CL2N", Wang et al. 2019). Centering is measured to
matter: CNN features after a ReLU share a large positive component, so the plain cosine of any two videos sat at
0.88-0.998 and no threshold told copies from other videos (BENCHMARKS.md, "Near-duplicate threshold"). Pairs at or
above `threshold` are reported, exact copies (same fingerprint) first, then the most similar. DEFAULT_THRESHOLD
comes from that measurement, not a guess.

The pooled vectors of the split's videos are held in memory, (num_videos, feature_dim) float32; the test side
is compared with the train/val side a block at a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from featcache.cache import Cache, open_cache
from featcache.cache.reader import CachePath
from featcache.errors import InputError
from featcache.search.pooled import normalize_rows, pooled_features

# Measured (BENCHMARKS.md "Near-duplicate threshold", `python3 -m benchmarks.near_duplicates`, scratch_cnn features):
# every re-encoded (>= 0.990) and resized (>= 0.973) copy of a video sat above it, and no pair of different videos
# (<= 0.945, two clips on one background); 80 % crops (0.84-0.95) mostly fall below it.
DEFAULT_THRESHOLD = 0.95
# Pairs listed per test video (the nearest ones); the summary counts every test video with at least one.
MAX_PAIRS_PER_TEST_VIDEO = 5
TEST_BLOCK = 1024  # test videos compared per matrix product: a (TEST_BLOCK, num_seen) similarity block
SEEN_SUBSETS = ("train", "val")


@dataclass(frozen=True)
class DuplicatePair:
    """A test video and a train/val video that look alike: their paths, the seen one's subset, the cosine
    similarity of their pooled vectors, and whether their files are byte-identical (same fingerprint)."""

    test_path: str
    seen_path: str
    seen_subset: str
    similarity: float
    same_contents: bool


@dataclass(frozen=True)
class AuditReport:
    """The audit of one split: every pair found (exact copies first, then by similarity), and the counts."""

    cache: str
    split_description: str
    threshold: float
    num_seen: int
    num_test: int
    num_test_with_duplicate: int
    num_exact_copies: int
    pairs: list[DuplicatePair] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """'37 of 240 test videos have a near-duplicate in training (5 exact copies)'."""
        copies = f" ({self.num_exact_copies} exact cop{'y' if self.num_exact_copies == 1 else 'ies'})"
        return (
            f"{self.num_test_with_duplicate} of {self.num_test} test videos have a near-duplicate in training "
            f"(cosine >= {self.threshold:g}){copies if self.num_exact_copies else ''}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def check_threshold(threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise InputError(f"--threshold / threshold is a cosine similarity in [-1, 1], got {threshold}")


def centered_vectors(vectors: np.ndarray) -> np.ndarray:
    """float32 (n, D): unit vectors minus their mean, normalized again (CL2N); what the audit's cosine compares."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        return vectors
    return normalize_rows(vectors - vectors.mean(axis=0, keepdims=True))


def audit_vectors(
    paths: Sequence[str],
    vectors: np.ndarray,
    subsets: Sequence[str],
    fingerprints: Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    cache: str = "",
    split_description: str = "",
) -> AuditReport:
    """The audit of videos already pooled: vectors float32 (n, D) unit norm, subsets[i] "train" | "val" | "test"
    (anything else: not in the split, ignored), fingerprints[i] the contents ("" unknown). The vectors of the split's
    videos are centered on their mean and normalized again (`centered_vectors`) before they are compared."""
    check_threshold(threshold)
    subsets = np.asarray(list(subsets), dtype=object)
    in_split = np.isin(subsets, (*SEEN_SUBSETS, "test"))
    vectors = np.asarray(vectors, dtype=np.float32).copy()
    vectors[in_split] = centered_vectors(vectors[in_split])
    fingerprints = list(fingerprints) if fingerprints else [""] * len(paths)
    seen_rows = np.flatnonzero(np.isin(subsets, SEEN_SUBSETS))
    test_rows = np.flatnonzero(subsets == "test")
    seen_vectors = np.asarray(vectors, dtype=np.float32)[seen_rows]
    seen_of_fingerprint: dict[str, int] = {}
    for row in seen_rows:
        if fingerprints[row]:
            seen_of_fingerprint.setdefault(fingerprints[row], int(row))
    pairs: list[DuplicatePair] = []
    tests_with_duplicate = set()
    num_exact = 0
    for start in range(0, len(test_rows), TEST_BLOCK):
        block = test_rows[start : start + TEST_BLOCK]
        similarities = vectors[block] @ seen_vectors.T  # (b, num_seen)
        for test_row, row_similarities in zip(block, similarities):
            copy_row = seen_of_fingerprint.get(fingerprints[test_row]) if fingerprints[test_row] else None
            near = np.flatnonzero(row_similarities >= threshold)
            near = near[np.argsort(-row_similarities[near], kind="stable")][:MAX_PAIRS_PER_TEST_VIDEO]
            found = [int(seen_rows[position]) for position in near]
            similarity_of = {int(seen_rows[position]): float(row_similarities[position]) for position in near}
            if copy_row is not None:
                num_exact += 1
                if copy_row not in similarity_of:
                    # An exact copy is a leak whatever its features say (a decoder's nondeterminism can move them).
                    similarity_of[copy_row] = float(row_similarities[np.searchsorted(seen_rows, copy_row)])
                    found = [copy_row, *found][:MAX_PAIRS_PER_TEST_VIDEO]
            if found:
                tests_with_duplicate.add(int(test_row))
            pairs += [
                DuplicatePair(
                    test_path=paths[test_row],
                    seen_path=paths[seen_row],
                    seen_subset=str(subsets[seen_row]),
                    similarity=similarity_of[seen_row],
                    same_contents=bool(fingerprints[test_row]) and fingerprints[seen_row] == fingerprints[test_row],
                )
                for seen_row in found
            ]
    pairs.sort(key=lambda pair: (not pair.same_contents, -pair.similarity, pair.test_path, pair.seen_path))
    return AuditReport(
        cache=cache,
        split_description=split_description,
        threshold=float(threshold),
        num_seen=len(seen_rows),
        num_test=len(test_rows),
        num_test_with_duplicate=len(tests_with_duplicate),
        num_exact_copies=num_exact,
        pairs=pairs,
    )


def audit_split(
    cache: CachePath | Cache,
    subsets: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    split_description: str = "",
) -> AuditReport:
    """Audit a cache under a split: subsets[i] is cache row i's "train" | "val" | "test" ("" if not in the split).

    Reads and pools the split's videos block by block (featcache.search.pooled), then `audit_vectors`.
    """
    check_threshold(threshold)
    opened = open_cache(cache)
    index = opened.index
    if len(subsets) != index.num_videos:
        raise InputError(f"the split names {len(subsets)} videos, {index.path} holds {index.num_videos}")
    in_split = np.flatnonzero(np.isin(np.asarray(list(subsets), dtype=object), (*SEEN_SUBSETS, "test")))
    pooled = pooled_features(opened, in_split)
    return audit_vectors(
        paths=pooled.paths,
        vectors=pooled.vectors,
        subsets=[subsets[row] for row in in_split],
        fingerprints=[(index.fingerprints or [""] * index.num_videos)[row] for row in in_split],
        threshold=threshold,
        cache=str(index.path),
        split_description=split_description,
    )


def format_audit(report: AuditReport, max_pairs: int = 50) -> str:
    """The report for a terminal: the split, the pairs (copies marked), the summary line last."""
    lines = [
        f"Audit of {report.cache}: {report.split_description}"
        if report.split_description
        else f"Audit of {report.cache}"
    ]
    if report.pairs:
        lines.append(f"{'similarity':>10}  {'test video':<40}  train/val video")
    for pair in report.pairs[:max_pairs]:
        copy = "  (exact copy)" if pair.same_contents else ""
        lines.append(f"{pair.similarity:>10.4f}  {pair.test_path:<40}  {pair.seen_path} [{pair.seen_subset}]{copy}")
    if len(report.pairs) > max_pairs:
        lines.append(f"... and {len(report.pairs) - max_pairs} more pairs (--json lists them all)")
    lines.append(report.summary)
    return "\n".join(lines)
