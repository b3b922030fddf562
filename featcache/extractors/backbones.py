"""The backbones a user picks by name: any keras.applications model, their own .keras file, a KerasHub image encoder.

Each builder returns a BuiltModel (featcache.extractors.built_model) whose Keras model takes uint8 RGB
frames (batch, size, size, 3) and does its own preprocessing inside, so only uint8 crosses to the device;
`featcache.extractors.catalog` describes them without loading Keras.
"""

from __future__ import annotations

from pathlib import Path

import keras

from featcache.config import ExtractorConfig
from featcache.errors import ExtractorError
from featcache.extractors.built_model import BuiltModel, uint8_frames_model
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX, KERAS_HUB_PREFIX, keras_application
from featcache.extractors.weights import (
    error_summary,
    existing_weights_file,
    load_weights_file,
    sha256_model_weights,
)
from featcache.files import sha256_file, sha256_folder


def build_keras_application(config: ExtractorConfig) -> BuiltModel:
    """`keras:NAME`: keras.applications.NAME(include_top=False, pooling="avg") behind its own preprocess_input."""
    application = keras_application(config.name)
    model_name = config.name.removeprefix(KERAS_APPLICATION_PREFIX)
    size = config.image_size
    weights_path = None
    if config.weights == "random":
        keras.utils.set_random_seed(config.seed)
    elif config.weights != "imagenet":
        weights_path = existing_weights_file(config)
    backbone = _build_application_backbone(
        config, model_name, weights="imagenet" if config.weights == "imagenet" else None
    )
    if weights_path is not None:
        load_weights_file(backbone, weights_path, config)
    if config.weights == "imagenet":
        weights_sha256 = sha256_model_weights(backbone)
    else:
        weights_sha256 = None if weights_path is None else sha256_file(Path(weights_path))
    module = getattr(keras.applications, application.module)
    # The module's own preprocess_input (not a copy of its constants), so the features are what users of
    # keras.applications get; for the models that scale inside (EfficientNet, ConvNeXt, ...) it is the identity.
    preprocess_input = keras.layers.Lambda(
        lambda batch: module.preprocess_input(keras.ops.cast(batch, "float32")), name="preprocess_input"
    )
    model = uint8_frames_model(backbone, preprocess_input, size, name=f"{model_name}_extractor")
    return BuiltModel.from_keras_model(model, weights_sha256, application.preprocessing, weights_backbone=backbone)


def _build_application_backbone(config: ExtractorConfig, model_name: str, weights: str | None) -> keras.Model:
    """keras.applications.<model_name> without its classifier, average-pooled;
    weights "imagenet" (Keras downloads) or None."""
    size = config.image_size
    try:
        return getattr(keras.applications, model_name)(
            include_top=False, pooling="avg", input_shape=(size, size, 3), weights=weights
        )
    except ValueError as err:
        raise ExtractorError(
            f"{config.name} cannot be built at --image-size / image_size {size}: {error_summary(err)}"
        ) from err
    # keras.utils.get_file raises a bare Exception for HTTP and URL errors, so nothing narrower catches them.
    except Exception as err:
        raise ExtractorError(
            f"could not download the ImageNet weights of {model_name}: {error_summary(err)}; "
            f"on a machine with network run `featcache weights fetch {config.name} --out {model_name}.weights.h5` "
            f"and pass --weights / weights {model_name}.weights.h5 here, "
            "or use --extractor scratch_cnn --weights random for a network-free try-out"
        ) from err


def build_keras_file_model(config: ExtractorConfig) -> BuiltModel:
    """`keras_file`: the user's own .keras model (images -> vectors), given as --weights,
    fed RGB 0-255 in its input dtype."""
    if config.weights in ("imagenet", "random"):
        raise ExtractorError(
            "--extractor keras_file needs --weights / weights MODEL.keras (your model, saved with model.save)"
        )
    model_path = Path(config.weights)
    if not model_path.is_file():
        raise ExtractorError(f"--weights / weights {model_path}: no such file; pass the .keras file of your model")
    try:
        user_model = keras.saving.load_model(model_path, compile=False)
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as err:
        raise ExtractorError(
            f"{model_path} cannot be loaded as a Keras model ({error_summary(err)}); "
            "custom layers must be registered with keras.saving.register_keras_serializable "
            "in a module imported before featcache runs"
        ) from err
    if len(user_model.inputs) != 1:
        raise ExtractorError(
            f"{model_path}: the model takes {len(user_model.inputs)} inputs; featcache feeds one batch of images"
        )
    input_shape = tuple(user_model.inputs[0].shape)
    size = config.image_size
    if len(input_shape) != 4 or input_shape[3] != 3 or any(side not in (None, size) for side in input_shape[1:3]):
        raise ExtractorError(
            f"{model_path}: the model takes input shape {input_shape}, "
            f"but featcache feeds ({size}, {size}, 3) RGB frames; "
            "leave --image-size / image_size unset (None) to use the model's own size"
        )
    frames = keras.Input((size, size, 3), dtype="uint8", name="frames")
    pixels = keras.layers.Lambda(
        lambda batch: keras.ops.cast(batch, user_model.inputs[0].dtype), name="to_model_dtype"
    )(frames)
    features = user_model(pixels, training=False)
    if len(features.shape) != 2:
        raise ExtractorError(
            f"{model_path}: the model returns shape {tuple(features.shape)}, not (batch, feature_dim); "
            "end it with a pooling layer such as keras.layers.GlobalAveragePooling2D()"
        )
    model = keras.Model(frames, keras.ops.cast(features, "float32"), name="keras_file_extractor")
    preprocessing = (
        f"none outside the model: RGB 0-255 as {user_model.inputs[0].dtype}, scaled by the model's own layers"
    )
    return BuiltModel.from_keras_model(model, sha256_file(model_path), preprocessing)


def build_keras_hub_model(config: ExtractorConfig) -> BuiltModel:
    """`keras_hub:PRESET_OR_FOLDER`: a KerasHub image encoder behind its preset's ImageConverter.

    CLIP-like backbones (with get_vision_embeddings: CLIP, SigLIP, MetaCLIP 2) give their projected image
    embedding; other image backbones (ViT, ...) are averaged over tokens or positions.
    """
    try:
        import keras_hub
    except ImportError as err:
        raise ExtractorError(
            f"--extractor {config.name} needs KerasHub: pip install 'featcache[hub]' (or keras-hub); "
            f"{error_summary(err)}"
        ) from err
    if config.weights != "imagenet":
        raise ExtractorError(
            f"{config.name} takes its weights from the preset; leave --weights / weights unset (got {config.weights!r})"
        )
    preset = config.name.removeprefix(KERAS_HUB_PREFIX)
    local_folder = Path(preset) if Path(preset).is_dir() else None
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    # Presets load through kagglehub / huggingface_hub / file reads, each with its own error types.
    except Exception as err:
        raise keras_hub_preset_error(preset, err) from err
    vision_encoder = getattr(backbone, "vision_encoder", backbone)
    image_shape = getattr(vision_encoder, "image_shape", None)
    size = config.image_size
    if image_shape is not None and image_shape[0] not in (None, size):
        raise ExtractorError(
            f"KerasHub preset {preset} takes {image_shape[0]} px images; "
            f"pass --image-size / image_size {image_shape[0]}"
        )
    frames = keras.Input((size, size, 3), dtype="uint8", name="frames")
    pixels = converter(keras.ops.cast(frames, "float32"))
    if hasattr(backbone, "get_vision_embeddings"):
        features = backbone.get_vision_embeddings(pixels)
    else:
        features = backbone(pixels)
        if isinstance(features, dict):
            raise ExtractorError(
                f"KerasHub preset {preset} returns several outputs ({', '.join(features)}); "
                "featcache needs an image backbone"
            )
        # Average over tokens (ViT) or positions (CNN feature maps) to one vector per image.
        features = (
            keras.ops.mean(features, axis=tuple(range(1, len(features.shape) - 1)))
            if len(features.shape) > 2
            else features
        )
    model = keras.Model(frames, keras.ops.cast(features, "float32"), name="keras_hub_extractor")
    weights_sha256 = sha256_folder(local_folder) if local_folder else sha256_model_weights(backbone)
    preprocessing = (
        f"the preset's {type(converter).__name__} (resize to {size} px, its scale and offset), inside the model"
    )
    return BuiltModel.from_keras_model(model, weights_sha256, preprocessing)


def keras_hub_preset_error(preset: str, err: BaseException, part: str = "") -> ExtractorError:
    """The one-line error for a KerasHub preset that cannot be loaded (no network, not a preset folder).

    part: what of the preset failed (" text tower"), for loaders other than the image tower's.
    """
    where = (
        "a KerasHub preset folder (saved with save_to_preset)"
        if Path(preset).is_dir()
        else "a preset name (needs network once) or, offline, a local preset folder"
    )
    return ExtractorError(f"could not load KerasHub preset {preset}{part}: {error_summary(err)}; pass {where}")
