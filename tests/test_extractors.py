"""Tests for featcache.extractors:
the registry, mobilenet_v2, scratch_cnn and tfhub, weights files and fetch, provenance.

Small images (32 px) and `random` or tmp-file weights keep this fast and offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError, FeatcacheError, InputError
from featcache.extractors.registry import (
    EXTRACTOR_BUILDERS,
    Extractor,
    available_extractors,
    build_imagenet_backbone,
    build_keras_model,
    extractor_builder,
    load_extractor,
)
from featcache.files import sha256_folder

SIZE = 32
KERAS_EXTRACTORS = ["mobilenet_v2", "scratch_cnn"]


def random_frames(num_frames: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """uint8 RGB noise frames, shape (num_frames, size, size, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mobilenet_v2_backbone() -> keras.Model:
    """A plain keras.applications.MobileNetV2 at 32 px with fresh weights, as a user would build it."""
    keras.utils.set_random_seed(123)
    return keras.applications.MobileNetV2(include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3), weights=None)


@pytest.fixture
def mobilenet_v2_weights_file(tmp_path: Path, mobilenet_v2_backbone: keras.Model) -> Path:
    """That backbone's weights saved with model.save_weights (Keras 3 .weights.h5)."""
    path = tmp_path / "mobilenet_v2.weights.h5"
    mobilenet_v2_backbone.save_weights(path)
    return path


@pytest.fixture
def mobilenet_v2_legacy_h5_file(tmp_path: Path, mobilenet_v2_backbone: keras.Model) -> Path:
    """The same weights in the legacy Keras .h5 layout of the hand-downloaded ImageNet `no_top` files."""
    # Keras 3 only writes .weights.h5; its legacy writer is what produced the published no_top files.
    from keras.src.legacy.saving import legacy_h5_format

    path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, mobilenet_v2_backbone)
    return path


@pytest.fixture
def scratch_cnn_weights_file(tmp_path: Path) -> Path:
    """Weights of featcache's scratch_cnn backbone (seed 5), saved with model.save_weights."""
    model = build_keras_model(ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=5))
    path = tmp_path / "scratch_cnn.weights.h5"
    model.get_layer("scratch_cnn").save_weights(path)
    return path


@pytest.fixture
def mean_pixel_savedmodel(tmp_path: Path) -> Path:
    """A tiny TF2 SavedModel: images float32 (B, H, W, 3) -> (B, 7) = [mean R, G, B, mean, 0, 1, max]."""
    import tensorflow as tf

    class MeanPixel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            channel_means = tf.reduce_mean(images, axis=[1, 2])
            batch = tf.shape(images)[0]
            return tf.concat(
                [
                    channel_means,
                    tf.reduce_mean(channel_means, axis=1, keepdims=True),
                    tf.zeros([batch, 1]),
                    tf.ones([batch, 1]),
                    tf.reduce_max(images, axis=[1, 2, 3])[:, None],
                ],
                axis=1,
            )

    folder = tmp_path / "mean_pixel_savedmodel"
    tf.saved_model.save(MeanPixel(), str(folder))
    return folder


# The registry


def test_available_extractors_lists_each_with_its_dim():
    extractors = available_extractors()
    assert {"mobilenet_v2", "scratch_cnn", "tfhub", "keras_file", "keras_hub:PRESET", "keras:ResNet50"} <= set(
        extractors
    )
    assert "1280" in extractors["mobilenet_v2"]
    assert "25088" in extractors["scratch_cnn"]
    assert all("\n" not in description for description in extractors.values())


def test_unknown_extractor_lists_the_valid_names():
    with pytest.raises(ExtractorError, match="unknown extractor 'resnet'.*mobilenet_v2, scratch_cnn, tfhub"):
        load_extractor(ExtractorConfig(name="resnet"))


def test_every_catalog_name_has_a_builder_and_every_builder_a_name():
    """The names `featcache extractors` lists are the registry's:
    its own entries, or a family prefix (keras:, keras_hub:)."""
    served = {name: extractor_builder(name) for name in available_extractors()}
    assert set(served.values()) == set(EXTRACTOR_BUILDERS.values())
    assert (
        served["keras:ResNet50"] is EXTRACTOR_BUILDERS["keras:"]
        and served["keras_hub:PRESET"] is EXTRACTOR_BUILDERS["keras_hub:"]
    )
    for prefix_alone in ("keras:", "keras_hub:", "mobilenet_v2:x"):
        with pytest.raises(ExtractorError, match="unknown extractor"):
            extractor_builder(prefix_alone)


def test_build_keras_model_is_the_model_load_extractor_embeds_with(mean_pixel_savedmodel: Path):
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2)
    frames = random_frames(3)
    model = build_keras_model(config)
    np.testing.assert_array_equal(
        np.asarray(model.predict_on_batch(frames)), load_extractor(config).embed_frames(frames)
    )
    with pytest.raises(ExtractorError, match="tfhub is a TensorFlow SavedModel, not a Keras model"):
        build_keras_model(ExtractorConfig(name="tfhub", handle=str(mean_pixel_savedmodel), image_size=SIZE))


def test_extractor_error_is_a_featcache_error():
    assert issubclass(ExtractorError, FeatcacheError)


# Output shapes and frozen models


@pytest.mark.parametrize(("name", "feature_dim"), [("mobilenet_v2", 1280), ("scratch_cnn", (SIZE // 16) ** 2 * 128)])
def test_keras_extractor_output_shape(name: str, feature_dim: int):
    extractor = load_extractor(ExtractorConfig(name=name, weights="random", image_size=SIZE))
    assert isinstance(extractor, Extractor)
    assert (extractor.name, extractor.image_size, extractor.feature_dim) == (name, SIZE, feature_dim)
    for batch in (5, 1, 3):
        features = extractor.embed_frames(random_frames(batch))
        assert features.shape == (batch, feature_dim)
        assert features.dtype == np.float32
    assert extractor.embed_frames(random_frames(0)).shape == (0, feature_dim)


def test_scratch_cnn_is_25088_d_at_224():
    extractor = load_extractor(ExtractorConfig(name="scratch_cnn", weights="random", image_size=224))
    assert extractor.feature_dim == 25088 == (224 // 16) ** 2 * 128
    assert extractor.embed_frames(random_frames(1, size=224)).shape == (1, 25088)


@pytest.mark.parametrize("name", KERAS_EXTRACTORS)
def test_keras_extractors_are_frozen(name: str):
    model = build_keras_model(ExtractorConfig(name=name, weights="random", image_size=SIZE))
    assert model.trainable is False
    assert model.trainable_weights == []
    assert model.input.dtype == "uint8"


def test_embed_frames_rejects_frames_of_the_wrong_size():
    extractor = load_extractor(ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE))
    with pytest.raises(ValueError, match=r"uint8 frames of shape \(batch, 32, 32, 3\)"):
        extractor.embed_frames(random_frames(2, size=64))
    with pytest.raises(ValueError, match="uint8"):
        extractor.embed_frames(random_frames(2).astype(np.float32))


# Features equal a direct model call with the documented preprocessing


@pytest.mark.parametrize("weights_fixture", ["mobilenet_v2_weights_file", "mobilenet_v2_legacy_h5_file"])
def test_mobilenet_v2_features_equal_a_direct_call(request, weights_fixture: str, mobilenet_v2_backbone):
    weights_file = request.getfixturevalue(weights_fixture)
    extractor = load_extractor(ExtractorConfig(name="mobilenet_v2", weights=str(weights_file), image_size=SIZE))
    frames = random_frames(6)
    expected = mobilenet_v2_backbone(
        keras.applications.mobilenet_v2.preprocess_input(frames.astype("float32")), training=False
    )
    np.testing.assert_allclose(
        extractor.embed_frames(frames), keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-5
    )


def test_scratch_cnn_features_equal_a_direct_call_on_frames_over_255(scratch_cnn_weights_file: Path):
    extractor = load_extractor(
        ExtractorConfig(name="scratch_cnn", weights=str(scratch_cnn_weights_file), image_size=SIZE)
    )
    reference = build_keras_model(ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=99))
    backbone = reference.get_layer("scratch_cnn")
    backbone.load_weights(scratch_cnn_weights_file)
    frames = random_frames(4)
    expected = keras.ops.convert_to_numpy(backbone(frames.astype("float32") / 255.0, training=False))
    np.testing.assert_allclose(extractor.embed_frames(frames), expected, rtol=1e-4, atol=1e-5)
    assert extractor.provenance["preprocessing"].startswith("x / 255")


def test_padding_to_the_largest_batch_keeps_features(monkeypatch):
    """The JAX path pads a smaller batch to the largest seen (one compiled shape); padding must not leak."""
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    extractor = load_extractor(ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE))
    monkeypatch.undo()
    called_with = []
    original = keras.Model.predict_on_batch
    monkeypatch.setattr(
        keras.Model, "predict_on_batch", lambda model, x: called_with.append(len(x)) or original(model, x)
    )
    frames = random_frames(5)
    full = extractor.embed_frames(frames)
    tail = extractor.embed_frames(frames[:2])
    assert called_with == [5, 5]
    assert tail.shape == (2, extractor.feature_dim)
    np.testing.assert_allclose(tail, full[:2], rtol=1e-5, atol=1e-6)


# Weights: random seeds, files that do not fit, ImageNet download


@pytest.mark.parametrize("name", KERAS_EXTRACTORS)
def test_random_weights_follow_the_seed(name: str):
    frames = random_frames(2)

    def features(seed: int) -> np.ndarray:
        return load_extractor(ExtractorConfig(name=name, weights="random", image_size=SIZE, seed=seed)).embed_frames(
            frames
        )

    first = features(1)
    np.testing.assert_array_equal(features(1), first)
    # Random MobileNetV2 features are tiny (around 1e-12), so compare relative to their scale.
    assert np.abs(features(2) - first).max() > 1e-3 * np.abs(first).max() > 0


def test_weights_file_of_another_architecture_is_refused(
    scratch_cnn_weights_file: Path, mobilenet_v2_legacy_h5_file: Path
):
    with pytest.raises(ExtractorError, match="does not fit mobilenet_v2.*same mobilenet_v2 architecture"):
        load_extractor(ExtractorConfig(name="mobilenet_v2", weights=str(scratch_cnn_weights_file), image_size=SIZE))
    with pytest.raises(ExtractorError, match="does not fit scratch_cnn"):
        load_extractor(ExtractorConfig(name="scratch_cnn", weights=str(mobilenet_v2_legacy_h5_file), image_size=SIZE))


def test_missing_weights_file_is_refused(tmp_path: Path):
    with pytest.raises(ExtractorError, match="no such file"):
        load_extractor(ExtractorConfig(name="mobilenet_v2", weights=str(tmp_path / "gone.weights.h5"), image_size=SIZE))
    with pytest.raises(ExtractorError, match="expected 'random', imagenet or a .weights.h5"):
        load_extractor(ExtractorConfig(name="mobilenet_v2", weights="imagnet", image_size=SIZE))


def test_scratch_cnn_has_no_imagenet_weights():
    with pytest.raises(ExtractorError, match="scratch_cnn has no ImageNet weights.*--weights / weights PATH"):
        load_extractor(ExtractorConfig(name="scratch_cnn", weights="imagenet", image_size=SIZE))


def test_handle_is_only_for_tfhub():
    with pytest.raises(ExtractorError, match="--handle / handle only applies to --extractor tfhub"):
        load_extractor(ExtractorConfig(name="mobilenet_v2", weights="random", handle="x", image_size=SIZE))


def test_unreachable_imagenet_names_weights_path(monkeypatch):
    def fail_download(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr(keras.utils, "get_file", fail_download)
    with pytest.raises(
        ExtractorError,
        match="could not download the MobileNetV2 ImageNet weights.*featcache weights fetch mobilenet_v2",
    ) as info:
        load_extractor(ExtractorConfig(name="mobilenet_v2", weights="imagenet", image_size=SIZE))
    assert "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, Exception) and "no network" in str(info.value.__cause__)


def test_imagenet_loads_the_downloaded_file_and_records_its_hash(monkeypatch, mobilenet_v2_legacy_h5_file: Path):
    requested = []

    def cached_download(file_name, origin, cache_subdir):
        requested.append((file_name, origin, cache_subdir))
        return str(mobilenet_v2_legacy_h5_file)

    monkeypatch.setattr(keras.utils, "get_file", cached_download)
    extractor = load_extractor(ExtractorConfig(name="mobilenet_v2", weights="imagenet", image_size=SIZE))
    # 32 px has no published weights, so Keras' rule picks the 224 file.
    assert requested[0][0] == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    assert requested[0][1].endswith(requested[0][0]) and requested[0][2] == "models"
    assert extractor.provenance["weights"] == "imagenet"
    assert extractor.provenance["weights_sha256"] == sha256_of(mobilenet_v2_legacy_h5_file)


# ImageNet weights as a file: build_imagenet_backbone and `featcache weights fetch`


@pytest.fixture
def downloaded_mobilenet_v2(monkeypatch, mobilenet_v2_legacy_h5_file: Path) -> Path:
    """keras.utils.get_file answers with the legacy no_top file (no network here)."""
    monkeypatch.setattr(
        keras.utils, "get_file", lambda file_name, origin, cache_subdir: str(mobilenet_v2_legacy_h5_file)
    )
    return mobilenet_v2_legacy_h5_file


def test_imagenet_backbone_saves_the_file_weights_loads(
    tmp_path: Path, downloaded_mobilenet_v2: Path, mobilenet_v2_backbone
):
    from featcache.extractors.weights_fetch import fetch_imagenet_weights

    backbone = build_imagenet_backbone("mobilenet_v2", image_size=SIZE)
    for got, expected in zip(backbone.get_weights(), mobilenet_v2_backbone.get_weights()):
        np.testing.assert_array_equal(got, expected)
    out = fetch_imagenet_weights("mobilenet_v2", tmp_path / "fetched" / "mobilenet_v2.weights.h5", image_size=SIZE)
    assert sorted(path.name for path in out.parent.iterdir()) == ["mobilenet_v2.weights.h5"]  # no temporary left
    frames = random_frames(2)
    from_file = load_extractor(ExtractorConfig(name="mobilenet_v2", weights=str(out), image_size=SIZE)).embed_frames(
        frames
    )
    from_imagenet = load_extractor(
        ExtractorConfig(name="mobilenet_v2", weights="imagenet", image_size=SIZE)
    ).embed_frames(frames)
    np.testing.assert_array_equal(from_file, from_imagenet)


def test_a_failed_fetch_leaves_no_file(tmp_path: Path, downloaded_mobilenet_v2: Path, monkeypatch):
    from featcache.extractors.weights_fetch import fetch_imagenet_weights

    def save_half_then_fail(model, filepath):
        Path(filepath).write_bytes(b"half a weights file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save_weights", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        fetch_imagenet_weights("mobilenet_v2", tmp_path / "fetched" / "mobilenet_v2.weights.h5", image_size=SIZE)
    assert list((tmp_path / "fetched").iterdir()) == []


def test_only_extractors_with_weights_files_have_an_imagenet_backbone():
    from featcache.extractors.weights_fetch import fetch_imagenet_weights

    with pytest.raises(ExtractorError, match="scratch_cnn has no ImageNet weights"):
        build_imagenet_backbone("scratch_cnn", image_size=SIZE)
    with pytest.raises(
        InputError, match="scratch_cnn has no ImageNet weights to fetch; choose mobilenet_v2 or keras:NAME"
    ):
        fetch_imagenet_weights("scratch_cnn", Path("unused.weights.h5"))
    with pytest.raises(InputError, match="--out / out unused.h5: name the file"):
        fetch_imagenet_weights("mobilenet_v2", Path("unused.h5"))


# Provenance


def test_provenance_rebuilds_the_config_and_hashes_the_weights(mobilenet_v2_weights_file: Path):
    config = ExtractorConfig(name="mobilenet_v2", weights=str(mobilenet_v2_weights_file), image_size=SIZE, seed=3)
    provenance = load_extractor(config).provenance
    fields = [field.name for field in dataclasses.fields(ExtractorConfig)]
    assert ExtractorConfig(**{name: provenance[name] for name in fields}) == config
    assert provenance["weights_sha256"] == sha256_of(mobilenet_v2_weights_file)
    assert provenance["feature_dim"] == 1280
    assert provenance["preprocessing"].startswith("x / 127.5 - 1")
    assert provenance["keras_version"] == keras.__version__
    assert provenance["backend"] == keras.backend.backend()


def test_random_provenance_has_no_hash_and_is_json():
    import json

    provenance = load_extractor(
        ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=7)
    ).provenance
    assert provenance["weights"] == "random" and provenance["weights_sha256"] is None and provenance["seed"] == 7
    assert json.loads(json.dumps(provenance)) == provenance


# The provenance record and random-weight features are what existing caches were made with: pinned


# The keys of every extractor's provenance, in order: caches store it as JSON text (their settings record).
PROVENANCE_KEYS = [
    "name",
    "weights",
    "handle",
    "image_size",
    "seed",
    "weights_sha256",
    "preprocessing",
    "feature_dim",
    "keras_version",
    "backend",
]


def expected_provenance(
    config: ExtractorConfig, weights_sha256: str | None, preprocessing: str, feature_dim: int
) -> dict:
    """The record featcache 0.2 stored for `config`, key by key."""
    values = [
        config.name,
        config.weights,
        config.handle,
        config.image_size,
        config.seed,
        weights_sha256,
        preprocessing,
        feature_dim,
        keras.__version__,
        keras.backend.backend(),
    ]
    return dict(zip(PROVENANCE_KEYS, values))


def test_provenance_is_the_stored_record_key_for_key(mobilenet_v2_weights_file: Path, mean_pixel_savedmodel: Path):
    import json

    mobilenet_v2_preprocessing = "x / 127.5 - 1 (keras.applications.mobilenet_v2.preprocess_input), RGB"
    cases = [
        (
            ExtractorConfig(name="mobilenet_v2", weights="random", image_size=SIZE, seed=3),
            None,
            mobilenet_v2_preprocessing,
            1280,
        ),
        (
            ExtractorConfig(name="mobilenet_v2", weights=str(mobilenet_v2_weights_file), image_size=SIZE),
            sha256_of(mobilenet_v2_weights_file),
            mobilenet_v2_preprocessing,
            1280,
        ),
        (ExtractorConfig(name="scratch_cnn", weights="random", image_size=48, seed=7), None, "x / 255, RGB", 9 * 128),
        (
            ExtractorConfig(name="tfhub", handle=str(mean_pixel_savedmodel), image_size=SIZE),
            sha256_folder(mean_pixel_savedmodel),
            "x / 255 (float32 in [0, 1]), RGB",
            7,
        ),
    ]
    for config, weights_sha256, preprocessing, feature_dim in cases:
        provenance = load_extractor(config).provenance
        # Compared as JSON text: the same keys, in the same order, with the same values.
        assert json.dumps(provenance) == json.dumps(
            expected_provenance(config, weights_sha256, preprocessing, feature_dim)
        )


def reference_mobilenet_v2_features(frames: np.ndarray, seed: int) -> np.ndarray:
    """A seeded keras.applications.MobileNetV2 as a user builds it, fed mobilenet_v2.preprocess_input."""
    size = frames.shape[1]
    keras.utils.set_random_seed(seed)
    backbone = keras.applications.MobileNetV2(
        include_top=False, pooling="avg", input_shape=(size, size, 3), weights=None
    )
    scaled = keras.applications.mobilenet_v2.preprocess_input(frames.astype("float32"))
    return keras.ops.convert_to_numpy(backbone(scaled, training=False))


def reference_scratch_cnn_features(frames: np.ndarray, seed: int) -> np.ndarray:
    """The notebook's CNN written out again (8 convs in 4 pooled blocks, Flatten), seeded, fed x / 255."""
    size = frames.shape[1]
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((size, size, 3))]
    for filters, kernel_sizes in [(32, (3, 3)), (64, (3, 3)), (128, (3, 3)), (128, (4, 3))]:
        layers += [
            keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu") for kernel_size in kernel_sizes
        ]
        layers.append(keras.layers.MaxPooling2D(2))
    model = keras.Sequential([*layers, keras.layers.Flatten()])
    return keras.ops.convert_to_numpy(model(frames.astype("float32") / 255, training=False))


@pytest.mark.parametrize(
    ("name", "reference"),
    [("mobilenet_v2", reference_mobilenet_v2_features), ("scratch_cnn", reference_scratch_cnn_features)],
)
@pytest.mark.parametrize(("size", "seed"), [(SIZE, 0), (48, 5)])
def test_random_weights_are_the_seeded_reference_model(name: str, reference, size: int, seed: int):
    """`random` weights are Keras' initialisation after keras.utils.set_random_seed(seed):
    caches made with them stay valid."""
    frames = random_frames(3, size=size)
    extractor = load_extractor(ExtractorConfig(name=name, weights="random", image_size=size, seed=seed))
    expected = reference(frames, seed)
    # Random MobileNetV2 features are tiny (around 1e-12): the tolerance follows their scale.
    np.testing.assert_allclose(extractor.embed_frames(frames), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


# tfhub


def test_tfhub_loads_a_local_savedmodel_with_inputs_in_0_1(mean_pixel_savedmodel: Path):
    extractor = load_extractor(ExtractorConfig(name="tfhub", handle=str(mean_pixel_savedmodel), image_size=SIZE))
    assert extractor.feature_dim == 7
    frames = random_frames(3)
    features = extractor.embed_frames(frames)
    assert features.shape == (3, 7) and features.dtype == np.float32
    scaled = frames.astype(np.float64) / 255.0
    np.testing.assert_allclose(features[:, :3], scaled.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(features[:, 6], scaled.max(axis=(1, 2, 3)), rtol=1e-6)
    provenance = extractor.provenance
    assert provenance["handle"] == str(mean_pixel_savedmodel) and provenance["feature_dim"] == 7
    assert len(provenance["weights_sha256"]) == 64
    (mean_pixel_savedmodel / "variables" / "extra").write_bytes(b"changed")
    reloaded = load_extractor(ExtractorConfig(name="tfhub", handle=str(mean_pixel_savedmodel), image_size=SIZE))
    assert reloaded.provenance["weights_sha256"] != provenance["weights_sha256"]


def test_tfhub_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(ExtractorError, match="could not load TF-Hub model .*missing"):
        load_extractor(ExtractorConfig(name="tfhub", handle=str(tmp_path / "missing")))


def test_tfhub_needs_a_handle():
    with pytest.raises(ExtractorError, match="tfhub needs --handle"):
        load_extractor(ExtractorConfig(name="tfhub"))


def test_tfhub_needs_the_tensorflow_backend(monkeypatch, mean_pixel_savedmodel: Path):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ExtractorError, match="KERAS_BACKEND=tensorflow"):
        load_extractor(ExtractorConfig(name="tfhub", handle=str(mean_pixel_savedmodel)))
