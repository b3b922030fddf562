"""Stage one end to end: videos -> frames -> extractor -> shards + index; resume, add, refuse, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import (
    frame_number_from_level,
    numbered_frames,
    write_video,
)

# embed takes load_extractor from here when it builds a model
import featcache.extractors.registry as extractors_module
from featcache.cache import ShardVideo, read_all_features, read_cache_index, shard_folder_for, write_shard
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding import local_engine
from featcache.embedding.embed import embed
from featcache.errors import CacheMismatchError, InputError
from featcache.extractors.extractor import Extractor
from featcache.extractors.registry import load_extractor
from featcache.files import sha256_file
from featcache.video.decode import read_sampled_frames

NUM_FRAMES = 4
FAKE_CONFIG = EmbedConfig(
    extractor=ExtractorConfig(name="mobilenet_v2", weights="random", image_size=32),
    sampling=SamplingConfig(num_frames=NUM_FRAMES),
    batch_size=5,  # not a multiple of the frames per video: batches span videos
    num_decode_workers=2,
)


@pytest.fixture
def numbered_dataset(tmp_path: Path) -> Path:
    """Two classes; each video's frame i is grey level 20 i + 10, with 12, 8 and 2 (shorter than T) frames."""
    root = tmp_path / "numbered"
    for class_name in ("Ascending", "Other"):
        for group, num_frames in ((1, 12), (2, 8), (3, 2)):
            write_video(root / class_name / f"v_{class_name}_g{group:02d}_c01.avi", numbered_frames(num_frames))
    return root


def test_cache_holds_every_dataset_and_attribute(numbered_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    cache_path = tmp_path / "cache.h5"
    summary = embed(numbered_dataset, cache_path, FAKE_CONFIG)
    assert (summary.num_embedded, summary.num_already_cached, summary.failures) == (6, 0, {})
    with h5py.File(cache_path, "r") as handle:  # plain h5py, the README's layout
        assert handle["features"].shape == (4 + 4 + 2 + 4 + 4 + 2, 3)  # every stored frame, nothing padded
        assert handle["features"].dtype == np.float16 and handle["features"].is_virtual
        np.testing.assert_array_equal(handle["offsets"][()], [0, 4, 8, 10, 14, 18, 20])
        assert handle["lengths"].dtype == np.int32 and handle["labels"].dtype == np.int32
        paths = [value.decode() for value in handle["paths"][()]]
        assert paths == sorted(paths) and paths[0] == "Ascending/v_Ascending_g01_c01.avi"
        assert [value.decode() for value in handle["groups"][()]] == ["1", "2", "3"] * 2
        assert json.loads(handle.attrs["class_names"]) == ["Ascending", "Other"]
        np.testing.assert_array_equal(handle["labels"][()], [0, 0, 0, 1, 1, 1])
        np.testing.assert_array_equal(handle["lengths"][()], [4, 4, 2] * 2)
        np.testing.assert_array_equal(handle["frame_indices"][0:4], [0, 4, 7, 11])  # linspace(0, 11, 4) rounded
        np.testing.assert_array_equal(handle["frame_indices"][8:10], [0, 1])
        np.testing.assert_allclose(handle["timestamps_ms"][0:4], [0, 400, 700, 1100])
        np.testing.assert_array_equal(handle["video_num_frames"][()], [12, 8, 2] * 2)
        np.testing.assert_allclose(handle["video_fps"][()], 10.0)
        np.testing.assert_array_equal(handle["video_width"][()], 32)
        np.testing.assert_array_equal(handle["video_height"][()], 32)
        fingerprints = [value.decode() for value in handle["fingerprints"][()]]
        video_path = numbered_dataset / paths[0]
        assert fingerprints[0].startswith(f"{video_path.stat().st_size}:") and len(fingerprints[0]) > 60
        assert (
            fingerprints[:3] == fingerprints[3:] and len(set(fingerprints)) == 3
        )  # the two classes hold the same videos
        assert handle["failures"].shape == (0,)
        extractor = json.loads(handle.attrs["extractor"])
        assert extractor["name"] == "mobilenet_v2" and extractor["feature_dim"] == 3
        assert json.loads(handle.attrs["sampling"]) == {"num_frames": NUM_FRAMES, "mode": "uniform", "fps": None}
        assert handle.attrs["dtype"] == "float16" and handle.attrs["format_version"] == 2
        assert handle.attrs["featcache_version"] and handle.attrs["created"]
        reader_features = read_all_features(cache_path)
        np.testing.assert_array_equal(handle["features"][8:10].astype(np.float32), reader_features[2, :2])
    assert np.all(reader_features[2, 2:] == 0)  # the reader pads to T for a head; storage is not padded


def test_features_keep_frame_order(numbered_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    """The feature of frame slot k is the frame at frame_indices[k] (mean grey level encodes the index)."""
    cache_path = tmp_path / "cache.h5"
    embed(numbered_dataset, cache_path, FAKE_CONFIG)
    features = read_all_features(cache_path)
    with h5py.File(cache_path, "r") as handle:
        frame_indices, offsets = handle["frame_indices"][()], handle["offsets"][()]
    for row in range(len(offsets) - 1):
        length = offsets[row + 1] - offsets[row]
        decoded_numbers = [frame_number_from_level(level) for level in features[row, :length, 0]]
        assert decoded_numbers == list(frame_indices[offsets[row] : offsets[row + 1]])


def test_batches_span_videos(numbered_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    embed(numbered_dataset, tmp_path / "cache.h5", FAKE_CONFIG)
    calls = fake_extractor[0].embed_frames.calls
    assert sum(calls) == 4 + 4 + 2 + 4 + 4 + 2
    assert calls[:-1] == [FAKE_CONFIG.batch_size] * (len(calls) - 1)  # fixed-size batches, one remainder


@pytest.mark.parametrize("extractor_name", ["scratch_cnn", "keras:VGG16"])
def test_features_equal_direct_model_call(tiny_dataset: Path, tmp_path: Path, extractor_name: str) -> None:
    """Real models (random weights, float32 cache): cached features equal the model run on the same frames.

    Not random-init MobileNetV2: its ~1e-11 outputs are refused as carrying no information."""
    cache_path = tmp_path / "cache.h5"
    extractor_config = ExtractorConfig(name=extractor_name, weights="random", image_size=32)
    config = EmbedConfig(extractor=extractor_config, sampling=FAKE_CONFIG.sampling, dtype="float32", batch_size=7)
    embed(tiny_dataset, cache_path, config)
    index = read_cache_index(cache_path)
    assert index.feature_dim == {"scratch_cnn": 512, "keras:VGG16": 512}[extractor_name]
    extractor = load_extractor(config.extractor)
    features = read_all_features(cache_path)
    for row in (0, index.num_videos - 1):
        sampled = read_sampled_frames(tiny_dataset / index.paths[row], config.sampling, 32)
        direct = extractor.embed_frames(sampled.frames)
        peak = np.abs(direct).max()
        assert peak > 0
        np.testing.assert_allclose(features[row, : index.lengths[row]], direct, rtol=1e-4, atol=1e-4 * peak)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_features_without_information_are_refused_in_either_dtype(
    tiny_dataset: Path, tmp_path: Path, dtype: str
) -> None:
    """Random-init MobileNetV2 outputs ~1e-11: no information in float32 either (every head sits at chance), so it is
    refused with what works instead, before the run goes on."""
    config = EmbedConfig(extractor=FAKE_CONFIG.extractor, sampling=FAKE_CONFIG.sampling, dtype=dtype)
    with pytest.raises(
        InputError,
        match=r"features all lie below.*without information.*featcache weights fetch.*scratch_cnn --weights random",
    ):
        embed(tiny_dataset, tmp_path / "cache.h5", config)
    assert not (tmp_path / "cache.h5").exists()


def test_constant_features_are_refused(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = extractors_module.load_extractor

    def constant_extractor(config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        extractor = real_load(config)
        extractor.embed_frames = lambda frames: np.ones((len(frames), extractor.feature_dim), np.float32)
        return extractor

    monkeypatch.setattr(extractors_module, "load_extractor", constant_extractor)
    with pytest.raises(InputError, match="every frame of the first 6 videos has the same feature vector"):
        embed(tiny_dataset, tmp_path / "cache.h5", FAKE_CONFIG)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference_path = tmp_path / "reference.h5"
    embed(tiny_dataset, reference_path, FAKE_CONFIG)

    monkeypatch.setattr(local_engine, "MAX_VIDEOS_PER_SHARD", 1)  # a part after every video
    real_load = extractors_module.load_extractor

    def interrupted_after_two_batches(config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        extractor = real_load(config)
        embed_frames = extractor.embed_frames

        def stop_on_third_call(frames: np.ndarray) -> np.ndarray:
            if len(embed_frames.calls) == 2:
                raise KeyboardInterrupt
            return embed_frames(frames)

        extractor.embed_frames = stop_on_third_call
        return extractor

    monkeypatch.setattr(extractors_module, "load_extractor", interrupted_after_two_batches)
    cache_path = tmp_path / "cache.h5"
    with pytest.raises(KeyboardInterrupt):
        embed(tiny_dataset, cache_path, FAKE_CONFIG)
    saved = read_cache_index(cache_path).paths  # finished videos are committed as they finish
    assert 0 < len(saved) < 6

    monkeypatch.setattr(extractors_module, "load_extractor", real_load)
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert summary.num_already_cached == len(saved) and summary.num_embedded == 6 - len(saved)
    np.testing.assert_array_equal(read_all_features(cache_path), read_all_features(reference_path))
    assert read_cache_index(cache_path).paths == read_cache_index(reference_path).paths


def test_torn_and_unreadable_shards_are_redone(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill -9 can leave a half-written shard .tmp; a disk fault a broken shard: both are re-embedded and named."""
    cache_path = tmp_path / "cache.h5"
    monkeypatch.setattr(local_engine, "MAX_VIDEOS_PER_SHARD", 2)
    folder = shard_folder_for(cache_path)
    folder.mkdir()
    (folder / ".0007.h5.tmp").write_bytes(b"half")
    (folder / "0008.h5").write_bytes(b"not hdf5")
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert summary.num_embedded == 6
    assert len(summary.unreadable_parts) == 1 and "0008.h5" in summary.unreadable_parts[0]
    assert read_cache_index(cache_path).num_videos == 6
    assert not (folder / ".0007.h5.tmp").exists()


def test_new_videos_are_added_without_reembedding(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, FAKE_CONFIG)
    before = read_all_features(cache_path)
    write_video(tiny_dataset / "Gamma" / "v_Gamma_g01_c01.avi", numbered_frames(5))
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert (summary.num_embedded, summary.num_already_cached) == (1, 6)
    index = read_cache_index(cache_path)
    assert index.class_names == ["Alpha", "Beta", "Gamma"] and index.num_videos == 7
    np.testing.assert_array_equal(read_all_features(cache_path)[:6], before)  # Gamma sorts last
    again = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert (again.num_embedded, again.num_already_cached) == (0, 7)
    assert len(fake_extractor) == 2  # the up-to-date run never loaded the model


@pytest.mark.parametrize(
    "changed",
    [
        {"sampling": SamplingConfig(num_frames=3)},
        {"sampling": SamplingConfig(num_frames=NUM_FRAMES, mode="fps", fps=5.0)},
        {"extractor": ExtractorConfig(name="scratch_cnn", weights="random", image_size=32)},
        {"extractor": ExtractorConfig(name="mobilenet_v2", weights="random", image_size=32, seed=1)},
        {"extractor": ExtractorConfig(name="mobilenet_v2", weights="random", image_size=64)},
        {"dtype": "float32"},
    ],
    ids=["frames", "sampling", "extractor", "seed", "image-size", "dtype"],
)
def test_other_settings_are_refused(tiny_dataset: Path, tmp_path: Path, fake_extractor: list, changed: dict) -> None:
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, FAKE_CONFIG)
    other = EmbedConfig(**{**FAKE_CONFIG.__dict__, **changed})
    with pytest.raises(CacheMismatchError, match="--overwrite"):
        embed(tiny_dataset, cache_path, other)
    summary = embed(tiny_dataset, cache_path, other, overwrite=True)
    assert summary.num_embedded == 6


def test_unfinished_run_with_other_settings_is_refused(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    cache_path = tmp_path / "cache.h5"
    video = ShardVideo(
        "Alpha/x.avi",
        "Alpha",
        "",
        "1:ab",
        np.zeros((1, 3)),
        np.zeros(1, np.int32),
        np.zeros(1, np.float32),
        10.0,
        1,
        32,
        32,
    )
    write_shard(
        shard_folder_for(cache_path),
        [video],
        "float16",
        {"extractor": {"name": "scratch_cnn"}, "sampling": {}, "dtype": "float16"},
    )
    with pytest.raises(CacheMismatchError, match=r"left by an interrupted embed\) was embedded with other settings"):
        embed(tiny_dataset, cache_path, FAKE_CONFIG)


def test_changed_weights_file_is_refused(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights_path = tmp_path / "w.weights.h5"
    weights_path.write_bytes(b"first")
    config = EmbedConfig(
        extractor=ExtractorConfig(name="scratch_cnn", weights=str(weights_path), image_size=32),
        sampling=FAKE_CONFIG.sampling,
    )
    stand_in_load = extractors_module.load_extractor

    def load_recording_sha256(extractor_config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        extractor = stand_in_load(extractor_config)  # records the file's hash as the real extractors do
        extractor.provenance["weights_sha256"] = sha256_file(weights_path)
        return extractor

    monkeypatch.setattr(extractors_module, "load_extractor", load_recording_sha256)
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, config)
    assert embed(tiny_dataset, cache_path, config).num_embedded == 0  # same file: up to date
    weights_path.write_bytes(b"second")
    with pytest.raises(CacheMismatchError, match="weights file"):
        embed(tiny_dataset, cache_path, config)


def test_a_cache_of_imagenet_weights_takes_more_videos_and_refuses_another_download(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--weights imagenet` names weights only loading the model fetches: the request has no sha256, the cache's
    # record has the downloaded file's. The request matches the cache; the loaded model is then checked by hash.
    config = EmbedConfig(
        extractor=ExtractorConfig(name="mobilenet_v2", weights="imagenet", image_size=32), sampling=FAKE_CONFIG.sampling
    )
    stand_in_load = extractors_module.load_extractor
    downloaded_sha256 = ["a" * 64]

    def load_as_if_downloaded(extractor_config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        extractor = stand_in_load(extractor_config)
        extractor.provenance["weights_sha256"] = downloaded_sha256[0]
        return extractor

    monkeypatch.setattr(extractors_module, "load_extractor", load_as_if_downloaded)
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, config)
    shutil.copy(tiny_dataset / "Beta" / "v_Beta_g01_c01.avi", tiny_dataset / "Beta" / "v_Beta_g07_c01.avi")
    added = embed(tiny_dataset, cache_path, config)
    assert (added.num_embedded, added.num_already_cached) == (1, 6)
    shutil.copy(tiny_dataset / "Beta" / "v_Beta_g01_c01.avi", tiny_dataset / "Beta" / "v_Beta_g08_c01.avi")
    downloaded_sha256[0] = "b" * 64  # Keras fetched other weights under the same name
    with pytest.raises(CacheMismatchError, match="weights file imagenet"):
        embed(tiny_dataset, cache_path, config)
    assert read_cache_index(cache_path).num_videos == 7


def test_bad_videos_are_listed_and_the_rest_embedded(
    dataset_with_bad_files: Path, tmp_path: Path, fake_extractor: list
) -> None:
    cache_path = tmp_path / "cache.h5"
    summary = embed(dataset_with_bad_files, cache_path, FAKE_CONFIG)
    assert summary.num_embedded == 6
    assert sorted(summary.failures) == [
        "Alpha/v_Alpha_g09_c01.avi",
        "Alpha/v_Alpha_g09_c02.avi",
        "Beta/v_Beta_g09_c03.avi",
    ]
    assert "empty file" in summary.failures["Alpha/v_Alpha_g09_c02.avi"]
    index = read_cache_index(cache_path)
    assert index.num_videos == 6
    assert [path for path, _ in index.failures] == sorted(summary.failures)
    # A re-run retries the failures (they may have been fixed) and keeps everything else.
    shutil.copy(
        dataset_with_bad_files / "Beta" / "v_Beta_g01_c01.avi", dataset_with_bad_files / "Alpha" / "v_Alpha_g09_c02.avi"
    )
    again = embed(dataset_with_bad_files, cache_path, FAKE_CONFIG)
    assert again.num_embedded == 1 and len(again.failures) == 2
    assert len(read_cache_index(cache_path).failures) == 2


def test_all_videos_failing_still_writes_a_cache_with_the_failures(tmp_path: Path, fake_extractor: list) -> None:
    root = tmp_path / "videos"
    (root / "Alpha").mkdir(parents=True)
    (root / "Alpha" / "broken.avi").write_text("nope")
    summary = embed(root, tmp_path / "cache.h5", FAKE_CONFIG)
    assert summary.num_embedded == 0 and list(summary.failures) == ["Alpha/broken.avi"]
    index = read_cache_index(tmp_path / "cache.h5")
    assert index.num_videos == 0 and index.failures[0][0] == "Alpha/broken.avi"


KILLED_RUN = """
import importlib, os, sys
sys.path.insert(0, {tests_dir!r})
from featcache.embedding import embed as embed_module
extractors_module = importlib.import_module("featcache.extractors.registry")
from featcache.embedding import local_engine
from conftest import mean_colour_extractor
from test_embed import FAKE_CONFIG

def load_then_die(config, runtime="keras"):
    extractor = mean_colour_extractor(config)
    embed_frames = extractor.embed_frames
    def embed_or_die(frames):
        if len(embed_frames.calls) == 3:
            os._exit(137)  # like kill -9: no finally blocks, no flush, no clean-up
        return embed_frames(frames)
    extractor.embed_frames = embed_or_die
    return extractor

extractors_module.load_extractor = load_then_die
local_engine.MAX_VIDEOS_PER_SHARD = 1
embed_module.embed({root!r}, {cache!r}, FAKE_CONFIG)
"""


def test_killed_run_leaves_no_complete_looking_file_and_resumes(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    import subprocess
    import sys

    cache_path = tmp_path / "cache.h5"
    script = KILLED_RUN.format(tests_dir=str(Path(__file__).parent), root=str(tiny_dataset), cache=str(cache_path))
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 137, completed.stderr
    saved = read_cache_index(cache_path).paths
    assert 0 < len(saved) < 6
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert summary.num_embedded == 6 - len(saved)
    assert read_cache_index(cache_path).num_videos == 6


def test_the_package_exposes_embed_as_a_function(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    import featcache

    summary = featcache.embed(tiny_dataset, tmp_path / "cache.h5", FAKE_CONFIG)
    assert summary.num_embedded == 6 and featcache.read_cache_index(tmp_path / "cache.h5").num_videos == 6


def test_cache_follows_deleted_renamed_and_relabelled_videos(tmp_path: Path, fake_extractor: list) -> None:
    """Deleted files and a renamed class folder leave the cache; a CSV relabel needs no re-embedding."""
    root = tmp_path / "videos"
    for class_name in ("Alpha", "Beta"):
        for group in (1, 2):
            write_video(root / class_name / f"v_{class_name}_g{group:02d}_c01.avi", numbered_frames(4))
    cache_path = tmp_path / "cache.h5"
    embed(root, cache_path, FAKE_CONFIG)
    (root / "Alpha" / "v_Alpha_g02_c01.avi").unlink()
    (root / "Beta").rename(root / "Gamma")
    summary = embed(root, cache_path, FAKE_CONFIG)
    assert (summary.num_embedded, summary.num_removed) == (2, 3)
    index = read_cache_index(cache_path)
    assert index.paths == ["Alpha/v_Alpha_g01_c01.avi", "Gamma/v_Beta_g01_c01.avi", "Gamma/v_Beta_g02_c01.avi"]
    assert index.class_names == ["Alpha", "Gamma"]

    listing = tmp_path / "videos" / "list.csv"
    listing.write_text("path,label,group\nAlpha/v_Alpha_g01_c01.avi,Delta,7\nGamma/v_Beta_g01_c01.avi,Gamma,1\n")
    relabelled = embed(listing, cache_path, FAKE_CONFIG)
    assert (relabelled.num_embedded, relabelled.num_relabelled, relabelled.num_removed) == (0, 1, 0)
    index = read_cache_index(cache_path)
    assert index.num_videos == 3  # Gamma/v_Beta_g02 is not listed but still on disk: it stays
    assert index.class_names == ["Delta", "Gamma"] and index.groups[0] == "7"


def test_overwrite_that_fails_keeps_the_old_cache(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, FAKE_CONFIG)
    before = cache_path.read_bytes()

    def unavailable(config: ExtractorConfig, runtime: str = "keras") -> Extractor:
        raise InputError("weights unavailable")

    monkeypatch.setattr(extractors_module, "load_extractor", unavailable)
    with pytest.raises(InputError, match="weights unavailable"):
        embed(tiny_dataset, cache_path, EmbedConfig(**{**FAKE_CONFIG.__dict__, "dtype": "float32"}), overwrite=True)
    assert cache_path.read_bytes() == before


def test_abandoned_temporary_files_are_removed(tiny_dataset: Path, tmp_path: Path, fake_extractor: list) -> None:
    """A writer killed mid-write leaves temporary files; the next writer (holding the lock, so alone) deletes them."""
    cache_path = tmp_path / "cache.h5"
    dead_index_writer = tmp_path / ".cache.h5.999999999.tmp"
    dead_index_writer.write_bytes(b"half an index")
    shard_folder_for(cache_path).mkdir()
    dead_shard_writer = shard_folder_for(cache_path) / ".abc.h5.tmp"
    dead_shard_writer.write_bytes(b"half a shard")
    embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert not dead_index_writer.exists() and not dead_shard_writer.exists()


def test_a_file_changed_at_the_same_path_is_embedded_again(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    cache_path = tmp_path / "cache.h5"
    embed(tiny_dataset, cache_path, FAKE_CONFIG)
    index = read_cache_index(cache_path)
    changed = tiny_dataset / index.paths[0]
    write_video(changed, numbered_frames(7))  # other contents under the same name
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert (summary.num_changed, summary.num_embedded, summary.num_already_cached) == (1, 1, 5)
    after = read_cache_index(cache_path)
    before_contents, after_contents = (
        dict(zip(index.paths, index.fingerprints)),
        dict(zip(after.paths, after.fingerprints)),
    )
    assert (
        sorted(after.paths) == sorted(index.paths) and after.paths[-1] == index.paths[0]
    )  # re-embedded rows come last
    assert {path for path in index.paths if after_contents[path] != before_contents[path]} == {index.paths[0]}
    assert summary.num_dead_rows == 1  # the old row is unlisted, its shard untouched until `featcache compact`
    assert (
        embed(tiny_dataset, cache_path, FAKE_CONFIG).num_embedded == 0
    )  # size + mtime unchanged: trusted, not rehashed


def test_a_second_embed_on_the_same_cache_is_refused_at_once(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    from featcache.cache import CacheLock
    from featcache.errors import CacheLockedError

    cache_path = tmp_path / "cache.h5"
    with CacheLock(cache_path):  # another writer (a lock is per open file description, so this stands in for a process)
        with pytest.raises(CacheLockedError, match="another featcache process is writing"):
            embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert not fake_extractor  # refused before loading the model


def test_decode_workers_are_one_per_core_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, fake_extractor: list
) -> None:
    """A container or `taskset` that leaves 2 of a host's 64 cores starts 2 decode workers, not 64; --workers wins."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)
    config = EmbedConfig(
        extractor=ExtractorConfig(name="scratch_cnn", weights="random", image_size=32), runtime="keras"
    )
    assert local_engine.LocalEngine(config).num_decode_workers == 2
    config = EmbedConfig(extractor=config.extractor, runtime="keras", num_decode_workers=5)
    assert local_engine.LocalEngine(config).num_decode_workers == 5
