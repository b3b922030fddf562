"""Variable-length caches (`--frames 0`), the head's T, content duplicates (info, train's leak warning),
one opened Cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from featcache.cache import CacheWriter, ShardVideo, open_cache, write_shard
from featcache.cache.describe import describe_cache
from featcache.cli import app
from featcache.config import HeadConfig, SamplingConfig, TrainConfig
from featcache.errors import InputError
from featcache.video.sampling import fps_frame_indices

FEATURE_DIM = 6
CLASSES = ["Alpha", "Beta", "Gamma"]
SETTINGS = {
    "extractor": {
        "name": "scratch_cnn",
        "weights": "random",
        "seed": 0,
        "handle": None,
        "image_size": 32,
        "feature_dim": FEATURE_DIM,
    },
    "sampling": {"num_frames": 0, "mode": "fps", "fps": 1.0},
    "dtype": "float32",
}


@pytest.fixture
def variable_length_cache(tmp_path: Path) -> Path:
    """3 classes x 8 videos of 1..15 frames; class c lights dimension c;
    Alpha's clips 000 and 001 have the same contents."""
    rng = np.random.default_rng(0)
    videos = []
    for class_number, class_name in enumerate(CLASSES):
        for number in range(8):
            length = int(rng.integers(1, 16))
            features = rng.normal(0, 0.1, (length, FEATURE_DIM)).astype(np.float32)
            features[:, class_number] += 1.0
            contents = f"{class_number}-{number}"
            videos.append(
                ShardVideo(
                    f"{class_name}/clip_{number:03d}.mp4",
                    class_name,
                    f"{class_name}{number}",
                    f"999:{contents}",
                    features,
                    np.arange(length, dtype=np.int32) * 25,
                    np.arange(length, dtype=np.float32) * 1000,
                    25.0,
                    25 * length,
                    32,
                    32,
                )
            )
    videos[1] = ShardVideo(**{**videos[1].__dict__, "fingerprint": videos[0].fingerprint})  # a copy under another name
    cache_path = tmp_path / "dense.h5"
    with CacheWriter.open(cache_path, SETTINGS, FEATURE_DIM) as writer:
        writer.adopt_shard(write_shard(writer.shard_folder, videos, "float32", SETTINGS))
        writer.commit()
    return cache_path


def test_frames_zero_is_every_sampled_frame_and_only_with_fps_sampling() -> None:
    assert list(fps_frame_indices(100, 25.0, 1.0, 0)) == [
        0,
        25,
        50,
        75,
    ]  # a 4 s video at 1 fps: 4 rows, not padded to any T
    assert len(fps_frame_indices(25 * 600, 25.0, 1.0, 0)) == 600  # 10 minutes at 1 fps: 600 rows
    with pytest.raises(InputError, match="0 with --sampling fps"):
        SamplingConfig(num_frames=0)


def test_info_reports_the_same_video_under_two_paths(variable_length_cache: Path) -> None:
    description = describe_cache(variable_length_cache)
    assert description["duplicates"] == [["Alpha/clip_000.mp4", "Alpha/clip_001.mp4"]]
    assert description["variable_length"] and description["num_frames"] == int(
        open_cache(variable_length_cache).index.lengths.max()
    )
    result = CliRunner().invoke(app, ["info", str(variable_length_cache)])
    assert (
        result.exit_code == 0 and "same video under 2 paths" in result.output and "every sampled frame" in result.output
    )


def test_train_takes_t_frames_warns_about_leaks_and_accepts_an_opened_cache(
    variable_length_cache: Path, tmp_path: Path
) -> None:
    from featcache.inference.evaluate import evaluate
    from featcache.training.train import train

    cache = open_cache(variable_length_cache)
    split_file = tmp_path / "split.csv"
    rows = [
        (
            path,
            "test"
            if path.endswith(("clip_001.mp4", "clip_007.mp4"))
            else "val"
            if path.endswith("clip_006.mp4")
            else "train",
        )
        for path in cache.index.paths
    ]
    split_file.write_text("path,subset\n" + "".join(f"{path},{subset}\n" for path, subset in rows))
    messages: list[str] = []
    config = TrainConfig(epochs=2, batch_size=8, split_file=str(split_file), frames=4)
    result = train(cache, tmp_path / "model", HeadConfig(units=4, dense=4), config, progress=messages.append)
    leak_warnings = [message for message in messages if message.startswith("warning:")]
    assert len(leak_warnings) == 1 and "Alpha/clip_000.mp4 = Alpha/clip_001.mp4" in leak_warnings[0]
    assert result.model.inputs[0].shape[1] == 4
    assert json.loads((tmp_path / "model" / "featcache.json").read_text())["training"]["frames"] == 4
    split_csv = (tmp_path / "model" / "split.csv").read_text().splitlines()
    assert split_csv[0] == "path,subset,fingerprint" and split_csv[1].endswith(cache.index.fingerprints[0])
    report = evaluate(tmp_path / "model", cache)
    assert (report.subset, report.num_videos) == ("test", 6)
