"""The windows page (`predict --window --html`): per video, the class probabilities over time and the frames at
the window centres."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.inference.windows import TIMELINE_MAX_CLASSES, VideoWindows, WindowsReport
from featcache.report.images import figure_to_data_uri, new_figure
from featcache.report.render import render_page, write_page
from featcache.report.thumbnails import DEFAULT_THUMBNAIL_SIZE, StripRequest, ThumbnailStrip, decode_thumbnail_strips

WINDOWS_REPORT_FILE = "windows.html"
# A long video has hundreds of windows: the strip shows this many, evenly spread (the timeline shows them all).
MAX_THUMBNAILS_PER_VIDEO = 16


@dataclass(frozen=True)
class WindowedVideo:
    """One video's section: the timeline (SVG data URI, None for a video that failed), each window's top class,
    and the frames at the window centres."""

    path: str
    error: str | None
    timeline_uri: str | None
    windows: list[tuple[float, float, str, float]]  # start s, end s, top class, its probability
    strip: ThumbnailStrip | None


def timeline_figure_uri(video: VideoWindows, class_names: list[str]) -> str:
    """Probability over time (window centres) of the TIMELINE_MAX_CLASSES classes that peak highest."""
    centres = (video.start_seconds + video.end_seconds) / 2
    shown = np.argsort(-video.probabilities.max(axis=0), kind="stable")[:TIMELINE_MAX_CLASSES]
    figure = new_figure(9.0, 3.2)
    axes = figure.add_subplot()
    for label in shown:
        axes.plot(centres, video.probabilities[:, label], marker="o", markersize=3, label=class_names[label])
    axes.set_xlabel("time (s, window centre)")
    axes.set_ylabel("probability")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="upper right", fontsize="small")
    return figure_to_data_uri(figure)


def centre_frames(video: VideoWindows, max_thumbnails: int = MAX_THUMBNAILS_PER_VIDEO) -> StripRequest:
    """The frame shown at the centre of each window (at most `max_thumbnails` windows, evenly spread)."""
    chosen = np.unique(np.round(np.linspace(0, len(video.start_seconds) - 1, max_thumbnails)).astype(np.int64))
    centres = (video.start_seconds[chosen] + video.end_seconds[chosen]) / 2
    frame_indices = np.floor(centres * video.video_fps + 1e-6).astype(np.int64)
    return StripRequest(video.path, frame_indices, centres * 1000.0)


def write_windows_report(report: WindowsReport, out: Path, thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE) -> Path:
    """Write the windows page to `out` (e.g. WINDOW_DIR/windows.html) and return its path.

    The videos' paths in `report` are the files `predict` read; their frames are decoded again for the strips.
    """
    decodable = [video for video in report.videos if video.error is None and len(video.start_seconds)]
    strips = decode_thumbnail_strips(
        [centre_frames(video) for video in decodable], Path.cwd(), image_size=thumbnail_size
    )
    strip_of = {id(video): strip for video, strip in zip(decodable, strips)}
    videos = [
        WindowedVideo(
            path=video.path,
            error=video.error,
            timeline_uri=timeline_figure_uri(video, report.class_names) if id(video) in strip_of else None,
            windows=[
                (float(start), float(end), report.class_names[int(np.argmax(row))], float(np.max(row)))
                for start, end, row in zip(video.start_seconds, video.end_seconds, video.probabilities)
            ],
            strip=strip_of.get(id(video)),
        )
        for video in report.videos
    ]
    html = render_page("windows.html.j2", report=report, videos=videos)
    return write_page(Path(out), html)
