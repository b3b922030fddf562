"""Splits: train / val / test disjoint, no group on two sides, the official UCF101 rule, split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache, write_cache

from featcache.cache import read_cache_index
from featcache.config import TrainConfig
from featcache.errors import FeatcacheError
from featcache.training.splits import choose_split


@pytest.fixture
def ucf101_cache(tmp_path: Path) -> Path:
    """3 classes x 25 groups x 2 clips, UCF101 paths, groups "1".."25"."""
    return ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=25, clips_per_group=2)


@pytest.fixture
def ungrouped_cache(tmp_path: Path) -> Path:
    """3 classes x 10 videos, no groups."""
    labels = np.repeat(np.arange(3), 10)
    return write_cache(tmp_path / "plain.h5", np.ones((30, 4, 2)), np.full(30, 4), labels, ["a", "b", "c"])


def assert_three_way(index, split) -> None:
    """Every video in exactly one of train, val and test, and no group ("": none) on two sides."""
    sides = [split.train_indices, split.val_indices, split.test_indices]
    np.testing.assert_array_equal(np.sort(np.concatenate(sides)), np.arange(index.num_videos))
    groups_of = [{index.groups[row] for row in rows} - {""} for rows in sides]
    assert not (groups_of[0] & groups_of[1]) and not (groups_of[0] & groups_of[2]) and not (groups_of[1] & groups_of[2])


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
    assert {subset for subsets in sides.values() for subset in subsets} == {"train", "val", "test"}
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(seed=seed))
    assert_three_way(index, split)
    assert 0.1 < split.num_test / index.num_videos < 0.3
    assert 0.1 < split.num_val / (split.num_train + split.num_val) < 0.3  # val_fraction is a share of the training side
    assert set(index.labels[split.test_indices]) == {0, 1, 2}  # stratified: every class is tested
    assert set(index.labels[split.val_indices]) == {0, 1, 2}  # ... and validated
    assert "group-stratified" in split.description and "seed" in split.description
    assert "train /" in split.description and "val /" in split.description


@pytest.mark.parametrize(("test_fraction", "val_fraction"), [(0.2, 0.2), (0.5, 0.5), (0.1, 0.25)])
def test_fractions_set_the_test_and_validation_shares(
    ucf101_cache: Path, test_fraction: float, val_fraction: float
) -> None:
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(test_fraction=test_fraction, val_fraction=val_fraction))
    assert_three_way(index, split)
    assert split.num_test / index.num_videos == pytest.approx(test_fraction, abs=0.1)
    assert split.num_val / (split.num_train + split.num_val) == pytest.approx(val_fraction, abs=0.1)


def test_val_fraction_zero_means_no_validation_set(ucf101_cache: Path) -> None:
    index = read_cache_index(ucf101_cache)
    with_validation, without = (choose_split(index, TrainConfig(val_fraction=fraction)) for fraction in (0.2, 0.0))
    assert without.num_val == 0 and "val" not in without.subsets(index.num_videos)
    np.testing.assert_array_equal(without.test_indices, with_validation.test_indices)  # the test set does not move
    np.testing.assert_array_equal(
        without.train_indices, np.union1d(with_validation.train_indices, with_validation.val_indices)
    )
    assert "no validation" in without.description and "last epoch" in without.description


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("test_fraction", 0.0, "--test-fraction / test_fraction must be in"),
        ("test_fraction", 0.6, "--test-fraction / test_fraction must be in"),
        ("val_fraction", -0.1, "--val-fraction / val_fraction must be in"),
        ("val_fraction", 0.7, "--val-fraction / val_fraction must be in"),
    ],
)
def test_fractions_out_of_range_are_refused(option: str, value: float, message: str) -> None:
    with pytest.raises(FeatcacheError, match=message):
        TrainConfig(**{option: value})


def test_auto_split_depends_on_seed_only(ucf101_cache: Path) -> None:
    index = read_cache_index(ucf101_cache)
    first, again, other = (choose_split(index, TrainConfig(seed=seed)) for seed in (0, 0, 5))
    np.testing.assert_array_equal(first.test_indices, again.test_indices)
    np.testing.assert_array_equal(first.val_indices, again.val_indices)
    assert not np.array_equal(first.test_indices, other.test_indices)


def test_ungrouped_videos_get_a_stratified_random_split(ungrouped_cache: Path) -> None:
    index = read_cache_index(ungrouped_cache)
    split = choose_split(index, TrainConfig(test_fraction=0.2, val_fraction=0.25))
    assert split.num_test == 6 and split.num_val == 6 and split.num_train == 18
    assert_three_way(index, split)
    np.testing.assert_array_equal(np.bincount(index.labels[split.test_indices]), [2, 2, 2])
    np.testing.assert_array_equal(np.bincount(index.labels[split.val_indices]), [2, 2, 2])
    assert "stratified random" in split.description


@pytest.mark.parametrize(
    ("split_name", "test_groups"), [("ucf101-1", range(1, 8)), ("ucf101-2", range(8, 15)), ("ucf101-3", range(15, 22))]
)
def test_official_ucf101_split_holds_out_its_groups(ucf101_cache: Path, split_name: str, test_groups: range) -> None:
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(split=split_name))
    assert_three_way(index, split)
    test_group_ids = {int(index.groups[row]) for row in split.test_indices}
    training_group_ids = {int(index.groups[row]) for row in np.concatenate([split.train_indices, split.val_indices])}
    assert test_group_ids == set(test_groups)
    assert training_group_ids == set(range(1, 26)) - set(test_groups)
    assert split.num_val > 0  # validation groups come out of the official training groups
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
    assert_three_way(index, split)
    assert "1 listed video(s) not in the cache skipped" in split.description


def test_trainlist_file_trains_on_listed_videos(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    listed = [path for path in index.paths if "_g01_" not in path]
    trainlist = tmp_path / "trainlist01.txt"
    trainlist.write_text("".join(f"{path} {index.class_names.index(path.split('/')[0]) + 1}\n" for path in listed))
    split = choose_split(index, TrainConfig(split_file=str(trainlist)))
    assert sorted(index.paths[row] for row in np.concatenate([split.train_indices, split.val_indices])) == sorted(
        listed
    )
    assert split.num_val > 0
    assert all("_g01_" in index.paths[row] for row in split.test_indices)


def test_csv_split_file(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    csv_path = tmp_path / "split.csv"
    rows = [f"{path},{'test' if row % 4 == 0 else 'train'}" for row, path in enumerate(index.paths)]
    csv_path.write_text("path,subset\n" + "\n".join(rows) + "\n")
    split = choose_split(index, TrainConfig(split_file=str(csv_path)))
    np.testing.assert_array_equal(split.test_indices, np.arange(0, index.num_videos, 4))
    assert split.num_val > 0  # no val rows in the file: validation is held out of its train rows
    assert not set(split.val_indices) & set(split.test_indices) and not set(split.val_indices) & set(
        split.train_indices
    )


def test_csv_split_file_val_rows_are_the_validation_set(ucf101_cache: Path, tmp_path: Path) -> None:
    """A model folder's split.csv (train|val|test) reproduces its split; with --val-fraction 0 its val rows train."""
    index = read_cache_index(ucf101_cache)
    csv_path = tmp_path / "split.csv"
    subsets = ["test" if row % 4 == 0 else "val" if row % 4 == 1 else "train" for row in range(index.num_videos)]
    csv_path.write_text("path,subset\n" + "".join(f"{path},{subset}\n" for path, subset in zip(index.paths, subsets)))
    split = choose_split(index, TrainConfig(split_file=str(csv_path)))
    assert split.subsets(index.num_videos) == subsets
    without = choose_split(index, TrainConfig(split_file=str(csv_path), val_fraction=0))
    assert without.num_val == 0 and without.num_train == split.num_train + split.num_val


def test_model_folder_split_csv_reproduces_the_split(ucf101_cache: Path, tmp_path: Path) -> None:
    index = read_cache_index(ucf101_cache)
    split = choose_split(index, TrainConfig(seed=4))
    csv_path = tmp_path / "split.csv"
    csv_path.write_text(
        "path,subset\n"
        + "".join(f"{path},{subset}\n" for path, subset in zip(index.paths, split.subsets(index.num_videos)))
    )
    again = choose_split(index, TrainConfig(split_file=str(csv_path)))
    assert again.subsets(index.num_videos) == split.subsets(index.num_videos)


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
    """The demo data has 4 groups: the nearest to 20% in whole groups is one group (25%),
    and the description says so."""
    cache_path = ucf101_like_cache(tmp_path / "four.h5", num_classes=3, num_groups=4, clips_per_group=3)
    index = read_cache_index(cache_path)
    split = choose_split(index, TrainConfig(test_fraction=0.2, val_fraction=0.2))
    assert_three_way(index, split)
    # Then validation: 3 training groups, 20% of them is nearest to one group (33%).
    assert (split.num_train, split.num_val, split.num_test) == (18, 9, 9)
    assert "25% held out for test (20% asked; whole groups)" in split.description
    assert "33% held out of the training videos (20% asked; whole groups)" in split.description


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.4, 0.5])
def test_the_share_asked_is_the_share_held_out(tmp_path: Path, fraction: float) -> None:
    """Whole groups still give the share asked (k-fold gave 1/round(1/f): 0.40 asked held out 50%,
    0.30 held out 33%)."""
    cache_path = ucf101_like_cache(tmp_path / "many.h5", num_classes=3, num_groups=25, clips_per_group=4)
    index = read_cache_index(cache_path)
    for seed in range(3):
        split = choose_split(index, TrainConfig(test_fraction=fraction, val_fraction=0, seed=seed))
        assert split.num_test / index.num_videos == pytest.approx(fraction, abs=0.025)
        test_counts = np.bincount(index.labels[split.test_indices], minlength=3)
        assert np.all(np.abs(test_counts - fraction * np.bincount(index.labels)) <= 4)  # stratified: one group of slack
        assert_three_way(index, split)


def test_a_single_training_group_cannot_give_a_validation_set(tmp_path: Path) -> None:
    cache_path = ucf101_like_cache(tmp_path / "two.h5", num_classes=2, num_groups=2, clips_per_group=3)
    index = read_cache_index(cache_path)
    with pytest.raises(FeatcacheError, match=r"training side.*no group can be held out.*--val-fraction 0"):
        choose_split(index, TrainConfig(test_fraction=0.5))
    split = choose_split(index, TrainConfig(test_fraction=0.5, val_fraction=0))
    assert (split.num_train, split.num_val, split.num_test) == (6, 0, 6)


def test_a_single_group_cannot_be_split(tmp_path: Path) -> None:
    cache_path = ucf101_like_cache(tmp_path / "one.h5", num_classes=2, num_groups=1, clips_per_group=4)
    with pytest.raises(FeatcacheError, match="no group can be held out"):
        choose_split(read_cache_index(cache_path), TrainConfig())
