"""Tests for `train --init-from-text` (featcache.training.heads.with_text_initialised_output): the untrained head
is the zero-shot classifier, and the model folder records where it started.

Planted caches and the stand-in text tower of tests/test_text.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_text import CLASS_NAMES, planted_cache, stand_in_keras_hub  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from featcache.cache import open_cache
from featcache.cli import app
from featcache.config import HeadConfig
from featcache.text.zeroshot import cache_class_texts, scores_as_probabilities, video_embeddings, zero_shot_scores
from featcache.training.heads import build_head, with_text_initialised_output


@pytest.mark.parametrize("head", ["meanpool", "lstm"])
def test_text_initialised_head_starts_at_the_zero_shot_prediction(tmp_path: Path, stand_in_keras_hub, head: str):  # noqa: F811
    cache = open_cache(planted_cache(tmp_path, stand_in_keras_hub, shuffled=True)[0])  # shuffled: some are wrong
    index = cache.index
    texts, _ = cache_class_texts(index, index.class_names)
    rows = np.arange(index.num_videos)
    expected = scores_as_probabilities(zero_shot_scores(video_embeddings(cache, rows), texts))
    model = build_head(HeadConfig(head=head, units=8, dense=8), index.num_frames, index.feature_dim, len(CLASS_NAMES))
    model = with_text_initialised_output(model, texts.embeddings, 100.0)
    with cache.reader() as reader:
        features = reader.read(rows)
    # Padding frames must not count: cut two videos short.
    lengths = index.lengths.copy()
    lengths[:2] = 2
    features[:2, 2:] = 5.0
    expected[:2] = scores_as_probabilities(zero_shot_scores(video_embeddings_of(features[:2, :2]), texts))
    probabilities = model.predict([features, lengths], verbose=0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-3, atol=1e-4)
    assert (probabilities.argmax(axis=1) == expected.argmax(axis=1)).all()


def video_embeddings_of(frames: np.ndarray) -> np.ndarray:
    unit = frames / np.linalg.norm(frames, axis=-1, keepdims=True)
    mean = unit.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def test_train_init_from_text_saves_a_model_that_starts_zero_shot(tmp_path: Path, stand_in_keras_hub):  # noqa: F811
    cache_path, _ = planted_cache(tmp_path, stand_in_keras_hub, prompts=("{}",))
    out = tmp_path / "model"
    # A learning rate too small to move the weights: the saved model is the starting point.
    args = ["--head", "meanpool", "--epochs", "1", "--learning-rate", "1e-12", "--init-from-text", "--prompt", "{}"]
    result = CliRunner().invoke(app, ["train", str(cache_path), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "featcache.json").read_text())
    assert saved["text_init"]["prompts"] == ["{}"] and saved["text_init"]["class_words"]["YoYo"] == "yo yo"
    evaluated = CliRunner().invoke(app, ["evaluate", str(out), str(cache_path), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == 1.0
    scratch = CliRunner().invoke(app, ["train", str(cache_path), "--out", str(tmp_path / "m2"), "--prompt", "{}"])
    assert scratch.exit_code == 2 and "only apply with --init-from-text" in scratch.output
