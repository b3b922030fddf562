"""A full disk (or another OS write failure) while writing a cache: one line, nothing half-written left, and the same
command re-run afterwards finishes the job."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from featcache.cache import open_cache, read_all_features, shard_folder_for, verify_cache
from featcache.embedding.embed import embed
from featcache.errors import DiskWriteError
from featcache.failpoints import ENVIRONMENT_VARIABLE, ERRNO_ENVIRONMENT_VARIABLE
from featcache.files import DISK_ERRORS, write_atomically

EMBED_ONTO = """
import sys
from types import SimpleNamespace
import numpy as np
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding import local_engine
from featcache.embedding.embed import embed
from featcache.errors import DiskWriteError


def mean_colour(config):  # no Keras: this process is about the disk, and Keras takes long to import
    provenance = {{"name": "mobilenet_v2", "weights": "random", "feature_dim": 3, "preprocessing": "mean colour"}}
    return SimpleNamespace(
        name="mobilenet_v2",
        image_size=16,
        feature_dim=3,
        embed_frames=lambda frames: frames.astype(np.float32).mean(axis=(1, 2)),
        provenance=provenance,
        runtime="keras",
        runtime_note="",
    )


local_engine.build_extractor = mean_colour
local_engine.MAX_VIDEOS_PER_SHARD = 1
config = EmbedConfig(
    extractor=ExtractorConfig(name="mobilenet_v2", weights="random", image_size=16),
    sampling=SamplingConfig(num_frames=4),
    num_decode_workers=1,
)
try:
    embed({root!r}, {cache!r}, config)
except DiskWriteError as err:
    print(f"Error: {{err}}", file=sys.stderr)
    sys.exit(2)
"""


def leftovers(cache_path: Path) -> list[str]:
    """Temporary files and unlisted shards next to the cache."""
    names = [path.name for path in cache_path.parent.iterdir() if path.name.endswith(".tmp")]
    folder = shard_folder_for(cache_path)
    listed = set(open_cache(cache_path).state.shards) if cache_path.exists() else set()
    if folder.is_dir():
        names += [path.name for path in folder.iterdir() if path.name not in listed]
    return names


@pytest.mark.parametrize(
    ("where", "error_name"),
    [
        ("shard-temp-written", "ENOSPC"),
        ("index-temp-written", "ENOSPC"),
        ("index-temp-written", "EROFS"),
    ],
)
def test_an_os_error_while_writing_is_one_line_and_the_rerun_finishes(
    where: str,
    error_name: str,
    tiny_dataset: Path,
    tmp_path: Path,
    fake_extractor: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_embed import FAKE_CONFIG

    cache_path = tmp_path / "cache.h5"
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, where)
    monkeypatch.setenv(ERRNO_ENVIRONMENT_VARIABLE, error_name)
    with pytest.raises(DiskWriteError) as raised:
        embed(tiny_dataset, cache_path, FAKE_CONFIG)
    message = str(raised.value)
    reason, remedy = DISK_ERRORS[getattr(errno, error_name)]
    assert message.startswith(f"{reason} writing ")
    assert message.endswith(f"0 videos embedded so far are kept; {remedy} and re-run the same command")
    assert "\n" not in message
    assert leftovers(cache_path) == []

    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert summary.num_embedded == 6 and verify_cache(cache_path).ok


@pytest.mark.parametrize("error_name", ["EDQUOT", "EIO"])
def test_quota_and_io_errors_are_disk_write_errors_too(error_name: str, tmp_path: Path) -> None:
    def fail(temporary: Path) -> None:
        raise OSError(getattr(errno, error_name), "refused")

    with pytest.raises(
        DiskWriteError, match=re.escape(DISK_ERRORS[getattr(errno, error_name)][0]) + " writing .*out.bin"
    ):
        write_atomically(tmp_path / "out.bin", fail)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 48 KiB tmpfs: a real full disk. Skipped where this process may not mount one (not root, a container)."""
    mount_point = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill up ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_really_full_disk_is_one_line_no_crash_and_keeps_what_was_committed(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    """Many bigger videos, one shard each, onto 48 KiB: the disk fills part way (HDF5 used to segfault here)."""
    from conftest import write_video

    root = tmp_path / "videos"
    rng = np.random.default_rng(0)
    for number in range(16):
        frames = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
        write_video(root / "Alpha" / f"v_Alpha_g{number:02d}_c01.avi", frames)
    cache_path = small_tmpfs / "cache.h5"
    script = EMBED_ONTO.format(root=str(root), cache=str(cache_path))
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert completed.returncode == 2, (completed.returncode, completed.stderr[-2000:])
    assert "Traceback" not in completed.stderr and "RuntimeError" not in completed.stderr, completed.stderr[-2000:]
    (line,) = [line for line in completed.stderr.splitlines() if line.startswith("Error: ")]
    assert "no space left on device writing" in line and "videos embedded so far are kept" in line
    kept = int(line.split(": ")[-1].split(" videos")[0])
    assert leftovers(cache_path) == []
    if cache_path.exists():
        assert verify_cache(cache_path).ok and open_cache(cache_path).index.num_videos == kept
        assert read_all_features(cache_path).shape[0] == kept
