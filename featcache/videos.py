"""Finding the videos of a dataset: UCF101 folder layout or a CSV list, with labels and groups."""

from __future__ import annotations

import csv
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from featcache.errors import InputError

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


def find_videos(source: Path) -> tuple[Path, list[VideoEntry]]:
    """List the videos of a dataset, sorted by relative path.

    source: a folder `ROOT/<ClassName>/<video>` (extensions in VIDEO_EXTENSIONS, case-insensitive), or a
    CSV file with a header `path,label[,group]` whose relative paths are relative to the CSV's folder.
    Returns (root, entries); root is the folder relative paths are taken from.
    Raises InputError for a missing or empty source, no class folders, or a malformed CSV.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise InputError(f"{source} does not exist; pass a folder laid out as ROOT/<ClassName>/<video> or a CSV with columns path,label[,group]")
    if source.is_dir():
        root = source.resolve()
        entries = _find_videos_in_folder(root)
    elif source.is_file() and source.suffix.lower() == ".csv":
        root = source.resolve().parent
        entries = _find_videos_in_csv(source.resolve())
    else:
        raise InputError(f"{source} is neither a folder nor a .csv file; pass a folder laid out as ROOT/<ClassName>/<video> or a CSV with columns path,label[,group]")
    return root, sorted(entries, key=lambda entry: entry.relative_path)


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_video_file(path: Path) -> bool:
    return path.is_file() and not _is_hidden(path) and path.suffix.lower() in VIDEO_EXTENSIONS


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
        if _is_video_file(video_path)
    ]
    if not entries:
        extensions = " ".join(VIDEO_EXTENSIONS)
        raise InputError(f"no videos ({extensions}) in the class folders of {root}; put videos in {root}/<ClassName>/<video>")
    return entries


def _find_videos_in_csv(csv_path: Path) -> list[VideoEntry]:
    """Rows of a `path,label[,group]` CSV; a non-empty group cell wins over the UCF101 name's group."""
    root = csv_path.parent
    # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
    with csv_path.open(newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file)
        columns = [column.strip() for column in reader.fieldnames or []]
        missing_columns = [column for column in _CSV_REQUIRED_COLUMNS if column not in columns]
        if missing_columns:
            raise InputError(f"{csv_path}: missing column(s) {', '.join(missing_columns)}; the first line must be a header path,label[,group]")
        reader.fieldnames = columns
        entries = [_csv_row_to_entry(csv_path, root, row, reader.line_num) for row in reader]
    if not entries:
        raise InputError(f"{csv_path} lists no videos; add rows path,label[,group] below the header")
    _check_csv_entries(csv_path, entries)
    return entries


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
    missing = [entry.relative_path for entry in entries if not entry.path.is_file()]
    if missing:
        named = ", ".join(missing[:_MAX_NAMED_MISSING])
        more = f" and {len(missing) - _MAX_NAMED_MISSING} more" if len(missing) > _MAX_NAMED_MISSING else ""
        raise InputError(f"{csv_path} lists {len(missing)} file(s) that do not exist: {named}{more}; relative paths are taken from {csv_path.parent}")
    seen: set[str] = set()
    for entry in entries:
        if entry.relative_path in seen:
            raise InputError(f"{csv_path} lists {entry.relative_path} more than once; list each video once")
        seen.add(entry.relative_path)
