"""Training on a cache: the model folder, round trip, determinism, best epoch, streaming, bad input, CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from cache_fixtures import ucf101_like_cache, write_cache
from typer.testing import CliRunner

from featcache.cache import FeatureReader, read_cache_index
from featcache.cli import app
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import CacheFormatError, FeatcacheError, ModelDirError
from featcache.training.epochs import KeepBestEpoch
from featcache.training.heads import build_head
from featcache.training.model_folder import HISTORY_COLUMNS, METADATA_KEYS, ModelFolder
from featcache.training.scoring import score_accuracy
from featcache.training.train import fit_head, train, training_class_weights
from featcache.training.training_data import load_training_data

SMALL_HEAD = HeadConfig(units=8, dense=8)
QUICK = TrainConfig(epochs=3, batch_size=16)


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 groups x 2 clips, 6 frames x 8 dims, UCF101 paths and groups."""
    return ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "small.h5", num_classes=3, num_groups=10, clips_per_group=2
    )


@pytest.fixture(scope="module")
def trained(small_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """One training run shared by the tests that only read its output."""
    return train(small_cache, tmp_path_factory.mktemp("model") / "model", SMALL_HEAD, QUICK)


@pytest.fixture
def cache_with_one_class(tmp_path: Path) -> Path:
    return write_cache(tmp_path / "one.h5", np.ones((4, 3, 2)), np.full(4, 3), np.zeros(4), ["Only"])


@pytest.fixture
def cache_with_missing_class(tmp_path: Path) -> Path:
    """class_names lists three classes, but no video is labelled with the third."""
    labels = np.array([0, 0, 0, 1, 1, 1])
    return write_cache(tmp_path / "missing.h5", np.ones((6, 3, 2)), np.full(6, 3), labels, ["A", "B", "C"])


def test_model_folder_holds_every_file(trained, small_cache: Path) -> None:
    model_dir = trained.model_dir
    metadata = json.loads((model_dir / "featcache.json").read_text())
    assert set(METADATA_KEYS) <= set(metadata)
    assert metadata["format_version"] == 1
    assert metadata["head"] == {
        "head": "lstm",
        "units": 8,
        "dense": 8,
        "dropout": 0.5,
        "recurrent_dropout": 0.0,
        "final_dropout": 0.3,
        "num_layers": 2,
        "num_heads": 4,
        "positions": "sinusoidal",
        "pooling": "mean",
        "kernel_size": 3,
    }
    assert metadata["training"]["epochs"] == 3 and metadata["training"]["seed"] == 0
    assert metadata["class_names"] == ["ActionA", "ActionB", "ActionC"]
    assert (metadata["num_frames"], metadata["feature_dim"]) == (6, 8)
    assert metadata["cache_dtype"] == read_cache_index(small_cache).dtype
    assert metadata["extractor"]["name"] == "mobilenet_v2" and metadata["sampling"]["num_frames"] == 6
    assert metadata["cache"] == {"path": str(small_cache.resolve()), "num_videos": 60}
    assert metadata["split"]["num_train"] + metadata["split"]["num_val"] + metadata["split"]["num_test"] == 60
    assert metadata["split"]["num_val"] > 0 and metadata["best_val_accuracy"] == trained.best_val_accuracy
    assert "group-stratified" in metadata["split"]["description"]
    with open(model_dir / "history.csv", newline="") as stream:
        history = list(csv.DictReader(stream))
    assert tuple(history[0]) == HISTORY_COLUMNS and [int(row["epoch"]) for row in history] == [1, 2, 3]
    with open(model_dir / "split.csv", newline="") as stream:
        split_rows = list(csv.DictReader(stream))
    assert len(split_rows) == 60 and {row["subset"] for row in split_rows} == {"train", "val", "test"}
    for subset in ("train", "val", "test"):
        assert sum(row["subset"] == subset for row in split_rows) == metadata["split"][f"num_{subset}"]
    assert (model_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_model_round_trip_gives_the_same_predictions(trained) -> None:
    loaded = ModelFolder.open(trained.model_dir)
    features = np.random.default_rng(0).normal(size=(4, 6, 8)).astype(np.float32)
    lengths = np.array([6, 3, 1, 5], dtype=np.int32)
    np.testing.assert_allclose(
        loaded.load_model().predict([features, lengths], verbose=0),
        trained.model.predict([features, lengths], verbose=0),
        rtol=1e-6,
    )
    assert loaded.class_names == ["ActionA", "ActionB", "ActionC"]
    assert set(loaded.split.values()) == {"train", "val", "test"} and len(loaded.split) == 60


def test_best_epoch_is_the_restored_one(trained, small_cache: Path) -> None:
    val_accuracies = [row["val_accuracy"] for row in trained.history]
    # Best validation accuracy, ties broken by the lowest validation loss.
    best_row = min(trained.history, key=lambda row: (-row["val_accuracy"], row["val_loss"]))
    assert trained.best_epoch == best_row["epoch"]
    assert trained.best_val_accuracy == max(val_accuracies)
    # The kept weights score the best epoch's validation accuracy on the validation videos.
    data = load_training_data(small_cache, QUICK)
    assert score_accuracy(trained.model, data, "val") == pytest.approx(trained.best_val_accuracy, abs=1e-6)


@pytest.fixture(scope="module")
def cache_with_misleading_test_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 25 groups x 2 clips; the test groups of ucf101-1 (1-7) look like the next class."""
    return ucf101_like_cache(
        tmp_path_factory.mktemp("cache") / "misleading.h5",
        num_groups=25,
        clips_per_group=2,
        mislabelled_groups=range(1, 8),
    )


@pytest.mark.parametrize("memory_budget_mb", [2048, 0], ids=["in-memory", "streamed"])
def test_validation_not_test_picks_the_best_epoch(
    cache_with_misleading_test_groups: Path, tmp_path: Path, memory_budget_mb: int
) -> None:
    """Val and test disagree: learning lifts validation accuracy and sinks test accuracy, and val picks the epoch."""
    train_config = TrainConfig(
        epochs=6, batch_size=16, learning_rate=0.01, split="ucf101-1", memory_budget_mb=memory_budget_mb
    )
    result = train(
        cache_with_misleading_test_groups, tmp_path / "model", HeadConfig(head="meanpool", dense=8), train_config
    )
    val_accuracies = [row["val_accuracy"] for row in result.history]
    best_row = min(result.history, key=lambda row: (-row["val_accuracy"], row["val_loss"]))
    assert result.best_epoch == best_row["epoch"] and result.best_val_accuracy == max(val_accuracies)
    assert result.best_val_accuracy > 0.9  # the validation groups look like their classes
    data = load_training_data(cache_with_misleading_test_groups, train_config)
    assert (
        score_accuracy(result.model, data, "test") < 0.2
    )  # had test picked the epoch, the least trained one would win
    assert set(data.split.test_indices).isdisjoint(np.concatenate([data.split.train_indices, data.split.val_indices]))


@pytest.fixture
def cache_with_nan_test_videos(tmp_path: Path) -> Path:
    """3 classes x 10 groups x 2 clips; the test videos of ucf101-1 (groups 1-7) have NaN features."""
    from featcache.cache import read_all_features, read_cache_index

    source = ucf101_like_cache(tmp_path / "source.h5", num_classes=3, num_groups=10, clips_per_group=2)
    index = read_cache_index(source)
    features = read_all_features(source)
    features[np.isin(np.array(index.groups, dtype=int), range(1, 8))] = np.nan
    return write_cache(
        tmp_path / "nan.h5",
        features,
        index.lengths,
        index.labels,
        index.class_names,
        paths=index.paths,
        groups=index.groups,
    )


@pytest.mark.parametrize("memory_budget_mb", [2048, 0], ids=["in-memory", "streamed"])
def test_training_and_epoch_selection_never_read_the_test_videos(
    cache_with_nan_test_videos: Path, tmp_path: Path, memory_budget_mb: int
) -> None:
    """A NaN feature read by training or validation would make a loss, a metric or a weight NaN."""
    train_config = TrainConfig(epochs=2, batch_size=8, split="ucf101-1", memory_budget_mb=memory_budget_mb)
    result = train(cache_with_nan_test_videos, tmp_path / "model", SMALL_HEAD, train_config)
    assert result.split.num_val > 0 and result.split.num_test == 42
    for row in result.history:
        assert all(np.isfinite(row[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")), row
    assert all(np.isfinite(weights).all() for weights in result.model.get_weights())


def test_val_fraction_zero_keeps_the_last_epoch(small_cache: Path, tmp_path: Path) -> None:
    result = train(small_cache, tmp_path / "model", SMALL_HEAD, TrainConfig(epochs=3, batch_size=16, val_fraction=0))
    assert result.best_epoch == 3 and result.best_val_accuracy is None and result.split.num_val == 0
    assert all(row["val_loss"] is None and row["val_accuracy"] is None for row in result.history)
    metadata = json.loads((tmp_path / "model" / "featcache.json").read_text())
    assert (metadata["best_epoch"], metadata["best_val_accuracy"], metadata["split"]["num_val"]) == (3, None, 0)
    assert "no validation" in metadata["split"]["description"]
    with open(tmp_path / "model" / "history.csv", newline="") as stream:
        assert all(row["val_accuracy"] == "" for row in csv.DictReader(stream))
    assert set(ModelFolder.open(tmp_path / "model").split.values()) == {"train", "test"}


def test_keep_best_epoch_without_validation_keeps_the_last_epoch() -> None:
    model = build_head(SMALL_HEAD, num_frames=3, feature_dim=2, num_classes=2)
    keeper = KeepBestEpoch(epochs=3, progress=None, validates=False)
    keeper.set_model(model)
    for epoch in range(3):
        model.set_weights([np.full_like(weights, epoch) for weights in model.get_weights()])
        keeper.on_epoch_begin(epoch)
        keeper.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5})
    keeper.on_train_end()
    assert (keeper.best_epoch, keeper.best_val_accuracy) == (3, None)
    assert all((weights == 2).all() for weights in model.get_weights())


def test_keep_best_epoch_restores_an_earlier_epoch() -> None:
    model = build_head(SMALL_HEAD, num_frames=3, feature_dim=2, num_classes=2)
    keeper = KeepBestEpoch(epochs=3, progress=None)
    keeper.set_model(model)
    weights_by_epoch = []
    for epoch, val_accuracy in enumerate([0.5, 0.8, 0.6]):
        model.set_weights([np.full_like(weights, epoch) for weights in model.get_weights()])
        weights_by_epoch.append(model.get_weights())
        keeper.on_epoch_begin(epoch)
        keeper.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": val_accuracy})
    keeper.on_train_end()
    assert keeper.best_epoch == 2
    for restored, kept in zip(model.get_weights(), weights_by_epoch[1]):
        np.testing.assert_array_equal(restored, kept)


def run_keeper(keeper: KeepBestEpoch, model, val_rows: list[tuple[float, float]]) -> list:
    """Feed (val_accuracy, val_loss) epochs to `keeper`, each epoch's weights filled with its number;
    the weights by epoch."""
    keeper.set_model(model)
    weights_by_epoch = []
    for epoch, (val_accuracy, val_loss) in enumerate(val_rows):
        if model.stop_training:
            break
        model.set_weights([np.full_like(weights, epoch) for weights in model.get_weights()])
        weights_by_epoch.append(model.get_weights())
        keeper.on_epoch_begin(epoch)
        keeper.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": val_loss, "val_accuracy": val_accuracy})
    keeper.on_train_end()
    return weights_by_epoch


def test_keep_best_epoch_breaks_accuracy_ties_by_validation_loss() -> None:
    """The case users met: every epoch at the same validation accuracy, the first barely trained (val loss 1.03)."""
    model = build_head(SMALL_HEAD, num_frames=3, feature_dim=2, num_classes=2)
    model.stop_training = False
    keeper = KeepBestEpoch(epochs=4, progress=None)
    weights_by_epoch = run_keeper(keeper, model, [(1.0, 1.03), (1.0, 0.2), (1.0, 0.0004), (1.0, 0.01)])
    assert keeper.best_epoch == 3
    for restored, kept in zip(model.get_weights(), weights_by_epoch[2]):
        np.testing.assert_array_equal(restored, kept)


def test_patience_stops_after_epochs_without_a_better_one() -> None:
    model = build_head(SMALL_HEAD, num_frames=3, feature_dim=2, num_classes=2)
    model.stop_training = False
    messages: list[str] = []
    keeper = KeepBestEpoch(epochs=10, progress=messages.append, patience=2)
    rows = [(0.5, 1.0), (0.8, 0.5), (0.7, 0.6), (0.8, 0.7), (0.9, 0.1), (0.9, 0.1)]
    run_keeper(keeper, model, rows)
    assert len(keeper.history) == 4 and keeper.best_epoch == 2 and keeper.stopped_early
    assert "stopped early" in messages[-1]


def test_patience_on_a_real_run(small_cache: Path, tmp_path: Path) -> None:
    result = train(small_cache, tmp_path / "patient", SMALL_HEAD, TrainConfig(epochs=30, patience=1, learning_rate=0.3))
    assert result.stopped_early and len(result.history) < 30
    assert len(result.history) == result.best_epoch + 1  # stopped one epoch after the last better one


def test_patience_must_not_be_negative() -> None:
    with pytest.raises(FeatcacheError, match="--patience"):
        TrainConfig(patience=-1)


def test_same_seed_same_model(small_cache: Path, tmp_path: Path, trained) -> None:
    again = train(small_cache, tmp_path / "again", SMALL_HEAD, QUICK)
    for first, second in zip(trained.history, again.history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert first[key] == pytest.approx(second[key], rel=1e-5)
    for first, second in zip(trained.model.get_weights(), again.model.get_weights()):
        np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)


def test_streamed_training_over_the_memory_budget(small_cache: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    result = train(
        small_cache,
        tmp_path / "streamed",
        HeadConfig(head="gru", units=8, dense=8),
        TrainConfig(epochs=2, memory_budget_mb=0),
        progress=messages.append,
    )
    assert any("streamed from disk" in message for message in messages)
    assert len(result.history) == 2 and 1 <= result.best_epoch <= 2
    assert ModelFolder.open(tmp_path / "streamed").metadata.head_config.head == "gru"


def test_official_split_is_recorded(small_cache: Path, tmp_path: Path) -> None:
    result = train(small_cache, tmp_path / "official", SMALL_HEAD, TrainConfig(epochs=1, split="ucf101-1"))
    split = ModelFolder.open(tmp_path / "official").split
    assert all((split[path] == "test") == (int(path.split("_g")[1][:2]) <= 7) for path in split)
    assert "official UCF101 split 1" in result.metadata.split["description"]


def test_epochs_zero_is_a_clear_error() -> None:
    with pytest.raises(FeatcacheError, match="--epochs / epochs must be at least 1, got 0"):
        TrainConfig(epochs=0)


def test_missing_cache_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CacheFormatError, match="no such cache file"):
        train(tmp_path / "absent.h5", tmp_path / "model", SMALL_HEAD, QUICK)


def test_cache_with_one_class_is_refused(cache_with_one_class: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatcacheError, match="at least 2 classes"):
        train(cache_with_one_class, tmp_path / "model", SMALL_HEAD, QUICK)


def test_cache_with_missing_class_is_refused(cache_with_missing_class: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatcacheError, match="class\\(es\\) C have no videos"):
        train(cache_with_missing_class, tmp_path / "model", SMALL_HEAD, QUICK)


def test_foreign_out_folder_is_refused(small_cache: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ModelDirError, match="holiday.jpg"):
        train(small_cache, foreign, SMALL_HEAD, QUICK)


def test_previous_model_folder_is_kept_unless_overwrite(small_cache: Path, tmp_path: Path) -> None:
    train(small_cache, tmp_path / "model", SMALL_HEAD, TrainConfig(epochs=1))
    report = tmp_path / "model" / "evaluation" / "small" / "report.json"  # `featcache evaluate` of the first model
    report.parent.mkdir(parents=True)
    report.write_text("{}")
    with pytest.raises(ModelDirError, match="already holds a model.*--overwrite"):
        train(small_cache, tmp_path / "model", HeadConfig(head="meanpool", dense=8), TrainConfig(epochs=1))
    assert report.exists() and ModelFolder.open(tmp_path / "model").metadata.head_config.head == SMALL_HEAD.head
    train(small_cache, tmp_path / "model", HeadConfig(head="meanpool", dense=8), TrainConfig(epochs=1), overwrite=True)
    assert ModelFolder.open(tmp_path / "model").metadata.head_config.head == "meanpool"
    assert not (tmp_path / "model" / "evaluation").exists()  # its reports described the previous model


@pytest.mark.parametrize(
    ("make_folder", "message"),
    [
        (lambda folder: None, "no such model folder"),
        (lambda folder: folder.mkdir(), "no featcache.json"),
        (lambda folder: (folder.mkdir(), (folder / "featcache.json").write_text("{}")), "format None"),
    ],
)
def test_loading_a_missing_or_foreign_folder_is_a_clear_error(tmp_path: Path, make_folder, message: str) -> None:
    make_folder(tmp_path / "model")
    with pytest.raises(ModelDirError, match=message):
        ModelFolder.open(tmp_path / "model")


def test_loading_an_incomplete_folder_is_a_clear_error(trained, tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "featcache.json").write_text((trained.model_dir / "featcache.json").read_text())
    with pytest.raises(ModelDirError, match="model.keras is missing"):
        ModelFolder.open(incomplete)


def test_train_command(small_cache: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(small_cache),
            "--out",
            str(tmp_path / "cli_model"),
            "--head",
            "meanpool",
            "--dense",
            "8",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--test-fraction",
            "0.3",
            "--val-fraction",
            "0.25",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "split: group-stratified" in result.output
        and "seed 3" in result.output
        and "30% held out for test" in result.output
    )
    assert "29% held out of the training videos (25% asked; whole groups)" in result.output  # 2 of 7 groups
    assert "epoch 2/2" in result.output and "best epoch" in result.output and "validation accuracy" in result.output
    assert f"featcache evaluate {tmp_path / 'cli_model'}" in result.output
    assert str(tmp_path / "cli_model") in result.output
    assert (tmp_path / "cli_model" / "featcache.json").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--epochs", "0"], "--epochs / epochs must be at least 1, got 0"),
        (["--head", "resnet"], "resnet"),
        (["--class-weight", "inverse"], "inverse"),
        (["--split", "ucf101-1", "--split-file", "testlist01.txt"], "pass only one"),
        (["--test-fraction", "0"], "--test-fraction / test_fraction must be in (0, 0.5]"),
        (["--val-fraction", "0.7"], "--val-fraction / val_fraction must be in [0, 0.5]"),
    ],
)
def test_train_command_rejects_bad_options(
    small_cache: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["train", str(small_cache), "--out", str(tmp_path / "model"), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_train_command_on_a_missing_cache(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(tmp_path / "absent.h5"), "--out", str(tmp_path / "model")])
    assert result.exit_code == 2
    assert "no such cache file" in result.output


def test_tensorboard_logs_or_a_clear_error(small_cache: Path, tmp_path: Path) -> None:
    train_config = TrainConfig(epochs=1, tensorboard_dir=str(tmp_path / "logs"))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(FeatcacheError, match="pip install tensorboard"):
            train(small_cache, tmp_path / "model", SMALL_HEAD, train_config)
    else:
        train(small_cache, tmp_path / "model", SMALL_HEAD, train_config)
        assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_balanced_class_weights_follow_the_training_counts() -> None:
    labels = np.array([0] * 80 + [1] * 8 + [2] * 12)
    weights = training_class_weights(labels, 3, "balanced")
    assert weights == pytest.approx({0: 100 / (3 * 80), 1: 100 / (3 * 8), 2: 100 / (3 * 12)})
    # Each class's weights sum to the same total: n / num_classes.
    assert [weights[label] * count for label, count in enumerate((80, 8, 12))] == pytest.approx([100 / 3] * 3)
    assert training_class_weights(labels, 3, "none") is None


@pytest.fixture(scope="module")
def imbalanced_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 Common vs 16 Rare videos whose features overlap (class means 0.35 apart per dim, unit noise)."""
    rng = np.random.default_rng(0)
    labels = np.array([0] * 160 + [1] * 16)
    features = 0.35 * labels[:, None, None] + rng.normal(size=(len(labels), 4, 8))
    return write_cache(
        tmp_path_factory.mktemp("cache") / "imbalanced.h5",
        features,
        np.full(len(labels), 4),
        labels,
        ["Common", "Rare"],
        dtype="float32",
    )


@pytest.mark.parametrize("memory_budget_mb", [2048, 0], ids=["in-memory", "streamed"])
def test_balanced_class_weights_raise_the_rare_class_recall(imbalanced_cache: Path, memory_budget_mb: int) -> None:
    def rare_recall(class_weight: str) -> float:
        train_config = TrainConfig(
            epochs=30,
            learning_rate=3e-3,
            val_fraction=0,
            test_fraction=0.5,
            class_weight=class_weight,
            memory_budget_mb=memory_budget_mb,
        )
        data = load_training_data(imbalanced_cache, train_config)
        model = fit_head(data, HeadConfig(head="meanpool", dense=8, final_dropout=0.0), train_config).model
        rare_rows = data.split.test_indices[data.index.labels[data.split.test_indices] == 1]
        with FeatureReader(imbalanced_cache) as reader:
            features = reader.read(rare_rows)
        predicted = model.predict([features, data.index.lengths[rare_rows]], verbose=0).argmax(axis=1)
        return float(np.mean(predicted == 1))

    # Unweighted, the head learns to answer Common; balanced, it finds most Rare test videos.
    assert rare_recall("none") <= 0.25 < 0.6 <= rare_recall("balanced")


def test_train_command_prints_the_class_weights(imbalanced_cache: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(imbalanced_cache),
            "--out",
            str(tmp_path / "model"),
            "--head",
            "meanpool",
            "--epochs",
            "1",
            "--class-weight",
            "balanced",
            "--test-fraction",
            "0.5",
            "--val-fraction",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "class weights (balanced): Common 0.55, Rare 5.50" in result.output
    assert json.loads((tmp_path / "model" / "featcache.json").read_text())["training"]["class_weight"] == "balanced"


def test_a_head_at_chance_level_is_warned_about(tmp_path: Path) -> None:
    """Features without information (as random-init MobileNetV2 gives): the head ends at chance and says so."""
    labels = np.repeat([0, 1, 2], 20)
    cache_path = ucf101_like_cache(tmp_path / "noise.h5", num_classes=3, num_groups=20, clips_per_group=1)
    with h5py.File(cache_path, "r+") as handle:
        handle["features"][...] = np.float16(1.0)  # the same vector for every frame of every video
    result = train(cache_path, tmp_path / "model", SMALL_HEAD, TrainConfig(epochs=2))
    assert any("chance level" in warning and "--weights" in warning for warning in result.warnings), result.warnings
    assert len(labels) == 60


def test_a_learning_head_gets_no_chance_warning(trained) -> None:
    assert not any("chance level" in warning for warning in trained.warnings)


def test_a_too_small_test_set_is_warned_about(tmp_path: Path) -> None:
    cache_path = ucf101_like_cache(tmp_path / "few.h5", num_classes=3, num_groups=4, clips_per_group=1)
    result = train(cache_path, tmp_path / "model", SMALL_HEAD, TrainConfig(epochs=1, val_fraction=0))
    assert any("test set has" in warning and "--test-fraction" in warning for warning in result.warnings), (
        result.warnings
    )


def test_train_command_refuses_an_existing_model_folder_without_overwrite(small_cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    arguments = ["train", str(small_cache), "--out", str(tmp_path / "model"), "--head", "meanpool", "--epochs", "1"]
    assert runner.invoke(app, arguments).exit_code == 0
    refused = runner.invoke(app, arguments)
    assert refused.exit_code == 2 and "already holds a model" in refused.output and "--overwrite" in refused.output
    assert runner.invoke(app, [*arguments, "--overwrite"]).exit_code == 0


def test_a_small_split_is_warned_about_with_the_count_of_thin_classes() -> None:
    from featcache.training.diagnostics import split_warnings
    from featcache.training.splits import Split

    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0], dtype=np.int32)
    split = Split(np.arange(6), np.zeros(0, np.int64), np.array([6, 7, 9]), "test split")  # test: classes 0, 1, 0
    assert split_warnings(split, labels, num_classes=3) == [
        "the test set has 3 videos, and 2 of the 3 classes have fewer than 2 videos in it: its accuracy means little; "
        "raise --test-fraction / test_fraction or embed more videos"
    ]
