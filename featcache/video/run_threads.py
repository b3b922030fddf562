"""Decoding a seek plan's runs on several threads at once, each from its own container, with the same frames.

A plan's runs are independent: each seeks to a keyframe and decodes from a flushed decoder, so run k's frames do
not depend on which decoder decoded run k-1. FFmpeg decodes with the GIL released, so where a process has cores
to spare (decoding alone in one process, fewer decode workers than cores) runs decode at once. A run holds one
decoder for its whole length; a decoder is opened (`open_decoder`: a second `av.open` of the file) only when
every one already open is busy, so at most `threads` are. Runs start longest first and their frames are put
together in the plan's order; the first SeekMismatch in that order is raised, as on one thread.

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
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from featcache.video.seek_decode import DecodeTally, RunDecoder, SeekPlan, SeekTargets, decode_run
from featcache.video.stream_index import StreamIndex


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
) -> list[tuple[int, np.ndarray]]:
    """What `seek_decode.iterate_planned_frames` yields for the plan, as a list, the runs decoded on up to
    `threads` threads, longest first.

    first_decoder: the container already open (and indexed); open_decoder: opens another on the same file. The
    containers this opens are closed before it returns or raises; `first_decoder`'s stays open. Raises the
    SeekMismatch of the first run (in the plan's order) that has one.
    """
    targets = SeekTargets.of(index, wanted, pixel_format)
    decoders = _DecoderPool(first_decoder, open_decoder)

    def decode_whole_run(run_number: int) -> tuple[list[tuple[int, np.ndarray]], int]:
        run_tally = DecodeTally()
        with decoders.one() as decoder:
            frames = list(decode_run(decoder, index, plan, run_number, targets, run_tally))
        return frames, run_tally.frames_decoded

    # Longest first: a long run started last would decode alone at the end while the other threads wait. The run
    # to the end of the stream is usually the longest (a whole GOP, where uniform sampling takes the last frame).
    longest_first = sorted(range(len(plan.runs)), key=lambda run_number: -plan.runs[run_number].num_frames)
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="featcache-seek-run")
    try:
        futures = {run_number: executor.submit(decode_whole_run, run_number) for run_number in longest_first}
        frames: list[tuple[int, np.ndarray]] = []
        for run_number in range(len(plan.runs)):
            run_frames, frames_decoded = futures[run_number].result()
            tally.frames_decoded += frames_decoded
            frames.extend(run_frames)
        return frames
    finally:
        # A run failed: runs not started are dropped, running ones end before their containers close.
        executor.shutdown(wait=True, cancel_futures=True)
        decoders.close_opened()


class _DecoderPool:
    """The decoders of one plan: an idle one for each run that starts, another opened only when none is idle."""

    def __init__(self, first_decoder: RunDecoder, open_decoder: Callable[[], RunDecoder]) -> None:
        self._idle: queue.SimpleQueue[RunDecoder] = queue.SimpleQueue()
        self._idle.put(first_decoder)
        self._open_decoder = open_decoder
        self._opened: list[RunDecoder] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def one(self) -> Iterator[RunDecoder]:
        """`with decoders.one() as decoder`: a decoder for one run, given back when the run ends, however it ends."""
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            decoder = self._open_decoder()
            with self._lock:
                self._opened.append(decoder)
        try:
            yield decoder
        finally:
            self._idle.put(decoder)

    def close_opened(self) -> None:
        with self._lock:
            for decoder in self._opened:
                decoder.container.close()
            self._opened.clear()
