"""evaluate: metrics against scikit-learn, default subset, class matching by name, feature checks, CLI.

The model folders here are written by hand: a Keras model whose softmax is over the first frame's
features (so every prediction is known from the cache contents) and a featcache.json like train's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score
from typer.testing import CliRunner

from featcache import __version__
from featcache.cache import VideoRows, write_cache
from featcache.cli import app
from featcache.errors import CacheFormatError, CacheMismatchError, InputError, ModelDirError
from featcache.inference.evaluate import evaluate, format_report
from featcache.training import scoring as scoring_module

CLASS_NAMES = ["Alpha", "Beta", "Gamma"]
NUM_FRAMES = 4
FEATURE_DIM = 3
EXTRACTOR = {
    "name": "scratch_cnn",
    "weights": "random",
    "weights_sha256": None,
    "handle": None,
    "image_size": 32,
    "seed": 0,
    "preprocessing": "x / 255",
    "feature_dim": FEATURE_DIM,
}
SAMPLING = {"num_frames": NUM_FRAMES, "mode": "uniform", "fps": None}


def write_test_cache(
    path: Path,
    features: np.ndarray,
    labels: list[str],
    class_names: list[str],
    paths: list[str] | None = None,
    extractor: dict | None = None,
    sampling: dict | None = None,
    fingerprints: list[str] | None = None,
) -> Path:
    """A complete cache through the public writer; `paths` must already be sorted (the writer sorts rows)."""
    num_videos, num_frames, feature_dim = features.shape
    paths = paths or [f"v{row:03d}_{label}.avi" for row, label in enumerate(labels)]
    assert paths == sorted(paths)
    lengths = np.full(num_videos, num_frames, dtype=np.int32)
    rows = VideoRows(
        features=features.astype(np.float32),
        frame_indices=np.tile(np.arange(num_frames, dtype=np.int32), (num_videos, 1)),
        timestamps_ms=np.tile(np.arange(num_frames, dtype=np.float32) * 100, (num_videos, 1)),
        lengths=lengths,
        video_fps=np.full(num_videos, 10.0, dtype=np.float32),
        video_num_frames=lengths,
        video_width=np.full(num_videos, 32, dtype=np.int32),
        video_height=np.full(num_videos, 32, dtype=np.int32),
        labels=list(labels),
        paths=paths,
        groups=[""] * num_videos,
    )
    attributes = {"extractor": extractor or EXTRACTOR, "sampling": sampling or SAMPLING}
    write_cache(
        path,
        [rows],
        paths,
        class_names,
        [],
        attributes,
        num_frames,
        feature_dim,
        "float32",
        fingerprints=dict(zip(paths, fingerprints)) if fingerprints else None,
    )
    return path


def first_frame_softmax_model(
    num_frames: int, feature_dim: int, num_classes: int, kernel: np.ndarray | None = None
) -> keras.Model:
    """inputs [features (B, T, D), lengths (B,)] -> softmax(features[:, 0] @ kernel); kernel defaults to identity."""
    features = keras.Input((num_frames, feature_dim), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    first_frame = keras.layers.Flatten()(keras.layers.Cropping1D((0, num_frames - 1))(features))
    dense = keras.layers.Dense(num_classes, activation="softmax")
    model = keras.Model([features, lengths], dense(first_frame))
    kernel = np.eye(feature_dim, num_classes, dtype=np.float32) if kernel is None else kernel.astype(np.float32)
    dense.set_weights([kernel, np.zeros(num_classes, dtype=np.float32)])
    return model


def write_model_folder(
    model_dir: Path,
    class_names: list[str],
    split: dict[str, str],
    model: keras.Model | None = None,
    extractor: dict | None = None,
    sampling: dict | None = None,
    num_frames: int = NUM_FRAMES,
    feature_dim: int = FEATURE_DIM,
    fingerprints: dict[str, str] | None = None,
) -> Path:
    """A model folder laid out as `featcache train` writes it (see featcache.training.model_folder); fingerprints:
    path -> contents."""
    model_dir.mkdir(parents=True)
    model = model or first_frame_softmax_model(num_frames, feature_dim, len(class_names))
    model.save(model_dir / "model.keras")
    with open(model_dir / "split.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "subset", "fingerprint"])
        writer.writerows((path, subset, (fingerprints or {}).get(path, "")) for path, subset in sorted(split.items()))
    (model_dir / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n")
    (model_dir / "learning_curves.png").write_bytes(b"")
    subsets = list(split.values())
    metadata = {
        "format_version": 1,
        "featcache_version": __version__,
        "head": {"head": "first-frame test model"},
        "training": {},
        "class_names": class_names,
        "num_frames": num_frames,
        "feature_dim": feature_dim,
        "extractor": extractor or EXTRACTOR,
        "sampling": sampling or SAMPLING,
        "cache": {"path": "train.h5", "num_videos": len(split)},
        "split": {
            "description": "written by the test",
            "num_train": subsets.count("train"),
            "num_val": subsets.count("val"),
            "num_test": subsets.count("test"),
        },
        "best_epoch": 1,
        "best_val_accuracy": 0.0,
        "seconds_per_epoch": 0.0,
    }
    (model_dir / "featcache.json").write_text(json.dumps(metadata))
    return model_dir


def one_hot_first_frames(model_positions: list[int], num_classes: int) -> np.ndarray:
    """Features whose first frame is 5 * one-hot(position): the identity model predicts that position."""
    features = np.zeros((len(model_positions), NUM_FRAMES, num_classes), dtype=np.float32)
    features[np.arange(len(model_positions)), 0, model_positions] = 5.0
    return features


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@pytest.fixture
def random_logits_cache(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """15 videos whose first-frame features are random logits (mixed right and wrong); also (labels, logits)."""
    rng = np.random.default_rng(3)
    labels = np.arange(15) % 3
    features = rng.normal(0.0, 2.0, size=(15, NUM_FRAMES, FEATURE_DIM)).astype(np.float32)
    features[labels == 0, 0, 0] += 1.5  # some signal, so precision and recall are not all zero
    paths = [f"s{row:03d}.avi" for row in range(15)]
    cache = write_test_cache(
        tmp_path / "scores.h5", features, [CLASS_NAMES[label] for label in labels], CLASS_NAMES, paths=paths
    )
    return cache, labels, features[:, 0]


@pytest.fixture
def training_cache(tmp_path: Path) -> Path:
    """12 correctly predictable videos; the trained_model's split holds out every fourth one."""
    labels = np.arange(12) % 3
    return write_test_cache(
        tmp_path / "train.h5",
        one_hot_first_frames(list(labels), 3),
        [CLASS_NAMES[label] for label in labels],
        CLASS_NAMES,
    )


@pytest.fixture
def trained_model(tmp_path: Path, training_cache: Path) -> Path:
    """A model folder whose split.csv covers the training_cache: rows 0, 4, 8 are test, 1, 5, 9 val, the rest train."""
    paths = [f"v{row:03d}_{CLASS_NAMES[row % 3]}.avi" for row in range(12)]
    split = {path: "test" if row % 4 == 0 else "val" if row % 4 == 1 else "train" for row, path in enumerate(paths)}
    return write_model_folder(tmp_path / "model", CLASS_NAMES, split)


def test_metrics_match_sklearn_on_known_predictions(tmp_path: Path, trained_model: Path, random_logits_cache) -> None:
    cache, labels, logits = random_logits_cache
    probabilities = softmax(logits)
    predicted = probabilities.argmax(axis=1)
    assert 0 < np.mean(predicted == labels) < 1, "the fixture should mix right and wrong predictions"

    report = evaluate(trained_model, cache, top_k=2)

    assert report.subset == "all" and report.num_videos == 15
    assert report.accuracy == pytest.approx(np.mean(predicted == labels))
    assert report.top_k == 2
    assert report.top_k_accuracy == pytest.approx(top_k_accuracy_score(labels, probabilities, k=2, labels=[0, 1, 2]))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=[0, 1, 2], zero_division=0
    )
    for position, name in enumerate(CLASS_NAMES):
        metrics = report.per_class[name]
        np.testing.assert_allclose(
            [metrics.precision, metrics.recall, metrics.f1],
            [precision[position], recall[position], f1[position]],
            rtol=1e-6,
        )
        assert metrics.support == support[position]
    assert report.confusion_matrix == confusion_matrix(labels, predicted, labels=[0, 1, 2]).tolist()
    wrong = np.flatnonzero(predicted != labels)
    assert [item.path for item in report.misclassified] == [f"s{row:03d}.avi" for row in wrong]
    assert [item.predicted for item in report.misclassified] == [CLASS_NAMES[predicted[row]] for row in wrong]
    assert [item.true for item in report.misclassified] == [CLASS_NAMES[labels[row]] for row in wrong]
    np.testing.assert_allclose(
        [item.probability for item in report.misclassified], probabilities[wrong, predicted[wrong]], rtol=1e-5
    )


def test_top_k_is_clamped_and_hidden_when_it_covers_every_class(trained_model: Path, random_logits_cache) -> None:
    """3 classes: the default k is 2 (top-3 of 3 would count every video); k > 3 is clamped to 3,
    whose accuracy is None."""
    cache, _, _ = random_logits_cache
    assert evaluate(trained_model, cache).top_k == 2
    clamped = evaluate(trained_model, cache, top_k=4)
    assert clamped.top_k == 3 and clamped.top_k_accuracy is None
    assert "Top-3" not in format_report(clamped)
    with pytest.raises(InputError, match="--top-k / top_k must be at least 1"):
        evaluate(trained_model, cache, top_k=0)


def test_classes_absent_from_the_cache_are_marked_absent(tmp_path: Path, trained_model: Path) -> None:
    labels = [0, 1, 0, 1]  # no video of the third class
    only_two = write_test_cache(
        tmp_path / "two.h5",
        one_hot_first_frames(labels, 3),
        [CLASS_NAMES[label] for label in labels],
        CLASS_NAMES,
        paths=[f"a{row}.avi" for row in range(4)],
    )
    report = evaluate(trained_model, only_two, subset="all")
    absent = report.per_class[CLASS_NAMES[2]]
    assert absent.absent and absent.support == 0 and absent.recall is None and absent.f1 is None
    assert not report.per_class[CLASS_NAMES[0]].absent
    assert f"{CLASS_NAMES[2]}" in format_report(report) and "absent from these videos" in format_report(report)
    assert json.loads(report.to_json())["per_class"][CLASS_NAMES[2]]["recall"] is None


def test_features_are_read_in_blocks(monkeypatch, trained_model: Path, random_logits_cache) -> None:
    cache, _, _ = random_logits_cache
    whole = evaluate(trained_model, cache)
    # Two videos per block, one per model call: the same report from many small reads.
    monkeypatch.setattr(scoring_module, "FEATURE_BLOCK_BYTES", 2 * NUM_FRAMES * FEATURE_DIM * 4)
    monkeypatch.setattr(scoring_module, "PREDICT_BATCH_SIZE", 1)
    blocked = evaluate(trained_model, cache)
    assert blocked.confusion_matrix == whole.confusion_matrix
    # The same videos, labels and predictions; a probability may differ in its last float32 digits, since the
    # CPU's kernels may sum a batch of one in another order than a batch of many (seen on an AVX2-only CPU).
    assert [(m.path, m.true, m.predicted) for m in blocked.misclassified] == [
        (m.path, m.true, m.predicted) for m in whole.misclassified
    ]
    np.testing.assert_allclose(
        [m.probability for m in blocked.misclassified], [m.probability for m in whole.misclassified], rtol=1e-5
    )


def test_default_subset_on_the_training_cache_is_its_held_out_videos(trained_model: Path, training_cache: Path) -> None:
    report = evaluate(trained_model, training_cache)
    assert report.subset == "test"
    assert report.num_videos == 3
    assert "held-out" in report.subset_description
    assert evaluate(trained_model, training_cache, subset="test").num_videos == 3
    assert evaluate(trained_model, training_cache, subset="all").num_videos == 12


def test_default_subset_on_another_cache_is_all_its_videos(tmp_path: Path, trained_model: Path) -> None:
    labels = [0, 1, 2, 2]
    other = write_test_cache(
        tmp_path / "other.h5",
        one_hot_first_frames(labels, 3),
        [CLASS_NAMES[label] for label in labels],
        CLASS_NAMES,
        paths=[f"w{row}.avi" for row in range(4)],
    )
    report = evaluate(trained_model, other)
    assert (report.subset, report.num_videos, report.accuracy) == ("all", 4, 1.0)
    assert report.subset_description == "all 4 videos of the cache (the model was not trained on this cache)"
    assert evaluate(trained_model, other, subset="all").subset_description == "all 4 videos of the cache (--subset all)"
    with pytest.raises(InputError, match="use --subset all"):
        evaluate(trained_model, other, subset="test")


@pytest.fixture
def training_cache_minus_one(tmp_path: Path) -> Path:
    """The training_cache re-embedded after deleting its last video (v011, train): 11 videos, 3 test, 3 val, 5 train."""
    labels = np.arange(11) % 3
    return write_test_cache(
        tmp_path / "minus_one.h5",
        one_hot_first_frames(list(labels), 3),
        [CLASS_NAMES[label] for label in labels],
        CLASS_NAMES,
    )


def test_default_subset_on_a_cache_sharing_videos_leaves_out_the_seen_ones(
    trained_model: Path, training_cache_minus_one: Path
) -> None:
    report = evaluate(trained_model, training_cache_minus_one)
    # Not the training cache (v011 is missing), so no test split; but its 8 train/val videos were seen.
    assert (report.subset, report.num_videos) == ("all", 3)
    assert "all 11 videos of the cache except 8 the model trained or validated on" in report.subset_description
    assert [item.path for item in report.misclassified] == []
    assert sum(metrics.support for metrics in report.per_class.values()) == 3


def test_split_all_on_a_cache_sharing_videos_scores_them_and_says_so(
    trained_model: Path, training_cache_minus_one: Path
) -> None:
    report = evaluate(trained_model, training_cache_minus_one, subset="all")
    assert (report.subset, report.num_videos) == ("all", 11)
    assert (
        "all 11 videos of the cache (--subset all, 8 of which the model trained or validated on)"
        in report.subset_description
    )


def test_a_cache_of_only_seen_videos_is_an_error_by_default(tmp_path: Path, trained_model: Path) -> None:
    paths = ["v001_Beta.avi", "v002_Gamma.avi"]  # val and train rows of the trained_model's split
    cache = write_test_cache(
        tmp_path / "seen.h5", one_hot_first_frames([1, 2], 3), ["Beta", "Gamma"], CLASS_NAMES, paths=paths
    )
    with pytest.raises(InputError, match="every one of the 2 videos .* trained or validated on.*--subset all"):
        evaluate(trained_model, cache)
    assert evaluate(trained_model, cache, subset="all").num_videos == 2


def test_classes_are_matched_by_name_across_class_orders(tmp_path: Path) -> None:
    model_order = ["Gamma", "Alpha", "Beta"]
    cache_labels = ["Alpha", "Beta", "Beta", "Gamma", "Gamma", "Gamma"]
    features = one_hot_first_frames([model_order.index(label) for label in cache_labels], 3)
    cache = write_test_cache(tmp_path / "cache.h5", features, cache_labels, sorted(model_order))
    model_dir = write_model_folder(tmp_path / "model", model_order, {"elsewhere.avi": "test"})

    report = evaluate(model_dir, cache)

    assert report.class_names == model_order
    assert report.accuracy == 1.0
    assert report.confusion_matrix == [[3, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert report.per_class["Gamma"].support == 3


def test_a_cache_with_a_subset_of_the_classes(tmp_path: Path, trained_model: Path) -> None:
    cache_labels = ["Alpha", "Gamma", "Gamma"]
    features = one_hot_first_frames([CLASS_NAMES.index(label) for label in cache_labels], 3)
    paths = ["n0_Alpha.avi", "n1_Gamma.avi", "n2_Gamma.avi"]  # none of the training cache's videos
    cache = write_test_cache(tmp_path / "no_beta.h5", features, cache_labels, ["Alpha", "Gamma"], paths=paths)

    report = evaluate(trained_model, cache)

    assert report.accuracy == 1.0
    assert report.per_class["Beta"].support == 0
    assert report.confusion_matrix == [[1, 0, 0], [0, 0, 0], [0, 0, 2]]


def test_a_class_the_model_does_not_know_is_an_error(tmp_path: Path, trained_model: Path) -> None:
    cache = write_test_cache(
        tmp_path / "delta.h5", one_hot_first_frames([0, 1], 3), ["Alpha", "Delta"], ["Alpha", "Delta"]
    )
    with pytest.raises(InputError, match="class\\(es\\) the model does not know: Delta"):
        evaluate(trained_model, cache)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feature_dim": 4}, "model vs cache: feature_dim 3 vs 4"),
        ({"extractor": {**EXTRACTOR, "name": "mobilenet_v2"}}, "extractor name 'scratch_cnn' vs 'mobilenet_v2'"),
        ({"extractor": {**EXTRACTOR, "image_size": 64}}, "extractor image_size 32 vs 64"),
        (
            {"extractor": {**EXTRACTOR, "weights": "w.h5", "weights_sha256": "ab12"}},
            "weights file w.h5 \\(sha256 ab12\\) differs",
        ),
        ({"extractor": {**EXTRACTOR, "seed": 7}}, "random weights seed 0 vs 7"),
        ({"sampling": {"num_frames": NUM_FRAMES, "mode": "fps", "fps": 2.0}}, "sampling"),
    ],
    ids=["feature_dim", "extractor_name", "image_size", "weights_sha256", "random_seed", "sampling"],
)
def test_features_made_differently_are_refused(tmp_path: Path, trained_model: Path, change: dict, message: str) -> None:
    feature_dim = change.get("feature_dim", FEATURE_DIM)
    cache = write_test_cache(
        tmp_path / "different.h5",
        np.zeros((2, NUM_FRAMES, feature_dim), dtype=np.float32),
        ["Alpha", "Beta"],
        CLASS_NAMES,
        extractor=change.get("extractor"),
        sampling=change.get("sampling"),
    )
    with pytest.raises(CacheMismatchError, match=message):
        evaluate(trained_model, cache)


def test_same_weights_file_under_another_path_is_accepted(tmp_path: Path) -> None:
    extractor = {**EXTRACTOR, "weights": "/old/place/w.h5", "weights_sha256": "ab12"}
    model_dir = write_model_folder(tmp_path / "model", CLASS_NAMES, {"x.avi": "test"}, extractor=extractor)
    cache = write_test_cache(
        tmp_path / "moved.h5",
        one_hot_first_frames([0, 1], 3),
        ["Alpha", "Beta"],
        CLASS_NAMES,
        extractor={**extractor, "weights": "/new/place/w.h5"},
    )
    assert evaluate(model_dir, cache).accuracy == 1.0


def test_report_folder_holds_json_and_png(trained_model: Path, training_cache: Path) -> None:
    report = evaluate(trained_model, training_cache)
    report_dir = trained_model / "evaluation" / "train"
    assert Path(report.report_dir) == report_dir
    assert Path(report.confusion_matrix_png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((report_dir / "report.json").read_text())
    assert saved == json.loads(report.to_json())
    assert saved["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert saved["per_class"]["Alpha"]["support"] == 1


def test_missing_or_foreign_inputs(tmp_path: Path, trained_model: Path, training_cache: Path) -> None:
    with pytest.raises(ModelDirError, match="no such model folder"):
        evaluate(tmp_path / "nowhere", training_cache)
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(ModelDirError, match="no featcache.json"):
        evaluate(tmp_path / "empty_folder", training_cache)
    (tmp_path / "notes.h5").write_text("not a cache")
    with pytest.raises(CacheFormatError):
        evaluate(trained_model, tmp_path / "notes.h5")
    with pytest.raises(InputError, match="unknown --subset / subset 'validation'"):
        evaluate(trained_model, training_cache, subset="validation")


def test_cli_json_prints_one_json_object(trained_model: Path, training_cache: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(trained_model), str(training_cache), "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in (
        "accuracy",
        "num_videos",
        "class_names",
        "confusion_matrix",
        "top_k_accuracy",
        "per_class",
        "misclassified",
        "subset",
        "cache",
        "model_dir",
    ):
        assert key in report
    assert (report["num_videos"], report["subset"], report["top_k"]) == (3, "test", 2)


def test_cli_human_report(tmp_path: Path, trained_model: Path, random_logits_cache) -> None:
    cache, _, _ = random_logits_cache
    result = CliRunner().invoke(
        app, ["evaluate", str(trained_model), str(cache), "--subset", "all", "--report-dir", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "Top-3 accuracy" not in result.output  # k = 3 = the classes: every video would be a hit
    for text in (
        "Accuracy:",
        "Top-2 accuracy:",
        "precision",
        "Confusion matrix",
        "Misclassified:",
        str(tmp_path / "out" / "confusion_matrix.png"),
    ):
        assert text in result.stdout
    assert (tmp_path / "out" / "report.json").is_file()


def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, training_cache: Path, trained_model: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nowhere"), str(training_cache)])
    assert result.exit_code == 2
    assert "no such model folder" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["evaluate", str(trained_model), str(training_cache), "--subset", "valid"])
    assert result.exit_code == 2
    assert "choose one of default, test, all" in result.output


def test_cli_old_split_spelling_still_works_with_a_note(
    tmp_path: Path, trained_model: Path, random_logits_cache
) -> None:
    cache, _, _ = random_logits_cache
    result = CliRunner().invoke(
        app, ["evaluate", str(trained_model), str(cache), "--split", "all", "--report-dir", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "--split is now --subset" in result.output and "all " in result.output


def test_an_empty_cache_is_an_error(tmp_path: Path, trained_model: Path) -> None:
    cache = write_test_cache(tmp_path / "empty.h5", np.zeros((0, NUM_FRAMES, FEATURE_DIM)), [], CLASS_NAMES, paths=[])
    with pytest.raises(InputError, match="holds no videos"):
        evaluate(trained_model, cache)


def test_on_a_model_from_train_the_default_is_its_held_out_split(tmp_path: Path) -> None:
    from featcache.config import HeadConfig, TrainConfig
    from featcache.training.train import train

    labels = np.arange(12) % 3
    paths = [
        f"{CLASS_NAMES[label]}/v_{CLASS_NAMES[label]}_g{row // 3 + 1:02d}_c01.avi" for row, label in enumerate(labels)
    ]
    order = np.argsort(paths)
    cache = write_test_cache(
        tmp_path / "train.h5",
        one_hot_first_frames(list(labels[order]), 3),
        [CLASS_NAMES[label] for label in labels[order]],
        CLASS_NAMES,
        paths=[paths[row] for row in order],
    )
    # 12 ungrouped videos: 3 test, then 4 of the other 9 validate (a smaller share cannot hold out every class).
    result = train(
        cache,
        tmp_path / "model",
        HeadConfig(head="meanpool", dense=8),
        TrainConfig(epochs=1, batch_size=4, val_fraction=0.4),
    )

    report = evaluate(tmp_path / "model", cache)

    assert report.subset == "test"
    assert result.metadata.split["num_val"] > 0  # validation videos are not test videos
    assert report.num_videos == result.metadata.split["num_test"] > 0
    assert evaluate(tmp_path / "model", cache, subset="all").num_videos == 12


def test_seen_videos_are_recognised_by_contents_not_by_name(tmp_path: Path) -> None:
    """Another dataset reusing the training set's file names is all new; renamed copies of training videos are seen."""
    paths = [f"v{row:03d}_{CLASS_NAMES[row % 3]}.avi" for row in range(12)]
    labels = np.arange(12) % 3
    trained_contents = [f"1000:{row:064x}" for row in range(12)]
    split = {path: "test" if row % 4 == 0 else "val" if row % 4 == 1 else "train" for row, path in enumerate(paths)}
    model_dir = write_model_folder(
        tmp_path / "model", CLASS_NAMES, split, fingerprints=dict(zip(paths, trained_contents))
    )
    features, names = one_hot_first_frames(list(labels), 3), [CLASS_NAMES[label] for label in labels]

    training = write_test_cache(
        tmp_path / "train.h5", features, names, CLASS_NAMES, paths=paths, fingerprints=trained_contents
    )
    assert (evaluate(model_dir, training).subset, evaluate(model_dir, training).num_videos) == ("test", 3)

    same_names = write_test_cache(
        tmp_path / "other.h5",
        features,
        names,
        CLASS_NAMES,
        paths=paths,
        fingerprints=[f"2000:{row:064x}" for row in range(12)],
    )
    report = evaluate(model_dir, same_names)
    assert (report.subset, report.num_videos) == ("all", 12)  # the 60-video case: every video scored

    renamed = [f"copy_{path}" for path in paths]
    copies = write_test_cache(
        tmp_path / "copies.h5", features, names, CLASS_NAMES, paths=renamed, fingerprints=trained_contents
    )
    report = evaluate(model_dir, copies)
    assert (
        report.num_videos == 3
        and "all 12 videos of the cache except 9 the model trained or validated on" in report.subset_description
    )
