"""Decoding in worker processes, so that a decoder crash costs one video, never the run.

OpenCV/FFmpeg are native code: a hostile file can make them segfault or abort, and an absurd one can get
the process OOM-killed. In a thread that kills the whole run; here it kills one worker process, the video
it was decoding becomes a failure ("decoder crashed: signal 11 (SIGSEGV)"), and a fresh worker takes the
next video.

Workers are fresh interpreters (`subprocess` + `python -c`), not forks: forking after TensorFlow started
its threads is unsafe, and multiprocessing's spawn would re-run the user's main module in each worker. A worker
imports only `featcache.video` and its dependencies (numpy, OpenCV, PyAV when it seeks), never Keras (`import featcache`
loads its public names on first use).
A worker serves two kinds of request: the sampled frames of one video (`embed`, `predict`), and the frames every
window of one video needs (`predict --window`, sent back in chunks so memory does not grow with the video).
Requests and results travel over two pipes per worker as pickles (`multiprocessing.connection`): one
video's frames at 224x224x10 are 1.5 MB, a few milliseconds next to the tens of milliseconds of decoding
(see BENCHMARKS.md, "Decode isolation").
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType

from featcache.config import SamplingConfig, WindowConfig
from featcache.errors import DecodeWorkerStartError, VideoDecodeError
from featcache.video.decode import SampledFrames, read_sampled_frames
from featcache.video.frame_lookup import FrameRequest, FramesAt, read_frames_at
from featcache.video.run_threads import seek_threads_for
from featcache.video.window_frames import WindowFrameChunk, read_window_frames

# Failpoint for tests and drills: a worker asked to decode a file with this name kills itself with
# SIGSEGV, as a decoder crashing on a hostile file would.
CRASH_DECODER_ENV = "FEATCACHE_CRASH_DECODER"

# A request for the frames of `predict --window` (a tuple starting with it); any other request is a path (bytes).
WINDOWS_REQUEST = "window-frames"

# Seconds a closing worker gets to exit after its request pipe closes, before it is killed.
_EXIT_GRACE_SECONDS = 5.0

# The worker imports the parent's own featcache (its folder first on the path, whatever is installed), then serves.
_WORKER_BOOTSTRAP = """
import sys
sys.path.insert(0, sys.argv[1])
from featcache.video.decode_workers import serve_decode_requests
serve_decode_requests(int(sys.argv[2]), int(sys.argv[3]))
"""


class _DecoderCrashed(Exception):
    """The worker process died while decoding; the message says how."""


def describe_exit_status(returncode: int) -> str:
    """Popen.returncode -> 'signal 11 (SIGSEGV)' or 'exit status 3'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
        hint = ", killed from outside, e.g. out of memory" if name == "SIGKILL" else ""
        return f"signal {-returncode} ({name}{hint})"
    return f"exit status {returncode}"


class DecodeWorker:
    """One worker process decoding one video at a time."""

    def __init__(
        self, sampling: SamplingConfig, image_size: int, decoder: str, seek_threads: int, crash_file_name: str | None
    ) -> None:
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        package_parent = str(Path(__file__).resolve().parents[2])  # the folder holding featcache/
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOTSTRAP, package_parent, str(request_read), str(result_write)],
                pass_fds=(request_read, result_write),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(request_read)
            os.close(result_write)
        self._requests = Connection(request_write, readable=False)
        self._results = Connection(result_read, writable=False)
        self._requests.send((sampling, image_size, decoder, seek_threads, crash_file_name))
        self._ready = False

    def wait_until_ready(self) -> None:
        """Raise DecodeWorkerStartError when the worker died before serving (a broken install, not a video)."""
        if self._ready:
            return
        try:
            self._results.recv()
        except (EOFError, OSError) as err:
            status = describe_exit_status(self.process.wait())
            raise DecodeWorkerStartError(
                f"a decode worker process failed to start ({status}); its error is printed above"
            ) from err
        self._ready = True

    def decode(self, path: Path | FrameRequest) -> SampledFrames | FramesAt | VideoDecodeError:
        """The sampled frames of `path` (or the frames a FrameRequest names), or the reason they cannot be had;
        raises _DecoderCrashed."""
        self.wait_until_ready()
        try:
            self._requests.send(path if isinstance(path, FrameRequest) else os.fsencode(path))
            return self._results.recv()
        except (EOFError, OSError) as err:
            raise _DecoderCrashed(f"decoder crashed: {describe_exit_status(self.process.wait())}") from err

    def read_window_frames(
        self, path: Path, window: WindowConfig, chunk_frames: int
    ) -> Iterator[WindowFrameChunk | VideoDecodeError]:
        """The chunks of `window_frames.read_window_frames` as the worker sends them, ending with a `done` chunk
        or the reason; raises _DecoderCrashed. Consume it to the end before the next request."""
        self.wait_until_ready()
        try:
            self._requests.send((WINDOWS_REQUEST, os.fsencode(path), window, chunk_frames))
            while True:
                result = self._results.recv()
                yield result
                if isinstance(result, VideoDecodeError) or result.done:
                    return
        except (EOFError, OSError) as err:
            raise _DecoderCrashed(f"decoder crashed: {describe_exit_status(self.process.wait())}") from err

    def close(self) -> None:
        """Let the worker exit (it reads end-of-file), killing it if it does not in time."""
        for connection in (self._requests, self._results):
            # contextlib.suppress, not a bare except: a generator finalized at interpreter exit (a run ended by an
            # error, e.g. a full disk) can find the pipe's descriptor already closed, and then there is nothing to do.
            with contextlib.suppress(OSError):
                connection.close()
        try:
            self.process.wait(timeout=_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DecodeWorkerPool:
    """`num_workers` worker processes; `decode` is thread-safe and blocks until a worker is free.

    seek_threads: a seeking video's runs decoded at once in a worker (`run_threads.py`); None: this machine's
    cores shared among the workers (1 where there is a worker per core).
    Use as a context manager: leaving it ends every worker.
    """

    def __init__(
        self,
        num_workers: int,
        sampling: SamplingConfig,
        image_size: int,
        decoder: str = "auto",
        seek_threads: int | None = None,
    ) -> None:
        self._sampling, self._image_size, self._decoder = sampling, image_size, decoder
        self._seek_threads = seek_threads_for(num_workers) if seek_threads is None else seek_threads
        self._crash_file_name = os.environ.get(CRASH_DECODER_ENV) or None
        self._idle: queue.Queue[DecodeWorker] = queue.Queue()
        self._workers: list[DecodeWorker] = []
        try:
            self._workers = [self._start_worker() for _ in range(num_workers)]
            for worker in self._workers:
                worker.wait_until_ready()
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    def _start_worker(self) -> DecodeWorker:
        return DecodeWorker(self._sampling, self._image_size, self._decoder, self._seek_threads, self._crash_file_name)

    def decode(self, path: Path) -> SampledFrames | VideoDecodeError:
        """Decode `path` in a free worker; a worker that dies makes this video a failure and is replaced."""
        return self._decode_in_worker(path)

    def decode_frames_at(self, request: FrameRequest) -> FramesAt | VideoDecodeError:
        """The frames `request` names (e.g. a cache's recorded frame_indices), decoded in a free worker alike."""
        return self._decode_in_worker(request)

    def _decode_in_worker(self, request: Path | FrameRequest) -> SampledFrames | FramesAt | VideoDecodeError:
        path = request.path if isinstance(request, FrameRequest) else request
        worker = self._idle.get()
        try:
            return worker.decode(request)
        except _DecoderCrashed as crash:
            worker = self._replace(worker)
            return VideoDecodeError(f"{path}: {crash}")
        finally:
            self._idle.put(worker)

    def read_window_frames(
        self, path: Path, window: WindowConfig, chunk_frames: int
    ) -> Iterator[WindowFrameChunk | VideoDecodeError]:
        """The frames `predict --window` needs from `path`, decoded in a free worker, chunk by chunk, ending with a
        `done` chunk or a VideoDecodeError (a worker that dies mid-video makes it one, and is replaced)."""
        worker = self._idle.get()
        finished = False
        try:
            for result in worker.read_window_frames(path, window, chunk_frames):
                finished = isinstance(result, VideoDecodeError) or result.done
                yield result
        except _DecoderCrashed as crash:
            finished = True
            worker = self._replace(worker)
            yield VideoDecodeError(f"{path}: {crash}")
        finally:
            if not finished:
                worker = self._replace(worker)  # left mid-video (the caller stopped): its pipe holds unread chunks
            self._idle.put(worker)

    def _replace(self, worker: DecodeWorker) -> DecodeWorker:
        self._workers.remove(worker)
        worker.close()
        worker = self._start_worker()
        self._workers.append(worker)
        # Not waited for here: its first request does, and raises DecodeWorkerStartError if it cannot start.
        return worker

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self) -> DecodeWorkerPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def serve_decode_requests(request_fd: int, result_fd: int) -> None:
    """The worker's loop: settings once, then one request (a path as bytes, or a FrameRequest) in, one result out,
    until end-of-file."""
    # Ctrl-C reaches the whole process group; the parent decides what an interrupt ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(request_fd, writable=False)
    results = Connection(result_fd, readable=False)
    sampling, image_size, decoder, seek_threads, crash_file_name = requests.recv()
    results.send("ready")
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        windows = isinstance(request, tuple) and request[0] == WINDOWS_REQUEST
        if isinstance(request, FrameRequest):
            path = request.path
        else:
            path = Path(os.fsdecode(request[1] if windows else request))
        if crash_file_name is not None and path.name == crash_file_name:
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            if windows:
                for result in _window_frames_of_one(path, request[2], sampling, image_size, request[3], decoder):
                    results.send(result)
            elif isinstance(request, FrameRequest):
                results.send(_decode_frames_at(request))
            else:
                results.send(_decode_one(path, sampling, image_size, decoder, seek_threads))
        except BrokenPipeError:
            return  # the main process is gone (killed): nobody waits for this video


def _window_frames_of_one(
    path: Path, window: WindowConfig, sampling: SamplingConfig, image_size: int, chunk_frames: int, decoder: str
) -> Iterator[WindowFrameChunk | VideoDecodeError]:
    try:
        yield from read_window_frames(path, window, sampling, image_size, chunk_frames, decoder)
    except VideoDecodeError as err:
        yield err
    except Exception as err:
        yield VideoDecodeError(f"{path}: decoder error {type(err).__name__}: {err}")


def _decode_one(
    path: Path, sampling: SamplingConfig, image_size: int, decoder: str, seek_threads: int
) -> SampledFrames | VideoDecodeError:
    try:
        return read_sampled_frames(path, sampling, image_size, decoder, seek_threads)
    except VideoDecodeError as err:
        return err
    except Exception as err:
        return VideoDecodeError(f"{path}: decoder error {type(err).__name__}: {err}")


def _decode_frames_at(request: FrameRequest) -> FramesAt | VideoDecodeError:
    try:
        return read_frames_at(request)
    except VideoDecodeError as err:
        return err
    except Exception as err:
        return VideoDecodeError(f"{request.path}: decoder error {type(err).__name__}: {err}")
