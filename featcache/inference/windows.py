"""Classifying every window of a long video (`predict --window W --stride S`) from one decode of it.

Where windows lie and which frames they sample is `featcache.video.window_frames` (window k covers
[start_k, start_k + window_frames), sampled as the model samples a W-second video, so each window is classified
exactly as a clip cut at those frames would be by `predict`). A decode worker process decodes each video once,
by seeking to the windows' frames or sequentially (`decoder`, as for `embed`), and sends those frames in order (a
decoder crash costs that video, not the run); here a frame several windows share is embedded once, and only the
features of windows not yet classified are kept, so memory does not grow with the video.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.config import WindowConfig, check_decoder
from featcache.embedding.new_videos import FRAMES_PER_BATCH
from featcache.errors import VideoDecodeError
from featcache.inference.predict import (
    VIDEOS_PER_HEAD_CALL,
    PreparedModel,
    classify_padded,
    prepare_model,
)
from featcache.video.decode_workers import DecodeWorkerPool
from featcache.video.window_frames import WindowLayout, window_layout

__all__ = ["WindowLayout", "window_layout"]  # where windows lie: featcache.video.window_frames, re-exported

WINDOWS_CSV = "windows.csv"
WINDOWS_JSON = "windows.json"
TIMELINE_SUFFIX = ".timeline.png"
TIMELINE_MAX_CLASSES = 6  # a timeline of 101 classes is unreadable: plot the ones that peak highest


@dataclass(frozen=True)
class VideoWindows:
    """The model's answer for each window of one video, or why there is none.

    start_seconds, end_seconds: float64, shape (num_windows,); probabilities: float32 (num_windows, num_classes).
    """

    path: str
    start_seconds: np.ndarray
    end_seconds: np.ndarray
    probabilities: np.ndarray
    error: str | None = None
    video_fps: float = 0.0  # the container's rate, to find the frame at a time (0.0 for a video that failed)
    decoder: str = ""  # 'seek', 'sequential' or 'sequential: <why>' ('' for a video that failed)

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        windows = [
            {
                "start_seconds": round(float(start), 6),
                "end_seconds": round(float(end), 6),
                "top_class": class_names[int(np.argmax(probabilities))],
                "probabilities": {name: float(probability) for name, probability in zip(class_names, probabilities)},
            }
            for start, end, probabilities in zip(self.start_seconds, self.end_seconds, self.probabilities)
        ]
        return {"path": self.path, "error": self.error, "decoder": self.decoder, "windows": windows}


@dataclass(frozen=True)
class WindowsReport:
    """Every video's windows, with what they were computed with."""

    model_dir: str
    class_names: list[str]
    window: WindowConfig
    videos: list[VideoWindows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_dir": self.model_dir,
            "window_seconds": self.window.window_seconds,
            "stride_seconds": self.window.stride_seconds,
            "class_names": self.class_names,
            "videos": [video.to_dict(self.class_names) for video in self.videos],
        }


def predict_windows(
    model_dir: Path, video_paths: list[Path], window: WindowConfig, runtime: str = "auto", decoder: str = "auto"
) -> WindowsReport:
    """Class probabilities for every window of each video, one decode per video (in a worker process).

    decoder: "auto", "seek" or "sequential" (featcache.video.window_frames); the windows are the same whichever
    decodes, and each video's VideoWindows says which did.
    A video that cannot be read, states no frame rate, is shorter than one window, or crashes its decoder gets an
    `error`; the others are still predicted. Raises InputError for an unknown decoder, and what
    `predict.prepare_model` raises for the model folder.
    """
    check_decoder(decoder)
    prepared = prepare_model(Path(model_dir), runtime)
    with DecodeWorkerPool(1, prepared.sampling, prepared.extractor_config.image_size, decoder) as workers:
        videos = [_predict_video_windows(Path(path), prepared, window, workers) for path in video_paths]
    return WindowsReport(str(model_dir), prepared.class_names, window, videos)


def _predict_video_windows(
    path: Path, prepared: PreparedModel, window: WindowConfig, workers: DecodeWorkerPool
) -> VideoWindows:
    try:
        return _scan_video(path, prepared, window, workers)
    except VideoDecodeError as err:
        reason = str(err) if str(err).startswith(str(path)) else f"{path}: {err}"
        empty = np.zeros(0)
        return VideoWindows(str(path), empty, empty, np.zeros((0, len(prepared.class_names)), np.float32), error=reason)


def _scan_video(path: Path, prepared: PreparedModel, window: WindowConfig, workers: DecodeWorkerPool) -> VideoWindows:
    scanner: _WindowScanner | None = None
    decoder = ""
    for chunk in workers.read_window_frames(path, window, FRAMES_PER_BATCH):
        if isinstance(chunk, VideoDecodeError):
            raise chunk
        if chunk.starts_over:  # seeking failed after sending frames: the sequential decode sends them all again
            scanner = None
            continue
        if scanner is None:
            scanner = _WindowScanner(prepared, window_layout(chunk.video_fps, window, prepared.sampling))
        # As the worker saw them: when frame f is embedded, frames 0..f-1 were decoded.
        for frame_index, frame in zip(chunk.frame_indices.tolist(), chunk.frames):
            scanner.open_windows_through(frame_index)
            scanner.frames_seen = frame_index
            scanner.add_frame(frame_index, frame)
        if chunk.done:
            if chunk.frames_seen:
                scanner.open_windows_through(chunk.frames_seen - 1)
            scanner.frames_seen = chunk.frames_seen
            decoder = chunk.decoder
    assert scanner is not None, "the worker ends every video with a done chunk or an error"
    scanner.finish()
    video_fps = scanner.layout.video_fps
    if not scanner.start_frames:
        raise VideoDecodeError(
            f"{path}: {scanner.frames_seen / video_fps:.2f} s long, shorter than one {window.window_seconds:g} s "
            "window; pass a shorter --window (window_seconds), or predict the whole video without --window"
        )
    layout = scanner.layout
    starts = np.array(scanner.start_frames, dtype=np.float64)
    probabilities = np.stack(scanner.probabilities).astype(np.float32)
    return VideoWindows(
        str(path),
        starts / video_fps,
        (starts + layout.window_frames) / video_fps,
        probabilities,
        video_fps=video_fps,
        decoder=decoder,
    )


class _WindowScanner:
    """Follows one decode in frame order: the windows open, the features of their frames, the windows done so far.

    Frames are embedded FRAMES_PER_BATCH at a time; a window is classified once every frame it samples is
    embedded and the video has reached its end (so a window the video stops inside is dropped).
    """

    def __init__(self, prepared: PreparedModel, layout: WindowLayout):
        self.prepared = prepared
        self.layout = layout
        self.frames_seen = 0
        self.next_window = 0
        self.open_windows: deque[int] = deque()  # start frames of windows not yet classified
        self.pending: list[tuple[int, np.ndarray]] = []  # retrieved frames waiting for the extractor
        self.features: dict[int, np.ndarray] = {}  # frame index -> feature row, for open windows only
        self.waiting: list[tuple[int, np.ndarray]] = []  # (start frame, window features) waiting for the head
        self.start_frames: list[int] = []
        self.probabilities: list[np.ndarray] = []

    def open_windows_through(self, frame_index: int) -> None:
        """Open every window that starts at or before `frame_index` (a window only samples from its start on)."""
        while self.layout.start_frame(self.next_window) <= frame_index:
            start = self.layout.start_frame(self.next_window)
            self.open_windows.append(start)
            self.next_window += 1

    def add_frame(self, frame_index: int, frame: np.ndarray) -> None:
        self.pending.append((frame_index, frame))
        if len(self.pending) == FRAMES_PER_BATCH:
            self._embed_pending()
            self._classify_ready_windows(final=False)

    def finish(self) -> None:
        self._embed_pending()
        self._classify_ready_windows(final=True)

    def _embed_pending(self) -> None:
        if not self.pending:
            return
        frames = np.stack([frame for _, frame in self.pending])
        rows = self.prepared.extractor.embed_frames(frames)
        # The head was trained on features stored as the cache's dtype: round new ones alike.
        rows = rows.astype(self.prepared.cache_dtype).astype(np.float32)
        self.features.update((index, row) for (index, _), row in zip(self.pending, rows))
        self.pending.clear()

    def _classify_ready_windows(self, final: bool) -> None:
        while self.open_windows:
            start = self.open_windows[0]
            indices = start + self.layout.offsets
            if start + self.layout.window_frames > self.frames_seen or any(
                int(index) not in self.features for index in indices
            ):
                if final:
                    self.open_windows.clear()  # the video ended inside these windows
                break
            self.open_windows.popleft()
            self.waiting.append((start, np.stack([self.features[int(index)] for index in indices])))
            oldest_needed = self.open_windows[0] if self.open_windows else self.layout.start_frame(self.next_window)
            for index in [index for index in self.features if index < oldest_needed]:
                del self.features[index]
        if len(self.waiting) >= VIDEOS_PER_HEAD_CALL or final:
            keyed = list(enumerate(features for _, features in self.waiting))
            probabilities = classify_padded(
                self.prepared.model,
                keyed,
                self.prepared.num_frames,
                self.prepared.clip_frames,
                self.prepared.test_clips,
            )
            self.start_frames += [start for start, _ in self.waiting]
            self.probabilities += [probabilities[key] for key, _ in keyed]
            self.waiting.clear()


def write_window_reports(report: WindowsReport, out_dir: Path) -> list[Path]:
    """windows.csv (one row per window), windows.json (WindowsReport.to_dict) and one timeline PNG per video.

    CSV columns: path, window, start_seconds, end_seconds, top_class, then one probability column per class.
    Returns the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / WINDOWS_CSV, out_dir / WINDOWS_JSON
    with open(csv_path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "window", "start_seconds", "end_seconds", "top_class", *report.class_names])
        for video in report.videos:
            for number, (start, end, probabilities) in enumerate(
                zip(video.start_seconds, video.end_seconds, video.probabilities)
            ):
                top_class = report.class_names[int(np.argmax(probabilities))]
                writer.writerow(
                    [video.path, number, f"{start:.3f}", f"{end:.3f}", top_class, *(f"{p:.6f}" for p in probabilities)]
                )
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    written = [csv_path, json_path]
    used_names: set[str] = set()
    for video in report.videos:
        if video.error is None:
            written.append(
                plot_timeline(video, report.class_names, out_dir / _unique_name(Path(video.path).stem, used_names))
            )
    return written


def _unique_name(stem: str, used_names: set[str]) -> str:
    """`stem.timeline.png`, numbered when two videos share a stem (same file name in different folders)."""
    name, number = stem + TIMELINE_SUFFIX, 1
    while name in used_names:
        number += 1
        name = f"{stem}-{number}{TIMELINE_SUFFIX}"
    used_names.add(name)
    return name


def plot_timeline(video: VideoWindows, class_names: list[str], png_path: Path) -> Path:
    """Class probability over time, one line per class (the TIMELINE_MAX_CLASSES highest peaks), at window centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = (video.start_seconds + video.end_seconds) / 2
    peaks = video.probabilities.max(axis=0)
    shown = np.argsort(-peaks, kind="stable")[:TIMELINE_MAX_CLASSES]
    figure, axes = plt.subplots(figsize=(10, 4))
    try:
        for label in shown:
            axes.plot(centres, video.probabilities[:, label], marker="o", markersize=3, label=class_names[label])
        axes.set_xlabel("time (s, window centre)")
        axes.set_ylabel("probability")
        axes.set_ylim(-0.02, 1.02)
        axes.set_title(Path(video.path).name)
        axes.legend(loc="upper right", fontsize="small")
        figure.tight_layout()
        figure.savefig(png_path, dpi=100)
    finally:
        plt.close(figure)
    return png_path


def format_windows(report: WindowsReport) -> str:
    """One block per video for a terminal: each window's time span and top class, or the video's error."""
    lines = []
    for video in report.videos:
        if video.error is not None:
            lines.append(f"ERROR {video.error}")
            continue
        lines.append(
            f"{video.path}: {len(video.start_seconds)} windows of {report.window.window_seconds:g} s "
            f"every {report.window.stride_seconds:g} s"
        )
        for start, end, probabilities in zip(video.start_seconds, video.end_seconds, video.probabilities):
            label = int(np.argmax(probabilities))
            span = f"{start:.2f}-{end:.2f} s"
            lines.append(f"  {span:>17}  {probabilities[label]:.4f}  {report.class_names[label]}")
    return "\n".join(lines)
