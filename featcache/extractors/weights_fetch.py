"""`featcache weights fetch`: save an extractor's ImageNet weights as a file, on a machine with network.

Then `featcache embed --weights FILE` works offline with exactly those weights (and records their sha256).
The download is Keras' own, cached where Keras caches it (~/.keras/models), so fetching twice downloads once.
"""

from __future__ import annotations

from pathlib import Path

from featcache.errors import InputError
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX
from featcache.files import write_atomically

FETCHABLE = ("mobilenet_v2", f"{KERAS_APPLICATION_PREFIX}NAME")
# Keras saves and loads weights files only by this suffix, the temporary file's name included.
WEIGHTS_FILE_SUFFIX = ".weights.h5"


def fetch_imagenet_weights(extractor_name: str, out: Path, image_size: int | None = None) -> Path:
    """Write the ImageNet weights of `extractor_name` (mobilenet_v2 or keras:NAME) to `out` and return it.

    The file is what `--weights FILE` loads for the same extractor at the same --image-size / image_size
    (None: the extractor's own). It is written atomically: whole or absent. Raises InputError for an
    extractor without ImageNet weights or a bad `out`, ExtractorError when the download fails (no network:
    it says what to do).
    """
    out = Path(out)
    if not out.name.endswith(WEIGHTS_FILE_SUFFIX):
        raise InputError(
            f"--out / out {out}: name the file *{WEIGHTS_FILE_SUFFIX} "
            "(Keras saves and loads weights files by that suffix)"
        )
    if not has_imagenet_weights_file(extractor_name):
        raise InputError(
            f"{extractor_name} has no ImageNet weights to fetch; "
            f"choose {' or '.join(FETCHABLE)} (`featcache extractors` lists them)"
        )
    # Imported here: the registry imports Keras, which `featcache weights fetch --help` must not pay for.
    from featcache.extractors.registry import build_imagenet_backbone

    backbone = build_imagenet_backbone(extractor_name, image_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, backbone.save_weights, temporary_suffix=WEIGHTS_FILE_SUFFIX)
    return out


def has_imagenet_weights_file(extractor_name: str) -> bool:
    """Whether `extractor_name` has ImageNet weights that a `--weights FILE` can hold (mobilenet_v2, keras:NAME)."""
    # An unknown keras:NAME passes here: building its config then names the valid ones.
    return extractor_name == "mobilenet_v2" or extractor_name.startswith(KERAS_APPLICATION_PREFIX)
