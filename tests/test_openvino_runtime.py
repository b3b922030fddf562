"""`--runtime openvino`: the same features as Keras, per extractor family; one cache whichever runtime embeds.

Each conversion costs seconds, so models are small (32 px, random weights: equality needs no trained weights) and
the converted models are shared by the whole module through one compile cache folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import openvino  # noqa: F401  (the featcache[openvino] extra, in `test`: the runtime is tested, never skipped)
import pytest

import featcache.extractors.openvino_conversion as openvino_conversion
import featcache.extractors.openvino_runtime as openvino_runtime
import featcache.extractors.openvino_start as openvino_start
import featcache.extractors.runtimes as runtimes
from featcache.cache.describe import describe_cache
from featcache.cache.shards import DEFAULT_SHARD_RUNTIME, shard_runtime
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding.embed import embed
from featcache.errors import ExtractorError
from featcache.extractors.built_model import BuiltModel
from featcache.extractors.openvino_runtime import MAX_ABS_DIFF_PER_SCALE, MIN_COSINE, feature_agreement
from featcache.extractors.registry import _provenance, build_model, load_extractor
from featcache.extractors.runtimes import AUTO_RUNTIME_VARIABLE, choose_runtime

SIZE = 32


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the session: test_openvino_runtime.py and test_openvino_int8.py convert the same models."""
    folder = tmp_path_factory.getbasetemp() / "featcache-compile-cache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def shared_compile_cache(compile_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test converts into the module's folder (never ~/.cache); `auto` is not pinned by the suite here."""
    monkeypatch.setenv(openvino_runtime.CACHE_DIR_VARIABLE, str(compile_cache))
    monkeypatch.delenv(AUTO_RUNTIME_VARIABLE, raising=False)
    return compile_cache


def structured_frames(num_frames: int = 7) -> np.ndarray:
    """Frames with structure (gradients, a bright square) and noise; 7: not a multiple of the infer requests."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 255, SIZE)[None, :, None] * np.ones((SIZE, SIZE, 3))
    frames = np.stack([np.roll(ramp, shift, axis=1) for shift in range(num_frames)]) * 0.6
    frames[:, 8:20, 8:20, :] = 230
    return (frames + rng.normal(0, 12, frames.shape)).clip(0, 255).astype(np.uint8)


def assert_same_features(keras_features: np.ndarray, openvino_features: np.ndarray) -> None:
    relative_difference, min_cosine, _ = feature_agreement(keras_features, openvino_features)
    assert openvino_features.dtype == np.float32 and openvino_features.shape == keras_features.shape
    assert relative_difference <= MAX_ABS_DIFF_PER_SCALE, relative_difference
    assert min_cosine >= MIN_COSINE, min_cosine


def runtime_features(config: ExtractorConfig, runtime: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(Keras features, `runtime`'s features, the runtime chosen) of structured_frames, from one built model."""
    built = build_model(config)
    provenance = _provenance(config, built.weights_sha256, built.preprocessing, built.feature_dim)
    choice = choose_runtime(runtime, config, built, provenance)
    frames = structured_frames()
    return built.embed_frames(frames), choice.embed_frames(frames), choice.runtime


def test_openvino_gives_the_keras_features_of_scratch_cnn():
    keras_features, openvino_features, runtime = runtime_features(
        ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2), "openvino"
    )
    assert runtime == "openvino"
    assert np.abs(keras_features).max() > 0, "the features must carry a signal to compare"
    assert_same_features(keras_features, openvino_features)


def every_op_kind_model(path: Path) -> Path:
    """A small .keras model with the layers of the keras.applications families, saved for --extractor keras_file.

    MobileNetV2's (BatchNorm, ReLU6, depthwise conv, residual add), EfficientNet's (swish, squeeze-excitation),
    MobileNetV3's (hard swish), ConvNeXt's (LayerNormalization, GELU): one conversion covers them all, where
    converting the full models takes ~30-60 s each on a 2-core machine (`python3 -m benchmarks runtimes` checks
    those, BENCHMARKS.md records their agreement).
    """
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    block = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Add()([x, layers.Activation("swish")(block)])
    squeeze = layers.Dense(16, activation="sigmoid")(
        layers.Dense(4, activation="swish")(layers.GlobalAveragePooling2D(keepdims=True)(x))
    )
    x = layers.Multiply()([x, squeeze])
    x = layers.Activation("hard_swish")(x)
    x = layers.Conv2D(24, 3, padding="same", activation="gelu")(layers.LayerNormalization(epsilon=1e-6)(x))
    keras.Model(inputs, layers.GlobalAveragePooling2D()(x)).save(path)
    return path


def test_a_keras_file_with_every_family_s_layers_gives_the_same_features_on_openvino(tmp_path: Path):
    path = every_op_kind_model(tmp_path / "my_model.keras")
    keras_features, openvino_features, runtime = runtime_features(
        ExtractorConfig(name="keras_file", weights=str(path), image_size=SIZE), "openvino"
    )
    assert runtime == "openvino"
    assert_same_features(keras_features, openvino_features)


def test_a_second_load_takes_the_converted_model_from_the_compile_cache(monkeypatch: pytest.MonkeyPatch):
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2)
    first = load_extractor(config, "openvino")

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the compile cache holds the model")

    monkeypatch.setattr(openvino_conversion, "convert_keras_model", no_conversion)
    again = load_extractor(config, "openvino")
    frames = structured_frames()
    np.testing.assert_array_equal(first.embed_frames(frames), again.embed_frames(frames))
    assert again.runtime == "openvino" and again.provenance == load_extractor(config, "keras").provenance


def test_a_later_start_checks_openvino_against_the_stored_keras_features_without_running_keras(
    monkeypatch: pytest.MonkeyPatch,
):
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=5)
    first = load_extractor(config, "openvino")
    reference_path = Path(first.openvino_model.ir_path).parent / openvino_runtime.KERAS_PROBE_FEATURES_FILE
    probe = openvino_runtime.probe_frames(SIZE)
    np.testing.assert_array_equal(np.load(reference_path), load_extractor(config, "keras").embed_frames(probe))

    real_probe_frames = openvino_runtime.probe_frames
    calls = []
    monkeypatch.setattr(openvino_runtime, "probe_frames", lambda size: calls.append(size) or real_probe_frames(size))
    load_extractor(config, "openvino")
    assert calls == [SIZE]  # the check's own OpenVINO run only; Keras's features came from the file

    # Stored features that are not Keras's (a damaged or foreign file) fail the check: never a silent pass.
    np.save(reference_path, np.load(reference_path) * -1.0)
    with pytest.raises(ExtractorError, match="OpenVINO does not give scratch_cnn's Keras features"):
        load_extractor(config, "openvino")
    np.save(reference_path, np.zeros((2, 3), np.float32))
    with pytest.raises(ExtractorError, match="has shape \\(2, 3\\).*delete .* and run again"):
        load_extractor(config, "openvino")


def test_neighbors_of_a_new_file_are_the_same_on_openvino(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from conftest import write_video

    from featcache.search.neighbors import find_neighbors

    def scene(number: int) -> np.ndarray:
        """8 frames of a scene of its own: a colour, a bright square where the number puts it, moving."""
        frames = np.zeros((8, 48, 48, 3), np.uint8)
        frames[..., number % 3] = 60 + 45 * number
        for frame_number, frame in enumerate(frames):
            corner = 4 + 6 * number + frame_number
            frame[corner : corner + 10, 40 - corner : 50 - corner] = 250
        return frames

    for number, (label, group) in enumerate([("Alpha", 1), ("Alpha", 2), ("Beta", 1), ("Beta", 2)]):
        write_video(tmp_path / "videos" / label / f"v_{label}_g{group:02d}_c01.avi", scene(number))
    query = tmp_path / "query.avi"
    write_video(query, np.clip(scene(1).astype(np.int16) + 12, 0, 255).astype(np.uint8))  # scene 1, brighter
    cache = tmp_path / "cache.h5"
    extractor = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=6)
    embed(tmp_path / "videos", cache, EmbedConfig(extractor=extractor, sampling=SamplingConfig(num_frames=4)))
    on_keras = find_neighbors(cache, file=query, k=4, runtime="keras")
    compiled = []
    real_compile_ir = openvino_conversion.compile_ir
    # A Keras start compiles in openvino_conversion, a start from embed's start record in openvino_start.
    for module in (openvino_conversion, openvino_start):
        monkeypatch.setattr(module, "compile_ir", lambda *args: compiled.append(args) or real_compile_ir(*args))
    on_openvino = find_neighbors(cache, file=query, k=4, runtime="openvino")
    assert compiled, "the query was not embedded on OpenVINO"
    assert on_keras.neighbors[0].path == "Alpha/v_Alpha_g02_c01.avi"  # the scene the query shows, brighter
    assert [each.path for each in on_openvino.neighbors] == [each.path for each in on_keras.neighbors]
    np.testing.assert_allclose(
        [each.similarity for each in on_openvino.neighbors], [each.similarity for each in on_keras.neighbors], atol=1e-3
    )


def test_other_weights_are_another_compile_cache_key():
    keys = set()
    for seed in (2, 4):
        config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=seed)
        built = build_model(config)
        provenance = _provenance(config, built.weights_sha256, built.preprocessing, built.feature_dim)
        keys.add(openvino_conversion.compile_key(provenance, built.keras_model, "f32"))
    assert len(keys) == 2


def test_a_conversion_that_changes_the_features_is_refused_and_auto_says_so(monkeypatch: pytest.MonkeyPatch):
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2)
    # A stricter check than any float32 conversion can pass stands in for a converter bug.
    monkeypatch.setattr(openvino_runtime, "MIN_COSINE", 1.0 + 1e-9)
    with pytest.raises(ExtractorError, match="OpenVINO does not give scratch_cnn's Keras features.*--runtime keras"):
        load_extractor(config, "openvino")
    monkeypatch.setattr(runtimes, "keras_sees_gpu", lambda: False)
    fallback = load_extractor(config, "auto")
    assert fallback.runtime == "keras" and "does not give scratch_cnn's Keras features" in fallback.runtime_note


def test_a_savedmodel_extractor_is_refused_for_openvino_and_auto_uses_keras():
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE)
    savedmodel_like = BuiltModel(lambda frames: np.zeros((len(frames), 3), np.float32), 3, None, "x / 255")
    with pytest.raises(ExtractorError, match="--runtime openvino cannot run .*SavedModel.*use --runtime keras"):
        choose_runtime("openvino", config, savedmodel_like, {})
    choice = choose_runtime("auto", config, savedmodel_like, {})
    assert choice.runtime == "keras" and "SavedModel" in choice.note


def test_auto_prefers_openvino_on_a_cpu_and_the_variable_pins_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runtimes, "keras_sees_gpu", lambda: False)  # on a CPU, wherever the suite runs
    config = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2)
    assert load_extractor(config, "auto").runtime == "openvino"
    monkeypatch.setenv(AUTO_RUNTIME_VARIABLE, "keras")
    assert load_extractor(config, "auto").runtime == "keras"


def test_a_cache_embedded_half_by_each_runtime_is_one_cache(tiny_dataset: Path, tmp_path: Path):
    """Keras embeds two videos, OpenVINO the rest into the same cache: no mismatch, each shard says its runtime,
    and the features equal an all-Keras cache's."""
    from featcache.cache import CacheReader, read_cache_index, read_index_state, shard_folder_for

    extractor = ExtractorConfig(name="scratch_cnn", weights="random", image_size=SIZE, seed=2)
    sampling = SamplingConfig(num_frames=4)
    videos = sorted(tiny_dataset.rglob("*.avi"))
    csv_in_root = tiny_dataset / "first_two.csv"
    csv_in_root.write_text(
        "path,label\n" + "".join(f"{path.relative_to(tiny_dataset)},{path.parent.name}\n" for path in videos[:2])
    )
    mixed, keras_only = tmp_path / "mixed.h5", tmp_path / "keras.h5"
    keras_config = EmbedConfig(extractor=extractor, sampling=sampling, runtime="keras", num_decode_workers=1)
    openvino_config = EmbedConfig(extractor=extractor, sampling=sampling, runtime="openvino", num_decode_workers=1)
    assert embed(csv_in_root, mixed, keras_config).runtime == "keras"
    csv_in_root.unlink()
    summary = embed(tiny_dataset, mixed, openvino_config)
    assert summary.runtime == "openvino" and summary.num_already_cached == 2 and summary.num_embedded == 4
    embed(tiny_dataset, keras_only, keras_config)

    shard_names = list(read_index_state(mixed).shards)
    assert sorted(shard_runtime(shard_folder_for(mixed) / name) for name in shard_names) == ["keras", "openvino"]
    assert describe_cache(mixed)["runtimes"] == {"openvino": 4, "keras": 2}  # what `featcache info` lists
    mixed_paths, keras_paths = read_cache_index(mixed).paths, read_cache_index(keras_only).paths
    assert sorted(mixed_paths) == sorted(keras_paths) and len(mixed_paths) == 6
    with CacheReader(mixed) as mixed_reader, CacheReader(keras_only) as keras_reader:
        for row, path in enumerate(mixed_paths):
            mixed_features = mixed_reader.read_sequence(row).astype(np.float32)
            keras_features = keras_reader.read_sequence(keras_paths.index(path)).astype(np.float32)
            assert_same_features(keras_features, mixed_features)


def test_a_shard_written_without_a_runtime_reads_as_keras(tmp_path: Path):
    from featcache.cache.shards import ShardVideo, write_shard

    video = ShardVideo(
        "a.avi",
        "A",
        "g",
        "1:x",
        np.ones((2, 3), np.float32),
        np.arange(2, dtype=np.int32),
        np.zeros(2, np.float32),
        10.0,
        2,
        32,
        32,
    )
    old = write_shard(tmp_path, [video], "float16", {"extractor": {}, "sampling": {}, "dtype": "float16"})
    new = write_shard(
        tmp_path, [video], "float16", {"extractor": {}, "sampling": {}, "dtype": "float16"}, runtime="openvino"
    )
    with h5py.File(tmp_path / old.name, "r") as handle:
        assert "runtime" not in handle.attrs
        assert json.loads(handle.attrs["settings"])["dtype"] == "float16"
    assert shard_runtime(tmp_path / old.name) == DEFAULT_SHARD_RUNTIME == "keras"
    assert shard_runtime(tmp_path / new.name) == "openvino"


def test_embed_command_says_which_runtime_embedded(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runtimes, "keras_sees_gpu", lambda: False)  # on a CPU, wherever the suite runs
    from typer.testing import CliRunner

    from featcache.cli import app

    options = ["--extractor", "scratch_cnn", "--weights", "random", "--seed", "2", "--image-size", str(SIZE)]
    out = tmp_path / "cli.h5"
    result = CliRunner().invoke(app, ["embed", str(tiny_dataset), "--out", str(out), *options, "--frames", "4"])
    assert result.exit_code == 0, result.output
    assert "extractor runtime: openvino" in result.output  # auto on this CPU, with the extra installed
    refused = CliRunner().invoke(app, ["embed", str(tiny_dataset), "--out", str(tmp_path / "k.h5"), "--runtime", "x"])
    assert refused.exit_code == 2
