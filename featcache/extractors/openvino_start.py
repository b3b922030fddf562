"""Starting the extractor (`embed`'s, and `predict`'s and `neighbors --file`'s for a new video) on OpenVINO straight
from the compile cache, without importing Keras (start records).

On a compile-cache hit OpenVINO never runs the Keras model, yet building it (importing Keras and TensorFlow,
then the model) was most of an OpenVINO embed's start-up: 7.2 of 11.0 s for a 3-video embed on a 2-core CPU
(BENCHMARKS.md §14). So when a Keras start ends on OpenVINO, a start record is saved beside the converted models:
the provenance and compile key that its ExtractorConfig gave, under a *start key* of everything the built model
depends on that can be read without Keras: the config, the bytes of the weights file it loads, the source of
featcache's extractors, the installed Keras, TensorFlow, OpenVINO, NumPy and h5py, and Keras's backend settings.
The key is taken before the build, so a weights file rewritten meanwhile cannot be recorded under its new bytes.
A later start whose start key has a record compiles that IR and checks it on the stored Keras probe features, as
every OpenVINO start does. Anything else (no record, other bytes, `--runtime keras`, a GPU Keras might use under
`auto`, an extractor whose weights Keras fetches by names of its own) builds Keras as before. Either way the same
model is compiled, so the features are the same.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featcache.config import ExtractorConfig
from featcache.errors import DiskWriteError, ExtractorError
from featcache.extractors.catalog import KERAS_HUB_PREFIX
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
from featcache.extractors.weights import mobilenet_v2_imagenet_file_name
from featcache.files import sha256_file, write_atomically
from featcache.version import __version__

START_RECORDS_FOLDER = "starts"  # inside the compile cache folder, one <start key>.json per extractor config
START_RECORD_FIELDS = ("start_key", "compile_key", "provenance")
# Packages the built model, its conversion or its provenance depend on; each is identified by its installed files
# (path, size, modification time), which any install, upgrade or nightly build changes.
KEY_PACKAGES = ("keras", "tensorflow", "openvino", "numpy", "h5py")
EXTRACTORS_SOURCE = Path(__file__).resolve().parent  # the builders: their code changes the model they build
# Where Keras keeps its settings and downloads (keras/src/backend/config.py, keras/src/utils/file_utils.py).
KERAS_HOME_VARIABLE = "KERAS_HOME"
# Device files of GPUs a Keras backend may use on Linux (NVIDIA, AMD ROCm, WSL): with any of them, `auto` asks
# TensorFlow whether it sees a GPU, which needs Keras.
GPU_DEVICE_PATTERNS = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


@dataclass(frozen=True)
class StartKey:
    """A start key and the weights sha256 the built extractor's provenance must record under it
    (the weights file's, the ImageNet download's; None for random weights)."""

    key: str
    weights_sha256: str | None


def start_extractor(config: ExtractorConfig, runtime: str) -> Extractor:
    """The extractor to embed with on `runtime` ("auto", "keras", "openvino"): started from its start record
    without Keras where it may be, else built with Keras (registry.load_extractor), saving the record when it
    ends on OpenVINO.

    Raises ExtractorError (one line, says what to do) when it cannot.
    """
    may_use_openvino = may_start_on_openvino(runtime)
    started = start_without_keras(config, runtime) if may_use_openvino else None
    if started is not None:
        return started
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    from featcache.extractors.registry import load_extractor

    # Taken after importing Keras, which writes a default keras.json and makes its folder on a fresh machine (so
    # the next start's key sees them too), and before the build reads the weights file.
    start = start_key(config) if may_use_openvino else None
    extractor = load_extractor(config, runtime)
    if start is not None and extractor.runtime == OPENVINO:
        save_start_record(start, extractor)
    return extractor


def may_start_on_openvino(runtime: str) -> bool:
    """Whether `runtime` may end on OpenVINO here (not asked or pinned to Keras, and OpenVINO installed)."""
    return pinned_request(runtime) != KERAS and openvino_version() is not None


def start_without_keras(config: ExtractorConfig, runtime: str) -> Extractor | None:
    """The extractor on OpenVINO f32 from its start record and the compile cache, or None where it needs Keras.

    Raises ExtractorError when the record is damaged or is not the record of `config`, or when `--runtime openvino`
    was asked and the recorded model does not compile or fails the feature check; under `auto` those two return
    None, so the Keras start says why it falls back.
    """
    requested = pinned_request(runtime)
    if not may_start_on_openvino(runtime) or (requested == AUTO and keras_may_see_a_gpu()):
        return None
    start = start_key(config)
    record = read_start_record(start, config) if start is not None else None
    if record is None:
        return None
    ir_path = compile_cache_folder() / record["compile_key"] / IR_FILE
    if not (ir_path.is_file() and (ir_path.parent / KERAS_PROBE_FEATURES_FILE).is_file()):
        return None  # the converted model was deleted: the Keras start converts it again
    provenance = record["provenance"]
    try:
        compiled = compile_ir(ir_path, config.image_size, provenance["feature_dim"])
        check_same_features(config.name, stored_probe_features(ir_path), compiled)
    except ExtractorError:
        if requested == OPENVINO:
            raise
        return None
    return Extractor(
        config.name, config.image_size, compiled.feature_dim, compiled.embed_frames, provenance, OPENVINO, "", compiled
    )


def save_start_record(start: StartKey, extractor: Extractor) -> None:
    """Record that the config whose start key is `start` builds `extractor` (on OpenVINO): its next start needs
    no Keras.

    Not saved when the provenance records other weights than the start key read before the build (the file
    changed meanwhile), nor where the compile cache cannot be written (a read-only shared cache): the next start
    then builds Keras again, as before start records.
    """
    provenance = extractor.provenance
    if provenance.get("weights_sha256") != start.weights_sha256 or extractor.openvino_model is None:
        return
    record = {
        "start_key": start.key,
        "compile_key": Path(extractor.openvino_model.ir_path).parent.name,
        "provenance": provenance,
    }
    path = start_record_path(start.key)
    text = json.dumps(record, indent=1, sort_keys=True)
    try:
        if path.is_file() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda temporary: temporary.write_text(text), temporary_suffix=".json")
    except (OSError, DiskWriteError):
        return


def start_key(config: ExtractorConfig) -> StartKey | None:
    """What the built extractor depends on, hashed without Keras; None where only Keras can tell (tfhub and
    keras_hub never run on OpenVINO; keras:NAME's ImageNet downloads have names of Keras's own) or where the
    weights file is missing (the Keras start then says so)."""
    if not known_without_keras(config):
        return None
    weights_file = weights_file_read(config)
    if weights_file is not None and not weights_file.is_file():
        return None
    try:
        weights_sha256 = None if weights_file is None else sha256_file(weights_file)
    except OSError:
        return None  # unreadable: the build says so in its own words
    inputs = {
        "config": dataclasses.asdict(config),
        "weights_sha256": weights_sha256,
        "featcache": __version__,
        "extractors_source_sha256": extractors_source_sha256(),
        "packages": {name: installed_package_files(name) for name in KEY_PACKAGES},
        "keras_backend_variable": os.environ.get("KERAS_BACKEND"),
        "keras_settings_sha256": keras_settings_sha256(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]
    return StartKey(key, weights_sha256)


def known_without_keras(config: ExtractorConfig) -> bool:
    """Whether what the build of `config` loads can be named without Keras: not for tfhub and keras_hub (never
    run on OpenVINO) nor keras:NAME's ImageNet weights (downloaded under names of Keras's own)."""
    if config.name == "tfhub" or config.name.startswith(KERAS_HUB_PREFIX):
        return False
    return config.weights != "imagenet" or config.name == "mobilenet_v2"


def weights_file_read(config: ExtractorConfig) -> Path | None:
    """The file the build of `config` (known_without_keras) loads its weights from; None for random weights."""
    if config.weights == "random":
        return None
    if config.weights == "imagenet":  # mobilenet_v2's, downloaded by weights.download_mobilenet_v2_imagenet
        return keras_download_folder() / "models" / mobilenet_v2_imagenet_file_name(config.image_size)
    return Path(config.weights)  # a weights file, or keras_file's model file


def read_start_record(start: StartKey, config: ExtractorConfig) -> dict[str, Any] | None:
    """The start record saved under `start`, None when there is none; ExtractorError when it is damaged or is not
    the record of `config` and its weights."""
    path = start_record_path(start.key)
    try:
        if not path.is_file():
            return None
    except OSError:
        return None  # a records folder this user may not search (a shared cache): start with Keras
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExtractorError(f"the start record {path} is damaged ({err}): delete it and run again") from err
    if not is_record_of(record, start, config):
        raise ExtractorError(f"the start record {path} is not the one of its file name: delete it and run again")
    return record


def is_record_of(record: Any, start: StartKey, config: ExtractorConfig) -> bool:
    if not isinstance(record, dict) or sorted(record) != sorted(START_RECORD_FIELDS):
        return False
    provenance, compile_key = record["provenance"], record["compile_key"]
    return (
        record["start_key"] == start.key
        and isinstance(compile_key, str)
        and compile_key.isalnum()
        and isinstance(provenance, dict)
        and all(provenance.get(name) == value for name, value in dataclasses.asdict(config).items())
        and provenance.get("weights_sha256") == start.weights_sha256
        and isinstance(provenance.get("feature_dim"), int)
    )


def start_record_path(key: str) -> Path:
    """Where the start record of start key `key` is kept."""
    return compile_cache_folder() / START_RECORDS_FOLDER / f"{key}.json"


def extractors_source_sha256() -> str:
    """sha256 over the source of featcache's extractors (builders, weights, conversion): another featcache, or an
    edited checkout, is another start key."""
    digest = hashlib.sha256()
    for source in sorted(EXTRACTORS_SOURCE.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def installed_package_files(name: str) -> list[Any] | None:
    """(path, size, modification time) of an installed package's entry file, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    status = os.stat(spec.origin)
    return [spec.origin, status.st_size, status.st_mtime_ns]


def keras_folder() -> Path:
    """The folder Keras reads keras.json from: $KERAS_HOME, else ~/.keras (/tmp/.keras if home is read-only)."""
    if KERAS_HOME_VARIABLE in os.environ:
        return Path(os.environ[KERAS_HOME_VARIABLE])
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def keras_download_folder() -> Path:
    """Where keras.utils.get_file keeps downloads: the Keras folder, else /tmp/.keras where it is not writable."""
    folder = keras_folder().expanduser()
    return folder if os.access(folder, os.W_OK) else Path("/tmp") / ".keras"


def keras_settings_sha256() -> str:
    """sha256 over $KERAS_HOME and the keras.json Keras reads its backend and float settings from."""
    digest = hashlib.sha256(os.environ.get(KERAS_HOME_VARIABLE, "\0unset").encode() + b"\0")
    settings = keras_folder().expanduser() / "keras.json"
    if settings.is_file():
        digest.update(str(settings).encode() + b"\0" + settings.read_bytes())
    return digest.hexdigest()


def keras_may_see_a_gpu() -> bool:
    """Whether a Keras backend might run on a GPU here; only Keras can tell, so True unless no GPU device exists."""
    return sys.platform != "linux" or any(glob.glob(pattern) for pattern in GPU_DEVICE_PATTERNS)
