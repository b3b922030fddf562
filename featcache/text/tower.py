"""The text tower of the preset a cache's image tower came from: prompts in, embeddings in the image space out.

Only a KerasHub CLIP-like preset (`--extractor keras_hub:PRESET`: CLIP, SigLIP, MetaCLIP 2) has one. The
cache's settings record names the preset and the sha256 of its weights (featcache.extractors.backbones: the
folder's files for a local preset, the backbone's arrays for a named one); the loaded preset is checked
against it, so the text embeddings are the image embeddings' partners, not another model's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featcache.errors import ExtractorError
from featcache.extractors.catalog import KERAS_HUB_PREFIX
from featcache.files import sha256_folder

# KerasHub backbone class -> the keras_hub.models preprocessor that tokenizes its prompts (lower-casing,
# start/end tokens, padding to the text encoder's length), as each preset was trained.
TEXT_PREPROCESSORS = {
    "CLIPBackbone": "CLIPPreprocessor",
    "SigLIPBackbone": "SigLIPPreprocessor",
    "MetaCLIP2Backbone": "MetaCLIP2CausalLMPreprocessor",
}
TEXT_TOWER_EXTRACTORS = f"{KERAS_HUB_PREFIX}PRESET with a CLIP, SigLIP or MetaCLIP 2 preset"
# Prompts per call of the text tower: a class list times a few templates fits in one or two calls.
TEXT_BATCH_SIZE = 64


@dataclass(frozen=True)
class TextTower:
    """A loaded text tower.

    embed_texts: list of n strings -> float32 (n, embedding_dim), the preset's projected text embeddings
      (not normalized), in the space of the cache's image embeddings.
    """

    preset: str
    embedding_dim: int
    embed_texts: Callable[[list[str]], np.ndarray]


def check_has_text_tower(extractor_record: dict[str, Any], where: str = "the cache") -> str:
    """The KerasHub preset of a cache's extractor record; ExtractorError (one line) for any other extractor."""
    name = str(extractor_record.get("name"))
    if not name.startswith(KERAS_HUB_PREFIX):
        raise ExtractorError(
            f"{where} was embedded with --extractor {name}, which has no text tower; zero-shot and text search "
            f"need a cache embedded with {TEXT_TOWER_EXTRACTORS} (e.g. keras_hub:clip_vit_base_patch16)"
        )
    return name.removeprefix(KERAS_HUB_PREFIX)


def load_text_tower(extractor_record: dict[str, Any], where: str = "the cache") -> TextTower:
    """The text tower of the preset in `extractor_record` (a cache's settings["extractor"]), checked against the
    weights' sha256 recorded there.

    Raises ExtractorError (one line) for an extractor or preset without a text tower, a preset that cannot be
    loaded (offline: pass the local preset folder the cache was embedded from), KerasHub missing, or weights
    other than the recorded ones.
    """
    preset = check_has_text_tower(extractor_record, where)
    from featcache.extractors.keras_loader import import_keras_quietly

    import_keras_quietly()
    try:
        import keras_hub
    except ImportError as err:
        raise ExtractorError(
            f"the text tower of {KERAS_HUB_PREFIX}{preset} needs KerasHub: pip install 'featcache[hub]' "
            f"(or keras-hub); {err}"
        ) from err
    from featcache.extractors.backbones import keras_hub_preset_error

    recorded_sha256 = extractor_record.get("weights_sha256")
    local_folder = Path(preset) if Path(preset).is_dir() else None
    if local_folder is not None:
        _check_weights(preset, sha256_folder(local_folder), recorded_sha256)
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    # Presets load through kagglehub / huggingface_hub / file reads, each with its own error types.
    except Exception as err:
        raise keras_hub_preset_error(preset, err, " text tower") from err
    backbone_class = type(backbone).__name__
    if not hasattr(backbone, "get_text_embeddings") or backbone_class not in TEXT_PREPROCESSORS:
        raise ExtractorError(
            f"KerasHub preset {preset} is a {backbone_class}, which has no text tower featcache can use; "
            f"zero-shot and text search need {TEXT_TOWER_EXTRACTORS}"
        )
    if local_folder is None:
        from featcache.extractors.weights import sha256_model_weights

        _check_weights(preset, sha256_model_weights(backbone), recorded_sha256)
    try:
        preprocessor = getattr(keras_hub.models, TEXT_PREPROCESSORS[backbone_class]).from_preset(preset)
    except Exception as err:  # as above: the tokenizer's files come from the same preset sources
        raise keras_hub_preset_error(preset, err, " tokenizer") from err
    # Prompts only: the preprocessor's image converter would be handed images=None.
    preprocessor.image_converter = None
    sequence_length = getattr(getattr(backbone, "text_encoder", None), "max_sequence_length", None)
    return TextTower(
        preset=preset,
        embedding_dim=_embedding_dim(backbone),
        embed_texts=lambda texts: _embed_texts(backbone, preprocessor, sequence_length, texts),
    )


def _embed_texts(backbone: Any, preprocessor: Any, sequence_length: int | None, texts: list[str]) -> np.ndarray:
    """float32 (len(texts), embedding_dim): tokenized as the preset was trained, then get_text_embeddings."""
    import keras

    blocks = []
    for start in range(0, len(texts), TEXT_BATCH_SIZE):
        batch = list(texts[start : start + TEXT_BATCH_SIZE])
        # The text encoder's own length when it says (a preprocessor's default may be longer, e.g. CLIP's 77).
        extra = {"sequence_length": sequence_length} if sequence_length else {}
        token_ids = preprocessor({"prompts": batch, "images": None}, **extra)["token_ids"]
        embeddings = backbone.get_text_embeddings(token_ids)
        blocks.append(np.asarray(keras.ops.convert_to_numpy(embeddings), dtype=np.float32))
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, 0), np.float32)


def _embedding_dim(backbone: Any) -> int:
    projection_dim = getattr(backbone, "projection_dim", None)
    if projection_dim:
        return int(projection_dim)
    # SigLIP has no projection: its text encoder's width is the shared space.
    return int(backbone.text_encoder.hidden_dim)


def _check_weights(preset: str, loaded_sha256: str, recorded_sha256: str | None) -> None:
    """ExtractorError unless the preset's weights are the ones the cache's image embeddings came from."""
    if recorded_sha256 and loaded_sha256 != recorded_sha256:
        raise ExtractorError(
            f"KerasHub preset {preset} now has other weights (sha256 {loaded_sha256[:12]}) than the ones the "
            f"cache was embedded with ({recorded_sha256[:12]}); its text tower would not match the image "
            "embeddings: use the preset (folder) the cache was embedded from, or re-embed"
        )
