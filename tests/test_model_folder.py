"""The model folder: featcache.json read and written by ModelMetadata only, old folders, ModelFolder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache
from test_evaluate import CLASS_NAMES, EXTRACTOR, SAMPLING, write_model_folder

from featcache.cache import read_cache_index
from featcache.config import ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.errors import ModelDirError
from featcache.training.model_folder import (
    METADATA_FILE,
    METADATA_KEYS,
    ModelFolder,
    ModelMetadata,
    check_model_dir_writable,
)
from featcache.training.splits import choose_split

# The keys train wrote to featcache.json before ModelMetadata existed (format 1), in that order.
FORMAT_1_KEYS = (
    "format_version",
    "featcache_version",
    "head",
    "training",
    "class_names",
    "num_frames",
    "feature_dim",
    "cache_dtype",
    "model_kind",  # additive: "sequence_head" here; absent in older folders (read as a sequence head)
    "extractor",
    "sampling",
    "cache",
    "split",
    "best_epoch",
    "best_val_accuracy",
    "seconds_per_epoch",
)


@pytest.fixture
def old_model_folder(tmp_path: Path) -> Path:
    """A folder as featcache 0.1 wrote it: no cache_dtype, empty training settings."""
    return write_model_folder(tmp_path / "old", CLASS_NAMES, {"a.avi": "train", "b.avi": "val", "c.avi": "test"})


@pytest.fixture(scope="module")
def metadata_of_a_run(tmp_path_factory: pytest.TempPathFactory) -> ModelMetadata:
    cache = ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "small.h5", num_classes=3, num_groups=10, clips_per_group=2
    )
    index = read_cache_index(cache)
    train_config = TrainConfig(frames=4, test_clips=3, seed=2)
    return ModelMetadata.of_training_run(
        index, choose_split(index, train_config), HeadConfig(head="gru", units=8), train_config, 2, 0.75, 0.5
    )


def test_an_old_folder_loads_with_the_defaults_it_trained_at(old_model_folder: Path) -> None:
    folder = ModelFolder.open(old_model_folder)
    metadata = folder.metadata
    assert folder.class_names == CLASS_NAMES and folder.split == {"a.avi": "train", "b.avi": "val", "c.avi": "test"}
    assert metadata.cache_dtype is None and metadata.feature_rounding_dtype == np.float32  # it saw unrounded features
    assert metadata.train_config == TrainConfig() and (metadata.clip_frames, metadata.test_clips) == (0, 1)
    assert metadata.training_settings["frames"] == 0 and metadata.head_settings["units"] == HeadConfig().units
    assert metadata.training_cache_settings == {"extractor": EXTRACTOR, "sampling": SAMPLING, "dtype": None}
    assert metadata.extractor_config == ExtractorConfig(name="scratch_cnn", weights="random", image_size=32, seed=0)
    assert metadata.sampling_config == SamplingConfig(num_frames=4, mode="uniform")
    assert folder.load_model().inputs[0].shape[1:] == (4, 3)


def test_written_featcache_json_keeps_format_1(metadata_of_a_run: ModelMetadata, tmp_path: Path) -> None:
    metadata_of_a_run.write(tmp_path)
    saved = json.loads((tmp_path / METADATA_FILE).read_text())
    assert set(saved) == set(FORMAT_1_KEYS) and saved["format_version"] == 1
    assert saved["class_names"] == ["ActionA", "ActionB", "ActionC"] and saved["num_frames"] == 4  # the clip's frames
    assert saved["training"]["frames"] == 4 and saved["head"]["head"] == "gru" and saved["cache"]["num_videos"] == 60
    assert ModelMetadata.read(tmp_path) == metadata_of_a_run
    assert [entry.name for entry in tmp_path.iterdir()] == [METADATA_FILE]  # no temporary file left behind


def test_typed_accessors_of_a_run(metadata_of_a_run: ModelMetadata) -> None:
    assert metadata_of_a_run.head_config == HeadConfig(head="gru", units=8)
    assert metadata_of_a_run.train_config == TrainConfig(frames=4, test_clips=3, seed=2)
    assert (metadata_of_a_run.clip_frames, metadata_of_a_run.test_clips) == (4, 3)
    settings = metadata_of_a_run.training_cache_settings
    assert settings["dtype"] == metadata_of_a_run.cache_dtype and settings["extractor"]["feature_dim"] == 8


def test_an_optional_field_left_unset_is_not_written(metadata_of_a_run: ModelMetadata) -> None:
    assert "cache_dtype" not in replace(metadata_of_a_run, cache_dtype=None).to_dict()
    assert (
        "best_val_accuracy" in replace(metadata_of_a_run, best_val_accuracy=None).to_dict()
    )  # required, null without validation


def test_keys_of_a_later_featcache_are_skipped(metadata_of_a_run: ModelMetadata, tmp_path: Path) -> None:
    saved = {**metadata_of_a_run.to_dict(), "a_key_of_a_later_featcache": "abc"}
    assert ModelMetadata.from_dict(saved, tmp_path / METADATA_FILE) == metadata_of_a_run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 2}, "model folder format 2, this featcache reads format 1"),
        ({"class_names": None}, "malformed"),
        ({"num_frames": "ten"}, "malformed"),
        ({"sampling": [4]}, "sampling is list, expected an object"),
    ],
)
def test_a_bad_featcache_json_is_a_clear_error(
    metadata_of_a_run: ModelMetadata, tmp_path: Path, change: dict, message: str
) -> None:
    with pytest.raises(ModelDirError, match=message):
        ModelMetadata.from_dict({**metadata_of_a_run.to_dict(), **change}, tmp_path / METADATA_FILE)


@pytest.mark.parametrize("key", [key for key in METADATA_KEYS if key != "format_version"])  # that one: "format None"
def test_every_required_key_is_checked(metadata_of_a_run: ModelMetadata, tmp_path: Path, key: str) -> None:
    saved = metadata_of_a_run.to_dict()
    del saved[key]
    with pytest.raises(ModelDirError, match=f"missing {key}"):
        ModelMetadata.from_dict(saved, tmp_path / METADATA_FILE)


def test_a_folder_with_a_half_written_featcache_json_may_be_overwritten(old_model_folder: Path) -> None:
    (old_model_folder / METADATA_FILE).unlink()
    (old_model_folder / f".{METADATA_FILE}.12345.tmp").write_text("{")  # a run killed inside write_atomically
    check_model_dir_writable(old_model_folder, overwrite=True)
    (old_model_folder / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ModelDirError, match="holiday.jpg"):
        check_model_dir_writable(old_model_folder, overwrite=True)


def test_a_folder_of_a_newer_featcache_is_refused_and_one_of_its_patch_releases_read(
    metadata_of_a_run: ModelMetadata, tmp_path: Path
) -> None:
    for written_by, refused in (("0.4.0", True), ("1.2.3", True), ("0.3.9", False), ("0.1.0", False)):
        saved = {**metadata_of_a_run.to_dict(), "featcache_version": written_by}
        if refused:
            with pytest.raises(
                ModelDirError,
                match=rf"written by featcache {written_by}, newer than this featcache .*upgrade featcache",
            ):
                ModelMetadata.from_dict(saved, tmp_path / "model" / METADATA_FILE)
        else:
            assert ModelMetadata.from_dict(saved, tmp_path / "model" / METADATA_FILE).featcache_version == written_by
