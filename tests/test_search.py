"""featcache.search: pooled vectors, exact nearest neighbours, the near-duplicate audit; `neighbors` and `audit`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from cache_fixtures import write_cache
from conftest import write_video
from typer.testing import CliRunner

import featcache.search.neighbors as neighbors_module
from featcache.cli import app
from featcache.cli.search_commands import DEFAULT_AUDIT_THRESHOLD
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding.embed import embed
from featcache.errors import FeatcacheError, InputError
from featcache.search.audit import DEFAULT_THRESHOLD, audit_split, audit_vectors
from featcache.search.neighbors import find_neighbors, nearest
from featcache.search.pooled import pool_sequences, pooled_features
from featcache.training.leakage import audit_cache

SCENES = ("Alpha", "Beta")  # two classes of two scenes each


def scene_frames(seed: int, num_frames: int = 8, size: int = 48) -> np.ndarray:
    """uint8 RGB (num_frames, size, size, 3): a smooth random colour field drifting right, one per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 4, 3)).astype(np.float32)
    field = cv2.resize(coarse, (2 * size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255)
    return np.stack([field[:, shift : shift + size] for shift in range(0, 2 * num_frames, 2)]).astype(np.uint8)


@pytest.fixture(scope="module")
def videos_and_cache(tmp_path_factory) -> tuple[Path, Path]:
    """4 videos (2 classes) plus a copy of Alpha/v_Alpha_g01_c01 re-encoded as mp4v at 40x40, embedded with
    scratch_cnn (random weights, 32 px, 4 frames); and a second copy kept outside the cache, for --file."""
    root = tmp_path_factory.mktemp("search")
    videos = root / "videos"
    for number, (label, group) in enumerate([(label, group) for label in SCENES for group in (1, 2)]):
        write_video(videos / label / f"v_{label}_g{group:02d}_c01.avi", scene_frames(number))
    original = scene_frames(0)
    smaller = np.stack([cv2.resize(frame, (40, 40), interpolation=cv2.INTER_AREA) for frame in original])
    write_video(videos / "Alpha" / "v_Alpha_g03_c01.mp4", smaller)  # the re-encoded copy, another group
    write_video(root / "outside" / "copy.mp4", smaller)
    cache = root / "cache.h5"
    config = EmbedConfig(
        extractor=ExtractorConfig(name="scratch_cnn", weights="random", image_size=32),
        sampling=SamplingConfig(num_frames=4),
        num_decode_workers=1,
    )
    embed(videos, cache, config)
    return root, cache


def test_pooled_vectors_ignore_padding_and_have_unit_norm() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 5, 4)).astype(np.float32)
    lengths = np.array([5, 2, 3])
    garbage = features.copy()
    garbage[1, 2:] = 1e6  # padding frames: must not count
    pooled = pool_sequences(garbage, lengths)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-5)
    expected = features[1, :2].mean(axis=0)
    np.testing.assert_allclose(pooled[1], expected / np.linalg.norm(expected), rtol=1e-5)


def test_nearest_in_blocks_is_the_exact_top_k(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    vectors = pool_sequences(rng.normal(size=(50, 1, 8)), np.ones(50))
    query = rng.normal(size=8)
    monkeypatch.setattr(neighbors_module, "SIMILARITY_BLOCK", 7)  # many blocks, merged
    found = nearest(vectors, query, k=5, exclude=[3])
    similarities = vectors @ (query / np.linalg.norm(query))
    similarities[3] = -np.inf
    assert [row for row, _ in found] == list(np.argsort(-similarities)[:5])
    np.testing.assert_allclose([similarity for _, similarity in found], np.sort(similarities)[::-1][:5], rtol=1e-5)


def test_a_video_and_its_reencoded_copy_are_each_others_nearest(videos_and_cache) -> None:
    _, cache = videos_and_cache
    from_original = find_neighbors(cache, video="Alpha/v_Alpha_g01_c01.avi", k=2)
    from_copy = find_neighbors(cache, video="Alpha/v_Alpha_g03_c01.mp4", k=2)
    assert from_original.neighbors[0].path == "Alpha/v_Alpha_g03_c01.mp4"
    assert from_copy.neighbors[0].path == "Alpha/v_Alpha_g01_c01.avi"
    assert all(neighbor.path != "Alpha/v_Alpha_g01_c01.avi" for neighbor in from_original.neighbors)  # itself left out
    assert from_original.neighbors[0].similarity > from_original.neighbors[1].similarity


def test_a_new_file_is_embedded_as_the_cache_was(videos_and_cache) -> None:
    root, cache = videos_and_cache
    result = find_neighbors(cache, file=root / "outside" / "copy.mp4", k=3)
    # The same bytes as the cached copy: its features are the cached ones, and its fingerprint marks it.
    assert result.neighbors[0].path == "Alpha/v_Alpha_g03_c01.mp4"
    assert result.neighbors[0].same_contents
    assert result.neighbors[0].similarity == pytest.approx(1.0, abs=1e-3)
    assert result.neighbors[1].path == "Alpha/v_Alpha_g01_c01.avi"


def test_a_new_file_gives_the_same_neighbours_whichever_decoder_takes_its_frames(videos_and_cache) -> None:
    root, cache = videos_and_cache
    outputs = []
    for decoder in ("sequential", "seek"):
        command = ["neighbors", str(cache), "--file", str(root / "outside" / "copy.mp4"), "--k", "4", "--json"]
        result = CliRunner().invoke(app, [*command, "--runtime", "keras", "--decoder", decoder])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout)["neighbors"])
    assert outputs[0] == outputs[1] and outputs[0][0]["path"] == "Alpha/v_Alpha_g03_c01.mp4"
    unknown = CliRunner().invoke(app, ["neighbors", str(cache), "--file", "x.mp4", "--runtime", "tpu"])
    assert unknown.exit_code == 2 and "tpu" in unknown.output


def test_neighbors_cli_json_and_one_line_errors(videos_and_cache) -> None:
    _, cache = videos_and_cache
    result = CliRunner().invoke(
        app, ["neighbors", str(cache), "--video", "Beta/v_Beta_g01_c01.avi", "--k", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["neighbors"]) == 3 and payload["query"] == "video Beta/v_Beta_g01_c01.avi"
    for arguments, message in (
        ([], "give exactly one query"),
        (["--video", "Beta/nothing.avi"], "is not a video of"),
        (["--video", "Beta/v_Beta_g01_c01.avi", "--file", "x.mp4"], "give exactly one query"),
    ):
        failed = CliRunner().invoke(app, ["neighbors", str(cache), *arguments])
        assert failed.exit_code == 2 and message in failed.output
        assert "Traceback" not in failed.output


def grouped_cache(path: Path, num_groups: int = 6, per_group: int = 3, feature_dim: int = 16) -> Path:
    """Videos of a group are near-duplicates (one base vector + small noise); groups are far apart."""
    rng = np.random.default_rng(2)
    bases = rng.normal(size=(2 * num_groups, feature_dim))
    paths, groups, labels, features = [], [], [], []
    for group in range(2 * num_groups):
        label = group % 2
        name = ("Left", "Right")[label]
        for clip in range(per_group):
            paths.append(f"{name}/v_{name}_g{group + 1:02d}_c{clip + 1:02d}.avi")
            groups.append(str(group + 1))
            labels.append(label)
            features.append(bases[group] + 0.02 * rng.normal(size=(4, feature_dim)))
    order = np.argsort(paths)
    return write_cache(
        path,
        np.array(features)[order],
        np.full(len(paths), 4),
        np.array(labels)[order],
        ["Left", "Right"],
        paths=[paths[row] for row in order],
        groups=[groups[row] for row in order],
        dtype="float32",
    )


def test_audit_finds_no_pair_across_a_clean_group_split(tmp_path) -> None:
    report = audit_cache(grouped_cache(tmp_path / "grouped.h5"))
    assert report.num_test > 0 and report.num_test_with_duplicate == 0 and report.pairs == []
    assert report.summary.startswith(f"0 of {report.num_test} test videos have a near-duplicate in training")


def test_audit_finds_planted_near_duplicates_across_a_split(tmp_path) -> None:
    cache = grouped_cache(tmp_path / "grouped.h5")
    # A split file that puts clip 1 of groups 1 and 2 in test and their other clips in train: exactly 2 leaks.
    split_file = tmp_path / "split.csv"
    with open(split_file, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "subset"])
        for name in ("Left", "Right"):
            for group in range(1, 13):
                for clip in range(1, 4):
                    path = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
                    if group % 2 == (name == "Left"):
                        subset = "test" if (group in (1, 2) and clip == 1) or group in (11, 12) else "train"
                        writer.writerow([path, subset])
    report = audit_cache(cache, split=split_file)
    leaked = {pair.test_path for pair in report.pairs}
    assert leaked == {"Left/v_Left_g01_c01.avi", "Right/v_Right_g02_c01.avi"}
    assert report.num_test_with_duplicate == 2 and report.num_test == 8
    assert all(pair.similarity >= DEFAULT_THRESHOLD and pair.seen_subset == "train" for pair in report.pairs)
    assert [pair.similarity for pair in report.pairs] == sorted(
        (pair.similarity for pair in report.pairs), reverse=True
    )
    result = CliRunner().invoke(app, ["audit", str(cache), "--split", str(split_file)])
    assert result.exit_code == 0, result.output
    assert "2 of 8 test videos have a near-duplicate in training" in result.output


def test_exact_copies_come_first_whatever_their_similarity() -> None:
    vectors = pool_sequences(np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.01]], [[0.0, 1.0]]]), np.ones(4))
    report = audit_vectors(
        ["a", "b", "c", "d"], vectors, ["train", "train", "test", "test"], ["f1", "f2", "f3", "f1"], threshold=0.99
    )
    assert [(pair.test_path, pair.seen_path, pair.same_contents) for pair in report.pairs] == [
        ("d", "a", True),  # same bytes, though its features are far from a's
        ("d", "b", False),
        ("c", "a", False),
    ]
    assert report.num_exact_copies == 1 and report.num_test_with_duplicate == 2


def test_audit_refuses_a_bad_threshold_and_a_split_of_another_size(tmp_path) -> None:
    cache = grouped_cache(tmp_path / "grouped.h5")
    with pytest.raises(InputError, match="cosine similarity in"):
        audit_cache(cache, threshold=1.5)
    with pytest.raises(FeatcacheError, match="the split names 2 videos"):
        audit_split(cache, ["train", "test"])


def test_the_cli_default_threshold_is_the_measured_one() -> None:
    assert DEFAULT_AUDIT_THRESHOLD == DEFAULT_THRESHOLD


def test_pooled_features_reads_in_blocks(tmp_path, monkeypatch) -> None:
    import featcache.search.pooled as pooled_module

    cache = grouped_cache(tmp_path / "grouped.h5")
    whole = pooled_features(cache)
    monkeypatch.setattr(pooled_module, "FEATURE_BLOCK_BYTES", 1)  # one video per block
    np.testing.assert_allclose(pooled_features(cache).vectors, whole.vectors, rtol=1e-6)
    assert len(whole) == 36 and whole.paths[0] == "Left/v_Left_g01_c01.avi"


def test_train_warns_of_near_duplicates_with_the_command_to_list_them(tmp_path) -> None:
    from featcache.config import HeadConfig, TrainConfig
    from featcache.training.train import train

    cache = grouped_cache(tmp_path / "grouped.h5")
    split_file = tmp_path / "split.csv"
    paths = pooled_features(cache).paths
    with open(split_file, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "subset"])
        # Clip 1 of every group is test, the others train: each test video has its group's clips in training.
        writer.writerows((path, "test" if path.endswith("_c01.avi") else "train") for path in paths)
    result = train(cache, tmp_path / "model", HeadConfig(head="linear"), TrainConfig(split_file=str(split_file)))
    warning = next(warning for warning in result.warnings if "near-duplicate" in warning)
    assert warning.startswith("12 of 12 test videos have a near-duplicate in training")
    assert f"featcache audit {cache} --model {tmp_path / 'model'}" in warning
    listed = CliRunner().invoke(app, ["audit", str(cache), "--model", str(tmp_path / "model"), "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["num_test_with_duplicate"] == 12


def test_the_training_audit_reads_the_same_from_memory_and_from_disk(tmp_path) -> None:
    from featcache.config import TrainConfig
    from featcache.training.leakage import audit_training_data
    from featcache.training.training_data import load_training_data

    cache = grouped_cache(tmp_path / "grouped.h5")
    in_memory = load_training_data(cache, TrainConfig())
    streamed = load_training_data(cache, TrainConfig(memory_budget_mb=0))  # 0: always stream
    assert in_memory.in_memory and not streamed.in_memory
    assert audit_training_data(in_memory, threshold=0.5) == audit_training_data(streamed, threshold=0.5)
    assert audit_training_data(in_memory, threshold=0.5).num_test > 0
