"""Weights files for the extractors: the ImageNet download, user files checked against the architecture, hashes."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError

if TYPE_CHECKING:  # imported where used: openvino_start.py reads the ImageNet file's name without Keras
    import keras

# Where keras.applications.MobileNetV2 downloads its ImageNet weights from (keras/src/applications/
# mobilenet_v2.py, BASE_WEIGHT_PATH); files are cached under ~/.keras/models.
MOBILENET_V2_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# The input sizes Keras publishes MobileNetV2 ImageNet weights for; other sizes get the 224 file.
MOBILENET_V2_WEIGHT_SIZES = (96, 128, 160, 192, 224)
WEIGHTS_SUFFIXES = (".weights.h5", ".h5")


def mobilenet_v2_imagenet_file_name(image_size: int) -> str:
    """The name of the Keras 'no_top' ImageNet weights file MobileNetV2 at `image_size` loads."""
    rows = image_size if image_size in MOBILENET_V2_WEIGHT_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def download_mobilenet_v2_imagenet(image_size: int) -> str:
    """Path of the Keras 'no_top' ImageNet weights file, downloading it into ~/.keras/models if needed."""
    import keras

    file_name = mobilenet_v2_imagenet_file_name(image_size)
    try:
        return keras.utils.get_file(file_name, MOBILENET_V2_WEIGHTS_URL + file_name, cache_subdir="models")
    # keras.utils.get_file raises a bare Exception for HTTP and URL errors, so nothing narrower catches them.
    except Exception as err:
        raise ExtractorError(
            f"could not download the MobileNetV2 ImageNet weights ({file_name}): {error_summary(err)}; "
            "on a machine with network run `featcache weights fetch mobilenet_v2 --out mobilenet_v2.weights.h5` "
            "and pass --weights / weights mobilenet_v2.weights.h5 here; "
            "for a network-free try-out use --extractor scratch_cnn --weights random "
            "(random MobileNetV2 weights give features without information)"
        ) from err


def existing_weights_file(config: ExtractorConfig) -> str:
    """The --weights path checked for existence and a Keras weights suffix."""
    path = Path(config.weights)
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise ExtractorError(
            f"--weights / weights {config.weights!r} for {config.name}: expected 'random'"
            f"{'' if config.name == 'scratch_cnn' else ', imagenet'} or a .weights.h5 / .h5 file"
        )
    if not path.is_file():
        raise ExtractorError(
            f"--weights / weights {config.weights}: no such file; pass the path of a {config.name} weights file"
        )
    return str(path)


def load_weights_file(backbone: keras.Model, weights_path: str, config: ExtractorConfig) -> None:
    """Load a weights file into the backbone, turning Keras' mismatch errors into one ExtractorError line.

    Keras reports some mismatches only as warnings ("... will retain their freshly-initialized weights");
    a partly loaded model is refused too, never used.
    """
    fix = f"pass a file saved by model.save_weights from the same {config.name} architecture"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backbone.load_weights(weights_path)
        except (ValueError, KeyError, OSError, TypeError) as err:
            raise ExtractorError(
                f"--weights / weights {weights_path} does not fit {config.name} ({error_summary(err)}); {fix}"
            ) from err
    partial = [
        str(w.message)
        for w in caught
        if "freshly-initialized" in str(w.message) or "could not be loaded" in str(w.message)
    ]
    if partial:
        raise ExtractorError(
            f"--weights / weights {weights_path} does not fit {config.name}: "
            f"only partly loaded ({partial[0][:160]}); {fix}"
        )
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def sha256_model_weights(model: keras.Model) -> str:
    """sha256 over a model's weight arrays (path and bytes of each), for weights Keras downloaded itself.

    Keras hides where it stored those files, so the arrays stand in for them: the same weights always hash
    the same, on any machine.
    """
    import keras

    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(variable.path.encode() + b"\0")
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


def error_summary(err: BaseException, max_chars: int = 240) -> str:
    """An exception's text on one line (its first two lines joined, shortened), so our messages stay one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2]).rstrip(".:") if lines else type(err).__name__
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."
