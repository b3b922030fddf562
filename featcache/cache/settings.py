"""The one settings record features depend on, and the one check "were these made the same way?".

A settings record is {"extractor": provenance dict, "sampling": SamplingConfig fields, "dtype": str}. The
cache stores one (index attribute `settings`, and each shard's), the model folder stores the training
cache's (featcache.json `extractor`, `sampling`, `cache_dtype`), and `requested_settings` builds one from
an EmbedConfig. embed, evaluate, predict and the pipeline runner all compare records with
`describe_settings_difference`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from featcache.config import EmbedConfig, SamplingConfig
from featcache.errors import InputError
from featcache.files import sha256_file

# What names an extractor's function; weights are compared separately (by sha256 when known).
EXTRACTOR_IDENTITY_FIELDS = ("name", "handle", "image_size")
# The extractor record's `precision` when it has none: every cache before `--precision int8` (issue 20) is f32.
DEFAULT_PRECISION = "f32"


def record_precision(extractor_record: dict[str, Any]) -> str:
    """The inference precision an extractor record describes ("f32" or "int8")."""
    return extractor_record.get("precision") or DEFAULT_PRECISION


def settings_record(
    extractor_provenance: dict[str, Any], sampling: SamplingConfig | dict[str, Any], dtype: str | None
) -> dict[str, Any]:
    """The record stored with features made by this extractor (its provenance), sampling and dtype."""
    sampling_fields = dataclasses.asdict(sampling) if isinstance(sampling, SamplingConfig) else dict(sampling)
    return {"extractor": dict(extractor_provenance), "sampling": sampling_fields, "dtype": dtype}


def requested_settings(config: EmbedConfig) -> dict[str, Any]:
    """The record `config` would produce, known without loading the model (weights files by sha256)."""
    extractor = config.extractor
    record = {
        "name": extractor.name,
        "handle": extractor.handle,
        "image_size": extractor.image_size,
        "weights": extractor.weights,
    }
    if config.precision != DEFAULT_PRECISION:
        record["precision"] = config.precision
    if extractor.weights == "random":
        record["seed"] = extractor.seed
    elif extractor.weights != "imagenet":
        weights_path = Path(extractor.weights)
        if not weights_path.is_file():
            raise InputError(
                f"--weights {extractor.weights}: no such file; give a weights file, 'imagenet' or 'random'"
            )
        record["weights_sha256"] = sha256_file(weights_path)
    return settings_record(record, config.sampling, config.dtype)


def describe_settings_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """'' when two settings records give interchangeable features, else 'stored X vs wanted Y; ...'.

    Compares the extractor's identity (name, handle, image size), precision (absent: f32), its weights (by
    sha256 when both records know it, else by source and, for random weights, seed), feature_dim when both
    know it, every sampling
    field, and dtype when both know it. A requested record (`requested_settings`) knows no sha256 for
    `imagenet`, which only loading the model fetches: it matches a cache made from `imagenet`, and the
    loaded model's full record is compared again before it embeds (embed.py, ray_engine.py's workers).
    """
    differences = []
    stored_extractor, wanted_extractor = stored["extractor"], wanted["extractor"]
    for name in EXTRACTOR_IDENTITY_FIELDS:
        if stored_extractor.get(name) != wanted_extractor.get(name):
            differences.append(f"extractor {name} {stored_extractor.get(name)!r} vs {wanted_extractor.get(name)!r}")
    differences += _weights_difference(stored_extractor, wanted_extractor)
    if record_precision(stored_extractor) != record_precision(wanted_extractor):
        differences.append(
            f"precision {record_precision(stored_extractor)} vs {record_precision(wanted_extractor)} "
            "(int8 features are other features)"
        )
    if (
        "feature_dim" in stored_extractor
        and "feature_dim" in wanted_extractor
        and int(stored_extractor["feature_dim"]) != int(wanted_extractor["feature_dim"])
    ):
        differences.append(f"feature_dim {stored_extractor['feature_dim']} vs {wanted_extractor['feature_dim']}")
    stored_sampling, wanted_sampling = _sampling_fields(stored["sampling"]), _sampling_fields(wanted["sampling"])
    for name, value in wanted_sampling.items():
        if stored_sampling[name] != value:
            differences.append(f"sampling {name} {stored_sampling[name]!r} vs {value!r}")
    if stored.get("dtype") and wanted.get("dtype") and stored["dtype"] != wanted["dtype"]:
        differences.append(f"dtype {stored['dtype']} vs {wanted['dtype']}")
    return "; ".join(differences)


def _weights_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    stored_sha, wanted_sha = stored.get("weights_sha256"), wanted.get("weights_sha256")
    file_difference = (
        f"weights file {wanted.get('weights')} (sha256 {str(wanted_sha)[:12]}) differs from the one used "
        f"({stored.get('weights')}, sha256 {str(stored_sha)[:12]})"
    )
    if stored_sha and wanted_sha:
        # The same weights match, whether named imagenet or by a file (`featcache weights fetch`), at any path.
        return [] if stored_sha == wanted_sha else [file_difference]
    if stored.get("weights") != wanted.get("weights"):
        return [
            file_difference
            if stored_sha or wanted_sha
            else f"weights {stored.get('weights')!r} vs {wanted.get('weights')!r}"
        ]
    if stored.get("weights") == "random" and stored.get("seed") != wanted.get("seed"):
        return [f"random weights seed {stored.get('seed')} vs {wanted.get('seed')}"]
    return []


def _sampling_fields(sampling: dict[str, Any]) -> dict[str, Any]:
    """SamplingConfig fields of a stored sampling dict, numbers normalised (JSON may hold 1 for 1.0)."""
    fields = {name: sampling.get(name) for name in SamplingConfig.__dataclass_fields__}
    fields["num_frames"] = int(fields["num_frames"]) if fields["num_frames"] is not None else None
    fields["fps"] = float(fields["fps"]) if fields["fps"] is not None else None
    return fields
