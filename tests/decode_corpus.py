"""A decode corpus that fights back: small videos of the kinds that break seeking samplers, written offline.

Each frame shows a moving pattern (every frame differs from its neighbours), so a wrong frame cannot pass
for the right one. Written with PyAV's bundled encoders (libx264, mpeg4, libvpx, ...) and cv2.VideoWriter
(XVID/MJPG AVI, what UCF101 and most older datasets hold); each clip is 64x48 so the whole corpus writes and
decodes in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

WIDTH, HEIGHT = 64, 48


def pattern_frame(number: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """uint8 RGB (height, width, 3): gradients that move with `number`, and a white bar that walks down."""
    rows, columns = np.mgrid[0:height, 0:width]
    frame = np.stack(
        [(columns * 3 + number * 5) % 256, (rows * 2 + number * 7) % 256, (columns + rows + number * 11) % 256], -1
    ).astype(np.uint8)
    bar = (number * 3) % height
    frame[bar : bar + 4] = 255
    return frame


def write_with_pyav(
    path: Path,
    codec: str,
    num_frames: int,
    options: dict[str, str] | None = None,
    pixel_format: str = "yuv420p",
    pts: Iterable[int] | None = None,
    time_base: Fraction | None = None,
) -> Path:
    """Encode `num_frames` pattern frames at 25 fps (or at the given `pts` in `time_base`) with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pixel_format
        if time_base is not None:
            stream.codec_context.time_base = time_base
        frame_pts = list(pts) if pts is not None else None
        for number in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(number), format="rgb24")
            if frame_pts is not None:
                frame.pts, frame.time_base = frame_pts[number], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_with_opencv(path: Path, fourcc: str, num_frames: int, fps: float = 25.0) -> Path:
    """Encode pattern frames with cv2.VideoWriter (XVID, MJPG, mp4v), as datasets like UCF101 were made."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path} with {fourcc}"
    try:
        for number in range(num_frames):
            writer.write(cv2.cvtColor(pattern_frame(number), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def truncated_copy(source: Path, path: Path, keep_share: float) -> Path:
    """The first `keep_share` of `source`'s bytes, as a download cut short leaves it."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_share)])
    return path


def with_a_frameless_packet(source: Path, path: Path, after: int) -> Path:
    """`source`'s packets remuxed into `path` with one more after its `after`-th: an H.264 access unit delimiter
    and nothing else, at its own pts, which demuxes like a frame and decodes to none (as a stray parameter-set
    packet would)."""
    with av.open(str(source)) as source_container, av.open(str(path), "w") as container:
        source_stream = source_container.streams.video[0]
        stream = container.add_stream_from_template(source_stream)
        for number, packet in enumerate(source_container.demux(source_stream)):
            if packet.dts is None:
                continue  # the end-of-stream packet
            pts, dts, time_base = packet.pts, packet.dts, packet.time_base
            packet.stream = stream
            container.mux(packet)
            if number == after:
                frameless = av.Packet(bytes([0, 0, 0, 2, 0x09, 0xF0]))  # 4-byte length, then the delimiter
                frameless.stream, frameless.time_base = stream, time_base
                frameless.pts, frameless.dts = pts + 1, dts + 1
                container.mux(frameless)
    return path


# Long GOP as in Kinetics-style H.264 (x264's default keyframe interval is 250): here 96 frames per GOP over
# 240 frames, B-frames with a pyramid, no scene-cut keyframes, so seeks land mid-clip on real keyframes.
LONG_GOP_H264 = {"g": "96", "keyint_min": "96", "sc_threshold": "0", "bf": "3"}


def write_decode_corpus(folder: Path) -> dict[str, Path]:
    """Write the corpus into `folder`; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = {
        "h264_long_gop_bframes.mp4": lambda path: write_with_pyav(path, "libx264", 240, LONG_GOP_H264),
        "h264.mkv": lambda path: write_with_pyav(path, "libx264", 90, {"g": "30", "bf": "2"}),
        # I-frames that B-frames before them in display order reference across: containers flag only the IDR.
        "h264_open_gop.mp4": lambda path: write_with_pyav(
            path, "libx264", 90, {"g": "30", "bf": "3", "x264-params": "open-gop=1:scenecut=0"}
        ),
        "xvid.avi": lambda path: write_with_opencv(path, "XVID", 90),
        "mp4v.avi": lambda path: write_with_pyav(path, "mpeg4", 90, {"g": "24"}),
        "mjpg.avi": lambda path: write_with_opencv(path, "MJPG", 40),
        "vp8.webm": lambda path: write_with_pyav(path, "libvpx", 90, {"g": "30"}),
        "vp9.webm": lambda path: write_with_pyav(path, "libvpx-vp9", 90, {"g": "30"}),
        # Frames 40 ms apart, then 120 ms, then 10 ms: the index orders by pts, the rate stated is an average.
        "variable_frame_rate.mkv": lambda path: write_with_pyav(
            path,
            "libx264",
            80,
            {"g": "20"},
            pts=[40 * n if n < 30 else 1200 + 120 * (n - 30) if n < 50 else 3600 + 10 * (n - 50) for n in range(80)],
            time_base=Fraction(1, 1000),
        ),
        # MPEG-TS starts its clock at 1.4 s; the frames still count from 0.
        "nonzero_start.ts": lambda path: write_with_pyav(path, "libx264", 90, {"g": "30", "bf": "2"}),
        "nonzero_start.mkv": lambda path: write_with_pyav(
            path, "libx264", 60, {"g": "20"}, pts=[5000 + 40 * n for n in range(60)], time_base=Fraction(1, 1000)
        ),
    }
    paths = {name: write(folder / name) for name, write in corpus.items()}
    paths["truncated.mkv"] = truncated_copy(paths["h264.mkv"], folder / "truncated.mkv", 0.7)
    paths["truncated.avi"] = truncated_copy(paths["xvid.avi"], folder / "truncated.avi", 0.7)
    return paths
