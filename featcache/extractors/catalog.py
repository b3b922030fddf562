"""What each extractor is, without loading it: names, output dims, default input sizes, preprocessing.

Imports no Keras, so `featcache extractors`, `--help` and the config checks start fast. tests/test_backbones.py
checks the keras.applications table against Keras: every name and module exists, and the dim and preprocessing
of one model per preprocessing mode match the built model. featcache.extractors.registry builds these names.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from featcache.errors import ExtractorError

KERAS_APPLICATION_PREFIX = "keras:"
KERAS_HUB_PREFIX = "keras_hub:"
KERAS_FILE = "keras_file"
# The input size of the original extractors, and of a KerasHub preset that does not say otherwise.
DEFAULT_IMAGE_SIZE = 224

# How keras.applications.<module>.preprocess_input scales 0-255 RGB (keras/src/applications/imagenet_utils.py).
PREPROCESSING_MODES = {
    "tf": "x / 127.5 - 1",
    "torch": "x / 255, ImageNet mean/std",
    "caffe": "BGR, minus ImageNet mean",
    "inside": "0-255 in, scaled by the model's own first layers",
}


@dataclass(frozen=True)
class KerasApplication:
    """One keras.applications model as an extractor (include_top=False, average-pooled).

    default_image_size: the size its ImageNet weights were trained at (Keras' default input shape).
    feature_dim: width of the pooled output (does not depend on the input size).
    module: keras.applications.<module>, whose preprocess_input featcache applies inside the model.
    mode: key of PREPROCESSING_MODES.
    """

    default_image_size: int
    feature_dim: int
    module: str
    mode: str

    @property
    def preprocessing(self) -> str:
        return f"keras.applications.{self.module}.preprocess_input: {PREPROCESSING_MODES[self.mode]}"


# Default sizes from the keras.applications docs; dims measured (weights=None, pooling="avg"),
# one per mode re-checked by the tests.
KERAS_APPLICATIONS = {
    "ConvNeXtTiny": KerasApplication(224, 768, "convnext", "inside"),
    "ConvNeXtSmall": KerasApplication(224, 768, "convnext", "inside"),
    "ConvNeXtBase": KerasApplication(224, 1024, "convnext", "inside"),
    "ConvNeXtLarge": KerasApplication(224, 1536, "convnext", "inside"),
    "ConvNeXtXLarge": KerasApplication(224, 2048, "convnext", "inside"),
    "DenseNet121": KerasApplication(224, 1024, "densenet", "torch"),
    "DenseNet169": KerasApplication(224, 1664, "densenet", "torch"),
    "DenseNet201": KerasApplication(224, 1920, "densenet", "torch"),
    "EfficientNetB0": KerasApplication(224, 1280, "efficientnet", "inside"),
    "EfficientNetB1": KerasApplication(240, 1280, "efficientnet", "inside"),
    "EfficientNetB2": KerasApplication(260, 1408, "efficientnet", "inside"),
    "EfficientNetB3": KerasApplication(300, 1536, "efficientnet", "inside"),
    "EfficientNetB4": KerasApplication(380, 1792, "efficientnet", "inside"),
    "EfficientNetB5": KerasApplication(456, 2048, "efficientnet", "inside"),
    "EfficientNetB6": KerasApplication(528, 2304, "efficientnet", "inside"),
    "EfficientNetB7": KerasApplication(600, 2560, "efficientnet", "inside"),
    "EfficientNetV2B0": KerasApplication(224, 1280, "efficientnet_v2", "inside"),
    "EfficientNetV2B1": KerasApplication(240, 1280, "efficientnet_v2", "inside"),
    "EfficientNetV2B2": KerasApplication(260, 1408, "efficientnet_v2", "inside"),
    "EfficientNetV2B3": KerasApplication(300, 1536, "efficientnet_v2", "inside"),
    "EfficientNetV2S": KerasApplication(384, 1280, "efficientnet_v2", "inside"),
    "EfficientNetV2M": KerasApplication(480, 1280, "efficientnet_v2", "inside"),
    "EfficientNetV2L": KerasApplication(480, 1280, "efficientnet_v2", "inside"),
    "InceptionResNetV2": KerasApplication(299, 1536, "inception_resnet_v2", "tf"),
    "InceptionV3": KerasApplication(299, 2048, "inception_v3", "tf"),
    "MobileNet": KerasApplication(224, 1024, "mobilenet", "tf"),
    "MobileNetV2": KerasApplication(224, 1280, "mobilenet_v2", "tf"),
    "MobileNetV3Small": KerasApplication(224, 576, "mobilenet_v3", "inside"),
    "MobileNetV3Large": KerasApplication(224, 960, "mobilenet_v3", "inside"),
    "NASNetMobile": KerasApplication(224, 1056, "nasnet", "tf"),
    "NASNetLarge": KerasApplication(331, 4032, "nasnet", "tf"),
    "ResNet50": KerasApplication(224, 2048, "resnet", "caffe"),
    "ResNet101": KerasApplication(224, 2048, "resnet", "caffe"),
    "ResNet152": KerasApplication(224, 2048, "resnet", "caffe"),
    "ResNet50V2": KerasApplication(224, 2048, "resnet_v2", "tf"),
    "ResNet101V2": KerasApplication(224, 2048, "resnet_v2", "tf"),
    "ResNet152V2": KerasApplication(224, 2048, "resnet_v2", "tf"),
    "VGG16": KerasApplication(224, 512, "vgg16", "caffe"),
    "VGG19": KerasApplication(224, 512, "vgg19", "caffe"),
    "Xception": KerasApplication(299, 2048, "xception", "tf"),
}

_FIXED_EXTRACTORS = {
    "mobilenet_v2": "MobileNetV2 (keras.applications), ImageNet or file weights, average-pooled: 1280-d",
    "scratch_cnn": "the notebook's 8-conv CNN, file or random weights, flattened: (size/16)^2*128 = 25088-d at 224",
    "tfhub": "any TF-Hub image feature-vector SavedModel by --handle (URL or folder), inputs in [0, 1]: dim discovered",
    KERAS_FILE: (
        "your own Keras model by --weights FILE.keras (images -> vectors; scales pixels itself): "
        "input size and dim read from it"
    ),
    f"{KERAS_HUB_PREFIX}PRESET": (
        "a KerasHub CLIP/SigLIP/ViT image encoder by preset name or local preset folder (pip install 'featcache[hub]')"
    ),
}


def available_extractors() -> dict[str, str]:
    """Registry names -> one-line description with the output dim (at the default input size)."""
    described = dict(_FIXED_EXTRACTORS)
    for name, application in KERAS_APPLICATIONS.items():
        described[KERAS_APPLICATION_PREFIX + name] = (
            f"keras.applications.{name}, imagenet/file/random weights, average-pooled: "
            f"{application.feature_dim}-d at {application.default_image_size} px "
            f"({PREPROCESSING_MODES[application.mode]})"
        )
    return described


def keras_application(extractor_name: str) -> KerasApplication:
    """The table entry of `keras:NAME`; ExtractorError listing the valid names for an unknown one."""
    model_name = extractor_name.removeprefix(KERAS_APPLICATION_PREFIX)
    if model_name not in KERAS_APPLICATIONS:
        raise ExtractorError(
            f"unknown keras.applications model {model_name!r}; choose one of "
            f"{', '.join(KERAS_APPLICATION_PREFIX + name for name in KERAS_APPLICATIONS)}"
        )
    return KERAS_APPLICATIONS[model_name]


def default_image_size(extractor_name: str, weights: str) -> int:
    """The input size an extractor uses when --image-size / image_size is not given (None).

    keras:NAME: the model's own (e.g. 384 for EfficientNetV2S); keras_file: read from the model file;
    keras_hub: a local preset folder's image_shape, else 224 (the loaded preset is checked against it).
    """
    if extractor_name.startswith(KERAS_APPLICATION_PREFIX):
        return keras_application(extractor_name).default_image_size
    if extractor_name == KERAS_FILE:
        return keras_file_image_size(Path(weights))
    if extractor_name.startswith(KERAS_HUB_PREFIX):
        return keras_hub_folder_image_size(Path(extractor_name.removeprefix(KERAS_HUB_PREFIX))) or DEFAULT_IMAGE_SIZE
    return DEFAULT_IMAGE_SIZE


def keras_file_image_size(model_path: Path) -> int:
    """The square input size recorded in a .keras file's config.json (read without loading Keras).

    Raises ExtractorError when the file is not a .keras archive or its input size is not fixed and square.
    """
    if model_path.suffix != ".keras":
        raise ExtractorError(
            "--extractor keras_file needs --weights / weights MODEL.keras (a model saved with model.save), "
            f"got {str(model_path)!r}"
        )
    try:
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
    except FileNotFoundError as err:
        raise ExtractorError(
            f"--weights / weights {model_path}: no such file; pass the .keras file of your model"
        ) from err
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ExtractorError(
            f"--weights / weights {model_path}: not a Keras 3 .keras file ({err}); "
            "save the model with model.save('model.keras')"
        ) from err
    shape = _input_shape_from_config(config)
    if shape is None or len(shape) != 4 or shape[1] is None:
        raise ExtractorError(
            f"{model_path}: the model's input size is not fixed ({shape}); pass --image-size / image_size N"
        )
    if shape[1] != shape[2] or shape[3] != 3:
        raise ExtractorError(
            f"{model_path}: featcache feeds square RGB frames, "
            f"but the model takes input shape {tuple(shape)}; use (N, N, 3)"
        )
    return int(shape[1])


def _input_shape_from_config(config: dict) -> list | None:
    """(batch, height, width, channels) of a saved Functional or Sequential model, None when it does not say."""
    layers = config.get("config", {}).get("layers", []) if isinstance(config.get("config"), dict) else []
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            return layer.get("config", {}).get("batch_shape")
    return (config.get("build_config") or {}).get("input_shape")


def keras_hub_folder_image_size(folder: Path) -> int | None:
    """The image size a local KerasHub preset folder's config.json records, None for a preset name or no record."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExtractorError(f"{config_path}: unreadable ({err}); is {folder} a KerasHub preset folder?") from err
    image_shape = _find_key(config, "image_shape")
    return int(image_shape[0]) if image_shape and image_shape[0] else None


def _find_key(value: object, key: str) -> object:
    """The first value under `key` anywhere in nested dicts/lists (a CLIP preset nests its vision encoder)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None
