"""Property-based fuzzing of `featcache embed` through the CLI: damaged videos, CSV lists, option values.

Invariant, whatever the input: exit status 0, 1 or 2, no traceback, and when the run finished (0 or 1) a
readable cache holding every undamaged video, every damaged one either embedded or listed in failures.
FEATCACHE_FUZZ_EXAMPLES sets the number of examples (default 12, ~30 s; `benchmarks/fuzz_nightly.sh` runs 2000).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import numbered_frames, write_video
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featcache.cache import read_cache_index
from featcache.cli import app

RUNNER = CliRunner()
NUM_EXAMPLES = int(os.environ.get("FEATCACHE_FUZZ_EXAMPLES", "12"))
GOOD_VIDEOS = ["Alpha/good_a.avi", "Beta/good_b.avi"]


@pytest.fixture(scope="module")
def good_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 24x24 MJPG video; its bytes are what damaged videos are made from."""
    return write_video(tmp_path_factory.mktemp("fuzz") / "good.avi", numbered_frames(12, size=24))


@st.composite
def damaged_videos(draw: st.DrawFn, good: bytes) -> bytes:
    """A truncation, a few bit flips, or random bytes, of the small valid video."""
    kind = draw(st.sampled_from(["truncated", "bit_flips", "random_bytes", "empty"]))
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "bit_flips":
        data = bytearray(good)
        for position in draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=8)):
            data[position] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "random_bytes":
        return draw(st.binary(min_size=1, max_size=4096))
    return b""


OPTION_VALUES = {
    "--frames": st.one_of(st.integers(1, 6), st.sampled_from(["0", "-3", "100000000", "nan", "1e3", "x"])),
    "--image-size": st.one_of(st.integers(8, 20), st.sampled_from(["0", "-1", "7", "100000", "inf"])),
    "--batch-size": st.one_of(st.integers(1, 9), st.sampled_from(["0", "-5", "99999999"])),
    "--workers": st.one_of(st.integers(0, 2), st.sampled_from(["-1", "100000"])),
    "--fps": st.one_of(st.floats(0.5, 30), st.sampled_from(["nan", "inf", "-inf", "0", "-2", "1e308"])),
}


@st.composite
def embed_commands(draw: st.DrawFn) -> tuple[list[str], bool]:
    """Options (mostly valid, sometimes absurd) and whether the videos are given as a CSV list."""
    arguments = ["--extractor", "scratch_cnn", "--weights", "random", "--dtype", "float32"]
    for option, values in OPTION_VALUES.items():
        if option == "--fps":
            continue
        arguments += [option, str(draw(values))] if draw(st.booleans()) else []
    if draw(st.booleans()):
        arguments += ["--sampling", "fps", "--fps", str(draw(OPTION_VALUES["--fps"]))]
    if "--image-size" not in arguments:
        arguments += ["--image-size", "16"]
    if "--frames" not in arguments:
        arguments += ["--frames", "3"]
    if "--workers" not in arguments:
        arguments += ["--workers", "1"]
    return arguments, draw(st.booleans())


CSV_LABELS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), min_size=0, max_size=6)


@settings(
    max_examples=NUM_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_embed_never_crashes_and_keeps_every_good_video(good_video: Path, data: st.DataObject) -> None:
    good_video_bytes = good_video.read_bytes()
    arguments, as_csv = data.draw(embed_commands())
    damaged = data.draw(st.lists(damaged_videos(good_video_bytes), min_size=0, max_size=3))
    with tempfile.TemporaryDirectory(prefix="featcache-fuzz-") as folder:
        root = Path(folder) / "videos"
        for relative_path in GOOD_VIDEOS:
            (root / relative_path).parent.mkdir(parents=True, exist_ok=True)
            (root / relative_path).write_bytes(good_video_bytes)
        damaged_paths = [f"Beta/damaged_{number}.avi" for number in range(len(damaged))]
        for relative_path, content in zip(damaged_paths, damaged):
            (root / relative_path).write_bytes(content)
        source = root
        if as_csv:
            source = root / "list.csv"
            rows = [f"{path},{data.draw(CSV_LABELS).replace(',', ';') or 'x'}" for path in GOOD_VIDEOS + damaged_paths]
            encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
            source.write_bytes(("path,label\n" + "\n".join(rows) + "\n").encode(encoding, errors="replace"))
        cache_path = Path(folder) / "cache.h5"
        result = RUNNER.invoke(app, ["embed", str(source), "--out", str(cache_path), *arguments])

        assert result.exit_code in (0, 1, 2), (arguments, result.output, result.exception)
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if result.exit_code == 2:
            # Ours: one "Error: ..." line; typer's own (a value that is not a number): its usage box.
            assert result.output.count("Error: ") == 1 or "Invalid value for" in result.output, result.output
            return
        index = read_cache_index(cache_path)
        assert set(GOOD_VIDEOS) <= set(index.paths), result.output
        failed = {path for path, _ in index.failures}
        assert set(damaged_paths) <= set(index.paths) | failed
        assert (result.exit_code == 1) == bool(failed)
    shutil.rmtree(folder, ignore_errors=True)
