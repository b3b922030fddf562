"""Which cached videos train a head, which pick its best epoch (validation) and which test it.

The split is three-way. First the test set is chosen, in one of three ways:
- "auto": group-aware stratified split. UCF101 groups are clips of one performer/scene; a group on both
  sides would leak near-duplicate clips into the test set, so whole groups are held out
  (`hold_out_whole_groups`: the groups whose videos come closest to test_fraction of every class). Videos without
  a group count as their own group; when no video has a group it is a plain stratified random split.
- "ucf101-1|2|3": the official UCF101 splits: test groups 1-7, 8-14 or 15-21, the rest train.
- a split file: a UCF101 list file, or a CSV with header `path,subset` (subset train|val|test) naming every
  cached video (the split.csv of a model folder is one). A list file whose name contains "test"
  (testlist01.txt) makes every listed video test and the rest train; one whose name contains "train"
  (trainlist01.txt) makes every listed video train and the rest test. Lines are `Class/v_..._gXX_cYY.avi`
  with or without a trailing label; they match cache paths ignoring case (UCF101's own lists spell
  HandstandPushups two ways). Listed videos missing from the cache are skipped and counted.
Then the validation set, which picks the best epoch, is held out of the training side in the same
group-aware stratified way (`val_fraction` of the training videos, seeded), so the test videos are never seen
in training or in choosing the epoch. A CSV's `val` rows are the validation set as listed; val_fraction 0
means no validation set (they train too) and the last epoch is kept.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featcache.cache import CacheIndex
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.user_text import read_user_csv, read_user_text

SUBSETS = ("train", "val", "test")
# The official UCF101 splits hold out these groups (UCF101 readme, "Three Train/Test Splits").
UCF101_TEST_GROUPS = {
    "ucf101-1": range(1, 8),
    "ucf101-2": range(8, 15),
    "ucf101-3": range(15, 22),
}
NO_VALIDATION_FIX = "pass --val-fraction 0 (no validation: the last epoch is kept)"


@dataclass(frozen=True)
class Split:
    """Row indices into the cache (int64, sorted, disjoint): the videos a head trains on, the validation videos
    that pick its best epoch (empty: no validation, the last epoch is kept) and the test videos."""

    train_indices: np.ndarray
    val_indices: np.ndarray
    test_indices: np.ndarray
    description: str

    @property
    def num_train(self) -> int:
        return len(self.train_indices)

    @property
    def num_val(self) -> int:
        return len(self.val_indices)

    @property
    def num_test(self) -> int:
        return len(self.test_indices)

    def subsets(self, num_videos: int) -> list[str]:
        """ "train", "val" or "test" for each of the cache's `num_videos` rows."""
        subsets = np.full(num_videos, "train", dtype=object)
        subsets[self.val_indices] = "val"
        subsets[self.test_indices] = "test"
        return subsets.tolist()


def choose_split(index: CacheIndex, train_config: TrainConfig) -> Split:
    """The split `train_config` asks for, checked to leave training and test videos."""
    is_listed_val = None
    if train_config.split_file is not None:
        is_test, is_listed_val, description = split_from_file(index, Path(train_config.split_file))
    elif train_config.split in UCF101_TEST_GROUPS:
        is_test = official_ucf101_split(index, train_config.split)
        groups = UCF101_TEST_GROUPS[train_config.split]
        description = f"official UCF101 split {train_config.split[-1]} (test groups {groups.start}-{groups.stop - 1})"
    else:
        is_test, description = group_stratified_split(index, train_config.test_fraction, train_config.seed)
    training_side = np.flatnonzero(~is_test).astype(np.int64)
    test_indices = np.flatnonzero(is_test).astype(np.int64)
    if len(training_side) == 0 or len(test_indices) == 0:
        raise InputError(
            f"{index.path}: the split ({description}) leaves {len(training_side)} training and "
            f"{len(test_indices)} test videos; both sides need videos"
        )
    if train_config.val_fraction == 0:
        val_indices = np.zeros(0, dtype=np.int64)
        validation = "no validation (--val-fraction 0), the last epoch is kept"
    elif is_listed_val is not None and is_listed_val.any():
        val_indices = np.flatnonzero(is_listed_val).astype(np.int64)
        validation = "validation: the file's val rows"
    else:
        val_indices, validation = validation_split(index, training_side, train_config.val_fraction, train_config.seed)
    train_indices = np.setdiff1d(training_side, val_indices).astype(np.int64)
    if len(train_indices) == 0:
        raise InputError(
            f"{index.path}: the split ({description}; {validation}) leaves no training videos; "
            f"{NO_VALIDATION_FIX} or list some as train"
        )
    counts = f"{len(train_indices)} train / {len(val_indices)} val / {len(test_indices)} test videos"
    return Split(train_indices, val_indices, test_indices, f"{description}; {validation}: {counts}")


def validation_split(
    index: CacheIndex, training_side: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, str]:
    """Validation rows (int64, sorted) held out of the training side's rows, and a description;
    no group on both sides."""
    labels = np.asarray(index.labels)[training_side]
    groups = [index.groups[row] for row in training_side]
    is_val, how = _hold_out(
        labels,
        groups,
        val_fraction,
        seed,
        context=f"{index.path}: the training side of the split ({len(training_side)} videos)",
        held_out="of the training videos",
        option=f"--val-fraction, or {NO_VALIDATION_FIX}",
        single_group_fix=f"{NO_VALIDATION_FIX}, or choose a split that leaves more groups for training",
    )
    return training_side[is_val], f"validation: {how}"


def official_ucf101_split(index: CacheIndex, split_name: str) -> np.ndarray:
    """bool (N,): True for videos in the official split's test groups."""
    ungrouped = [path for path, group in zip(index.paths, index.groups) if not group]
    if ungrouped:
        raise InputError(
            f"--split / split {split_name} needs UCF101 group ids, "
            f"but {len(ungrouped)} video(s) have none (e.g. {ungrouped[0]}); "
            "use the default --split auto or a --split-file"
        )
    try:
        groups = np.array([int(group) for group in index.groups])
    except ValueError as err:
        raise InputError(
            f"--split / split {split_name} needs numeric UCF101 groups (1-25): {err}; "
            "use --split auto or a --split-file"
        ) from err
    return np.isin(groups, list(UCF101_TEST_GROUPS[split_name]))


def group_stratified_split(index: CacheIndex, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """bool (N,) test mask and a description; no group is on both sides."""
    return _hold_out(
        np.asarray(index.labels),
        list(index.groups),
        test_fraction,
        seed,
        context=str(index.path),
        held_out="for test",
        option="--test-fraction",
        single_group_fix="use a --split-file",
    )


def _hold_out(
    labels: np.ndarray,
    groups: list[str],
    fraction: float,
    seed: int,
    context: str,
    held_out: str,
    option: str,
    single_group_fix: str,
) -> tuple[np.ndarray, str]:
    """bool (n,) held-out mask over the n videos given (labels, groups; "" = no group), and how it was chosen.

    context, held_out, option, single_group_fix: the words of the description and of the errors.
    """
    from sklearn.model_selection import train_test_split

    num_videos = len(labels)
    percent = f"{fraction:.0%}"
    if not any(groups):
        try:
            _, held_out_rows = train_test_split(
                np.arange(num_videos), test_size=fraction, stratify=labels, random_state=seed
            )
        except ValueError as err:
            raise InputError(
                f"{context}: cannot hold out {percent} stratified by class ({err}); "
                f"embed more videos per class or change {option}"
            ) from err
        is_held_out = np.zeros(num_videos, dtype=bool)
        is_held_out[held_out_rows] = True
        return is_held_out, f"stratified random (no groups in the cache), {percent} held out {held_out}, seed {seed}"
    # An ungrouped video is a group of its own, so it never drags other videos along with it.
    groups = [group if group else f"\0video {row}" for row, group in enumerate(groups)]
    if len(set(groups)) < 2:
        raise InputError(
            f"{context}: every video is in group {groups[0]!r}, so no group can be held out; {single_group_fix}"
        )
    is_held_out = hold_out_whole_groups(labels, groups, fraction, seed)
    achieved = f"{is_held_out.mean():.0%}"
    share = f"{achieved} held out {held_out}" + ("" if achieved == percent else f" ({percent} asked; whole groups)")
    return is_held_out, f"group-stratified (no group on both sides), {share}, seed {seed}"


def hold_out_whole_groups(labels: np.ndarray, groups: list[str], fraction: float, seed: int) -> np.ndarray:
    """bool (n,) mask of whole groups whose videos come closest to `fraction` of every class.

    Greedy over the groups in a seeded random order: a group is held out when that brings the held-out
    count of each class nearer to fraction x its count (summed squared distance). K-fold with
    round(1 / fraction) folds, used before, could only give 1/2, 1/3, 1/4 ... (0.40 asked held out 50%).
    At least one group is held out (the one nearest the target when every group is larger than it).
    """
    labels = np.asarray(labels)
    group_names, group_of_video = np.unique(np.array(groups, dtype=object).astype(str), return_inverse=True)
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    counts_per_group = np.zeros((len(group_names), num_classes))
    np.add.at(counts_per_group, (group_of_video, labels), 1)
    target = fraction * counts_per_group.sum(axis=0)

    def distance(held_counts: np.ndarray) -> float:
        return float(np.sum((held_counts - target) ** 2))

    held_counts = np.zeros(num_classes)
    chosen: list[int] = []
    for group in np.random.default_rng(seed).permutation(len(group_names)):
        candidate = held_counts + counts_per_group[group]
        if distance(candidate) < distance(held_counts):
            held_counts = candidate
            chosen.append(int(group))
    if not chosen:
        chosen = [min(range(len(group_names)), key=lambda group: distance(counts_per_group[group]))]
    return np.isin(group_of_video, chosen)


def split_from_file(index: CacheIndex, split_path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    """bool (N,) test mask, bool (N,) val mask (None: the file names no val rows) and a description.

    From a UCF101 list file (train or test only) or a path,subset CSV (train, val or test).
    """
    if not split_path.is_file():
        raise InputError(
            f"--split-file / split_file {split_path}: no such file; "
            "pass a UCF101 trainlist/testlist .txt or a CSV path,subset"
        )
    if split_path.suffix.lower() == ".csv":
        is_test, is_val = _split_from_csv(index, split_path)
        return is_test, is_val, f"from {split_path} (path,subset CSV)"
    name = split_path.name.lower()
    if "test" in name:
        listed_are_test = True
    elif "train" in name:
        listed_are_test = False
    else:
        raise InputError(
            f"--split-file / split_file {split_path}: cannot tell whether it lists training or test videos; "
            "its name must contain 'train' or 'test' (UCF101's trainlist01.txt, testlist01.txt), "
            "or pass a CSV path,subset"
        )
    text = read_user_text(split_path, described_as=f"--split-file / split_file {split_path}")
    # Lines as a text file reads them (\n, \r\n or \r), not str.splitlines' dozen separators.
    listed = {_normalise(line.split()[0]) for line in io.StringIO(text, newline=None) if line.strip()}
    row_of_path = {_normalise(path): row for row, path in enumerate(index.paths)}
    is_listed = np.zeros(index.num_videos, dtype=bool)
    is_listed[[row_of_path[path] for path in listed if path in row_of_path]] = True
    if not is_listed.any():
        raise InputError(
            f"--split-file / split_file {split_path}: none of its {len(listed)} paths is in the cache "
            f"(paths look like {index.paths[0]!r})"
        )
    num_skipped = len(listed) - int(is_listed.sum())
    skipped = f", {num_skipped} listed video(s) not in the cache skipped" if num_skipped else ""
    side, other = ("test", "train") if listed_are_test else ("train", "test")
    description = f"from {split_path} (listed videos are {side}, the rest {other}{skipped})"
    return (is_listed if listed_are_test else ~is_listed), None, description


def _split_from_csv(index: CacheIndex, split_path: Path) -> tuple[np.ndarray, np.ndarray]:
    described_as = f"--split-file / split_file {split_path}"
    rows = read_user_csv(split_path, described_as=described_as)
    columns = [column.strip() for column in rows[0][1]] if rows else []
    if not {"path", "subset"} <= set(columns):
        raise InputError(f"{described_as}: the first line must be the header path,subset")
    subset_of_path = {}
    for line_number, fields in rows[1:]:
        row = dict(zip(columns, fields))
        if not row.get("path", "").strip() or "subset" not in row:
            raise InputError(f"{described_as}, line {line_number}: every row needs a path and a subset")
        subset_of_path[_normalise(row["path"])] = row["subset"].strip()
    bad = Counter(subset for subset in subset_of_path.values() if subset not in SUBSETS)
    if bad:
        raise InputError(
            f"--split-file / split_file {split_path}: subset must be train, val or test, "
            f"found {', '.join(map(repr, bad))}"
        )
    unlisted = [path for path in index.paths if _normalise(path) not in subset_of_path]
    if unlisted:
        raise InputError(
            f"--split-file / split_file {split_path}: {len(unlisted)} cached video(s) are not listed "
            f"(e.g. {unlisted[0]}); a CSV split must name every video"
        )
    subsets = np.array([subset_of_path[_normalise(path)] for path in index.paths], dtype=object)
    return subsets == "test", subsets == "val"


def _normalise(path: str) -> str:
    path = path.strip().replace("\\", "/")
    return path.removeprefix("./").lower()
