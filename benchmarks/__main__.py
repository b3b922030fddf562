"""`python -m benchmarks [--quick] [--out BENCHMARKS.md] [--sections ...]`: run the suite, print its markdown."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import featcache  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before Keras imports TensorFlow)
from benchmarks.suite import SECTIONS, clean_work_dir, run_suite
from benchmarks.workspace import FULL, QUICK

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (a smoke test of every code path, not figures)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=(
            "markdown file to write (default: BENCHMARKS.md for a full run; with --quick or --sections, "
            "one in the system temp dir)"
        ),
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG to write (default: benchmarks/results/benchmarks.png for a full run; otherwise next to --out)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where videos, caches and JPEGs go (default: a folder under the system temp dir)",
    )
    parser.add_argument(
        "--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS), help="run only these sections"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the caches and JPEGs in --work-dir afterwards (the videos are always kept)",
    )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    run_name = "featcache-bench-quick" if args.quick else "featcache-bench"
    work_dir = args.work_dir or Path(tempfile.gettempdir()) / run_name
    # Only a full run replaces the repository's BENCHMARKS.md and plot; a smoke test or a few sections write a
    # report in the temp folder (their figures are pasted into BENCHMARKS.md by hand, with the command).
    partial = args.quick or args.sections != list(SECTIONS)
    report_name = run_name + ("" if args.sections == list(SECTIONS) else "-" + "-".join(args.sections))
    out = args.out or (
        Path(tempfile.gettempdir()) / f"{report_name}-report" / "BENCHMARKS.md"
        if partial
        else REPOSITORY_ROOT / "BENCHMARKS.md"
    )
    plot = args.plot or (
        out.parent / "benchmark.png" if partial else REPOSITORY_ROOT / "benchmarks" / "results" / "benchmarks.png"
    )
    command = (
        "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + ("" if args.sections == list(SECTIONS) else " --sections " + " ".join(args.sections))
    )

    def log(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    clean_work_dir(work_dir, keep_videos=True)
    try:
        markdown = run_suite(sizes, out, plot, work_dir, args.sections, command, log)
    finally:
        if not args.keep:
            clean_work_dir(work_dir, keep_videos=True)
    print(markdown)
    log(f"wrote {out} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
