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
import featcache.extractors.runtimes as runtimes
from featcache.cache import CacheReader, read_cache_index
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding.embed import embed
from featcache.errors import ExtractorError
from featcache.extractors.openvino_start import start_extractor, start_key, start_record_path, start_without_keras
from featcache.extractors.registry import build_model, load_extractor
from featcache.extractors.runtimes import AUTO_RUNTIME_VARIABLE

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
    """The GPU device pattern pointed at a file of the test's own: absent, as on a CPU machine, until created."""
    device = tmp_path / "nvidia0"
    monkeypatch.setattr(openvino_start, "GPU_DEVICE_PATTERNS", (str(device),))
    return device


def scratch_cnn(seed: int = 2, weights: str = "random") -> ExtractorConfig:
    return ExtractorConfig(name="scratch_cnn", weights=weights, image_size=SIZE, seed=seed)


def frames(num_frames: int = 5) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (num_frames, SIZE, SIZE, 3), dtype=np.uint8)


def cache_features(cache: Path) -> dict[str, np.ndarray]:
    paths = read_cache_index(cache).paths
    with CacheReader(cache) as reader:
        return {path: reader.read_sequence(row) for row, path in enumerate(paths)}


def test_a_second_embed_starts_on_openvino_without_importing_keras(tiny_dataset: Path, tmp_path: Path):
    extractor = scratch_cnn()
    config = EmbedConfig(extractor=extractor, sampling=SamplingConfig(num_frames=4), runtime="openvino")
    first = tmp_path / "first.h5"
    assert embed(tiny_dataset, first, config).runtime == "openvino"  # builds Keras: saves the start record
    assert start_record_path(start_key(extractor)).is_file()

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


def test_a_start_without_keras_is_the_extractor_a_keras_start_gives():
    extractor = scratch_cnn(seed=4)
    assert start_without_keras(extractor, "openvino") is None  # no record before the first Keras start
    built = load_extractor(extractor, "openvino")
    started = start_without_keras(extractor, "openvino")
    assert started is not None and started.runtime == "openvino" and started.runtime_note == ""
    assert (started.name, started.image_size, started.feature_dim) == (extractor.name, SIZE, built.feature_dim)
    assert started.provenance == built.provenance == load_extractor(extractor, "keras").provenance
    np.testing.assert_array_equal(started.embed_frames(frames()), built.embed_frames(frames()))
    assert start_extractor(extractor, "openvino").provenance == built.provenance


def test_another_weights_file_or_seed_is_another_start_key(tmp_path: Path):
    weights_file = tmp_path / "cnn.weights.h5"
    build_model(scratch_cnn(seed=1)).weights_backbone.save_weights(weights_file)
    from_file = scratch_cnn(weights=str(weights_file))
    first = load_extractor(from_file, "openvino")
    assert start_without_keras(from_file, "openvino").provenance == first.provenance

    # The same path with other weights in it: the record of the old bytes must not start the new ones.
    build_model(scratch_cnn(seed=9)).weights_backbone.save_weights(weights_file)
    assert start_without_keras(from_file, "openvino") is None
    second = load_extractor(from_file, "openvino")
    assert second.provenance["weights_sha256"] != first.provenance["weights_sha256"]
    started = start_without_keras(from_file, "openvino")
    assert started.provenance == second.provenance
    np.testing.assert_array_equal(started.embed_frames(frames()), second.embed_frames(frames()))

    assert len({start_key(scratch_cnn(seed)) for seed in (1, 2)}) == 2
    assert start_key(scratch_cnn(weights=str(tmp_path / "missing.weights.h5"))) is None


def test_keras_asked_pinned_or_a_possible_gpu_starts_with_keras(monkeypatch: pytest.MonkeyPatch, no_gpu_devices: Path):
    extractor = scratch_cnn(seed=3)
    load_extractor(extractor, "openvino")
    assert start_without_keras(extractor, "auto").runtime == "openvino"  # a CPU machine: auto takes OpenVINO
    assert start_without_keras(extractor, "keras") is None
    monkeypatch.setenv(AUTO_RUNTIME_VARIABLE, "keras")
    assert start_without_keras(extractor, "auto") is None
    monkeypatch.delenv(AUTO_RUNTIME_VARIABLE)
    no_gpu_devices.touch()  # a GPU device: only Keras's backend can tell whether `auto` should use it
    assert start_without_keras(extractor, "auto") is None
    assert start_without_keras(extractor, "openvino").runtime == "openvino"  # asked for: no GPU question
    # Another Keras settings file (another backend or float type) is another start key.
    keras_home = no_gpu_devices.parent / "keras-home"
    keras_home.mkdir()
    (keras_home / "keras.json").write_text(json.dumps({"backend": keras.backend.backend(), "floatx": "float64"}))
    monkeypatch.setenv(openvino_start.KERAS_HOME_VARIABLE, str(keras_home))
    assert start_without_keras(extractor, "openvino") is None


def test_a_damaged_record_or_model_is_refused_or_rebuilt(monkeypatch: pytest.MonkeyPatch, no_gpu_devices: Path):
    monkeypatch.setattr(runtimes, "keras_sees_gpu", lambda: False)  # on a CPU, wherever the suite runs
    extractor = scratch_cnn(seed=5)
    built = load_extractor(extractor, "openvino")
    record_path = start_record_path(start_key(extractor))
    record = json.loads(record_path.read_text())

    record_path.write_text(record_path.read_text()[:40])
    with pytest.raises(ExtractorError, match="start record .* is damaged .*delete it and run again"):
        start_without_keras(extractor, "openvino")
    record_path.write_text(json.dumps({**record, "start_key": "0" * 32}))
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

    # The converted model deleted: a Keras start converts it again and the next start needs no Keras.
    shutil.rmtree(probe_path.parent)
    assert start_without_keras(extractor, "openvino") is None
    again = start_extractor(extractor, "openvino")
    assert again.runtime == "openvino" and start_without_keras(extractor, "openvino") is not None
