"""A small synthetic UCF101-like dataset, written in seconds without network, for the README and tests.

Each class is a bright disc moving over a textured background. MovingLeft is MovingRight played
backwards (and MovingUp is MovingDown backwards): every frame of one could be a frame of the other,
so a classifier that ignores frame order (mean-pooling) cannot tell them apart while one that reads
the order (an LSTM) can. Bouncing differs in colour and motion and is easy for both. Groups (UCF101's
`_gNN_`) share a background, tint and noise level, so splitting by group makes the test set look new.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from featcache.errors import InputError

MARKER_FILE_NAME = "featcache-demo.json"

# Frame rate written into each video's header: 24 frames (the default) last 2 seconds.
DEMO_VIDEO_FPS = 12.0

# Version of the drawing code, stored in the marker so that a folder drawn by older code is not reused.
_DEMO_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DemoParameters:
    """The arguments of make_demo_data, stored in the marker file to recognise a finished dataset."""

    num_classes: int
    videos_per_class: int
    num_groups: int
    num_frames: int
    image_size: int
    seed: int


@dataclass(frozen=True)
class _Motion:
    """One video's disc: where it is, how big and which colour at time t in [0, 1] (RGB floats 0-255)."""

    start: np.ndarray  # float, shape (2,): x, y as fractions of the frame size
    end: np.ndarray  # float, shape (2,)
    start_radius: float  # fraction of the frame size
    end_radius: float
    start_colour: np.ndarray  # float, shape (3,)
    end_colour: np.ndarray  # float, shape (3,)
    bounces: float = 0.0  # > 0: y goes up and down that many times instead of start -> end


def make_demo_data(
    out_dir: Path,
    num_classes: int = 3,
    videos_per_class: int = 12,
    num_groups: int = 4,
    num_frames: int = 24,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write `OUT/<Class>/v_<Class>_gGG_cCC.avi` (MJPG, `num_frames` frames of image_size x image_size).

    Classes, in this order: MovingRight, MovingLeft, Bouncing, MovingDown, MovingUp (the first
    `num_classes`). Video i of a class is in group i % num_groups + 1. The same arguments give the same
    videos. A folder already holding demo data made with the same arguments is returned as it is.
    Returns out_dir. Raises InputError for bad arguments or a non-empty folder that is not that dataset.
    """
    out_dir = Path(out_dir)
    parameters = DemoParameters(num_classes, videos_per_class, num_groups, num_frames, image_size, seed)
    _check_parameters(parameters)
    if _is_finished_demo_folder(out_dir, parameters):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for class_index, class_name in enumerate(available_demo_classes()[:num_classes]):
        for video_index in range(videos_per_class):
            group = video_index % num_groups + 1
            clip = video_index // num_groups + 1
            frames = _render_video(class_name, class_index, video_index, group, parameters)
            _write_avi(out_dir / class_name / f"v_{class_name}_g{group:02d}_c{clip:02d}.avi", frames)
    # The marker goes last: a folder without it (an interrupted run) is never taken as finished.
    _write_marker(out_dir, parameters)
    return out_dir


def available_demo_classes() -> list[str]:
    """The demo class names, in the order make_demo_data takes them."""
    return list(_CLASS_MOTIONS)


def _check_parameters(parameters: DemoParameters) -> None:
    max_classes = len(_CLASS_MOTIONS)
    if not 1 <= parameters.num_classes <= max_classes:
        raise InputError(f"demo data has 1 to {max_classes} classes, got {parameters.num_classes}")
    if parameters.videos_per_class < 1 or parameters.num_groups < 1:
        raise InputError("demo data needs at least 1 video per class and 1 group")
    if parameters.num_frames < 2:
        raise InputError(f"demo videos need at least 2 frames to show motion, got {parameters.num_frames}")
    if parameters.image_size < 16:
        raise InputError(f"demo videos need an image size of at least 16 pixels, got {parameters.image_size}")


def _is_finished_demo_folder(out_dir: Path, parameters: DemoParameters) -> bool:
    """True for a folder holding this very dataset; False for a new or empty one; InputError otherwise."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; give a new or empty folder for the demo data")
    if not any(out_dir.iterdir()):
        return False
    marker_path = out_dir / MARKER_FILE_NAME
    if not marker_path.is_file():
        raise InputError(
            f"{out_dir} is not empty and holds no finished demo dataset; give a new or empty folder (or delete it)"
        )
    if _read_marker(marker_path) != _marker_content(parameters):
        raise InputError(f"{out_dir} holds demo data made with other settings; give another folder or delete it")
    return True


def _marker_content(parameters: DemoParameters) -> dict:
    return {"format_version": _DEMO_FORMAT_VERSION, "parameters": asdict(parameters)}


def _read_marker(marker_path: Path) -> dict:
    try:
        return json.loads(marker_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"{marker_path} is not a readable demo-data marker ({err}); delete the folder and run again"
        ) from err


def _write_marker(out_dir: Path, parameters: DemoParameters) -> None:
    marker_path = out_dir / MARKER_FILE_NAME
    partial_path = marker_path.with_suffix(".json.partial")
    partial_path.write_text(json.dumps(_marker_content(parameters), indent=2, sort_keys=True) + "\n")
    os.replace(partial_path, marker_path)


def _write_avi(path: Path, frames_rgb: np.ndarray) -> None:
    """Write uint8 RGB frames, shape (num_frames, size, size, 3), as an MJPG .avi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), DEMO_VIDEO_FPS, (width, height))
    try:
        if not writer.isOpened():
            raise InputError(f"cannot write {path} with OpenCV's MJPG writer; check that the folder is writable")
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _render_video(
    class_name: str, class_index: int, video_index: int, group: int, parameters: DemoParameters
) -> np.ndarray:
    """uint8 RGB, shape (num_frames, image_size, image_size, 3), deterministic for the arguments and seed."""
    video_rng = np.random.default_rng([parameters.seed, class_index, video_index])
    group_rng = np.random.default_rng([parameters.seed, 1_000_000 + group])
    background = _group_background(group_rng, parameters.image_size)
    tint = group_rng.uniform(-30, 30, size=3)
    noise_level = group_rng.uniform(2.0, 10.0)
    motion_of, played_backwards = _CLASS_MOTIONS[class_name]
    motion = motion_of(video_rng)
    times = np.linspace(0.0, 1.0, parameters.num_frames)
    if played_backwards:
        times = times[::-1]
    frames = np.stack([_draw_disc(background, motion, time, tint) for time in times])
    noise = video_rng.normal(0.0, noise_level, size=frames.shape)
    return np.clip(frames + noise, 0, 255).astype(np.uint8)


def _group_background(group_rng: np.random.Generator, image_size: int) -> np.ndarray:
    """float RGB, shape (image_size, image_size, 3): a dim colour gradient with soft stripes, one per group."""
    corner_colours = group_rng.uniform(10, 90, size=(2, 3))
    stripe_angle = group_rng.uniform(0, np.pi)
    stripe_period = group_rng.uniform(0.2, 0.5) * image_size
    coordinates = np.arange(image_size) / max(image_size - 1, 1)
    rows, columns = np.meshgrid(coordinates, coordinates, indexing="ij")
    gradient = ((rows + columns) / 2)[..., None]
    background = corner_colours[0] * (1 - gradient) + corner_colours[1] * gradient
    stripes = np.sin(
        (columns * np.cos(stripe_angle) + rows * np.sin(stripe_angle)) * image_size * 2 * np.pi / stripe_period
    )
    return background + 12.0 * stripes[..., None]


def _draw_disc(background: np.ndarray, motion: _Motion, time: float, tint: np.ndarray) -> np.ndarray:
    """float RGB frame: `background` with the disc of `motion` at `time`, its colour shifted by `tint`."""
    image_size = background.shape[0]
    position = motion.start + (motion.end - motion.start) * time
    if motion.bounces > 0:
        # y follows |cos|: from the top to the floor and back, `bounces` times.
        height = abs(np.cos(np.pi * motion.bounces * time))
        position = np.array([position[0], motion.start[1] + (motion.end[1] - motion.start[1]) * (1 - height)])
    radius = motion.start_radius + (motion.end_radius - motion.start_radius) * time
    colour = motion.start_colour + (motion.end_colour - motion.start_colour) * time + tint
    coordinates = np.arange(image_size) + 0.5
    distance = np.hypot(
        coordinates[None, :] - position[0] * image_size, coordinates[:, None] - position[1] * image_size
    )
    # A soft edge (one pixel wide) keeps the disc's size visible at 16 pixels and survives JPEG.
    coverage = np.clip(radius * image_size - distance + 0.5, 0.0, 1.0)[..., None]
    return background * (1 - coverage) + np.clip(colour, 0, 255) * coverage


def _horizontal_sweep(video_rng: np.random.Generator) -> _Motion:
    """Left to right, growing, warm to cool; MovingLeft plays it backwards."""
    y = video_rng.uniform(0.3, 0.7)
    return _Motion(
        start=np.array([video_rng.uniform(0.12, 0.22), y]),
        end=np.array([video_rng.uniform(0.78, 0.88), y + video_rng.uniform(-0.1, 0.1)]),
        start_radius=video_rng.uniform(0.07, 0.09),
        end_radius=video_rng.uniform(0.15, 0.18),
        start_colour=np.array([250.0, 90.0, 40.0]) + video_rng.uniform(-15, 5, size=3),
        end_colour=np.array([60.0, 170.0, 250.0]) + video_rng.uniform(-15, 5, size=3),
    )


def _vertical_sweep(video_rng: np.random.Generator) -> _Motion:
    """Top to bottom, shrinking, yellow to magenta; MovingUp plays it backwards."""
    x = video_rng.uniform(0.3, 0.7)
    return _Motion(
        start=np.array([x, video_rng.uniform(0.12, 0.22)]),
        end=np.array([x + video_rng.uniform(-0.1, 0.1), video_rng.uniform(0.78, 0.88)]),
        start_radius=video_rng.uniform(0.15, 0.18),
        end_radius=video_rng.uniform(0.07, 0.09),
        start_colour=np.array([250.0, 230.0, 60.0]) + video_rng.uniform(-15, 5, size=3),
        end_colour=np.array([220.0, 60.0, 230.0]) + video_rng.uniform(-15, 5, size=3),
    )


def _bounce(video_rng: np.random.Generator) -> _Motion:
    """Up and down in place, green, constant size."""
    x = video_rng.uniform(0.3, 0.7)
    radius = video_rng.uniform(0.1, 0.13)
    colour = np.array([70.0, 235.0, 100.0]) + video_rng.uniform(-15, 15, size=3)
    return _Motion(
        start=np.array([x, 0.2]),
        end=np.array([x, 0.8]),
        start_radius=radius,
        end_radius=radius,
        start_colour=colour,
        end_colour=colour,
        bounces=video_rng.uniform(1.5, 2.5),
    )


# class name -> (motion drawn for one video, played backwards). Order fixes which classes
# num_classes keeps: the first two are each other's reverse.
_CLASS_MOTIONS: dict[str, tuple[Callable[[np.random.Generator], _Motion], bool]] = {
    "MovingRight": (_horizontal_sweep, False),
    "MovingLeft": (_horizontal_sweep, True),
    "Bouncing": (_bounce, False),
    "MovingDown": (_vertical_sweep, False),
    "MovingUp": (_vertical_sweep, True),
}
