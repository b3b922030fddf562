"""What the CLI prints, and how much: --quiet / --verbose on every command, progress fit for terminals and logs.

- Normal: results, one-line progress, warnings and errors; third-party noise (TensorFlow's C++ and retracing
  logs, FFmpeg's complaints about broken files, raw HDF5 error stacks) is kept out.
- --quiet: results, warnings and errors only (no progress, no informational lines).
- --verbose: also the third-party logs, for reporting a bug.
Progress: a live bar on a terminal; on a file or pipe (CI logs, nohup) a plain line every PROGRESS_SECONDS.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import typer

PROGRESS_SECONDS = 10.0  # a log gets a line this often: enough to see a run is alive, few enough to read


@dataclass
class Verbosity:
    quiet: bool = False
    verbose: bool = False


VERBOSITY = Verbosity()


def set_verbosity(quiet: bool, verbose: bool) -> None:
    """Set the process's output level; quiets third-party loggers unless verbose
    (before they load, where it matters)."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose contradict each other; pass one")
    VERBOSITY.quiet, VERBOSITY.verbose = quiet, verbose
    # FFmpeg (inside OpenCV) prints e.g. "moov atom not found" for every broken file featcache already reports
    # as a failure; -8 is AV_LOG_QUIET, 24 AV_LOG_WARNING. Read when OpenCV first opens a video.
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "24" if verbose else "-8"
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    logging.getLogger("tensorflow").setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("absl").setLevel(logging.INFO if verbose else logging.ERROR)


def with_output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command --quiet/-q and --verbose options (applied before the command body runs)."""

    @functools.wraps(command)
    def run_with_verbosity(*args: Any, quiet: bool = False, verbose: bool = False, **kwargs: Any) -> Any:
        set_verbosity(quiet, verbose)
        return command(*args, **kwargs)

    signature = inspect.signature(command)
    output_options = [
        inspect.Parameter(
            "quiet",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(False, "--quiet", "-q", help="Print only results, warnings and errors."),
        ),
        inspect.Parameter(
            "verbose",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(False, "--verbose", help="Also print third-party logs (TensorFlow, FFmpeg, HDF5)."),
        ),
    ]
    run_with_verbosity.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *output_options])  # type: ignore[attr-defined]
    run_with_verbosity.__annotations__ = {**command.__annotations__, "quiet": bool, "verbose": bool}
    return run_with_verbosity


def say(message: str) -> None:
    """An informational line (progress, what is being done); silent with --quiet."""
    if not VERBOSITY.quiet:
        typer.echo(message)


def warn(message: str) -> None:
    """A warning the user must see, on stderr, even with --quiet."""
    typer.secho(f"Warning: {message}", fg=typer.colors.YELLOW, err=True)


@dataclass
class CountProgress:
    """Done / total, rate, ETA and failures of a run over items, for the periodic log line."""

    what: str
    unit: str
    started: float
    last_line: float

    def line(self, done: int, total: int, failed: int) -> str:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        remaining = f", ETA {_duration((total - done) / rate)}" if rate > 0 and total > done else ""
        return f"{self.what}: {done}/{total} {self.unit}, {rate:.1f} {self.unit}/s{remaining}, {failed} failed"


@contextlib.contextmanager
def count_progress(what: str, unit: str = "videos") -> Iterator[Callable[[int, int, int], None]]:
    """report(done, total, failed): a live bar on a terminal, a line every PROGRESS_SECONDS otherwise;
    nothing with --quiet."""
    if VERBOSITY.quiet:
        yield lambda done, total, failed: None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(what, total=None, rate="")

            def update_bar(done: int, total: int, failed: int) -> None:
                elapsed = bar.tasks[0].elapsed or 0.0
                rate = f"{done / elapsed:.1f} {unit}/s" if elapsed > 0 else ""
                bar.update(task, completed=done, total=total, rate=rate + (f", {failed} failed" if failed else ""))

            yield update_bar
        return
    now = time.perf_counter()
    state = CountProgress(what, unit, started=now, last_line=now)

    def print_line(done: int, total: int, failed: int) -> None:
        if time.perf_counter() - state.last_line >= PROGRESS_SECONDS or (done == total and total):
            state.last_line = time.perf_counter()
            typer.echo(state.line(done, total, failed), err=True)

    yield print_line


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
