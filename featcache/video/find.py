"""Finding the videos of a dataset: UCF101 folder layout or a CSV list, with labels and groups."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from featcache.errors import InputError
from featcache.user_text import read_user_csv

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm")

# UCF101 names every clip v_<Action>_g<group>_c<clip>.<ext>; the group is the performer/scene, which
# train/test splits must keep apart.
_UCF101_NAME = re.compile(r"v_.+_g(\d+)_c\d+\.[^.]+")

_CSV_REQUIRED_COLUMNS = ("path", "label")

# How many missing files a CSV error names before it says "and N more".
_MAX_NAMED_MISSING = 5


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

    @property
    def is_outside_root(self) -> bool:
        """A CSV row naming a file outside the CSV's folder (`../x.avi` or absolute), stored as written."""
        return self.relative_path.startswith("../") or self.relative_path == ".." or posixpath.isabs(self.relative_path)


def storable_relative_path(relative_path: str) -> str:
    """The path as the cache stores it: bytes that are not UTF-8 become `\\xNN` escapes.

    Python decodes such bytes in file names (old archives, other filesystems) as lone surrogates, which
    neither HDF5 nor JSON can store. `B/bad\\xff\\xfe.avi` is stored for the bytes `B/bad` 0xFF 0xFE `.avi`;
    valid UTF-8 names are stored unchanged.
    """
    return os.fsencode(relative_path).decode("utf-8", errors="backslashreplace")


def parse_ucf101_group(file_name: str) -> str:
    """`v_PlayingCello_g03_c02.avi` -> "3"; "" for names not in UCF101's pattern."""
    match = _UCF101_NAME.fullmatch(file_name)
    if match is None:
        return ""
    return str(int(match.group(1)))


def find_videos(source: Path, allow_outside_root: bool = False) -> tuple[Path, list[VideoEntry]]:
    """List the videos of a dataset, sorted by relative path.

    source: a folder `ROOT/<ClassName>/<video>` (extensions in VIDEO_EXTENSIONS, case-insensitive), or a
    CSV file with a header `path,label[,group]` whose relative paths are relative to the CSV's folder.
    Anything but a folder in a class folder named like a video is listed, even when it is not a regular
    file (a FIFO, a device, a broken link): decoding then reports it as a failure with the reason.
    allow_outside_root: accept CSV rows naming files outside the CSV's folder (`../x.avi`, absolute paths);
    they are stored as written. Without it such rows are an InputError: a cache names videos by their
    path below the root, and a path outside it does not move with the dataset.
    Returns (root, entries); root is the folder relative paths are taken from.
    Raises InputError for a missing or empty source, no class folders, or a malformed CSV.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise InputError(
            f"{source} does not exist; "
            "pass a folder laid out as ROOT/<ClassName>/<video> or a CSV with columns path,label[,group]"
        )
    if source.is_dir():
        root = source.resolve()
        entries = _find_videos_in_folder(root)
    elif source.is_file() and source.suffix.lower() == ".csv":
        root = source.resolve().parent
        entries = _find_videos_in_csv(source.resolve(), allow_outside_root)
    else:
        raise InputError(
            f"{source} is neither a folder nor a .csv file; "
            "pass a folder laid out as ROOT/<ClassName>/<video> or a CSV with columns path,label[,group]"
        )
    return root, sorted(entries, key=lambda entry: entry.relative_path)


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_named_like_a_video(path: Path) -> bool:
    """Not hidden, a video extension, not a folder; any other kind of file (FIFO, device, broken link) counts,
    and decoding names what is wrong with it."""
    return not _is_hidden(path) and path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir()


def _find_videos_in_folder(root: Path) -> list[VideoEntry]:
    """Videos directly inside each non-hidden sub-folder of `root`; the sub-folder's name is the label."""
    if not any(root.iterdir()):
        raise InputError(f"{root} is empty; put videos in class folders: {root}/<ClassName>/<video>")
    class_folders = sorted(path for path in root.iterdir() if path.is_dir() and not _is_hidden(path))
    if not class_folders:
        raise InputError(f"{root} has no class folders; put videos in {root}/<ClassName>/<video>")
    entries = [
        VideoEntry(
            path=video_path,
            relative_path=storable_relative_path(video_path.relative_to(root).as_posix()),
            label=class_folder.name,
            group=parse_ucf101_group(video_path.name),
        )
        for class_folder in class_folders
        for video_path in class_folder.iterdir()
        if _is_named_like_a_video(video_path)
    ]
    if not entries:
        extensions = " ".join(VIDEO_EXTENSIONS)
        raise InputError(
            f"no videos ({extensions}) in the class folders of {root}; put videos in {root}/<ClassName>/<video>"
        )
    return entries


def _find_videos_in_csv(csv_path: Path, allow_outside_root: bool) -> list[VideoEntry]:
    """Rows of a `path,label[,group]` CSV; a non-empty group cell wins over the UCF101 name's group."""
    root = csv_path.parent
    rows = read_user_csv(csv_path)
    columns = [column.strip() for column in rows[0][1]] if rows else []
    missing_columns = [column for column in _CSV_REQUIRED_COLUMNS if column not in columns]
    if missing_columns:
        raise InputError(
            f"{csv_path}: missing column(s) {', '.join(missing_columns)}; "
            "the first line must be a header path,label[,group]"
        )
    entries = [
        _csv_row_to_entry(csv_path, root, dict(zip(columns, fields)), line_number) for line_number, fields in rows[1:]
    ]
    if not entries:
        raise InputError(f"{csv_path} lists no videos; add rows path,label[,group] below the header")
    outside = [entry.relative_path for entry in entries if entry.is_outside_root]
    if outside and not allow_outside_root:
        raise InputError(
            f"{csv_path} names {len(outside)} file(s) by an absolute path or outside its folder "
            f"({_name_some(outside)}); write paths relative to the CSV's folder (move the CSV above every video), "
            "or pass --allow-outside-root to store these paths as written"
        )
    _check_csv_entries(csv_path, entries)
    return entries


def _name_some(paths: list[str]) -> str:
    named = ", ".join(paths[:_MAX_NAMED_MISSING])
    return named + (f" and {len(paths) - _MAX_NAMED_MISSING} more" if len(paths) > _MAX_NAMED_MISSING else "")


def _csv_row_to_entry(csv_path: Path, root: Path, row: dict[str, str | None], line_number: int) -> VideoEntry:
    written_path = (row.get("path") or "").strip()
    label = (row.get("label") or "").strip()
    if not written_path or not label:
        raise InputError(f"{csv_path}, line {line_number}: every row needs a path and a label")
    relative_path = posixpath.normpath(Path(written_path).as_posix())
    video_path = Path(relative_path)
    if not video_path.is_absolute():
        video_path = root / video_path
    group = (row.get("group") or "").strip() or parse_ucf101_group(video_path.name)
    return VideoEntry(path=video_path, relative_path=relative_path, label=label, group=group)


def _check_csv_entries(csv_path: Path, entries: list[VideoEntry]) -> None:
    """Every listed file exists and is listed once (the cache resumes by relative path)."""
    # A listed FIFO, device or broken link exists: decoding reports what is wrong with it as a failure.
    missing = [entry.relative_path for entry in entries if not entry.path.exists() and not entry.path.is_symlink()]
    if missing:
        raise InputError(
            f"{csv_path} lists {len(missing)} file(s) that do not exist: {_name_some(missing)}; "
            f"relative paths are taken from {csv_path.parent}"
        )
    seen: set[str] = set()
    for entry in entries:
        if entry.relative_path in seen:
            raise InputError(f"{csv_path} lists {entry.relative_path} more than once; list each video once")
        seen.add(entry.relative_path)
