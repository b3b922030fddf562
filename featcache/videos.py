"""Finding the videos of a dataset: UCF101 folder layout or a CSV list, with labels and groups.

STUB: interface fixed, body to be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm")


@dataclass(frozen=True)
class VideoEntry:
    """One video to embed.

    path: absolute path of the file.
    relative_path: POSIX path relative to the dataset root (what the cache stores and resumes by).
    label: class name.
    group: group id as text ("3" for UCF101's `_g03_`), "" when the video has none.
    """

    path: Path
    relative_path: str
    label: str
    group: str


def parse_ucf101_group(file_name: str) -> str:
    """`v_PlayingCello_g03_c02.avi` -> "3"; "" for names not in UCF101's pattern."""
    raise NotImplementedError


def find_videos(source: Path) -> tuple[Path, list[VideoEntry]]:
    """List the videos of a dataset, sorted by relative path.

    source: a folder `ROOT/<ClassName>/<video>` (extensions in VIDEO_EXTENSIONS, case-insensitive), or a
    CSV file with a header `path,label[,group]` whose relative paths are relative to the CSV's folder.
    Returns (root, entries); root is the folder relative paths are taken from.
    Raises InputError for a missing or empty source, no class folders, or a malformed CSV.
    """
    raise NotImplementedError
