"""Decoding in worker processes: a decoder crash costs one video, never the run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from featcache.cache import read_cache_index
from featcache.cli import app
from featcache.config import SamplingConfig
from featcache.embedding.batching import decode_videos
from featcache.errors import VideoDecodeError
from featcache.video.decode import SampledFrames
from featcache.video.decode_workers import CRASH_DECODER_ENV, describe_exit_status
from featcache.video.find import find_videos

RUNNER = CliRunner()
SMALL = ["--weights", "random", "--image-size", "16", "--frames", "4", "--workers", "2"]


def test_a_crashing_decoder_costs_one_video(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CRASH_DECODER_ENV, "v_Alpha_g02_c01.avi")
    cache_path = tmp_path / "cache.h5"
    result = RUNNER.invoke(app, ["embed", str(tiny_dataset), "--out", str(cache_path), *SMALL])
    assert result.exit_code == 1, result.output
    assert "5 embedded, 0 already cached, 1 failed of 6 videos" in result.output
    assert "Alpha/v_Alpha_g02_c01.avi: decoder crashed: signal 11 (SIGSEGV)" in result.output
    index = read_cache_index(cache_path)
    assert dict(index.failures) == {"Alpha/v_Alpha_g02_c01.avi": "decoder crashed: signal 11 (SIGSEGV)"}
    _, entries = find_videos(tiny_dataset)
    assert sorted(index.paths) == sorted(
        entry.relative_path for entry in entries if entry.path.name != "v_Alpha_g02_c01.avi"
    )


def test_videos_after_a_crash_come_back_in_order_and_right(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replacement worker decodes what follows exactly as an undisturbed run does."""
    _, entries = find_videos(tiny_dataset)
    sampling = SamplingConfig(num_frames=4)
    undisturbed = list(decode_videos(entries, sampling, 16, num_workers=2))
    monkeypatch.setenv(CRASH_DECODER_ENV, entries[1].path.name)
    crashed = list(decode_videos(entries, sampling, 16, num_workers=2))
    assert [entry for entry, _ in crashed] == entries
    assert isinstance(crashed[1][1], VideoDecodeError) and "decoder crashed: signal 11" in str(crashed[1][1])
    for (_, expected), (_, got) in zip(undisturbed[:1] + undisturbed[2:], crashed[:1] + crashed[2:]):
        assert isinstance(got, SampledFrames)
        np.testing.assert_array_equal(got.frames, expected.frames)


def test_a_file_name_that_is_not_utf8_is_embedded(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    """Was a segfault (OpenCV given the name as text); now embedded and stored with \\xNN escapes."""
    good = tiny_dataset / "Beta" / "v_Beta_g01_c01.avi"
    Path(os.fsdecode(os.fsencode(good.parent) + b"/bad\xff\xfe.avi")).write_bytes(good.read_bytes())
    cache_path = tmp_path / "cache.h5"
    result = RUNNER.invoke(app, ["embed", str(tiny_dataset), "--out", str(cache_path), *SMALL])
    assert result.exit_code == 0, result.output
    assert "7 embedded" in result.output
    assert "Beta/bad\\xff\\xfe.avi" in read_cache_index(cache_path).paths
    again = RUNNER.invoke(app, ["embed", str(tiny_dataset), "--out", str(cache_path), *SMALL])
    assert again.exit_code == 0 and "0 embedded, 7 already cached" in again.output


def test_csv_rows_outside_its_folder_need_the_option_and_are_said(
    tmp_path: Path, tiny_dataset: Path, fake_extractor: list
) -> None:
    csv_path = tmp_path / "lists" / "videos.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("path,label\n../videos/Alpha/v_Alpha_g01_c01.avi,Alpha\n")
    cache_path = tmp_path / "cache.h5"
    refused = RUNNER.invoke(app, ["embed", str(csv_path), "--out", str(cache_path), *SMALL])
    assert refused.exit_code == 2 and "--allow-outside-root" in refused.output and "Traceback" not in refused.output
    allowed = RUNNER.invoke(app, ["embed", str(csv_path), "--out", str(cache_path), *SMALL, "--allow-outside-root"])
    assert allowed.exit_code == 0, allowed.output
    assert "1 video(s) lie outside the CSV's folder and are stored by the paths as written" in allowed.output
    assert read_cache_index(cache_path).paths == ["../videos/Alpha/v_Alpha_g01_c01.avi"]


@pytest.mark.parametrize(
    ("returncode", "description"),
    [
        (-signal.SIGSEGV, "signal 11 (SIGSEGV)"),
        (-signal.SIGKILL, "signal 9 (SIGKILL, killed from outside, e.g. out of memory)"),
        (3, "exit status 3"),
    ],
)
def test_describe_exit_status(returncode: int, description: str) -> None:
    assert describe_exit_status(returncode) == description


def test_a_decode_worker_loads_no_model_library() -> None:
    # What the worker's bootstrap imports (featcache.video.decode_workers from the parent's featcache): no Keras,
    # TensorFlow or h5py, so a worker starts in well under a second and stays small.
    import subprocess
    import sys

    from featcache.video import decode_workers

    package_parent = str(Path(decode_workers.__file__).resolve().parents[2])
    probe = (
        f"import sys; sys.path.insert(0, {package_parent!r}); import featcache.video.decode_workers; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'h5py') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
