"""linear / knn baselines: they learn what a mean can tell, not order; their model folders work like a head's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import ordered_sequences, ucf101_like_cache, write_cache
from typer.testing import CliRunner

from featcache.cli import app
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.errors import InputError
from featcache.inference.evaluate import evaluate
from featcache.training.baselines import LINEAR_C_GRID, PooledKnnModel, knn_vote
from featcache.training.model_folder import ModelFolder, ModelMetadata
from featcache.training.train import train

BASELINES = ("linear", "knn")


@pytest.mark.parametrize("head", BASELINES)
def test_baselines_learn_classes_that_differ_in_mean(tmp_path: Path, head: str) -> None:
    cache = ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=12)
    result = train(cache, tmp_path / head, HeadConfig(head=head))
    report = evaluate(tmp_path / head, cache)
    assert report.subset == "test" and report.num_videos == result.split.num_test
    assert report.accuracy >= 0.9
    assert result.baseline["setting"] == {"linear": "C", "knn": "k"}[head]
    assert len(result.history) == len(result.baseline["candidates"]) and result.best_val_accuracy is not None


@pytest.mark.parametrize("head", BASELINES)
def test_baselines_cannot_read_frame_order(tmp_path: Path, head: str) -> None:
    # Rising vs falling ramps with the same mean: any model of the mean sits near chance (0.5).
    features, lengths, labels = ordered_sequences(40, seed=3)
    cache = write_cache(tmp_path / "ordered.h5", features, lengths, labels, ["Rising", "Falling"], dtype="float32")
    train(cache, tmp_path / head, HeadConfig(head=head))
    assert evaluate(tmp_path / head, cache).accuracy <= 0.75


def test_a_saved_baseline_loads_back_as_numbers_only(tmp_path: Path) -> None:
    cache = ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=12)
    result = train(cache, tmp_path / "linear", HeadConfig(head="linear"))
    folder = ModelFolder.open(tmp_path / "linear")
    assert folder.metadata.kind == "linear" and folder.metadata.model_file == "model.npz"
    assert not (tmp_path / "linear" / "model.keras").exists()
    assert folder.metadata.baseline["value"] in LINEAR_C_GRID
    with np.load(tmp_path / "linear" / "model.npz", allow_pickle=False) as saved:
        assert all(saved[name].dtype != object for name in saved.files)
    loaded = folder.load_model()
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(5, 6, 8)).astype(np.float32), np.array([6, 3, 1, 6, 2], dtype=np.int32)]
    np.testing.assert_allclose(loaded.predict_on_batch(inputs), result.model.predict_on_batch(inputs), rtol=1e-6)
    # Overwritten by a knn model: the folder holds that one, read back as knn.
    train(cache, tmp_path / "linear", HeadConfig(head="knn"), overwrite=True)
    assert isinstance(ModelFolder.open(tmp_path / "linear").load_model(), PooledKnnModel)


def test_a_folder_without_a_model_kind_is_a_sequence_head(tmp_path: Path) -> None:
    cache = ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=12)
    train(cache, tmp_path / "knn", HeadConfig(head="knn"))
    saved = json.loads((tmp_path / "knn" / "featcache.json").read_text())
    assert saved["model_kind"] == "knn"
    del saved["model_kind"], saved["baseline"]  # as written before the kind was recorded
    old = ModelMetadata.from_dict(saved, tmp_path / "knn" / "featcache.json")
    assert old.kind == "sequence_head" and old.model_file == "model.keras"


def test_knn_vote_weighs_nearer_neighbours_more() -> None:
    similarities = np.array([[0.9, 0.8, 0.79, -np.inf]])
    shares = knn_vote(similarities, np.array([0, 1, 1, 0]), num_classes=2, k=3)
    # One vote at 0.9 outweighs two at 0.8 and 0.79 with temperature 0.07: exp(0.1/0.07) > 2.
    assert shares[0, 0] > shares[0, 1] and shares.sum() == pytest.approx(1.0)


def test_baselines_refuse_clip_training(tmp_path: Path) -> None:
    cache = ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=12)
    with pytest.raises(InputError, match="--frames / frames 4 .clips. applies to the sequence heads"):
        train(cache, tmp_path / "linear", HeadConfig(head="linear"), TrainConfig(frames=4))


@pytest.fixture
def embedded_tiny_cache(tiny_dataset: Path, tmp_path: Path) -> Path:
    config = EmbedConfig(
        extractor=ExtractorConfig(name="scratch_cnn", weights="random", image_size=32),
        sampling=SamplingConfig(num_frames=4),
        num_decode_workers=1,
    )
    embed(tiny_dataset, tmp_path / "tiny.h5", config)
    return tmp_path / "tiny.h5"


def test_linear_and_knn_through_train_evaluate_predict_and_compare(
    embedded_tiny_cache: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    for head in BASELINES:
        trained = runner.invoke(app, ["train", str(embedded_tiny_cache), "--head", head, "--out", str(tmp_path / head)])
        assert trained.exit_code == 0, trained.output
        assert "kept" in trained.output and "model.npz" in trained.output
        evaluated = runner.invoke(app, ["evaluate", str(tmp_path / head), str(embedded_tiny_cache), "--json"])
        assert evaluated.exit_code == 0, evaluated.output
        assert json.loads(evaluated.stdout)["subset"] == "test"
        predicted = runner.invoke(app, ["predict", str(tmp_path / head), str(tiny_dataset), "--json", "--top-k", "2"])
        assert predicted.exit_code == 0, predicted.output
        predictions = json.loads(predicted.stdout)["predictions"]
        assert len(predictions) == 6 and all(len(prediction["top_k"]) == 2 for prediction in predictions)
    compared = runner.invoke(
        app, ["compare", str(embedded_tiny_cache), "--heads", "meanpool,linear,knn", "--epochs", "1", "--json"]
    )
    assert compared.exit_code == 0, compared.output
    rows = json.loads(compared.stdout)["heads"]
    assert [row["head"] for row in rows] == ["meanpool", "linear", "knn"]
    assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in rows)


def test_a_baseline_fits_the_same_from_memory_and_from_disk(tmp_path: Path) -> None:
    cache = ucf101_like_cache(tmp_path / "ucf.h5", num_classes=3, num_groups=12)
    in_memory = train(cache, tmp_path / "memory", HeadConfig(head="linear"))
    streamed = train(cache, tmp_path / "disk", HeadConfig(head="linear"), TrainConfig(memory_budget_mb=0))
    np.testing.assert_allclose(streamed.model.weights, in_memory.model.weights, rtol=1e-4, atol=1e-6)
    assert streamed.baseline == in_memory.baseline
