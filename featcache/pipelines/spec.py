"""Pipeline files: the Pipeline dataclass and its parts, finding shipped pipelines, reading and validating a file.

The format is described in featcache.pipelines (featcache/pipelines/__init__.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.errors import InputError
from featcache.pipelines.schema import build_config, reject_unknown_keys, resolve, typed_options, typed_value
from featcache.user_text import read_user_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pyproject installs tomli on 3.10
    import tomli as tomllib

PIPELINE_SUFFIX = ".toml"
# The top-level pipelines/ folder, shipped inside the package through the featcache/shipped_pipelines
# symlink (a real folder in an installed wheel).
SHIPPED_PIPELINES_DIR = Path(__file__).resolve().parent.parent / "shipped_pipelines"
DEFAULT_RUNS_DIR = Path("runs")

# `featcache embed` / `featcache train` option names that differ from the config field they set; every
# other key is the field's own name.
EMBED_OPTION_FIELDS = {"extractor": "name", "frames": "num_frames", "sampling": "mode", "workers": "num_decode_workers"}
TRAIN_OPTION_FIELDS = {"tensorboard": "tensorboard_dir"}
HEAD_OPTION_FIELDS = {"layers": "num_layers", "attention_heads": "num_heads"}
EVALUATE_SUBSETS = ("test", "all", "default")  # mirrors featcache.inference.evaluate.SUBSETS

TOP_LEVEL_KEYS = ("description", "out", "data", "embed", "heads", "train", "evaluate")


@dataclass(frozen=True)
class DataConfig:
    """Where a pipeline's videos come from: a video root (optionally only some classes) or generated demo data.

    video_root: a folder ROOT/<ClassName>/<video> or a CSV list, absolute or relative to the pipeline's base folder.
    classes: class folder names to keep (None: all); only with a video folder.
    demo: keyword arguments of make_demo_data (None: not demo data).
    """

    video_root: str | None = None
    classes: tuple[str, ...] | None = None
    demo: dict[str, Any] | None = None


@dataclass(frozen=True)
class EvaluateConfig:
    """The options of `featcache evaluate`: which videos to score (test: the split's test videos) and k of top-k.

    `split` is the old name of `subset` (it read like train's --split, which chooses the split itself); a
    pipeline file that still says `split` is read as `subset` (see _evaluate_table).
    """

    subset: str = "test"
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.subset not in EVALUATE_SUBSETS:
            raise InputError(f"unknown subset {self.subset!r}; choose one of {', '.join(EVALUATE_SUBSETS)}")
        if self.top_k is not None and self.top_k < 1:
            raise InputError(f"top_k must be at least 1, got {self.top_k}")


@dataclass(frozen=True)
class HeadSpec:
    """One head of a pipeline: its model folder name (OUT/models/<name>) and its settings."""

    name: str
    config: HeadConfig


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline file. Paths in the configs are already resolved against `base_dir`."""

    path: Path
    name: str
    description: str
    base_dir: Path
    data: DataConfig
    embed: EmbedConfig
    heads: tuple[HeadSpec, ...]
    train: TrainConfig
    evaluate: EvaluateConfig
    out: Path | None = None

    def default_out_dir(self) -> Path:
        return self.out if self.out is not None else DEFAULT_RUNS_DIR / self.name


# --- finding and reading pipeline files ---


def available_pipelines() -> dict[str, Path]:
    """Shipped pipeline names -> their files (pipelines/*.toml, installed as featcache/shipped_pipelines/)."""
    return {path.stem: path for path in sorted(SHIPPED_PIPELINES_DIR.glob(f"*{PIPELINE_SUFFIX}"))}


def load_pipeline(name_or_path: str | Path) -> Pipeline:
    """Read and validate a pipeline given as a file path or a shipped pipeline's name (see available_pipelines).

    A shipped pipeline's relative paths are taken from the current directory, a file's from the file's folder.
    Raises InputError naming the file and key for anything wrong; nothing is run or written.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return read_pipeline_file(candidate, base_dir=candidate.resolve().parent)
    shipped = available_pipelines()
    if str(name_or_path) in shipped:
        return read_pipeline_file(shipped[str(name_or_path)], base_dir=Path.cwd())
    raise InputError(
        f"no pipeline file {name_or_path}; pass a {PIPELINE_SUFFIX} file or a shipped pipeline name: "
        f"{', '.join(shipped) or '(none installed)'}"
    )


def read_pipeline_file(path: Path, base_dir: Path) -> Pipeline:
    """Parse and validate one pipeline file; relative paths in it are resolved against `base_dir`."""
    path = Path(path)
    try:
        document = tomllib.loads(read_user_text(path))
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from err
    _refuse_nul_characters(document, path, "")
    return pipeline_from_dict(document, path, base_dir)


def _refuse_nul_characters(value: Any, path: Path, key_path: str) -> None:
    """Refuse a string with a NUL in it: TOML's "\\u0000" escape writes one, and no path, class name or folder name
    can hold one (os calls raise ValueError deep inside the run). key_path: where `value` is, e.g. heads[0].name."""
    if isinstance(value, str) and "\0" in value:
        raise InputError(f"{path}: {key_path} holds a NUL character (\\u0000); no path or name can hold one")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul_characters(item, path, f"{key_path}.{key}" if key_path else key)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            _refuse_nul_characters(item, path, f"{key_path}[{number}]")


def pipeline_from_dict(document: dict[str, Any], path: Path, base_dir: Path) -> Pipeline:
    """Build a Pipeline from a parsed TOML document; InputError('FILE: [table] key ...') for any mistake."""
    reject_unknown_keys(document, TOP_LEVEL_KEYS, path, "the top level")
    description = typed_value(document.get("description", ""), str, path, "description")
    out = typed_value(document.get("out"), str | None, path, "out")

    if "data" not in document:
        raise InputError(f'{path}: missing [data] table; give [data] video_root = "DIR" or [data] demo = {{}}')
    data = _data_config(_table(document, "data", path), path, base_dir)
    embed = _embed_config(_table(document, "embed", path), path, base_dir)
    heads = _head_specs(document.get("heads"), path)
    train = _train_config(_table(document, "train", path), path, base_dir)
    evaluate = build_config(
        EvaluateConfig, _evaluate_table(_table(document, "evaluate", path), path), path, "[evaluate]"
    )
    return Pipeline(
        path=path,
        name=path.stem,
        description=description,
        base_dir=base_dir,
        data=data,
        embed=embed,
        heads=heads,
        train=train,
        evaluate=evaluate,
        out=None if out is None else resolve(out, base_dir),
    )


def _table(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: {name} must be a table [{name}], got {type(table).__name__}")
    return table


def _data_config(table: dict[str, Any], path: Path, base_dir: Path) -> DataConfig:
    data = build_config(DataConfig, table, path, "[data]")
    if (data.video_root is None) == (data.demo is None):
        raise InputError(
            f'{path}: [data] needs exactly one of video_root = "DIR" (your videos) '
            "or demo = {...} (generated demo videos)"
        )
    if data.demo is not None:
        if data.classes is not None:
            raise InputError(f"{path}: [data] classes only applies to a video_root folder, not to demo data")
        _check_demo_arguments(data.demo, path)
        return data
    if data.classes is not None and not data.classes:
        raise InputError(f"{path}: [data] classes is empty; list class folder names or leave it out for all classes")
    return dataclasses.replace(data, video_root=str(resolve(data.video_root, base_dir)))


def _check_demo_arguments(arguments: dict[str, Any], path: Path) -> None:
    """The demo table takes make_demo_data's keyword arguments, with their types."""
    from featcache.video.demo_data import make_demo_data

    hints = typing.get_type_hints(make_demo_data)
    accepted = [name for name in inspect.signature(make_demo_data).parameters if name != "out_dir"]
    reject_unknown_keys(arguments, accepted, path, "[data] demo")
    for key, value in arguments.items():
        typed_value(value, hints[key], path, f"[data] demo.{key}")


def _embed_config(table: dict[str, Any], path: Path, base_dir: Path) -> EmbedConfig:
    """[embed] keys are `featcache embed`'s options; each goes to the config (extractor, sampling, embed)
    that has it."""
    nested = {"extractor", "sampling"}  # EmbedConfig's sub-configs, set through their own fields
    owners = {
        config_class: {f.name for f in dataclasses.fields(config_class)} - nested
        for config_class in (ExtractorConfig, SamplingConfig, EmbedConfig)
    }
    option_of_field = {field_name: option for option, field_name in EMBED_OPTION_FIELDS.items()}
    known_options = sorted(option_of_field.get(name, name) for names in owners.values() for name in names)
    reject_unknown_keys(table, known_options, path, "[embed]")
    per_class: dict[type, dict[str, Any]] = {config_class: {} for config_class in owners}
    for option, value in table.items():
        field_name = EMBED_OPTION_FIELDS.get(option, option)
        owner = next(config_class for config_class, names in owners.items() if field_name in names)
        per_class[owner][option] = value
    extractor = build_config(ExtractorConfig, per_class[ExtractorConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    sampling = build_config(SamplingConfig, per_class[SamplingConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    from featcache.extractors.registry import available_extractors

    if extractor.name not in available_extractors():
        raise InputError(
            f"{path}: [embed] extractor {extractor.name!r} is unknown; "
            f"choose one of {', '.join(available_extractors())}"
        )
    if extractor.weights not in ("imagenet", "random"):
        extractor = dataclasses.replace(extractor, weights=str(resolve(extractor.weights, base_dir)))
    if extractor.handle is not None and "://" not in extractor.handle:
        extractor = dataclasses.replace(extractor, handle=str(resolve(extractor.handle, base_dir)))
    options = typed_options(EmbedConfig, per_class[EmbedConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    try:
        return EmbedConfig(
            extractor=extractor,
            sampling=sampling,
            **{EMBED_OPTION_FIELDS.get(key, key): value for key, value in options.items()},
        )
    except InputError as err:
        raise InputError(f"{path}: [embed] {err}") from err


def _head_specs(tables: Any, path: Path) -> tuple[HeadSpec, ...]:
    if tables is None:
        raise InputError(f'{path}: no [[heads]] table; add at least one, e.g. [[heads]] head = "lstm"')
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables) or not tables:
        raise InputError(f"{path}: heads must be one or more [[heads]] tables")
    specs = []
    for number, table in enumerate(tables, start=1):
        where = f"[[heads]] #{number}"
        options = dict(table)
        name = typed_value(options.pop("name", None), str | None, path, f"{where} name")
        config = build_config(HeadConfig, options, path, where, HEAD_OPTION_FIELDS, extra_keys=("name",))
        name = name or config.head
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise InputError(
                f"{path}: {where} name {name!r} is not a folder name; it names the model folder OUT/models/<name>"
            )
        specs.append(HeadSpec(name, config))
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(
            f"{path}: several [[heads]] are named {', '.join(repeated)}; "
            'give each a distinct name = "..." (its model folder)'
        )
    return tuple(specs)


def _train_config(table: dict[str, Any], path: Path, base_dir: Path) -> TrainConfig:
    config = build_config(TrainConfig, table, path, "[train]", TRAIN_OPTION_FIELDS)
    for field_name in ("split_file", "tensorboard_dir"):
        value = getattr(config, field_name)
        if value is not None:
            config = dataclasses.replace(config, **{field_name: str(resolve(value, base_dir))})
    return config


def with_video_root(pipeline: Pipeline, video_root: Path) -> Pipeline:
    """The pipeline reading its videos from `video_root` instead (the CLI's --data)."""
    if pipeline.data.demo is not None:
        raise InputError(
            f"{pipeline.path.name} generates its demo videos; --data only applies to a pipeline with [data] video_root"
        )
    return dataclasses.replace(
        pipeline, data=dataclasses.replace(pipeline.data, video_root=str(Path(video_root).expanduser().absolute()))
    )


def _evaluate_table(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """[evaluate] with the deprecated key `split` read as `subset` (both at once is an error)."""
    if "split" not in table:
        return table
    if "subset" in table:
        raise InputError(f"{path.name}: [evaluate] has both split and subset; keep subset (split is its old name)")
    renamed = {key: value for key, value in table.items() if key != "split"}
    renamed["subset"] = table["split"]
    return renamed
