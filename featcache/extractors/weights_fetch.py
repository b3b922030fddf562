"""`featcache weights fetch`: save an extractor's ImageNet weights as a file, on a machine with network.

Then `featcache embed --weights FILE` works offline with exactly those weights (and records their sha256).
The download is Keras' own, cached where Keras caches it (~/.keras/models), so fetching twice downloads once.
"""

from __future__ import annotations

from pathlib import Path

from featcache.config import ExtractorConfig
from featcache.errors import InputError
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX, KERAS_APPLICATIONS

FETCHABLE = ("mobilenet_v2", f"{KERAS_APPLICATION_PREFIX}NAME")


def fetch_imagenet_weights(extractor_name: str, out: Path, image_size: int | None = None) -> Path:
    """Write the ImageNet weights of `extractor_name` (mobilenet_v2 or keras:NAME) to `out` and return it.

    The file is what `--weights FILE` loads for the same extractor at the same --image-size.
    Raises InputError for an extractor without ImageNet weights or a bad `out`, ExtractorError when the
    download fails (no network: it says what to do).
    """
    out = Path(out)
    if not out.name.endswith(".weights.h5"):
        raise InputError(f"--out {out}: name the file *.weights.h5 (Keras saves and loads weights files by that suffix)")
    config = ExtractorConfig(name=extractor_name, weights="imagenet", image_size=image_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp.weights.h5")
    try:
        # The backbone exactly as `embed --weights imagenet` builds it, saved as the file `--weights FILE` loads.
        if extractor_name == "mobilenet_v2":
            from featcache.extractors.registry import _mobilenet_v2_backbone

            backbone, _ = _mobilenet_v2_backbone(config)
            backbone.save_weights(temporary)
        elif extractor_name.removeprefix(KERAS_APPLICATION_PREFIX) in KERAS_APPLICATIONS and extractor_name.startswith(KERAS_APPLICATION_PREFIX):
            from featcache.extractors.backbones import _build_application_backbone

            model_name = extractor_name.removeprefix(KERAS_APPLICATION_PREFIX)
            _build_application_backbone(config, model_name, weights="imagenet").save_weights(temporary)
        else:
            raise InputError(f"{extractor_name} has no ImageNet weights to fetch; choose mobilenet_v2 or keras:NAME (`featcache extractors` lists them)")
        temporary.replace(out)  # the file at --out is whole or absent
    finally:
        temporary.unlink(missing_ok=True)
    return out
