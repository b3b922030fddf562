"""Which settings an `embed` run uses: the options given, else an existing cache's own, else the defaults.

Re-running `featcache embed DATA --out EXISTING.h5` with no extractor or sampling options continues that
cache with its own settings; an option given explicitly that differs from the cache's is refused with both
values, before any model loads (another --out keeps both caches; --overwrite replaces this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.errors import CacheMismatchError

# Command-line option -> (record, key) in a cache's stored settings (its `extractor` and `sampling` attributes).
# These are the settings features depend on; batch size, workers and compression are not among them.
STORED_SETTINGS = {
    "extractor": ("extractor", "name"),
    "weights": ("extractor", "weights"),
    "handle": ("extractor", "handle"),
    "image_size": ("extractor", "image_size"),
    "seed": ("extractor", "seed"),
    "frames": ("sampling", "num_frames"),
    "sampling": ("sampling", "mode"),
    "fps": ("sampling", "fps"),
    "dtype": ("dtype", None),
    "precision": ("extractor", "precision"),
}
DEFAULTS = {
    "extractor": ExtractorConfig.name,
    "weights": ExtractorConfig.weights,
    "handle": None,
    "image_size": None,  # the extractor's own size
    "seed": ExtractorConfig.seed,
    "frames": SamplingConfig.num_frames,
    "sampling": SamplingConfig.mode,
    "fps": None,
    "dtype": EmbedConfig.dtype,
    "precision": EmbedConfig.precision,
}


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings to embed with (option name -> value) and whether they came from an existing cache."""

    values: dict[str, Any]
    from_cache: bool

    def describe(self) -> str:
        """One line naming the settings, for `embed` to print when it reuses a cache's."""
        values = self.values
        weights = f"{values['weights']} weights" + (
            f" (seed {values['seed']})" if values["weights"] == "random" else ""
        )
        sampling = f"{values['frames']} frames {values['sampling']}" + (
            f" at {values['fps']} fps" if values["sampling"] == "fps" else ""
        )
        precision = "" if values["precision"] in (None, EmbedConfig.precision) else f", {values['precision']}"
        return f"{values['extractor']}, {weights}, {values['image_size']} px, {sampling}, {values['dtype']}{precision}"


def stored_settings(cache_path: Path) -> dict[str, Any]:
    """An existing cache's settings under the command-line option names."""
    from featcache.cache import read_cache_index

    index = read_cache_index(Path(cache_path))
    records = {"extractor": index.extractor, "sampling": index.sampling}
    stored = {
        option: index.dtype if record == "dtype" else records[record].get(key)
        for option, (record, key) in STORED_SETTINGS.items()
    }
    return {**stored, "precision": _normal("precision", stored["precision"])}


def resolve_embed_settings(cache_path: Path, given: dict[str, Any], overwrite: bool) -> ResolvedSettings:
    """The options given (None = not given) completed from the cache at `cache_path`, or from the defaults.

    Raises CacheMismatchError when an option given differs from an existing cache's (unless `overwrite`).
    """
    unknown = set(given) - set(STORED_SETTINGS)
    if unknown:
        raise AssertionError(f"not a stored embed setting: {sorted(unknown)}")  # internal: a caller's typo
    if overwrite or not Path(cache_path).exists():
        return ResolvedSettings(
            {option: DEFAULTS[option] if given.get(option) is None else given[option] for option in STORED_SETTINGS},
            False,
        )
    stored = stored_settings(cache_path)
    differences = [
        f"--{option.replace('_', '-')} {stored[option]}, you asked {given[option]}"
        for option in STORED_SETTINGS
        if given.get(option) is not None and _normal(option, given[option]) != _normal(option, stored[option])
    ]
    if differences:
        raise CacheMismatchError(
            f"{cache_path} has {'; '.join(differences)}. Write a cache with the new settings to another --out, "
            "or pass --overwrite to replace this one (its videos are embedded again)"
        )
    return ResolvedSettings(stored, True)


def _normal(option: str, value: Any) -> Any:
    """Values as stored: weights files as absolute paths (ExtractorConfig stores them so), numbers as numbers."""
    if option == "weights" and value not in ("imagenet", "random"):
        return str(Path(value).expanduser().absolute())
    if option == "fps" and value is not None:
        return float(value)
    if option == "precision":
        return value or EmbedConfig.precision  # caches before --precision int8 record none: f32
    return value
