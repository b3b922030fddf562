"""The journal of an embed run in progress: `CACHE.h5.parts/`, so a crash loses at most one part.

Layout:
  CACHE.h5.parts/identity.json    the settings every part was embedded with (extractor, sampling, dtype)
  CACHE.h5.parts/part-000001.npz  a few finished videos (features and per-video arrays) and failures

Each file appears by write-to-temporary, fsync, `os.replace`: after Ctrl-C, `kill -9` or power loss every
part present is whole. HDF5 itself is not crash-safe for in-place appends, which is why the cache file is
only written once, at the end, from the journal (`cache.write_cache`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from featcache.cache import VIDEO_DATASETS, VideoRows

PART_GLOB = "part-*.npz"
ROW_ARRAYS = ["features", "frame_indices", "timestamps_ms", *VIDEO_DATASETS]
ROW_STRINGS = ["labels", "paths", "groups"]


@dataclass
class JournalContents:
    """What the journal holds: readable parts, their failures, and parts that could not be read."""

    parts: list[Path] = field(default_factory=list)
    embedded_paths: set[str] = field(default_factory=set)
    label_names: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)
    unreadable_parts: list[str] = field(default_factory=list)


class Journal:
    """The `<cache>.parts` folder next to a cache file."""

    def __init__(self, cache_path: Path) -> None:
        self.folder = Path(f"{cache_path}.parts")
        self.identity_path = self.folder / "identity.json"

    def exists(self) -> bool:
        return self.identity_path.exists()

    def has_parts(self) -> bool:
        return any(self.folder.glob(PART_GLOB))

    def read_identity(self) -> dict[str, Any]:
        return json.loads(self.identity_path.read_text())

    def start(self, identity: dict[str, Any]) -> None:
        """Create the folder and record the settings; leftovers of an unfinished write are removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()
        if not self.exists():
            _write_atomically(self.identity_path, json.dumps(identity, sort_keys=True, indent=1).encode())

    def append(self, rows: VideoRows | None, failures: dict[str, str]) -> Path:
        """Write one part with these finished videos (may be None) and failures."""
        arrays: dict[str, np.ndarray] = {
            "failure_paths": np.array(list(failures), dtype=str),
            "failure_reasons": np.array(list(failures.values()), dtype=str),
        }
        if rows is not None and rows.num_videos:
            arrays.update({name: np.asarray(getattr(rows, name)) for name in ROW_ARRAYS})
            arrays.update({name: np.array(getattr(rows, name), dtype=str) for name in ROW_STRINGS})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        part_path = self.folder / f"part-{self._next_part_number():06d}.npz"
        _write_atomically(part_path, buffer.getvalue())
        return part_path

    def _next_part_number(self) -> int:
        numbers = [int(part.stem.split("-")[1]) for part in self.folder.glob(PART_GLOB)]
        return max(numbers, default=0) + 1

    def read_contents(self) -> JournalContents:
        """Which videos the parts hold and which failed; unreadable parts are named, not hidden."""
        contents = JournalContents()
        for part_path in sorted(self.folder.glob(PART_GLOB)):
            try:
                with np.load(part_path) as part:
                    paths = [str(path) for path in part["paths"]] if "paths" in part else []
                    labels = [str(label) for label in part["labels"]] if "labels" in part else []
                    failures = dict(zip(map(str, part["failure_paths"]), map(str, part["failure_reasons"])))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                contents.unreadable_parts.append(f"{part_path.name}: {err}")
                continue
            contents.parts.append(part_path)
            contents.embedded_paths.update(paths)
            contents.label_names.update(labels)
            contents.failures.update(failures)
        for video_path in contents.embedded_paths:
            contents.failures.pop(video_path, None)
        return contents

    def iter_rows(self, parts: list[Path]) -> Iterator[VideoRows]:
        """The videos of these parts, one VideoRows per part that holds any."""
        for part_path in parts:
            with np.load(part_path) as part:
                if "paths" not in part:
                    continue
                yield VideoRows(
                    **{name: part[name] for name in ROW_ARRAYS},
                    **{name: [str(value) for value in part[name]] for name in ROW_STRINGS},
                )

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=False)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary_path = path.with_name(path.name + ".tmp")
    with open(temporary_path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary_path, path)
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk (power loss, not just a crash).
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
