"""Starting an extractor on OpenVINO straight from the compile cache, without importing Keras (start records).

On a compile-cache hit OpenVINO never runs the Keras model, yet building it (importing Keras and TensorFlow,
then the model) was most of an OpenVINO embed's start-up: 7.2 of 11.0 s for a 3-video embed on a 2-core CPU
(BENCHMARKS.md §14). So whenever an extractor is converted or found in the compile cache, a start record is
saved beside the converted models: the provenance and compile key that its ExtractorConfig gave, under a *start
key* of everything the built model depends on that can be read without Keras (the config, the weights file's
bytes, the installed versions, Keras's backend settings). A later start whose start key has a record compiles that
IR and checks it on the stored Keras probe features, as every OpenVINO start does; anything else (no record, a
changed weights file, another version, `--runtime keras`, a GPU Keras might use under `auto`) builds Keras as
before. Either way the same model is compiled, so the features are the same.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.extractor import Extractor
from featcache.extractors.openvino_runtime import (
    IR_FILE,
    KERAS_PROBE_FEATURES_FILE,
    check_same_features,
    compile_cache_folder,
    compile_ir,
    openvino_version,
    stored_probe_features,
)
from featcache.extractors.runtimes import AUTO, KERAS, OPENVINO, pinned_request
from featcache.files import sha256_file, write_atomically
from featcache.version import __version__

START_RECORDS_FOLDER = "starts"  # inside the compile cache folder, one <start key>.json per extractor config
START_RECORD_FIELDS = ("start_key", "compile_key", "provenance")
# Distributions the built model, its conversion or its provenance depend on: another version, another start key.
VERSIONED_DISTRIBUTIONS = ("keras", "tensorflow", "tensorflow-cpu", "openvino", "numpy", "h5py")
# Where Keras reads its backend and float settings (keras/src/backend/config.py): $KERAS_HOME, else ~/.keras,
# else /tmp/.keras where the home folder is not writable.
KERAS_HOME_VARIABLE = "KERAS_HOME"
# Device files of GPUs a Keras backend may use on Linux (NVIDIA, AMD ROCm, WSL): with any of them, `auto` asks
# TensorFlow whether it sees a GPU, which needs Keras.
GPU_DEVICE_PATTERNS = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def start_extractor(config: ExtractorConfig, runtime: str) -> Extractor:
    """The extractor to embed with on `runtime` ("auto", "keras", "openvino"): started from its start record
    without Keras where it may be, else built with Keras (registry.load_extractor), which saves the record.

    Raises ExtractorError (one line, says what to do) when it cannot.
    """
    started = start_without_keras(config, runtime)
    if started is not None:
        return started
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    from featcache.extractors.registry import load_extractor

    return load_extractor(config, runtime)


def start_without_keras(config: ExtractorConfig, runtime: str) -> Extractor | None:
    """The extractor on OpenVINO f32 from its start record and the compile cache, or None where it needs Keras.

    Raises ExtractorError when `--runtime openvino` was asked and the compiled model fails the feature check, or
    when the record is damaged; under `auto` a failed check returns None, so the Keras start says why it falls back.
    """
    requested = pinned_request(runtime)
    if requested == KERAS or openvino_version() is None or (requested == AUTO and keras_may_see_a_gpu()):
        return None
    key = start_key(config)
    record = read_start_record(key) if key is not None else None
    if record is None:
        return None
    ir_path = compile_cache_folder() / record["compile_key"] / IR_FILE
    if not (ir_path.is_file() and (ir_path.parent / KERAS_PROBE_FEATURES_FILE).is_file()):
        return None  # the converted model was deleted: the Keras start converts it again
    provenance = record["provenance"]
    feature_dim = int(provenance["feature_dim"])
    compiled = compile_ir(ir_path, config.image_size, feature_dim)
    try:
        check_same_features(config.name, stored_probe_features(ir_path), compiled)
    except ExtractorError:
        if requested == OPENVINO:
            raise
        return None
    return Extractor(
        config.name, config.image_size, feature_dim, compiled.embed_frames, provenance, OPENVINO, "", compiled
    )


def save_start_record(config: ExtractorConfig, compile_key: str, provenance: dict[str, Any]) -> None:
    """Record that `config` builds the extractor `provenance` describes, converted under `compile_key`."""
    key = start_key(config)
    if key is None:
        return
    record = {"start_key": key, "compile_key": compile_key, "provenance": provenance}
    path = start_record_path(key)
    if path.is_file() and read_start_record(key) == record:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, sort_keys=True)
    write_atomically(path, lambda temporary: temporary.write_text(text), temporary_suffix=".json")


def start_key(config: ExtractorConfig) -> str | None:
    """A hash of everything the built extractor depends on that is known without Keras; None when the weights
    are a folder or missing (the Keras start then says what is wrong)."""
    weights_file_sha256 = None
    if config.weights not in ("imagenet", "random"):
        # imagenet: Keras's download is checked against its published hash, so the Keras version names it;
        # random: seeded by config.seed.
        weights_path = Path(config.weights)
        if not weights_path.is_file():
            return None
        weights_file_sha256 = sha256_file(weights_path)
    inputs = {
        "config": dataclasses.asdict(config),
        "weights_file_sha256": weights_file_sha256,
        "featcache": __version__,
        "versions": {name: installed_version(name) for name in VERSIONED_DISTRIBUTIONS},
        "keras_backend_variable": os.environ.get("KERAS_BACKEND"),
        "keras_settings_sha256": keras_settings_sha256(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def read_start_record(key: str) -> dict[str, Any] | None:
    """The start record saved under `key`, None when there is none; ExtractorError when it is damaged."""
    path = start_record_path(key)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExtractorError(f"the start record {path} is damaged ({err}): delete it and run again") from err
    if not isinstance(record, dict) or sorted(record) != sorted(START_RECORD_FIELDS) or record["start_key"] != key:
        raise ExtractorError(f"the start record {path} is not the one of its file name: delete it and run again")
    return record


def start_record_path(key: str) -> Path:
    return compile_cache_folder() / START_RECORDS_FOLDER / f"{key}.json"


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def keras_settings_sha256() -> str:
    """sha256 over $KERAS_HOME and every keras.json Keras may read its backend and float settings from."""
    digest = hashlib.sha256(os.environ.get(KERAS_HOME_VARIABLE, "").encode() + b"\0")
    folders = [os.environ.get(KERAS_HOME_VARIABLE), Path.home() / ".keras", "/tmp/.keras"]
    for folder in folders:
        settings = Path(folder) / "keras.json" if folder else None
        if settings is not None and settings.is_file():
            digest.update(str(settings).encode() + b"\0" + settings.read_bytes())
    return digest.hexdigest()


def keras_may_see_a_gpu() -> bool:
    """Whether a Keras backend might run on a GPU here; only Keras can tell, so True unless no GPU device exists."""
    return sys.platform != "linux" or any(glob.glob(pattern) for pattern in GPU_DEVICE_PATTERNS)
