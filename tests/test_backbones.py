"""Tests for featcache.extractors.backbones and featcache.extractors.catalog:
keras:NAME, keras_file and keras_hub extractors.

Offline and small: 32 px, random or tmp-file weights, a tiny .keras model, a fake or tiny local KerasHub preset.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import types
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from test_extractors import expected_provenance
from typer.testing import CliRunner

import featcache
from featcache.cli import app
from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.catalog import KERAS_APPLICATIONS, available_extractors, keras_file_image_size
from featcache.extractors.registry import build_keras_model, load_extractor

SIZE = 32
# One model per preprocessing mode (caffe, tf, torch, inside the model), the cheapest of each to build:
# building all 40 at 75 px took 85 s on the shared 2-core machine, these four a few seconds.
CHECKED_APPLICATIONS = ["VGG16", "MobileNet", "DenseNet121", "EfficientNetV2B0"]


def random_frames(num_frames: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_features(model_name: str, backbone: keras.Model, frames: np.ndarray) -> np.ndarray:
    """What a keras.applications user gets: the module's preprocess_input, then the backbone."""
    module = getattr(keras.applications, KERAS_APPLICATIONS[model_name].module)
    return keras.ops.convert_to_numpy(backbone(module.preprocess_input(frames.astype("float32")), training=False))


@pytest.fixture(scope="module")
def vgg16_backbone() -> keras.Model:
    keras.utils.set_random_seed(11)
    return keras.applications.VGG16(include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3), weights=None)


@pytest.fixture
def vgg16_weights_file(tmp_path: Path, vgg16_backbone: keras.Model) -> Path:
    path = tmp_path / "vgg16.weights.h5"
    vgg16_backbone.save_weights(path)
    return path


@pytest.fixture
def vgg16_legacy_no_top_file(tmp_path: Path, vgg16_backbone: keras.Model) -> Path:
    """The weights in the legacy .h5 layout of Keras' published ImageNet `notop` files."""
    from keras.src.legacy.saving import legacy_h5_format

    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, vgg16_backbone)
    return path


@pytest.fixture
def tiny_keras_file(tmp_path: Path) -> Path:
    """A user's model: float32 RGB 0-255 (24 x 24) -> Rescaling -> Conv -> global average: 6-d, saved as .keras."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "my_model.keras"
    keras.Model(inputs, outputs).save(path)
    return path


# The catalog: names, dims and sizes without Keras


def test_catalog_lists_keras_applications_with_dims_and_sizes():
    described = available_extractors()
    assert "2048-d at 224 px" in described["keras:ResNet50"]
    assert "1280-d at 384 px" in described["keras:EfficientNetV2S"]
    assert {"mobilenet_v2", "scratch_cnn", "tfhub", "keras_file", "keras_hub:PRESET"} <= set(described)
    assert len([name for name in described if name.startswith("keras:")]) == len(KERAS_APPLICATIONS)


def test_catalog_names_are_keras_applications():
    for name, application in KERAS_APPLICATIONS.items():
        assert callable(getattr(keras.applications, name)), name
        assert callable(getattr(keras.applications, application.module).preprocess_input), application.module


def test_catalog_and_config_import_no_keras():
    """`featcache extractors` and the config checks must start without TensorFlow (featcache/__init__.py aside)."""
    package_dir = Path(featcache.__file__).parent
    code = (
        "import sys, types; package = types.ModuleType('featcache'); package.__path__ = [sys.argv[1]]; "
        "sys.modules['featcache'] = package; "
        "import featcache.extractors.catalog, featcache.config; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(package_dir)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_cli_extractors_lists_keras_applications():
    result = CliRunner().invoke(app, ["extractors"])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("keras:ConvNeXtTiny") and "768-d" in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("model_name", CHECKED_APPLICATIONS)
def test_catalog_dim_and_preprocessing_match_the_real_model(model_name: str):
    model = build_keras_model(ExtractorConfig(name=f"keras:{model_name}", weights="random", image_size=SIZE))
    assert model.output_shape == (None, KERAS_APPLICATIONS[model_name].feature_dim)
    assert model.input.dtype == "uint8" and model.trainable_weights == []
    (backbone,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    frames = random_frames(3)
    expected = reference_features(model_name, backbone, frames)
    got = keras.ops.convert_to_numpy(model(frames, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_image_size_defaults_to_the_models_own():
    assert ExtractorConfig(name="keras:EfficientNetV2S", image_size=None).image_size == 384
    assert ExtractorConfig(name="keras:InceptionV3", image_size=None).image_size == 299
    assert ExtractorConfig(name="mobilenet_v2", image_size=None).image_size == 224
    assert ExtractorConfig(name="keras:InceptionV3", image_size=160).image_size == 160


def test_unknown_keras_application_lists_the_valid_names():
    with pytest.raises(ExtractorError, match="unknown keras.applications model 'ResNet51'.*keras:ResNet50"):
        ExtractorConfig(name="keras:ResNet51", image_size=None)
    with pytest.raises(ExtractorError, match="unknown keras.applications model 'ResNet51'"):
        load_extractor(ExtractorConfig(name="keras:ResNet51", weights="random", image_size=SIZE))


def test_too_small_image_size_is_refused():
    with pytest.raises(ExtractorError, match="keras:InceptionV3 cannot be built at --image-size / image_size 32"):
        load_extractor(ExtractorConfig(name="keras:InceptionV3", weights="random", image_size=SIZE))


# keras:NAME weights: random, file, imagenet


def test_random_weights_follow_the_seed():
    frames = random_frames(2)

    def features(seed: int) -> np.ndarray:
        return load_extractor(
            ExtractorConfig(name="keras:VGG16", weights="random", image_size=SIZE, seed=seed)
        ).embed_frames(frames)

    first = features(1)
    np.testing.assert_array_equal(features(1), first)
    assert np.abs(features(2) - first).max() > 1e-3 * np.abs(first).max() > 0


@pytest.mark.parametrize("model_name", ["VGG16", "MobileNet"])
def test_random_weights_are_the_seeded_keras_application(model_name: str):
    """`random` weights are keras.applications' initialisation after keras.utils.set_random_seed(seed)."""
    keras.utils.set_random_seed(6)
    backbone = getattr(keras.applications, model_name)(
        include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3), weights=None
    )
    frames = random_frames(3)
    expected = reference_features(model_name, backbone, frames)
    extractor = load_extractor(ExtractorConfig(name=f"keras:{model_name}", weights="random", image_size=SIZE, seed=6))
    np.testing.assert_allclose(extractor.embed_frames(frames), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("weights_fixture", ["vgg16_weights_file", "vgg16_legacy_no_top_file"])
def test_weights_file_gives_the_direct_call_and_its_hash(request, weights_fixture: str, vgg16_backbone: keras.Model):
    weights_file = request.getfixturevalue(weights_fixture)
    extractor = load_extractor(ExtractorConfig(name="keras:VGG16", weights=str(weights_file), image_size=SIZE))
    frames = random_frames(4)
    np.testing.assert_allclose(
        extractor.embed_frames(frames), reference_features("VGG16", vgg16_backbone, frames), rtol=1e-4, atol=1e-5
    )
    assert extractor.provenance["weights_sha256"] == sha256_of(weights_file)


def test_weights_file_of_another_architecture_is_refused(tmp_path: Path):
    mobilenet = keras.applications.MobileNet(
        include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3), weights=None
    )
    path = tmp_path / "mobilenet.weights.h5"
    mobilenet.save_weights(path)
    with pytest.raises(ExtractorError, match="does not fit keras:VGG16"):
        load_extractor(ExtractorConfig(name="keras:VGG16", weights=str(path), image_size=SIZE))


def test_unreachable_imagenet_weights_say_what_to_do(monkeypatch):
    from keras.src.utils import file_utils  # where keras.applications downloads from

    def fail_download(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(file_utils, "get_file", fail_download)
    with pytest.raises(
        ExtractorError, match="could not download the ImageNet weights of VGG16.*featcache weights fetch keras:VGG16"
    ) as info:
        load_extractor(ExtractorConfig(name="keras:VGG16", image_size=SIZE))
    assert "\n" not in str(info.value)


def test_imagenet_weights_are_hashed_by_their_arrays(
    monkeypatch, vgg16_legacy_no_top_file: Path, vgg16_backbone: keras.Model
):
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(vgg16_legacy_no_top_file))
    extractor = load_extractor(ExtractorConfig(name="keras:VGG16", image_size=SIZE))
    frames = random_frames(2)
    np.testing.assert_allclose(
        extractor.embed_frames(frames), reference_features("VGG16", vgg16_backbone, frames), rtol=1e-4, atol=1e-5
    )
    again = load_extractor(ExtractorConfig(name="keras:VGG16", image_size=SIZE))
    assert len(extractor.provenance["weights_sha256"]) == 64
    assert again.provenance["weights_sha256"] == extractor.provenance["weights_sha256"]


def test_fetched_imagenet_weights_are_what_the_file_loads(
    monkeypatch, tmp_path: Path, vgg16_legacy_no_top_file: Path, vgg16_backbone: keras.Model
):
    """`featcache weights fetch keras:VGG16` saves Keras' ImageNet download
    so that --weights FILE gives the same features."""
    from keras.src.utils import file_utils

    from featcache.extractors.weights_fetch import fetch_imagenet_weights

    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(vgg16_legacy_no_top_file))
    out = fetch_imagenet_weights("keras:VGG16", tmp_path / "vgg16.weights.h5", image_size=SIZE)
    frames = random_frames(2)
    from_file = load_extractor(ExtractorConfig(name="keras:VGG16", weights=str(out), image_size=SIZE)).embed_frames(
        frames
    )
    np.testing.assert_allclose(from_file, reference_features("VGG16", vgg16_backbone, frames), rtol=1e-4, atol=1e-5)
    with pytest.raises(ExtractorError, match="unknown keras.applications model 'VGG17'"):
        fetch_imagenet_weights("keras:VGG17", tmp_path / "vgg17.weights.h5")


# keras_file


def test_keras_file_reads_its_input_size_and_gives_the_models_features(tiny_keras_file: Path):
    config = ExtractorConfig(name="keras_file", weights=str(tiny_keras_file), image_size=None)
    assert config.image_size == 24 == keras_file_image_size(tiny_keras_file)
    extractor = load_extractor(config)
    frames = random_frames(3, size=24)
    expected = keras.ops.convert_to_numpy(keras.saving.load_model(tiny_keras_file)(frames.astype("float32")))
    assert extractor.feature_dim == 6
    np.testing.assert_allclose(extractor.embed_frames(frames), expected, rtol=1e-5, atol=1e-6)
    provenance = extractor.provenance
    assert provenance["weights_sha256"] == sha256_of(tiny_keras_file) and provenance["image_size"] == 24
    assert json.loads(json.dumps(provenance)) == provenance


def test_keras_file_refuses_a_model_that_does_not_give_vectors(tmp_path: Path):
    inputs = keras.Input((16, 16, 3))
    path = tmp_path / "feature_map.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(path)
    with pytest.raises(
        ExtractorError, match=r"returns shape \(None, 14, 14, 2\), not \(batch, feature_dim\).*GlobalAveragePooling2D"
    ):
        load_extractor(ExtractorConfig(name="keras_file", weights=str(path), image_size=None))


def test_keras_file_bad_inputs(tmp_path: Path, tiny_keras_file: Path):
    with pytest.raises(ExtractorError, match="keras_file needs --weights / weights MODEL.keras"):
        load_extractor(ExtractorConfig(name="keras_file", weights="random", image_size=SIZE))
    with pytest.raises(ExtractorError, match="no such file"):
        ExtractorConfig(name="keras_file", weights=str(tmp_path / "gone.keras"), image_size=None)
    (tmp_path / "broken.keras").write_text("not a zip")
    with pytest.raises(ExtractorError, match="not a Keras 3 .keras file"):
        ExtractorConfig(name="keras_file", weights=str(tmp_path / "broken.keras"), image_size=None)
    with pytest.raises(ExtractorError, match=r"takes input shape \(None, 24, 24, 3\).*\(32, 32, 3\)"):
        load_extractor(ExtractorConfig(name="keras_file", weights=str(tiny_keras_file), image_size=32))


# keras_hub: the loading code with a stand-in keras_hub module, and a real tiny preset (the `test` extra has KerasHub)


class FakeCLIPBackbone:
    """What the loader uses of a KerasHub CLIP backbone: vision_encoder.image_shape and get_vision_embeddings."""

    def __init__(self, image_size: int):
        self.vision_encoder = types.SimpleNamespace(image_shape=(image_size, image_size, 3))
        self.dense = keras.layers.Dense(5, name="projection")
        self.weights = []

    def get_vision_embeddings(self, images):
        pooled = keras.layers.GlobalAveragePooling2D()(images)
        embeddings = self.dense(pooled)
        self.weights = self.dense.weights
        return embeddings


@pytest.fixture
def fake_keras_hub(monkeypatch) -> list[str]:
    """A keras_hub module whose presets are FakeCLIPBackbone at 32 px behind Rescaling(1/255);
    lists the presets asked for."""
    asked: list[str] = []

    def backbone_from_preset(preset: str):
        asked.append(preset)
        if preset == "unreachable_preset":
            raise ConnectionError("no network")
        return FakeCLIPBackbone(SIZE)

    fake = types.SimpleNamespace(
        models=types.SimpleNamespace(Backbone=types.SimpleNamespace(from_preset=backbone_from_preset)),
        layers=types.SimpleNamespace(
            ImageConverter=types.SimpleNamespace(from_preset=lambda preset: keras.layers.Rescaling(1 / 255))
        ),
    )
    monkeypatch.setitem(sys.modules, "keras_hub", fake)
    return asked


def test_keras_hub_preset_gives_its_vision_embeddings(fake_keras_hub: list[str]):
    extractor = load_extractor(ExtractorConfig(name="keras_hub:clip_vit_base_patch16", image_size=SIZE))
    assert fake_keras_hub == ["clip_vit_base_patch16"]
    assert extractor.feature_dim == 5
    assert extractor.embed_frames(random_frames(2)).shape == (2, 5)
    assert "Rescaling" in extractor.provenance["preprocessing"] and len(extractor.provenance["weights_sha256"]) == 64


def test_keras_hub_errors(fake_keras_hub: list[str], monkeypatch):
    with pytest.raises(
        ExtractorError, match="could not load KerasHub preset unreachable_preset: no network.*local preset folder"
    ):
        load_extractor(ExtractorConfig(name="keras_hub:unreachable_preset", image_size=SIZE))
    with pytest.raises(ExtractorError, match="takes 32 px images; pass --image-size / image_size 32"):
        load_extractor(ExtractorConfig(name="keras_hub:clip", image_size=64))
    with pytest.raises(ExtractorError, match="takes its weights from the preset"):
        load_extractor(ExtractorConfig(name="keras_hub:clip", weights="random", image_size=SIZE))
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # what an environment without the package gives
    with pytest.raises(ExtractorError, match=r"needs KerasHub: pip install 'featcache\[hub\]'"):
        load_extractor(ExtractorConfig(name="keras_hub:clip", image_size=SIZE))


def test_keras_hub_tiny_local_clip_preset(tmp_path: Path):
    """A real (tiny) CLIP preset saved with save_to_preset and loaded offline from its folder."""
    import keras_hub  # the featcache[hub] extra, in `test`; imported here: 1-2 s more than keras, for this test only

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, image_shape=(SIZE, SIZE, 3)
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=50,
        embedding_dim=16,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    backbone = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12)
    converter = keras_hub.layers.CLIPImageConverter(image_size=(SIZE, SIZE), scale=1 / 255)
    folder = tmp_path / "tiny_clip"
    backbone.save_to_preset(folder)
    converter.save_to_preset(folder)

    config = ExtractorConfig(name=f"keras_hub:{folder}", image_size=None)
    assert config.image_size == SIZE
    extractor = load_extractor(config)
    frames = random_frames(3)
    expected = keras.ops.convert_to_numpy(backbone.get_vision_embeddings(converter(frames.astype("float32"))))
    assert extractor.feature_dim == 12
    np.testing.assert_allclose(extractor.embed_frames(frames), expected, rtol=1e-4, atol=1e-6)


def test_provenance_is_the_stored_record_key_for_key(
    fake_keras_hub: list[str], vgg16_weights_file: Path, tiny_keras_file: Path
):
    """Each backbone's provenance, as JSON text, is the record featcache 0.2 stored
    (tests/test_extractors.py pins the key order)."""
    vgg16_preprocessing = "keras.applications.vgg16.preprocess_input: BGR, minus ImageNet mean"
    cases = [
        (
            ExtractorConfig(name="keras:VGG16", weights="random", image_size=SIZE, seed=4),
            None,
            vgg16_preprocessing,
            512,
        ),
        (
            ExtractorConfig(name="keras:VGG16", weights=str(vgg16_weights_file), image_size=SIZE),
            sha256_of(vgg16_weights_file),
            vgg16_preprocessing,
            512,
        ),
        (
            ExtractorConfig(name="keras:EfficientNetV2B0", weights="random", image_size=SIZE),
            None,
            "keras.applications.efficientnet_v2.preprocess_input: 0-255 in, scaled by the model's own first layers",
            1280,
        ),
        (
            ExtractorConfig(name="keras_file", weights=str(tiny_keras_file), image_size=None),
            sha256_of(tiny_keras_file),
            "none outside the model: RGB 0-255 as float32, scaled by the model's own layers",
            6,
        ),
    ]
    for config, weights_sha256, preprocessing, feature_dim in cases:
        provenance = load_extractor(config).provenance
        assert json.dumps(provenance) == json.dumps(
            expected_provenance(config, weights_sha256, preprocessing, feature_dim)
        )
    # A preset's weights are hashed by their arrays (the fake's one Dense layer, built on the first call).
    config = ExtractorConfig(name="keras_hub:clip_vit_base_patch16", image_size=SIZE)
    provenance = load_extractor(config).provenance
    hub_preprocessing = "the preset's Rescaling (resize to 32 px, its scale and offset), inside the model"
    assert json.dumps(provenance) == json.dumps(
        expected_provenance(config, provenance["weights_sha256"], hub_preprocessing, 5)
    )
    assert len(provenance["weights_sha256"]) == 64


# The same provenance, settings check and predict for every extractor


def test_keras_file_end_to_end_embed_train_predict(tmp_path: Path, tiny_dataset: Path, tiny_keras_file: Path):
    """Embed with a user's .keras model, train, predict new files: the model's features and the head's answer."""
    from featcache.cache import read_all_features, read_cache_index
    from featcache.config import EmbedConfig, HeadConfig, SamplingConfig, TrainConfig
    from featcache.embedding.embed import embed
    from featcache.errors import CacheMismatchError
    from featcache.inference.predict import predict_videos
    from featcache.training.model_folder import ModelFolder
    from featcache.training.train import train

    extractor_config = ExtractorConfig(name="keras_file", weights=str(tiny_keras_file), image_size=None)
    config = EmbedConfig(extractor=extractor_config, sampling=SamplingConfig(num_frames=4), dtype="float32")
    cache = tmp_path / "cache.h5"
    embed(tiny_dataset, cache, config)
    index = read_cache_index(cache)
    assert index.extractor["name"] == "keras_file" and index.extractor["image_size"] == 24
    assert index.extractor["weights_sha256"] == sha256_of(tiny_keras_file) and index.extractor["feature_dim"] == 6
    train(
        cache,
        tmp_path / "model",
        HeadConfig(head="meanpool", dense=8),
        TrainConfig(epochs=1, batch_size=4, val_fraction=0),
    )

    video_paths = [tiny_dataset / path for path in index.paths]
    predictions = predict_videos(tmp_path / "model", video_paths, top_k=2)
    expected = (
        ModelFolder.open(tmp_path / "model").load_model().predict_on_batch([read_all_features(cache), index.lengths])
    )
    for prediction, probabilities in zip(predictions, np.asarray(expected)):
        got = dict(prediction.top_k)
        np.testing.assert_allclose([got[name] for name in index.class_names], probabilities, rtol=1e-4, atol=1e-6)

    # Another model under the same file name: the cache and the trained model both refuse it.
    inputs = keras.Input((24, 24, 3))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3)(inputs))).save(tiny_keras_file)
    with pytest.raises(CacheMismatchError, match="differs from the one used"):
        embed(tiny_dataset, cache, config)
    with pytest.raises(CacheMismatchError, match="differs from the one used"):
        predict_videos(tmp_path / "model", video_paths[:1], top_k=1)
