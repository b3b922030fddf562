"""`embed --decoder auto|seek|sequential`: the same features whichever decodes, the decoder recorded per video."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import numbered_frames, write_video
from shard_format1_writer import old_style_shards
from typer.testing import CliRunner

from featcache.cache import read_all_features, shard_folder_for
from featcache.cache.describe import describe_cache, format_cache_description
from featcache.cache.maintenance import compact_cache
from featcache.cli import app
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding.embed import embed
from featcache.errors import InputError

RUNNER = CliRunner()


def _config(decoder: str) -> EmbedConfig:
    return EmbedConfig(
        extractor=ExtractorConfig(name="mobilenet_v2", weights="random", image_size=32),
        sampling=SamplingConfig(num_frames=4),
        num_decode_workers=1,
        decoder=decoder,
    )


@pytest.fixture
def numbered_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "numbered"
    for class_name in ("Ascending", "Other"):
        for group, num_frames in ((1, 12), (2, 8), (3, 2)):
            write_video(root / class_name / f"v_{class_name}_g{group:02d}_c01.avi", numbered_frames(num_frames))
    return root


def test_seek_and_sequential_caches_hold_the_same_features_and_say_how(
    numbered_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    seek_summary = embed(numbered_dataset, tmp_path / "seek.h5", _config("seek"))
    sequential_summary = embed(numbered_dataset, tmp_path / "sequential.h5", _config("sequential"))
    assert seek_summary.decoders == {"seek": 6} and sequential_summary.decoders == {"sequential": 6}
    np.testing.assert_array_equal(
        read_all_features(tmp_path / "seek.h5"), read_all_features(tmp_path / "sequential.h5")
    )
    with h5py.File(tmp_path / "seek.h5", "r") as seek, h5py.File(tmp_path / "sequential.h5", "r") as sequential:
        np.testing.assert_array_equal(seek["frame_indices"][()], sequential["frame_indices"][()])
    assert describe_cache(tmp_path / "seek.h5")["decoders"] == {"seek": 6}
    assert "decoded: 6 sequential" in format_cache_description(describe_cache(tmp_path / "sequential.h5"))


def test_a_sequentially_embedded_cache_goes_on_with_seeking(
    numbered_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    """The decoder is not a setting features depend on: changing it is no settings mismatch."""
    cache_path = tmp_path / "cache.h5"
    embed(numbered_dataset, cache_path, _config("sequential"))
    write_video(numbered_dataset / "Other" / "v_Other_g04_c01.avi", numbered_frames(10))
    summary = embed(numbered_dataset, cache_path, _config("seek"))
    assert (summary.num_embedded, summary.num_already_cached, summary.decoders) == (1, 6, {"seek": 1})
    assert describe_cache(cache_path)["decoders"] == {"sequential": 6, "seek": 1}


def test_shards_written_before_the_decoder_was_recorded_still_read(
    numbered_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    cache_path = tmp_path / "cache.h5"
    with old_style_shards():  # featcache 0.2's shard writer: no `decoders`
        embed(numbered_dataset, cache_path, _config("auto"))
    for shard in shard_folder_for(cache_path).glob("*.h5"):
        with h5py.File(shard, "r") as handle:
            assert "decoders" not in handle
    assert describe_cache(cache_path)["decoders"] == {"unrecorded": 6}
    compact_cache(cache_path)  # old rows are carried over as unrecorded, never guessed
    assert describe_cache(cache_path)["decoders"] == {"unrecorded": 6}


def test_auto_says_why_it_decoded_sequentially(tmp_path: Path, fake_extractor: list) -> None:
    root = tmp_path / "videos"
    write_video(root / "A" / "v_A_g01_c01.avi", numbered_frames(12))
    summary = embed(root, tmp_path / "cache.h5", _config("auto"))
    # 12 MJPG frames are all keyframes: seeking decodes the 4 sampled frames only, which auto takes.
    assert summary.decoders == {"seek": 1}
    dense = EmbedConfig(**{**_config("auto").__dict__, "sampling": SamplingConfig(num_frames=12)})
    summary = embed(root, tmp_path / "dense.h5", dense)
    assert summary.decoders == {
        "sequential: auto: seeking would decode more than 6 of 12 frames (by the container's index)": 1
    }


def test_an_unknown_decoder_is_refused() -> None:
    with pytest.raises(InputError, match="unknown --decoder / decoder 'fast'; choose one of auto, seek, sequential"):
        _config("fast")


def test_the_cli_takes_the_decoder_and_prints_how_videos_were_decoded(
    numbered_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    options = ["--weights", "random", "--image-size", "32", "--frames", "4", "--workers", "1"]
    result = RUNNER.invoke(
        app, ["embed", str(numbered_dataset), "--out", str(tmp_path / "c.h5"), *options, "--decoder", "seek"]
    )
    assert result.exit_code == 0, result.output
    assert "decoded: 6 seek" in result.output
    result = RUNNER.invoke(app, ["embed", str(numbered_dataset), "--out", str(tmp_path / "d.h5"), "--decoder", "fast"])
    assert result.exit_code == 2 and "fast" in result.output
