"""Decoding a seek plan's runs on several threads at once, each from its own container, with the same frames.

A plan's runs are independent: each seeks to a keyframe and decodes from a flushed decoder, so run k's frames do
not depend on which decoder decoded run k-1. FFmpeg decodes with the GIL released, so where a process has cores
to spare (decoding alone in one process, fewer decode workers than cores) runs decode at once. A run holds one
decoder for its whole length; a decoder is opened (`open_decoder`: a second `av.open` of the file) only when
every one already open is busy, so at most `threads` are (where the file does not open again, the runs share the
decoders already open). Runs start longest first and their frames are put together in the plan's order. A run
that fails abandons the seek: runs not started are skipped, and the first SeekMismatch in the plan's order among
the runs decoded is raised.

Every wanted frame is held until the last run ends, which is what `read_sampled_frames` does anyway; `predict
--window`, which hands frames on as they come, decodes its runs on one thread (`seek_decode.iterate_planned_frames`),
as does a process whose cores are already full (one decode worker per core, `embed`): `seek_threads_for`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from featcache.video.seek_decode import DecodeTally, RunDecoder, SeekMismatch, SeekPlan, SeekTargets, decode_run
from featcache.video.stream_index import StreamIndex

# The containers (PyAV's format names) whose file holds an index that seeks go by (MP4's sample table, Matroska's
# cues, AVI's idx1): a second opening seeks as the first, indexed one does. Others stay on one thread: MPEG-TS, for
# one, seeks by searching timestamps, and a fresh opening of it, which has not demuxed the file, landed elsewhere
# than the first (the corpus's TS then failed another check; it falls back to sequential decoding either way).
FORMATS_SEEKING_BY_INDEX = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})


def unchanged(frame: np.ndarray) -> np.ndarray:
    """The `finish` that keeps each decoded frame as it is."""
    return frame


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def seek_threads_for(num_processes: int) -> int:
    """Threads per seeking video when `num_processes` decode at once on this machine's cores (at least 1)."""
    return max(1, usable_cores() // max(1, num_processes))


def decode_runs_on_threads(
    first_decoder: RunDecoder,
    open_decoder: Callable[[], RunDecoder],
    index: StreamIndex,
    plan: SeekPlan,
    wanted: np.ndarray,
    pixel_format: str,
    tally: DecodeTally,
    threads: int,
    finish: Callable[[np.ndarray], Any] = unchanged,
) -> list[tuple[int, Any]]:
    """What `seek_decode.iterate_planned_frames` yields for the plan, as a list, the runs decoded on up to
    `threads` threads, longest first; `finish` is applied to each frame on the thread that decoded it (the list
    holds what it returns).

    first_decoder: the container already open (and indexed); open_decoder: opens another on the same file. The
    containers this opens are closed before it returns or raises; `first_decoder`'s stays open. Raises the
    SeekMismatch of the first run, in the plan's order, among those decoded: once a run fails the seek is abandoned,
    so runs not started yet are skipped (and `tally` counts only the runs gathered before the failure).
    """
    targets = SeekTargets.of(index, wanted, pixel_format)
    decoders = _DecoderPool(first_decoder, open_decoder)
    abandoned = threading.Event()

    def decode_whole_run(run_number: int) -> tuple[list[tuple[int, np.ndarray]], int] | None:
        run_tally = DecodeTally()
        with decoders.one() as decoder:
            if abandoned.is_set():
                return None  # another run failed: these frames would be thrown away
            try:
                frames = [
                    (position, finish(frame))
                    for position, frame in decode_run(decoder, index, plan, run_number, targets, run_tally)
                ]
            except BaseException:
                abandoned.set()  # before the decoder goes back: a run waiting for it sees the failure
                raise
        return frames, run_tally.frames_decoded

    # Longest first: a long run started last would decode alone at the end while the other threads wait. The run
    # to the end of the stream is usually the longest (a whole GOP, where uniform sampling takes the last frame).
    longest_first = sorted(range(len(plan.runs)), key=lambda run_number: -plan.runs[run_number].num_frames)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="featcache-seek-run")
    try:
        futures = {run_number: executor.submit(decode_whole_run, run_number) for run_number in longest_first}
        in_plan_order = [futures[run_number] for run_number in range(len(plan.runs))]
        frames: list[tuple[int, np.ndarray]] = []
        for future in in_plan_order:
            outcome = future.result()  # raises the run's SeekMismatch
            if outcome is None:  # skipped after a later run failed
                raise _first_failure(in_plan_order)
            run_frames, frames_decoded = outcome
            tally.frames_decoded += frames_decoded
            frames.extend(run_frames)
        return frames
    finally:
        # A run failed: runs not started are dropped, running ones end before their containers close.
        executor.shutdown(wait=True, cancel_futures=True)
        decoders.close_opened()


def _first_failure(futures: list[Future]) -> BaseException:
    """The exception of the first of `futures` that failed (one did: a run is skipped only after a failure)."""
    for future in futures:
        failure = future.exception()
        if failure is not None:
            return failure
    raise AssertionError("a run was skipped although none failed")


class _DecoderPool:
    """The decoders of one plan: an idle one for each run that starts, another opened only when none is idle."""

    def __init__(self, first_decoder: RunDecoder, open_decoder: Callable[[], RunDecoder]) -> None:
        self._idle: queue.SimpleQueue[RunDecoder] = queue.SimpleQueue()
        self._idle.put(first_decoder)
        self._open_decoder = open_decoder
        self._opened: list[RunDecoder] = []
        self._lock = threading.Lock()
        self._reopen_failed = threading.Event()

    @contextlib.contextmanager
    def one(self) -> Iterator[RunDecoder]:
        """`with decoders.one() as decoder`: a decoder for one run, given back when the run ends, however it ends.

        Where the file does not open again (SeekMismatch: out of file descriptors, replaced meanwhile), the run
        waits for a decoder already open, and no other opening is tried: fewer threads, the same frames. One is
        always open and idle or held by a run that gives it back, so the wait ends.
        """
        decoder = self._idle_or_opened()
        try:
            yield decoder
        finally:
            self._idle.put(decoder)

    def _idle_or_opened(self) -> RunDecoder:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        if not self._reopen_failed.is_set():
            try:
                decoder = self._open_decoder()
            except SeekMismatch:
                self._reopen_failed.set()
            else:
                with self._lock:
                    self._opened.append(decoder)
                return decoder
        return self._idle.get()

    def close_opened(self) -> None:
        with self._lock:
            for decoder in self._opened:
                decoder.container.close()
            self._opened.clear()
