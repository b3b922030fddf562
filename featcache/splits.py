"""Which cached videos train a head and which are held out to test it.

- "auto": group-aware stratified split. UCF101 groups are clips of one performer/scene; a group on both
  sides would leak near-duplicate clips into the test set, so whole groups are held out
  (StratifiedGroupKFold, one fold of round(1 / val_fraction), or of as many folds as there are groups when
  there are fewer). Videos without a group count as their own group; when no video has a group it is a
  plain stratified random split.
- "ucf101-1|2|3": the official UCF101 splits: test groups 1-7, 8-14 or 15-21, the rest train.
- a split file: a UCF101 list file, or a CSV with header `path,subset` (subset train|test) naming every
  cached video (the split.csv of a model folder is one). A list file whose name contains "test"
  (testlist01.txt) makes every listed video test and the rest train; one whose name contains "train"
  (trainlist01.txt) makes every listed video train and the rest test. Lines are `Class/v_..._gXX_cYY.avi`
  with or without a trailing label; they match cache paths ignoring case (UCF101's own lists spell
  HandstandPushups two ways). Listed videos missing from the cache are skipped and counted.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.cache import CacheIndex
from featcache.config import TrainConfig
from featcache.errors import InputError

SUBSETS = ("train", "test")
# The official UCF101 splits hold out these groups (UCF101 readme, "Three Train/Test Splits").
UCF101_TEST_GROUPS = {
    "ucf101-1": range(1, 8),
    "ucf101-2": range(8, 15),
    "ucf101-3": range(15, 22),
}


@dataclass(frozen=True)
class Split:
    """Row indices into the cache (int64, sorted) of the training and held-out videos."""

    train_indices: np.ndarray
    test_indices: np.ndarray
    description: str

    @property
    def num_train(self) -> int:
        return len(self.train_indices)

    @property
    def num_test(self) -> int:
        return len(self.test_indices)

    def subsets(self, num_videos: int) -> list[str]:
        """"train" or "test" for each of the cache's `num_videos` rows."""
        subsets = np.full(num_videos, "train", dtype=object)
        subsets[self.test_indices] = "test"
        return subsets.tolist()


def choose_split(index: CacheIndex, train_config: TrainConfig) -> Split:
    """The split `train_config` asks for, checked to leave videos on both sides."""
    if train_config.split_file is not None:
        is_test, description = split_from_file(index, Path(train_config.split_file))
    elif train_config.split in UCF101_TEST_GROUPS:
        is_test = official_ucf101_split(index, train_config.split)
        groups = UCF101_TEST_GROUPS[train_config.split]
        description = f"official UCF101 split {train_config.split[-1]} (test groups {groups.start}-{groups.stop - 1})"
    else:
        is_test, description = group_stratified_split(index, train_config.val_fraction, train_config.seed)
    split = Split(
        train_indices=np.flatnonzero(~is_test).astype(np.int64),
        test_indices=np.flatnonzero(is_test).astype(np.int64),
        description=description,
    )
    if split.num_train == 0 or split.num_test == 0:
        raise InputError(f"{index.path}: the split ({description}) leaves {split.num_train} training and {split.num_test} test videos; both sides need videos")
    return Split(split.train_indices, split.test_indices, f"{description}: {split.num_train} train / {split.num_test} test videos")


def official_ucf101_split(index: CacheIndex, split_name: str) -> np.ndarray:
    """bool (N,): True for videos in the official split's test groups."""
    ungrouped = [path for path, group in zip(index.paths, index.groups) if not group]
    if ungrouped:
        raise InputError(
            f"--split {split_name} needs UCF101 group ids, but {len(ungrouped)} video(s) have none (e.g. {ungrouped[0]}); "
            "use the default --split auto or a --split-file"
        )
    try:
        groups = np.array([int(group) for group in index.groups])
    except ValueError as err:
        raise InputError(f"--split {split_name} needs numeric UCF101 groups (1-25): {err}; use --split auto or a --split-file") from err
    return np.isin(groups, list(UCF101_TEST_GROUPS[split_name]))


def group_stratified_split(index: CacheIndex, val_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """bool (N,) held-out mask and a description; no group is on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    labels = np.asarray(index.labels)
    percent = f"{val_fraction:.0%}"
    if not any(index.groups):
        try:
            _, test_rows = train_test_split(np.arange(index.num_videos), test_size=val_fraction, stratify=labels, random_state=seed)
        except ValueError as err:
            raise InputError(f"{index.path}: cannot hold out {percent} stratified by class ({err}); embed more videos per class or change --val-fraction") from err
        is_test = np.zeros(index.num_videos, dtype=bool)
        is_test[test_rows] = True
        return is_test, f"stratified random (no groups in the cache), {percent} held out, seed {seed}"
    # An ungrouped video is a group of its own, so it never drags other videos along with it.
    groups = [group if group else f"\0video {row}" for row, group in enumerate(index.groups)]
    num_folds = round(1 / val_fraction)
    num_groups = len(set(groups))
    if num_groups < 2:
        raise InputError(f"{index.path}: every video is in group {groups[0]!r}, so no group can be held out; use a --split-file")
    held_out = f"{percent} held out"
    if num_groups < num_folds:
        # Fewer groups than folds: hold out one group's worth rather than refuse (the demo data has 4 groups).
        held_out = f"1 of {num_groups} groups' worth held out (only {num_groups} groups for the {percent} asked)"
        num_folds = num_groups
    folds = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    _, test_rows = next(folds.split(np.zeros(index.num_videos), labels, groups))
    is_test = np.zeros(index.num_videos, dtype=bool)
    is_test[test_rows] = True
    return is_test, f"group-stratified (no group on both sides), {held_out}, seed {seed}"


def split_from_file(index: CacheIndex, split_path: Path) -> tuple[np.ndarray, str]:
    """bool (N,) held-out mask and a description, from a UCF101 list file or a path,subset CSV."""
    if not split_path.is_file():
        raise InputError(f"--split-file {split_path}: no such file; pass a UCF101 trainlist/testlist .txt or a CSV path,subset")
    if split_path.suffix.lower() == ".csv":
        return _split_from_csv(index, split_path), f"from {split_path} (path,subset CSV)"
    name = split_path.name.lower()
    if "test" in name:
        listed_are_test = True
    elif "train" in name:
        listed_are_test = False
    else:
        raise InputError(
            f"--split-file {split_path}: cannot tell whether it lists training or test videos; "
            "its name must contain 'train' or 'test' (UCF101's trainlist01.txt, testlist01.txt), or pass a CSV path,subset"
        )
    with open(split_path, encoding="utf-8") as stream:
        listed = {_normalise(line.split()[0]) for line in stream if line.strip()}
    row_of_path = {_normalise(path): row for row, path in enumerate(index.paths)}
    is_listed = np.zeros(index.num_videos, dtype=bool)
    is_listed[[row_of_path[path] for path in listed if path in row_of_path]] = True
    if not is_listed.any():
        raise InputError(f"--split-file {split_path}: none of its {len(listed)} paths is in the cache (paths look like {index.paths[0]!r})")
    num_skipped = len(listed) - int(is_listed.sum())
    skipped = f", {num_skipped} listed video(s) not in the cache skipped" if num_skipped else ""
    side, other = ("test", "train") if listed_are_test else ("train", "test")
    description = f"from {split_path} (listed videos are {side}, the rest {other}{skipped})"
    return (is_listed if listed_are_test else ~is_listed), description


def _split_from_csv(index: CacheIndex, split_path: Path) -> np.ndarray:
    with open(split_path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or not {"path", "subset"} <= set(reader.fieldnames):
            raise InputError(f"--split-file {split_path}: the first line must be the header path,subset")
        subset_of_path = {_normalise(row["path"]): (row["subset"] or "").strip() for row in reader}
    bad = Counter(subset for subset in subset_of_path.values() if subset not in SUBSETS)
    if bad:
        raise InputError(f"--split-file {split_path}: subset must be train or test, found {', '.join(map(repr, bad))}")
    unlisted = [path for path in index.paths if _normalise(path) not in subset_of_path]
    if unlisted:
        raise InputError(f"--split-file {split_path}: {len(unlisted)} cached video(s) are not listed (e.g. {unlisted[0]}); a CSV split must name every video")
    return np.array([subset_of_path[_normalise(path)] == "test" for path in index.paths], dtype=bool)


def _normalise(path: str) -> str:
    path = path.strip().replace("\\", "/")
    return path.removeprefix("./").lower()
