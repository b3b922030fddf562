"""Exact cosine search in numpy (featcache.search.neighbors.nearest) against faiss, to decide whether faiss pays.

    python3 -m benchmarks.search_speed [--videos 20000 100000] [--dim 1280] [--queries 200]
    python3 -m benchmarks.search_speed --audit-only   # the audit `train` runs, at UCF101 split 1's size

Random unit vectors stand for a cache's pooled features (search time does not depend on their values). One query
(`featcache neighbors`) and a batch of queries (what `featcache audit` does: every test video against every
train/val video) are timed, best of 3; faiss (faiss-cpu, IndexFlatIP, the same exact search) when importable.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(repeats: int, function) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def batch_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[np.ndarray]:
    """The audit's way: a block of queries against every vector in one matrix product, top k per row."""
    return [
        np.argpartition(-(block @ vectors.T), k, axis=1)[:, :k]
        for block in np.array_split(queries, max(1, len(queries) // 64))
    ]


def time_audit(num_train: int, num_test: int, dim: int) -> str:
    """Seconds of `audit_vectors` (what `train` adds to a run) on random unit vectors, best of 2."""
    from featcache.search.audit import audit_vectors
    from featcache.search.pooled import normalize_rows

    vectors = normalize_rows(np.random.default_rng(0).standard_normal((num_train + num_test, dim), dtype=np.float32))
    subsets = ["train"] * num_train + ["test"] * num_test
    paths = [f"video{row}" for row in range(len(subsets))]
    seconds = best_of(2, lambda: audit_vectors(paths, vectors, subsets, None))
    return f"audit of {num_train:,} train/val x {num_test:,} test videos x {dim} dims: {seconds:.2f} s (best of 2)"


def main(argv: list[str] | None = None) -> int:
    from featcache.search.neighbors import nearest
    from featcache.search.pooled import normalize_rows

    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.search_speed", description=__doc__)
    parser.add_argument("--videos", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--audit-only", action="store_true", help="time only the audit of a UCF101-sized split")
    args = parser.parse_args(argv)
    if args.audit_only:
        print(time_audit(9537, 3783, args.dim))
        return 0
    try:
        import faiss
    except ImportError:
        faiss = None
    rng = np.random.default_rng(0)
    print(
        "| videos x dims | numpy: 1 query (ms) | faiss flat: 1 query (ms) "
        "| numpy: queries/s in a batch | faiss flat: queries/s in a batch |"
    )
    print("|---|---:|---:|---:|---:|")
    for num_videos in args.videos:
        vectors = normalize_rows(rng.standard_normal((num_videos, args.dim), dtype=np.float32))
        queries = normalize_rows(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
        one_numpy = best_of(3, lambda vectors=vectors, queries=queries: nearest(vectors, queries[0], 10))
        batch_numpy = best_of(3, lambda vectors=vectors, queries=queries: batch_top_k(vectors, queries, 10))
        one_faiss = batch_faiss = float("nan")
        if faiss is not None:
            index = faiss.IndexFlatIP(args.dim)
            index.add(vectors)
            one_faiss = best_of(3, lambda index=index, queries=queries: index.search(queries[:1], 10))
            batch_faiss = best_of(3, lambda index=index, queries=queries: index.search(queries, 10))
        print(
            f"| {num_videos:,} x {args.dim} | {1000 * one_numpy:.1f} | {1000 * one_faiss:.1f} | "
            f"{args.queries / batch_numpy:,.0f} | {args.queries / batch_faiss:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
