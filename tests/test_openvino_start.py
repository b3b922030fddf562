"""Starting on OpenVINO from the compile cache without Keras (featcache/extractors/openvino_start.py): the same
extractor as a Keras start, and a Keras start wherever the start record might not describe the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import featcache.extractors.openvino_runtime as openvino_runtime
import featcache.extractors.openvino_start as openvino_start
import featcache.extractors.registry as registry
import featcache.extractors.runtimes as runtimes
from featcache.cache import CacheReader, read_cache_index
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.errors import ExtractorError
from featcache.extractors.openvino_runtime import MAX_ABS_DIFF_PER_SCALE, MIN_COSINE, feature_agreement
from featcache.extractors.openvino_start import start_extractor, start_key, start_record_path, start_without_keras
from featcache.extractors.registry import build_model, load_extractor
from featcache.extractors.runtimes import AUTO_RUNTIME_VARIABLE
from featcache.inference.predict import prepare_model
from featcache.search.neighbors import find_neighbors
from featcache.training.train import train

SIZE = 32
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def own_compile_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A compile cache of each test's own (its start records are what the tests look at); `auto` not pinned."""
    folder = tmp_path / "compile-cache"
    monkeypatch.setenv(openvino_runtime.CACHE_DIR_VARIABLE, str(folder))
    monkeypatch.delenv(AUTO_RUNTIME_VARIABLE, raising=False)
    return folder


@pytest.fixture
def no_gpu_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Linux machine whose GPU device pattern is a file of the test's own: absent, as on a CPU machine, until
    created; Keras's own answer, where a Keras start asks it, is no GPU."""
    device = tmp_path / "nvidia0"
    monkeypatch.setattr(openvino_start, "GPU_DEVICE_PATTERNS", (str(device),))
    monkeypatch.setattr(openvino_start.sys, "platform", "linux")
    monkeypatch.setattr(runtimes, "keras_sees_gpu", lambda: False)
    return device


@pytest.fixture
def keras_start_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the extractor with Keras fails the test: what follows must start from the record."""

    def no_keras_start(*args, **kwargs):
        raise AssertionError("built with Keras although a start record should have started it")

    monkeypatch.setattr(registry, "load_extractor", no_keras_start)


def scratch_cnn(seed: int = 2, weights: str = "random") -> ExtractorConfig:
    return ExtractorConfig(name="scratch_cnn", weights=weights, image_size=SIZE, seed=seed)


def frames(num_frames: int = 5) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (num_frames, SIZE, SIZE, 3), dtype=np.uint8)


def assert_keras_features(config: ExtractorConfig, embed_frames) -> None:
    """embed_frames gives Keras's features of `config` within the runtime's agreement."""
    keras_features = load_extractor(config, "keras").embed_frames(frames())
    relative_difference, min_cosine, _ = feature_agreement(keras_features, embed_frames(frames()))
    assert relative_difference <= MAX_ABS_DIFF_PER_SCALE and min_cosine >= MIN_COSINE, (relative_difference, min_cosine)


def cache_features(cache: Path) -> dict[str, np.ndarray]:
    paths = read_cache_index(cache).paths
    with CacheReader(cache) as reader:
        return {path: reader.read_sequence(row) for row, path in enumerate(paths)}


def test_a_second_embed_starts_on_openvino_without_importing_keras(tiny_dataset: Path, tmp_path: Path):
    extractor = scratch_cnn()
    config = EmbedConfig(extractor=extractor, sampling=SamplingConfig(num_frames=4), runtime="openvino")
    first = tmp_path / "first.h5"
    assert embed(tiny_dataset, first, config).runtime == "openvino"  # builds Keras: saves the start record
    assert start_record_path(start_key(extractor).key).is_file()

    # A fresh process, as the next `featcache embed` is: it must not import Keras (nor TensorFlow) at all.
    second = tmp_path / "second.h5"
    script = (
        "import json, sys\n"
        "from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig\n"
        "from featcache.embedding.embed import embed\n"
        f"extractor = ExtractorConfig(name='scratch_cnn', weights='random', image_size={SIZE}, seed=2)\n"
        "config = EmbedConfig(extractor=extractor, sampling=SamplingConfig(num_frames=4), runtime='openvino')\n"
        f"summary = embed({str(tiny_dataset)!r}, {str(second)!r}, config)\n"
        "print(json.dumps({'runtime': summary.runtime, 'num_embedded': summary.num_embedded,\n"
        "    'keras': 'keras' in sys.modules, 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome == {"runtime": "openvino", "num_embedded": 6, "keras": False, "tensorflow": False}

    first_features, second_features = cache_features(first), cache_features(second)
    assert sorted(first_features) == sorted(second_features) and len(first_features) == 6
    for path, features in first_features.items():
        np.testing.assert_array_equal(second_features[path], features)
    # One cache whichever start embedded it: the same settings record, so it may be added to by either.
    assert read_cache_index(first).settings == read_cache_index(second).settings


def test_predict_and_evaluate_with_a_baseline_run_without_keras_once_openvino_has_started(
    tiny_dataset: Path, tmp_path: Path
):
    """A linear probe is numbers, and OpenVINO starts from its record: `predict` and `evaluate` need no Keras."""
    from typer.testing import CliRunner

    from featcache.cli import app

    cache = tmp_path / "tiny.h5"
    config = EmbedConfig(extractor=scratch_cnn(), sampling=SamplingConfig(num_frames=4), runtime="openvino")
    embed(tiny_dataset, cache, config)  # builds Keras once: saves the start record
    model = tmp_path / "linear"
    trained = CliRunner().invoke(app, ["train", str(cache), "--head", "linear", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    commands = {
        "predict": ["predict", str(model), str(tiny_dataset), "--json", "--runtime", "openvino"],
        "evaluate": ["evaluate", str(model), str(cache), "--json"],
    }
    expected = {}
    for name, arguments in commands.items():
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        expected[name] = json.loads(result.stdout)
    # Fresh processes, as the next commands are.
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from featcache.cli import app\n"
        f"result = CliRunner().invoke(app, json.loads({json.dumps(json.dumps(commands))})[sys.argv[1]])\n"
        "print(json.dumps({'exit': result.exit_code, 'output': result.stdout,\n"
        "    'keras': 'keras' in sys.modules, 'tensorflow': 'tensorflow' in sys.modules}))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    for name in commands:
        completed = subprocess.run(
            [sys.executable, "-c", script, name], env=environment, capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        outcome = json.loads(completed.stdout.strip().splitlines()[-1])
        assert (outcome["exit"], outcome["keras"], outcome["tensorflow"]) == (0, False, False), outcome
        assert json.loads(outcome["output"]) == expected[name]


def test_a_start_without_keras_is_the_extractor_a_keras_start_gives():
    extractor = scratch_cnn(seed=4)
    assert start_without_keras(extractor, "openvino") is None  # no record before the first Keras start
    load_extractor(extractor, "openvino")
    assert start_without_keras(extractor, "openvino") is None  # only `embed`'s start saves records
    built = start_extractor(extractor, "openvino")
    started = start_without_keras(extractor, "openvino")
    assert started is not None and started.runtime == "openvino" and started.runtime_note == ""
    assert (started.name, started.image_size, started.feature_dim) == (extractor.name, SIZE, built.feature_dim)
    assert started.provenance == built.provenance == load_extractor(extractor, "keras").provenance
    assert_keras_features(extractor, started.embed_frames)


def test_another_weights_file_or_seed_is_another_start_key(tmp_path: Path):
    weights_file = tmp_path / "cnn.weights.h5"
    build_model(scratch_cnn(seed=1)).weights_backbone.save_weights(weights_file)
    from_file = scratch_cnn(weights=str(weights_file))
    first = start_extractor(from_file, "openvino")
    assert start_without_keras(from_file, "openvino").provenance == first.provenance

    # The same path with other weights in it: the record of the old bytes must not start the new ones.
    build_model(scratch_cnn(seed=9)).weights_backbone.save_weights(weights_file)
    assert start_without_keras(from_file, "openvino") is None
    second = start_extractor(from_file, "openvino")
    assert second.provenance["weights_sha256"] != first.provenance["weights_sha256"]
    started = start_without_keras(from_file, "openvino")
    assert started.provenance == second.provenance
    assert_keras_features(from_file, started.embed_frames)

    assert len({start_key(scratch_cnn(seed)).key for seed in (1, 2)}) == 2
    assert start_key(scratch_cnn(weights=str(tmp_path / "missing.weights.h5"))) is None


def test_a_weights_file_rewritten_during_the_build_is_never_filed_under_the_wrong_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    weights_file = tmp_path / "cnn.weights.h5"
    old_weights, new_weights = tmp_path / "old.weights.h5", tmp_path / "new.weights.h5"
    build_model(scratch_cnn(seed=1)).weights_backbone.save_weights(old_weights)
    build_model(scratch_cnn(seed=8)).weights_backbone.save_weights(new_weights)
    from_file = scratch_cnn(weights=str(weights_file))
    records = openvino_runtime.compile_cache_folder() / openvino_start.START_RECORDS_FOLDER
    real_load = registry.load_extractor

    def rewritten_before_the_build(config: ExtractorConfig, runtime: str):
        shutil.copyfile(new_weights, weights_file)  # after the start key read the old bytes
        return real_load(config, runtime)

    shutil.copyfile(old_weights, weights_file)
    monkeypatch.setattr(registry, "load_extractor", rewritten_before_the_build)
    built = start_extractor(from_file, "openvino")  # the new weights' model, under the old bytes' start key
    assert built.runtime == "openvino" and not list(records.glob("*.json"))  # so nothing is recorded

    def rewritten_after_the_build(config: ExtractorConfig, runtime: str):
        loaded = real_load(config, runtime)
        shutil.copyfile(new_weights, weights_file)
        return loaded

    shutil.copyfile(old_weights, weights_file)
    monkeypatch.setattr(registry, "load_extractor", rewritten_after_the_build)
    old_model = start_extractor(from_file, "openvino")  # the old weights' model, filed under the old bytes
    assert start_without_keras(from_file, "openvino") is None  # the new bytes have no record
    shutil.copyfile(old_weights, weights_file)
    assert start_without_keras(from_file, "openvino").provenance == old_model.provenance


def test_what_the_key_cannot_see_without_keras_always_starts_with_keras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # tfhub and keras_hub never run on OpenVINO; keras:NAME's ImageNet files have names of Keras's own.
    assert start_key(ExtractorConfig(name="tfhub", handle=str(tmp_path), image_size=SIZE)) is None
    assert start_key(ExtractorConfig(name="keras:ResNet50", weights="imagenet", image_size=SIZE)) is None
    assert start_key(ExtractorConfig(name="keras:ResNet50", weights="random", image_size=SIZE)) is not None
    # mobilenet_v2's ImageNet file is known by name: its bytes are in the key, and no file means no key.
    keras_home = tmp_path / "keras-home"
    keras_home.mkdir()
    monkeypatch.setenv(openvino_start.KERAS_HOME_VARIABLE, str(keras_home))
    imagenet = ExtractorConfig(name="mobilenet_v2", weights="imagenet", image_size=96)
    assert start_key(imagenet) is None
    download = keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    download.parent.mkdir()
    download.write_bytes(b"weights, one version")
    first = start_key(imagenet)
    download.write_bytes(b"weights, another")
    assert first is not None and start_key(imagenet).key != first.key
    # Keras's backend variable and featcache's own extractor code are part of the key too.
    key = start_key(scratch_cnn()).key
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert start_key(scratch_cnn()).key != key
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr(openvino_start, "extractors_source_sha256", lambda: "an edited checkout")
    assert start_key(scratch_cnn()).key != key


def test_keras_asked_pinned_or_a_possible_gpu_starts_with_keras(monkeypatch: pytest.MonkeyPatch, no_gpu_devices: Path):
    extractor = scratch_cnn(seed=3)
    start_extractor(extractor, "openvino")
    assert start_without_keras(extractor, "auto").runtime == "openvino"  # a CPU machine: auto takes OpenVINO
    assert start_without_keras(extractor, "keras") is None
    monkeypatch.setenv(AUTO_RUNTIME_VARIABLE, "keras")
    assert start_without_keras(extractor, "auto") is None
    monkeypatch.delenv(AUTO_RUNTIME_VARIABLE)
    no_gpu_devices.touch()  # a GPU device: only Keras's backend can tell whether `auto` should use it
    assert start_without_keras(extractor, "auto") is None
    assert start_without_keras(extractor, "openvino").runtime == "openvino"  # asked for: no GPU question
    monkeypatch.setattr(openvino_start.sys, "platform", "darwin")  # no GPU device files to look at
    no_gpu_devices.unlink()
    assert start_without_keras(extractor, "auto") is None
    monkeypatch.setattr(openvino_start.sys, "platform", "linux")
    # Another Keras settings file (another backend or float type) is another start key.
    keras_home = no_gpu_devices.parent / "keras-home"
    keras_home.mkdir()
    monkeypatch.setenv(openvino_start.KERAS_HOME_VARIABLE, str(keras_home))
    without_settings = start_key(extractor).key
    (keras_home / "keras.json").write_text(json.dumps({"backend": keras.backend.backend(), "floatx": "float64"}))
    assert start_key(extractor).key != without_settings


def test_a_damaged_record_or_model_is_refused_or_rebuilt(no_gpu_devices: Path):
    extractor = scratch_cnn(seed=5)
    built = start_extractor(extractor, "openvino")
    record_path = start_record_path(start_key(extractor).key)
    record = json.loads(record_path.read_text())

    record_path.write_text(record_path.read_text()[:40])
    with pytest.raises(ExtractorError, match="start record .* is damaged .*delete it and run again"):
        start_without_keras(extractor, "openvino")
    for foreign in (
        {**record, "start_key": "0" * 32},
        {**record, "provenance": "not a record"},
        {**record, "provenance": {**record["provenance"], "seed": 6}},  # another config's
        {**record, "compile_key": "../elsewhere"},
    ):
        record_path.write_text(json.dumps(foreign))
        with pytest.raises(ExtractorError, match="start record .* not the one of its file name: delete it"):
            start_without_keras(extractor, "openvino")
    record_path.write_text(json.dumps(record))

    # Stored Keras features that are not the model's: refused when asked for, else the Keras start says why.
    probe_path = Path(built.openvino_model.ir_path).parent / openvino_runtime.KERAS_PROBE_FEATURES_FILE
    probe_path.write_bytes(probe_path.read_bytes()[:60])
    with pytest.raises(ExtractorError, match="cannot be read .*delete .* and run again"):
        start_without_keras(extractor, "openvino")
    np.save(probe_path, load_extractor(extractor, "keras").embed_frames(openvino_runtime.probe_frames(SIZE)) * -1.0)
    with pytest.raises(ExtractorError, match="OpenVINO does not give scratch_cnn's Keras features"):
        start_without_keras(extractor, "openvino")
    assert start_without_keras(extractor, "auto") is None
    fallback = start_extractor(extractor, "auto")
    assert fallback.runtime == "keras" and "does not give scratch_cnn's Keras features" in fallback.runtime_note

    # A model file the compile cache lost bytes of: one line naming the folder, and `auto` falls back to Keras.
    np.save(probe_path, load_extractor(extractor, "keras").embed_frames(openvino_runtime.probe_frames(SIZE)))
    weights_bin = probe_path.parent / "model.bin"
    intact = weights_bin.read_bytes()
    weights_bin.write_bytes(intact[: len(intact) // 3])
    with pytest.raises(ExtractorError, match="OpenVINO cannot compile .*model.xml .*delete .* and run again"):
        start_without_keras(extractor, "openvino")
    assert start_without_keras(extractor, "auto") is None
    fallback = start_extractor(extractor, "auto")
    assert fallback.runtime == "keras" and "cannot compile" in fallback.runtime_note
    weights_bin.write_bytes(intact)
    assert start_without_keras(extractor, "openvino").runtime == "openvino"

    # The converted model deleted: a Keras start converts it again and the next start needs no Keras.
    shutil.rmtree(probe_path.parent)
    assert start_without_keras(extractor, "openvino") is None
    again = start_extractor(extractor, "openvino")
    assert again.runtime == "openvino" and start_without_keras(extractor, "openvino") is not None


def test_a_compile_cache_that_cannot_take_records_still_runs_openvino(own_compile_cache: Path):
    extractor = scratch_cnn(seed=7)
    (own_compile_cache / "openvino").mkdir(parents=True)
    (own_compile_cache / "openvino" / openvino_start.START_RECORDS_FOLDER).write_text("a file, not a folder")
    assert start_extractor(extractor, "openvino").runtime == "openvino"
    assert start_without_keras(extractor, "openvino") is None  # no record: the next start builds Keras again


def test_int8_quantizes_an_extractor_started_without_keras(tiny_dataset: Path, tmp_path: Path, keras_start_forbidden):
    extractor = scratch_cnn(seed=2)
    sampling = SamplingConfig(num_frames=4)
    with pytest.MonkeyPatch.context() as undo_forbidding:
        undo_forbidding.setattr(registry, "load_extractor", load_extractor)
        embed(
            tiny_dataset, tmp_path / "f32.h5", EmbedConfig(extractor=extractor, sampling=sampling, runtime="openvino")
        )
    int8 = EmbedConfig(
        extractor=extractor, sampling=sampling, runtime="openvino", precision="int8", int8_min_cosine=-1.0
    )
    summary = embed(tiny_dataset, tmp_path / "int8.h5", int8)  # its start may not build Keras
    assert summary.num_embedded == 6 and summary.runtime.startswith("openvino, int8, calibrated on")


def test_predict_and_neighbors_start_their_extractor_from_the_record(
    tiny_dataset: Path, tmp_path: Path, keras_start_forbidden, monkeypatch: pytest.MonkeyPatch
):
    """A new video's extractor (predict's, neighbors --file's) starts from the record `embed` saved, as the next
    embed's does, and gives the cache's features: the video's nearest neighbour is its own copy in the cache."""
    config = EmbedConfig(extractor=scratch_cnn(seed=2), sampling=SamplingConfig(num_frames=4), runtime="openvino")
    cache = tmp_path / "cache.h5"
    with pytest.MonkeyPatch.context() as undo_forbidding:
        undo_forbidding.setattr(registry, "load_extractor", load_extractor)
        embed(tiny_dataset, cache, config)  # builds Keras: saves the start record
        train(
            cache, tmp_path / "model", HeadConfig(head="lstm", units=4, dense=4), TrainConfig(epochs=1, val_fraction=0)
        )
    # Started from the record: start_without_keras hands back each extractor (a module that bound another loader
    # at import would not reach it, nor the forbidden registry.load_extractor).
    started: list[object] = []

    def recording_start(*args, **kwargs):
        extractor = start_without_keras(*args, **kwargs)
        started.append(extractor)
        return extractor

    monkeypatch.setattr(openvino_start, "start_without_keras", recording_start)
    prepared = prepare_model(tmp_path / "model", runtime="openvino")  # may not build Keras's extractor
    assert prepared.extractor.runtime == "openvino" and started == [prepared.extractor]

    video = tiny_dataset / read_cache_index(cache).paths[0]
    result = find_neighbors(cache, file=video, k=1, runtime="openvino")
    nearest = result.neighbors[0]
    assert nearest.path == read_cache_index(cache).paths[0] and nearest.same_contents
    assert nearest.similarity > 0.999
    assert len(started) == 2 and started[1] is not None and started[1].runtime == "openvino"
