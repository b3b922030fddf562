"""Splits: no group on both sides, the official UCF101 rule, split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache, write_cache

from featcache.cache import read_cache_index
from featcache.config import TrainConfig
from featcache.errors import FeatcacheError
from featcache.splits import choose_split


@pytest.fixture
def ucf101_cache(tmp_path: Path) -> Path:
    """3 classes x 25 groups x 2 clips, UCF101 paths, groups "1".."25"."""
    return ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=25, clips_per_group=2)


@pytest.fixture
def ungrouped_cache(tmp_path: Path) -> Path:
    """3 classes x 10 videos, no groups."""
    labels = np.repeat(np.arange(3), 10)
    return write_cache(tmp_path / "plain.h5", np.ones((30, 4, 2)), np.full(30, 4), labels, ["a", "b", "c"])


def subsets_by_group(cache_path: Path, train_config: TrainConfig) -> dict[str, set[str]]:
    index = read_cache_index(cache_path)
    split = choose_split(index, train_config)
    sides: dict[str, set[str]] = {}
    for group, subset in zip(index.groups, split.subsets(index.num_videos)):
        sides.setdefault(group, set()).add(subset)
    return sides


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_split_keeps_each_group_on_one_side(ucf101_cache: Path, seed: int) -> None:
    sides = subsets_by_group(ucf101_cache, TrainConfig(seed=seed))
    assert all(len(subsets) == 1 for subsets in sides.values())
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(seed=seed))
    assert 0.1 < split.num_test / index.num_videos < 0.3
    assert set(index.labels[split.test_indices]) == {0, 1, 2}  # stratified: every class is tested
    assert "group-stratified" in split.description and "seed" in split.description


def test_auto_split_depends_on_seed_only(ucf101_cache: Path) -> None:
    index = read_cache_index(ucf101_cache)
    first, again, other = (choose_split(index, TrainConfig(seed=seed)) for seed in (0, 0, 5))
    np.testing.assert_array_equal(first.test_indices, again.test_indices)
    assert not np.array_equal(first.test_indices, other.test_indices)


def test_ungrouped_videos_get_a_stratified_random_split(ungrouped_cache: Path) -> None:
    index = read_cache_index(ungrouped_cache)
    split = choose_split(index, TrainConfig(val_fraction=0.2))
    assert split.num_test == 6
    np.testing.assert_array_equal(np.bincount(index.labels[split.test_indices]), [2, 2, 2])
    assert "stratified random" in split.description


@pytest.mark.parametrize(("split_name", "test_groups"), [("ucf101-1", range(1, 8)), ("ucf101-2", range(8, 15)), ("ucf101-3", range(15, 22))])
def test_official_ucf101_split_holds_out_its_groups(ucf101_cache: Path, split_name: str, test_groups: range) -> None:
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(split=split_name))
    test_group_ids = {int(index.groups[row]) for row in split.test_indices}
    train_group_ids = {int(index.groups[row]) for row in split.train_indices}
    assert test_group_ids == set(test_groups)
    assert train_group_ids == set(range(1, 26)) - set(test_groups)
    assert f"test groups {test_groups.start}-{test_groups.stop - 1}" in split.description


def test_official_split_needs_groups(ungrouped_cache: Path) -> None:
    with pytest.raises(FeatcacheError, match="needs UCF101 group ids"):
        choose_split(read_cache_index(ungrouped_cache), TrainConfig(split="ucf101-1"))


def test_testlist_file_holds_out_listed_videos(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    listed = [path for path in index.paths if "_g01_" in path]
    testlist = tmp_path / "testlist01.txt"
    # UCF101 lists spell some class folders in another case; one path not in the cache is skipped.
    testlist.write_text("\n".join([listed[0].upper(), *listed[1:], "Other/v_Other_g01_c01.avi"]) + "\n")
    split = choose_split(index, TrainConfig(split_file=str(testlist)))
    assert sorted(index.paths[row] for row in split.test_indices) == sorted(listed)
    assert "1 listed video(s) not in the cache skipped" in split.description


def test_trainlist_file_trains_on_listed_videos(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    listed = [path for path in index.paths if "_g01_" not in path]
    trainlist = tmp_path / "trainlist01.txt"
    trainlist.write_text("".join(f"{path} {index.class_names.index(path.split('/')[0]) + 1}\n" for path in listed))
    split = choose_split(index, TrainConfig(split_file=str(trainlist)))
    assert sorted(index.paths[row] for row in split.train_indices) == sorted(listed)
    assert all("_g01_" in index.paths[row] for row in split.test_indices)


def test_csv_split_file(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    csv_path = tmp_path / "split.csv"
    rows = [f"{path},{'test' if row % 4 == 0 else 'train'}" for row, path in enumerate(index.paths)]
    csv_path.write_text("path,subset\n" + "\n".join(rows) + "\n")
    split = choose_split(index, TrainConfig(split_file=str(csv_path)))
    np.testing.assert_array_equal(split.test_indices, np.arange(0, index.num_videos, 4))


def test_csv_split_file_must_name_every_video(ucf101_cache: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "split.csv"
    csv_path.write_text("path,subset\nActionA/v_ActionA_g01_c01.avi,test\n")
    with pytest.raises(FeatcacheError, match="not listed"):
        choose_split(read_cache_index(ucf101_cache), TrainConfig(split_file=str(csv_path)))


def test_list_file_of_unknown_kind_is_refused(ucf101_cache: Path, tmp_path: Path) -> None:
    list_path = tmp_path / "videos.txt"
    list_path.write_text("ActionA/v_ActionA_g01_c01.avi\n")
    with pytest.raises(FeatcacheError, match="'train' or 'test'"):
        choose_split(read_cache_index(ucf101_cache), TrainConfig(split_file=str(list_path)))


def test_split_and_split_file_together_are_refused() -> None:
    with pytest.raises(FeatcacheError, match="pass only one"):
        TrainConfig(split="ucf101-1", split_file="testlist01.txt")


def test_few_groups_hold_out_one_group(tmp_path: Path) -> None:
    """The demo data has 4 groups: fewer than the 5 folds of 20%, so one group's worth is held out."""
    cache_path = ucf101_like_cache(tmp_path / "four.h5", num_classes=3, num_groups=4, clips_per_group=3)
    index = read_cache_index(cache_path)
    split = choose_split(index, TrainConfig(val_fraction=0.2))
    sides = {}
    for group, subset in zip(index.groups, split.subsets(index.num_videos)):
        sides.setdefault(group, set()).add(subset)
    assert all(len(subsets) == 1 for subsets in sides.values())
    assert split.num_test == 9 and "only 4 groups" in split.description


def test_a_single_group_cannot_be_split(tmp_path: Path) -> None:
    cache_path = ucf101_like_cache(tmp_path / "one.h5", num_classes=2, num_groups=1, clips_per_group=4)
    with pytest.raises(FeatcacheError, match="no group can be held out"):
        choose_split(read_cache_index(cache_path), TrainConfig())
