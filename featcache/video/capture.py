"""Opening a video with OpenCV (with the reason when it cannot be), reading its header, and shaping a decoded
frame for the model: what every decoding path shares (`decode.py`, `window_frames.py`, `frame_lookup.py`)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import cv2
import numpy as np

from featcache.errors import VideoDecodeError

# OpenCV logs a WARN line for every file it cannot open; featcache reports those as VideoDecodeError
# with the path and reason instead, so only OpenCV's own errors stay on the console.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def check_readable_file(path: Path) -> None:
    """Name the reason OpenCV would only report as "cannot open": missing, not a file, unreadable, empty."""
    try:
        mode = path.stat().st_mode  # follows links: a link is judged by what it points to
    except FileNotFoundError:
        reason = "broken symbolic link (its target does not exist)" if path.is_symlink() else "file not found"
        raise VideoDecodeError(f"{path}: {reason}") from None
    except OSError as err:
        # ELOOP (a symbolic link loop), ENAMETOOLONG, EACCES on a folder above, ...
        raise VideoDecodeError(f"{path}: cannot be examined ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        # Never opened: reading a FIFO blocks until a writer comes, a device like /dev/zero never ends.
        raise VideoDecodeError(
            f"{path}: not a regular file but {_describe_file_kind(mode)}; only video files can be embedded"
        )
    if not os.access(path, os.R_OK):
        raise VideoDecodeError(f"{path}: permission denied (the file is not readable by this user)")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")


def _describe_file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for is_kind, name in kinds if is_kind(mode)), "a special file")


def open_capture(path: Path) -> cv2.VideoCapture:
    if not is_utf8(str(path)):
        return _open_capture_through_link(path)
    capture = cv2.VideoCapture(str(path))
    return _opened_or_refused(capture, path)


def _opened_or_refused(capture: cv2.VideoCapture, path: Path) -> cv2.VideoCapture:
    """`capture` when OpenCV opened it; else released, and VideoDecodeError naming `path`."""
    if not capture.isOpened():
        capture.release()
        raise VideoDecodeError(
            f"{path}: cannot be opened as a video (not a video file, truncated header, or a codec OpenCV lacks)"
        )
    return capture


def is_utf8(text: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open_capture_through_link(path: Path) -> cv2.VideoCapture:
    """Open a file whose name is not UTF-8 through a symbolic link with a plain name.

    OpenCV converts the name to UTF-8 and crashes (SIGSEGV, OpenCV 4.x) on the lone surrogates Python uses
    for such bytes. The decoder keeps the file open once the capture is opened, so the link can go at once.
    """
    with tempfile.TemporaryDirectory(prefix="featcache-") as link_folder:
        link = Path(link_folder) / f"video{path.suffix if is_utf8(path.suffix) else ''}"
        link.symlink_to(path.absolute())
        capture = cv2.VideoCapture(str(link))
    return _opened_or_refused(capture, path)


def read_container_properties(capture: cv2.VideoCapture) -> tuple[float, int]:
    """(video_fps, frame_count_hint) from the container header; 0 where it does not say."""
    video_fps = capture.get(cv2.CAP_PROP_FPS)
    frame_count_hint = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    # OpenCV reports unknown properties as 0 or -1, and some containers as NaN.
    video_fps = float(video_fps) if np.isfinite(video_fps) and video_fps > 0 else 0.0
    frame_count_hint = int(frame_count_hint) if np.isfinite(frame_count_hint) and frame_count_hint > 0 else 0
    return video_fps, frame_count_hint


def to_model_frame(frame_bgr: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 BGR (height, width, 3) -> uint8 RGB (image_size, image_size, 3), the whole frame squeezed."""
    return cv2.cvtColor(resize_for_model(frame_bgr, image_size), cv2.COLOR_BGR2RGB)


def resize_for_model(frame: np.ndarray, image_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (height, width, 3) -> uint8 (image_size, image_size, 3), the whole frame squeezed, channels kept.

    out: where to write the result (uint8, shape (image_size, image_size, 3), C-contiguous), saving a copy.
    INTER_AREA averages the pixels a shrunk output pixel covers (no aliasing); it blurs when enlarging,
    where INTER_LINEAR is the better choice. Resizing works channel by channel, so resizing then swapping
    the channels gives the same pixels as swapping then resizing.
    """
    height, width = frame.shape[:2]
    shrinking = height > image_size or width > image_size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (image_size, image_size), dst=out, interpolation=interpolation)
    assert out is None or np.shares_memory(resized, out), "cv2.resize wrote elsewhere than out"
    return resized
