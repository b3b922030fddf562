"""Tests for featcache.text: class-name wording, the text tower of a cache's preset, prompt ensembling, zero-shot.

The text tower is loaded through featcache's KerasHub loading code with a stand-in keras_hub module (as
tests/test_backbones.py does for the image tower) and a real tiny CLIP preset (the `test` extra has KerasHub).
Caches are tiny format-1 files written with h5py (tests/cache_fixtures.py) under a keras_hub extractor record.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
from cache_fixtures import write_cache

from featcache.errors import ExtractorError, InputError
from featcache.files import sha256_folder
from featcache.text.prompts import class_text_embeddings, l2_normalize
from featcache.text.tower import load_text_tower
from featcache.text.wording import class_name_words, class_words, read_class_texts
from featcache.text.zeroshot import (
    cache_class_texts,
    scores_as_probabilities,
    text_query_vector,
    video_embeddings,
    zero_shot_scores,
)

EMBEDDING_DIM = 16
VOCABULARY_SIZE = 97
SEQUENCE_LENGTH = 24


# A stand-in keras_hub: a "CLIPBackbone" whose text embedding of a prompt is the sum of one random vector per
# character (position-weighted, so word order matters), and a "CLIPPreprocessor" tokenizing characters.


def stand_in_token_ids(prompts: list[str], sequence_length: int) -> np.ndarray:
    ids = np.zeros((len(prompts), sequence_length), dtype=np.int32)  # 0: padding
    for row, prompt in enumerate(prompts):
        codes = [1 + ord(character) % (VOCABULARY_SIZE - 1) for character in prompt.lower()][:sequence_length]
        ids[row, : len(codes)] = codes
    return ids


class CLIPBackbone:  # the class name is what featcache looks up its text preprocessor by
    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.table = rng.normal(size=(VOCABULARY_SIZE, EMBEDDING_DIM)).astype(np.float32)
        self.table[0] = 0.0
        self.position_weights = np.linspace(1.0, 2.0, SEQUENCE_LENGTH, dtype=np.float32)
        self.projection_dim = EMBEDDING_DIM
        self.text_encoder = types.SimpleNamespace(max_sequence_length=SEQUENCE_LENGTH)
        self.calls: list[np.ndarray] = []

    def get_text_embeddings(self, token_ids):
        token_ids = np.asarray(token_ids)
        self.calls.append(token_ids)
        return (self.table[token_ids] * self.position_weights[None, : token_ids.shape[1], None]).sum(axis=1)


class CLIPPreprocessor:
    def __init__(self):
        self.image_converter = object()  # featcache must drop it: prompts only

    def __call__(self, inputs, sequence_length=None):
        assert self.image_converter is None and inputs["images"] is None
        return {"token_ids": stand_in_token_ids(list(inputs["prompts"]), sequence_length or 77)}


class ViTBackbone:
    """An image-only KerasHub backbone: no text tower."""


@pytest.fixture
def stand_in_keras_hub(monkeypatch, tmp_path: Path) -> types.SimpleNamespace:
    """keras_hub with presets "clip_*" (a CLIPBackbone), "vit_*" (image only), "unreachable_*" (no network);
    `.backbone` is the last CLIPBackbone loaded, `.folder` a local preset folder (its files are its weights)."""
    state = types.SimpleNamespace(backbone=None, folder=tmp_path / "tiny_clip_preset")
    state.folder.mkdir()
    (state.folder / "model.weights.h5").write_bytes(b"stand-in weights")

    def backbone_from_preset(preset: str):
        name = Path(preset).name
        if name.startswith("unreachable"):
            raise ConnectionError("no network")
        if name.startswith("vit"):
            return ViTBackbone()
        state.backbone = CLIPBackbone()
        return state.backbone

    fake = types.SimpleNamespace(
        models=types.SimpleNamespace(
            Backbone=types.SimpleNamespace(from_preset=backbone_from_preset),
            CLIPPreprocessor=types.SimpleNamespace(from_preset=lambda preset: CLIPPreprocessor()),
        )
    )
    monkeypatch.setitem(sys.modules, "keras_hub", fake)
    return state


def hub_record(folder: Path) -> dict:
    """The extractor record featcache.extractors.backbones stores for a local preset folder."""
    return {
        "name": f"keras_hub:{folder}",
        "weights": "imagenet",
        "handle": None,
        "image_size": 32,
        "seed": 0,
        "weights_sha256": sha256_folder(folder),
        "preprocessing": "the preset's CLIPImageConverter",
        "feature_dim": EMBEDDING_DIM,
    }


def write_hub_cache(path: Path, features: np.ndarray, labels: np.ndarray, class_names: list[str], record: dict):
    """A format-1 cache whose extractor record is `record` (a keras_hub preset's)."""
    lengths = np.full(len(labels), features.shape[1], dtype=np.int32)
    write_cache(path, features, lengths, labels, class_names, dtype="float32")
    with h5py.File(path, "a") as handle:
        handle.attrs["extractor"] = json.dumps(record, sort_keys=True)
    return path


def planted_features(class_embeddings: np.ndarray, labels: np.ndarray, num_frames: int = 4, seed: int = 0):
    """Frames near their class's text embedding: the embedding, scaled, plus noise (each frame differs)."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 3.0, size=(len(labels), num_frames, 1))
    noise = 0.05 * rng.normal(size=(len(labels), num_frames, class_embeddings.shape[1]))
    return (class_embeddings[labels][:, None, :] + noise) * scales


# Wording


@pytest.mark.parametrize(
    ("class_name", "words"),
    [
        ("PlayingCello", "playing cello"),
        ("apply_eye_makeup", "apply eye makeup"),
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("walk-the-dog", "walk the dog"),
        ("TV_news", "tv news"),
        ("YOYOPlay", "yoyo play"),
        ("class10", "class 10"),
    ],
)
def test_class_names_become_words(class_name: str, words: str):
    assert class_name_words(class_name) == words


def test_class_texts_csv_overrides_the_wording(tmp_path: Path):
    csv_path = tmp_path / "texts.csv"
    csv_path.write_text('class,text\nYoYo,"playing with a yo-yo"\n\n', encoding="utf-8")
    texts = read_class_texts(csv_path)
    assert class_words(["PlayingCello", "YoYo"], texts) == ["playing cello", "playing with a yo-yo"]
    with pytest.raises(InputError, match="names class.*Yoyo.*not among the classes"):
        class_words(["PlayingCello", "YoYo"], {"Yoyo": "x"})
    (tmp_path / "bad.csv").write_text("YoYo\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"--class-texts .*bad.csv, line 1: expected two fields class,text"):
        read_class_texts(tmp_path / "bad.csv")


# The text tower (stand-in keras_hub)


def test_text_embeddings_come_from_the_presets_text_tower(stand_in_keras_hub):
    tower = load_text_tower(hub_record(stand_in_keras_hub.folder))
    embedded = tower.embed_texts(["playing cello", "apply eye makeup"])
    backbone = stand_in_keras_hub.backbone
    expected = backbone.get_text_embeddings(stand_in_token_ids(["playing cello", "apply eye makeup"], SEQUENCE_LENGTH))
    np.testing.assert_allclose(embedded, expected, rtol=1e-6)
    assert tower.embedding_dim == EMBEDDING_DIM and embedded.dtype == np.float32
    # Padded to the text encoder's own length, not the preprocessor's default.
    assert backbone.calls[0].shape == (2, SEQUENCE_LENGTH)


def test_prompts_are_ensembled_as_in_the_clip_paper(stand_in_keras_hub):
    tower = load_text_tower(hub_record(stand_in_keras_hub.folder))
    prompts = ["a video of a person {}.", "a photo of {}", "{}"]
    texts = class_text_embeddings(tower, ["PlayingCello", "YoYo"], prompts, {"YoYo": "playing with a yo-yo"})
    assert texts.words == ["playing cello", "playing with a yo-yo"]
    for row, words in enumerate(texts.words):
        each = l2_normalize(tower.embed_texts([prompt.replace("{}", words) for prompt in prompts]))
        np.testing.assert_allclose(texts.embeddings[row], l2_normalize(each.mean(axis=0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(texts.embeddings, axis=1), 1.0, rtol=1e-6)
    single = class_text_embeddings(tower, ["PlayingCello"], ["{}"])
    assert not np.allclose(single.embeddings[0], texts.embeddings[0], atol=1e-3)  # the ensemble is not one prompt
    with pytest.raises(InputError, match="exactly one \\{\\}"):
        class_text_embeddings(tower, ["PlayingCello"], ["a video of"])


def test_an_extractor_without_a_text_tower_is_refused_in_one_line(stand_in_keras_hub):
    with pytest.raises(
        ExtractorError, match="mobilenet_v2, which has no text tower.*keras_hub:PRESET with a CLIP"
    ) as info:
        load_text_tower({"name": "mobilenet_v2"})
    assert "\n" not in str(info.value)
    with pytest.raises(ExtractorError, match="is a ViTBackbone, which has no text tower.*CLIP, SigLIP") as info:
        load_text_tower({"name": "keras_hub:vit_base_patch16"})
    assert "\n" not in str(info.value)


def test_a_preset_that_cannot_be_loaded_says_what_to_pass(stand_in_keras_hub, monkeypatch):
    with pytest.raises(
        ExtractorError, match="could not load KerasHub preset unreachable_clip text tower: no network.*local preset"
    ) as info:
        load_text_tower({"name": "keras_hub:unreachable_clip"})
    assert "\n" not in str(info.value)
    record = hub_record(stand_in_keras_hub.folder)
    (stand_in_keras_hub.folder / "model.weights.h5").write_bytes(b"other weights")
    with pytest.raises(ExtractorError, match="now has other weights .* than the ones the cache was embedded with"):
        load_text_tower(record)
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ExtractorError, match=r"needs KerasHub: pip install 'featcache\[hub\]'"):
        load_text_tower(hub_record(stand_in_keras_hub.folder))


# Zero-shot on planted caches


CLASS_NAMES = ["PlayingCello", "ApplyEyeMakeup", "JumpingJack", "YoYo", "Surfing"]


def planted_cache(
    tmp_path: Path, stand_in_keras_hub, shuffled: bool = False, prompts: tuple[str, ...] = ()
) -> tuple[Path, np.ndarray]:
    """8 videos per class whose frames lie near their class's text embedding (for `prompts`), or, shuffled,
    near a random class's."""
    record = hub_record(stand_in_keras_hub.folder)
    texts = class_text_embeddings(load_text_tower(record), CLASS_NAMES, prompts)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), 8)
    planted = np.random.default_rng(3).permutation(labels) if shuffled else labels
    features = planted_features(texts.embeddings, planted)
    return write_hub_cache(tmp_path / "planted.h5", features, labels, CLASS_NAMES, record), labels


def test_planted_frames_are_classified_zero_shot(tmp_path: Path, stand_in_keras_hub):
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub)
    from featcache.cache import open_cache

    cache = open_cache(cache_path)
    texts, _ = cache_class_texts(cache.index, CLASS_NAMES)
    vectors = video_embeddings(cache, np.arange(len(labels)))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    scores = zero_shot_scores(vectors, texts)
    assert np.mean(scores.argmax(axis=1) == labels) == 1.0
    probabilities = scores_as_probabilities(scores)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == scores.argmax(axis=1)).all()


def test_shuffled_frames_are_at_chance(tmp_path: Path, stand_in_keras_hub):
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub, shuffled=True)
    from featcache.cache import open_cache

    cache = open_cache(cache_path)
    texts, _ = cache_class_texts(cache.index, CLASS_NAMES)
    accuracy = np.mean(zero_shot_scores(video_embeddings(cache, np.arange(len(labels))), texts).argmax(1) == labels)
    assert accuracy < 0.45  # chance is 0.2; planted is 1.0


def test_text_query_vector_points_at_its_class(tmp_path: Path, stand_in_keras_hub):
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub)
    from featcache.cache import open_cache

    cache = open_cache(cache_path)
    query = text_query_vector(cache_path, "a video of a person yo yo.")
    assert query.shape == (EMBEDDING_DIM,) and abs(np.linalg.norm(query) - 1.0) < 1e-5
    nearest = np.argsort(-(video_embeddings(cache, np.arange(len(labels))) @ query))[:8]
    assert set(labels[nearest]) == {CLASS_NAMES.index("YoYo")}
    np.testing.assert_allclose(text_query_vector(cache.settings, "a video of a person yo yo."), query, rtol=1e-6)
    with pytest.raises(ExtractorError, match="no text tower"):
        text_query_vector({"extractor": {"name": "scratch_cnn"}}, "x")


def test_neighbors_text_lists_the_videos_of_the_class_it_names(tmp_path: Path, stand_in_keras_hub):
    cache_path, labels = planted_cache(tmp_path, stand_in_keras_hub)
    from featcache.cache import open_cache
    from featcache.search.neighbors import find_neighbors

    result = find_neighbors(cache_path, text="a video of a person yo yo.", k=8)
    assert result.query == "text 'a video of a person yo yo.'"
    index = open_cache(cache_path).index
    assert {neighbor.label for neighbor in result.neighbors} == {"YoYo"}
    assert len({neighbor.path for neighbor in result.neighbors}) == 8 == int(np.sum(labels == 3))
    with pytest.raises(InputError, match="give exactly one query: .*--text TEXT; got --video, --text"):
        find_neighbors(cache_path, video=index.paths[0], text="yo yo")


# A real tiny CLIP preset through KerasHub's own loading code


def test_tiny_clip_preset_text_tower_matches_keras_hub(tmp_path: Path):
    """A random-weights CLIP saved with save_to_preset (backbone, tokenizer, image converter), loaded offline:
    featcache's text embeddings are KerasHub's get_text_embeddings of the CLIPPreprocessor's tokens, and the
    image extractor's own provenance record is accepted as the text tower's."""
    import string

    import keras
    import keras_hub  # the featcache[hub] extra, in `test`; imported here: 1-2 s more than keras, for this test only

    from featcache.config import ExtractorConfig
    from featcache.extractors.registry import load_extractor

    vocabulary = {character: position for position, character in enumerate(string.ascii_lowercase)}
    vocabulary.update({f"{character}</w>": len(vocabulary) + i for i, character in enumerate(string.ascii_lowercase)})
    for token in ("ll", "<|startoftext|>", "<|endoftext|>"):
        vocabulary[token] = len(vocabulary)
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=["l l"])
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, image_shape=(32, 32, 3)
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary),
        embedding_dim=16,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=SEQUENCE_LENGTH,
    )
    backbone = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12)
    folder = tmp_path / "tiny_clip"
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    keras_hub.layers.CLIPImageConverter(image_size=(32, 32), scale=1 / 255).save_to_preset(folder)

    record = load_extractor(ExtractorConfig(name=f"keras_hub:{folder}", image_size=None)).provenance
    tower = load_text_tower(record)
    prompts = ["a video of a person playing cello.", "apply eye makeup"]
    preprocessor = keras_hub.models.CLIPPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH)
    token_ids = preprocessor({"prompts": prompts, "images": None})["token_ids"]
    expected = keras.ops.convert_to_numpy(backbone.get_text_embeddings(token_ids))
    assert tower.embedding_dim == 12 == record["feature_dim"]
    np.testing.assert_allclose(tower.embed_texts(prompts), expected, rtol=1e-4, atol=1e-6)
