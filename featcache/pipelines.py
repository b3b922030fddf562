"""Pipelines: one declarative TOML file runs data -> embed -> train each head -> evaluate -> one report table.

A pipeline file (the shipped ones are in featcache/pipelines/, installed with the package):

    description = "UCF101 PlayingCello/Guitar/Violin, MobileNetV2 (ImageNet), LSTM(512) -> Dense(128)"

    [data]                       # exactly one of video_root or demo
    video_root = "data/UCF101"   # ROOT/<ClassName>/<video>, or a CSV list path,label[,group]
    classes = ["PlayingCello", "PlayingGuitar", "PlayingViolin"]   # optional: only these class folders

    [embed]                      # the options of `featcache embed`, spelled with underscores
    extractor = "mobilenet_v2"
    frames = 10
    image_size = 224

    [[heads]]                    # one table per head: the head options of `featcache train`, plus a name
    name = "lstm512"
    units = 512
    dense = 128

    [train]                      # the training options of `featcache train`, shared by every head
    epochs = 10

    [evaluate]                   # the options of `featcache evaluate`
    split = "test"

Keys are the CLI's option names with underscores (`--image-size` -> image_size, `--recurrent-dropout` ->
recurrent_dropout) and are turned into the same frozen configs the CLI builds (EmbedConfig, HeadConfig,
TrainConfig): their fields and types are the schema, so an unknown key or a wrong type is an error naming
the key and the file, raised before anything runs. `[data] demo = { videos_per_class = 24, ... }` takes
the arguments of `featcache.demo_data.make_demo_data` instead of a video root.

Relative paths (video_root, split_file, a weights file, tensorboard, out) are taken from the pipeline
file's folder; for a shipped pipeline given by name, which lives inside the installed package, from the
current directory.

OUT (`--out`, else the pipeline's `out`, else runs/<pipeline name>) holds:
  pipeline.toml   the pipeline that ran
  videos/         the demo videos, or a view of the chosen class folders (symlinks into video_root)
  features.h5     the feature cache
  models/<head>/  one model folder per head, its evaluation in models/<head>/evaluation/features/
  report.txt      the report table; report.json the same rows

Each stage is skipped when its output is there and matches: embed resumes and embeds only missing videos
(and refuses a cache made with other settings unless overwrite); a head is retrained only when its model
folder is missing or unfinished, or its featcache.json differs from the pipeline in head settings,
training settings, cache path, number of cached videos, class names, extractor or sampling, or when this
run embedded new videos. Evaluation is always re-run (it reads the cache only, in seconds).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pyproject installs tomli on 3.10
    import tomli as tomllib

if typing.TYPE_CHECKING:
    from featcache.embed import EmbedProgress, EmbedSummary

Progress = Callable[[str], None]

PIPELINE_SUFFIX = ".toml"
SHIPPED_PIPELINES_DIR = Path(__file__).resolve().parent / "pipelines"
DEFAULT_RUNS_DIR = Path("runs")

UCF101_URL = "https://www.crcv.ucf.edu/data/UCF101.php"
UCF101_HELP = (
    f"UCF101 comes from {UCF101_URL} (UCF101.rar, 6.5 GB): unpack it and move its UCF-101 folder to "
    "data/UCF101 so that the videos are data/UCF101/<ClassName>/v_<ClassName>_gNN_cNN.avi (see data/README.md)"
)

# `featcache embed` / `featcache train` option names that differ from the config field they set; every
# other key is the field's own name.
EMBED_OPTION_FIELDS = {"extractor": "name", "frames": "num_frames", "sampling": "mode", "workers": "num_decode_workers"}
TRAIN_OPTION_FIELDS = {"tensorboard": "tensorboard_dir"}
EVALUATE_SUBSETS = ("test", "all", "default")  # mirrors featcache.evaluate.SUBSETS

TOP_LEVEL_KEYS = ("description", "out", "data", "embed", "heads", "train", "evaluate")
CACHE_FILE_NAME = "features.h5"
VIDEOS_FOLDER_NAME = "videos"
MODELS_FOLDER_NAME = "models"


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
    """The options of `featcache evaluate`: which videos to score (test: the held-out split) and k of top-k."""

    split: str = "test"
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.split not in EVALUATE_SUBSETS:
            raise InputError(f"unknown split {self.split!r}; choose one of {', '.join(EVALUATE_SUBSETS)}")
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


@dataclass(frozen=True)
class HeadOutcome:
    """One head's row of the report: held-out scores of the kept epoch, and whether this run trained it."""

    name: str
    head: str
    model_dir: Path
    trained: bool
    accuracy: float
    top_k: int
    top_k_accuracy: float
    num_videos: int
    subset_description: str
    best_epoch: int
    seconds_per_epoch: float
    report_json: Path


@dataclass
class PipelineSummary:
    """What one `run_pipeline` call did, and where its files are."""

    pipeline: Pipeline
    out_dir: Path
    video_root: Path
    cache_path: Path
    embed: EmbedSummary
    heads: list[HeadOutcome] = field(default_factory=list)
    report_path: Path | None = None

    @property
    def num_embedded(self) -> int:
        return self.embed.num_embedded

    @property
    def num_trained(self) -> int:
        return sum(outcome.trained for outcome in self.heads)


# --- finding and reading pipeline files ---


def available_pipelines() -> dict[str, Path]:
    """Shipped pipeline names -> their files (featcache/pipelines/*.toml, installed with the package)."""
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
        f"no pipeline file {name_or_path}; pass a {PIPELINE_SUFFIX} file or a shipped pipeline name: {', '.join(shipped) or '(none installed)'}"
    )


def read_pipeline_file(path: Path, base_dir: Path) -> Pipeline:
    """Parse and validate one pipeline file; relative paths in it are resolved against `base_dir`."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err})") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid TOML ({err})") from err
    return pipeline_from_dict(document, path, base_dir)


def pipeline_from_dict(document: dict[str, Any], path: Path, base_dir: Path) -> Pipeline:
    """Build a Pipeline from a parsed TOML document; InputError('FILE: [table] key ...') for any mistake."""
    _reject_unknown_keys(document, TOP_LEVEL_KEYS, path, "the top level")
    description = _typed_value(document.get("description", ""), str, path, "description")
    out = _typed_value(document.get("out"), str | None, path, "out")

    if "data" not in document:
        raise InputError(f"{path}: missing [data] table; give [data] video_root = \"DIR\" or [data] demo = {{}}")
    data = _data_config(_table(document, "data", path), path, base_dir)
    embed = _embed_config(_table(document, "embed", path), path, base_dir)
    heads = _head_specs(document.get("heads"), path)
    train = _train_config(_table(document, "train", path), path, base_dir)
    evaluate = _build_config(EvaluateConfig, _table(document, "evaluate", path), path, "[evaluate]")
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
        out=None if out is None else _resolve(out, base_dir),
    )


def _table(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: {name} must be a table [{name}], got {type(table).__name__}")
    return table


def _data_config(table: dict[str, Any], path: Path, base_dir: Path) -> DataConfig:
    data = _build_config(DataConfig, table, path, "[data]")
    if (data.video_root is None) == (data.demo is None):
        raise InputError(f"{path}: [data] needs exactly one of video_root = \"DIR\" (your videos) or demo = {{...}} (generated demo videos)")
    if data.demo is not None:
        if data.classes is not None:
            raise InputError(f"{path}: [data] classes only applies to a video_root folder, not to demo data")
        _check_demo_arguments(data.demo, path)
        return data
    if data.classes is not None and not data.classes:
        raise InputError(f"{path}: [data] classes is empty; list class folder names or leave it out for all classes")
    return dataclasses.replace(data, video_root=str(_resolve(data.video_root, base_dir)))


def _check_demo_arguments(arguments: dict[str, Any], path: Path) -> None:
    """The demo table takes make_demo_data's keyword arguments, with their types."""
    from featcache.demo_data import make_demo_data

    hints = typing.get_type_hints(make_demo_data)
    accepted = [name for name in inspect.signature(make_demo_data).parameters if name != "out_dir"]
    _reject_unknown_keys(arguments, accepted, path, "[data] demo")
    for key, value in arguments.items():
        _typed_value(value, hints[key], path, f"[data] demo.{key}")


def _embed_config(table: dict[str, Any], path: Path, base_dir: Path) -> EmbedConfig:
    """[embed] keys are `featcache embed`'s options; each goes to the config (extractor, sampling, embed) that has it."""
    nested = {"extractor", "sampling"}  # EmbedConfig's sub-configs, set through their own fields
    owners = {config_class: {f.name for f in dataclasses.fields(config_class)} - nested for config_class in (ExtractorConfig, SamplingConfig, EmbedConfig)}
    option_of_field = {field_name: option for option, field_name in EMBED_OPTION_FIELDS.items()}
    known_options = sorted(option_of_field.get(name, name) for names in owners.values() for name in names)
    _reject_unknown_keys(table, known_options, path, "[embed]")
    per_class: dict[type, dict[str, Any]] = {config_class: {} for config_class in owners}
    for option, value in table.items():
        field_name = EMBED_OPTION_FIELDS.get(option, option)
        owner = next(config_class for config_class, names in owners.items() if field_name in names)
        per_class[owner][option] = value
    extractor = _build_config(ExtractorConfig, per_class[ExtractorConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    sampling = _build_config(SamplingConfig, per_class[SamplingConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    from featcache.extractors import available_extractors

    if extractor.name not in available_extractors():
        raise InputError(f"{path}: [embed] extractor {extractor.name!r} is unknown; choose one of {', '.join(available_extractors())}")
    if extractor.weights not in ("imagenet", "random"):
        extractor = dataclasses.replace(extractor, weights=str(_resolve(extractor.weights, base_dir)))
    if extractor.handle is not None and "://" not in extractor.handle:
        extractor = dataclasses.replace(extractor, handle=str(_resolve(extractor.handle, base_dir)))
    options = _typed_options(EmbedConfig, per_class[EmbedConfig], path, "[embed]", EMBED_OPTION_FIELDS)
    try:
        return EmbedConfig(extractor=extractor, sampling=sampling, **{EMBED_OPTION_FIELDS.get(key, key): value for key, value in options.items()})
    except InputError as err:
        raise InputError(f"{path}: [embed] {err}") from err


def _head_specs(tables: Any, path: Path) -> tuple[HeadSpec, ...]:
    if tables is None:
        raise InputError(f"{path}: no [[heads]] table; add at least one, e.g. [[heads]] head = \"lstm\"")
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables) or not tables:
        raise InputError(f"{path}: heads must be one or more [[heads]] tables")
    specs = []
    for number, table in enumerate(tables, start=1):
        where = f"[[heads]] #{number}"
        options = dict(table)
        name = _typed_value(options.pop("name", None), str | None, path, f"{where} name")
        config = _build_config(HeadConfig, options, path, where, extra_keys=("name",))
        name = name or config.head
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise InputError(f"{path}: {where} name {name!r} is not a folder name; it names the model folder OUT/models/<name>")
        specs.append(HeadSpec(name, config))
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{path}: several [[heads]] are named {', '.join(repeated)}; give each a distinct name = \"...\" (its model folder)")
    return tuple(specs)


def _train_config(table: dict[str, Any], path: Path, base_dir: Path) -> TrainConfig:
    config = _build_config(TrainConfig, table, path, "[train]", TRAIN_OPTION_FIELDS)
    for field_name in ("split_file", "tensorboard_dir"):
        value = getattr(config, field_name)
        if value is not None:
            config = dataclasses.replace(config, **{field_name: str(_resolve(value, base_dir))})
    return config


# --- the schema is the config dataclasses: their fields and type hints ---


def _build_config(config_class: type, table: dict[str, Any], path: Path, where: str, option_fields: dict[str, str] | None = None, extra_keys: tuple[str, ...] = ()) -> Any:
    """config_class(**table) with option names mapped to fields, unknown keys and wrong types as InputError."""
    option_fields = option_fields or {}
    option_of_field = {field_name: option for option, field_name in option_fields.items()}
    known = [option_of_field.get(f.name, f.name) for f in dataclasses.fields(config_class)]
    _reject_unknown_keys(table, known + list(extra_keys), path, where)
    options = _typed_options(config_class, table, path, where, option_fields)
    try:
        return config_class(**{option_fields.get(key, key): value for key, value in options.items()})
    except InputError as err:
        raise InputError(f"{path}: {where} {err}") from err


def _typed_options(config_class: type, table: dict[str, Any], path: Path, where: str, option_fields: dict[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(config_class)
    return {key: _typed_value(value, hints[option_fields.get(key, key)], path, f"{where} {key}") for key, value in table.items()}


def _reject_unknown_keys(table: dict[str, Any], known: Any, path: Path, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"{path}: {where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _typed_value(value: Any, hint: Any, path: Path, where: str) -> Any:
    """`value` converted to `hint` (int -> float, list -> tuple); InputError when a TOML value has the wrong type."""
    converted = _convert(value, hint)
    if converted is _WRONG_TYPE:
        raise InputError(f"{path}: {where} must be {_describe_type(hint)}, got {value!r} ({type(value).__name__})")
    return converted


_WRONG_TYPE = object()


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            converted = _convert(value, option)
            if converted is not _WRONG_TYPE:
                return converted
        return _WRONG_TYPE
    if hint is type(None):
        return None if value is None else _WRONG_TYPE
    if hint is Any:
        return value
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG_TYPE
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG_TYPE
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG_TYPE
    if hint is str:
        return value if isinstance(value, str) else _WRONG_TYPE
    if hint is Path:
        return Path(value) if isinstance(value, str) else _WRONG_TYPE
    if origin in (tuple, list):
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, list):
            return _WRONG_TYPE
        items = [_convert(item, item_hint) for item in value]
        return _WRONG_TYPE if any(item is _WRONG_TYPE for item in items) else origin(items)
    if origin is dict:
        return value if isinstance(value, dict) else _WRONG_TYPE
    raise AssertionError(f"pipeline type {hint!r} has no TOML conversion")  # a new config field type: add it here


def _describe_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(option) for option in typing.get_args(hint) if option is not type(None))
    if origin in (tuple, list):
        return f"a list of {_describe_type(typing.get_args(hint)[0]).split(' ', 1)[1]}s"
    if origin is dict:
        return "a table { key = value, ... }"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a string"}.get(hint, str(hint))


def _resolve(path_text: str, base_dir: Path) -> Path:
    path = Path(path_text).expanduser()
    return path if path.is_absolute() else base_dir / path


# --- running ---


def run_pipeline(
    pipeline: Pipeline,
    out_dir: Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    embed_progress: Callable[[EmbedProgress], None] | None = None,
) -> PipelineSummary:
    """Run a validated pipeline into `out_dir` (default: pipeline.default_out_dir()), skipping finished stages.

    overwrite: replace a cache embedded with other settings (otherwise CacheMismatchError says so).
    Returns a PipelineSummary; its `report_path` is OUT/report.txt. Raises InputError for missing data.
    """
    from featcache.embed import embed

    say = progress or (lambda message: None)
    out_dir = Path(out_dir) if out_dir is not None else pipeline.default_out_dir()
    data_source = _check_data_source(pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_pipeline_copy(pipeline, out_dir)

    video_root = _prepare_videos(pipeline, data_source, out_dir, say)
    cache_path = out_dir / CACHE_FILE_NAME
    say(f"embed: {video_root} -> {cache_path}")
    embed_summary = embed(video_root, cache_path, pipeline.embed, overwrite=overwrite, progress=embed_progress)
    say(
        f"embed: {embed_summary.num_embedded} embedded, {embed_summary.num_already_cached} already cached, "
        f"{len(embed_summary.failures)} failed ({embed_summary.num_videos_in_cache} videos in the cache)"
    )
    summary = PipelineSummary(pipeline, out_dir, video_root, cache_path, embed_summary)

    from featcache.cache import read_cache_index

    index = read_cache_index(cache_path)
    for spec in pipeline.heads:
        model_dir = out_dir / MODELS_FOLDER_NAME / spec.name
        reason = _reason_to_train(model_dir, spec.config, pipeline.train, index, embed_summary.num_embedded)
        if reason:
            say(f"train {spec.name}: {reason}; training {pipeline.train.epochs} epochs ...")
            _train_head(cache_path, model_dir, spec, pipeline.train, say)
        else:
            say(f"train {spec.name}: {model_dir} is up to date (same settings and cache), not retrained")
        summary.heads.append(_evaluate_head(spec, model_dir, cache_path, pipeline.evaluate, trained=bool(reason)))
    summary.report_path = write_report(summary)
    return summary


def _check_data_source(pipeline: Pipeline) -> Path | None:
    """The video root (None for demo data), checked before anything is written."""
    data = pipeline.data
    if data.demo is not None:
        return None
    root = Path(data.video_root)
    if not root.exists():
        raise InputError(
            f"{pipeline.path.name}: the video folder {root} does not exist. Expected {root}/<ClassName>/<video> "
            f"(.avi .mp4 ...) or a CSV list path,label[,group]. {UCF101_HELP}; or set [data] video_root "
            f"in a copy of the pipeline, or pass --data DIR"
        )
    if data.classes is not None:
        if not root.is_dir():
            raise InputError(f"{pipeline.path.name}: [data] classes needs video_root to be a folder of class folders, {root} is a file")
        missing = [name for name in data.classes if not (root / name).is_dir()]
        if missing:
            raise InputError(
                f"{pipeline.path.name}: no class folder(s) {', '.join(missing)} in {root}; expected {root}/<ClassName>/<video>. {UCF101_HELP}"
            )
    return root


def with_video_root(pipeline: Pipeline, video_root: Path) -> Pipeline:
    """The pipeline reading its videos from `video_root` instead (the CLI's --data)."""
    if pipeline.data.demo is not None:
        raise InputError(f"{pipeline.path.name} generates its demo videos; --data only applies to a pipeline with [data] video_root")
    return dataclasses.replace(pipeline, data=dataclasses.replace(pipeline.data, video_root=str(Path(video_root).expanduser().absolute())))


def _write_pipeline_copy(pipeline: Pipeline, out_dir: Path) -> None:
    if pipeline.path.resolve() != (out_dir / "pipeline.toml").resolve():
        shutil.copyfile(pipeline.path, out_dir / "pipeline.toml")


def _prepare_videos(pipeline: Pipeline, data_source: Path | None, out_dir: Path, say: Progress) -> Path:
    """The video source embed reads: generated demo videos, the video root, or a view of its chosen classes."""
    from featcache.demo_data import make_demo_data

    videos_dir = out_dir / VIDEOS_FOLDER_NAME
    if data_source is None:
        say(f"data: demo videos in {videos_dir}")
        return make_demo_data(videos_dir, **pipeline.data.demo)
    if pipeline.data.classes is None:
        return data_source
    say(f"data: {len(pipeline.data.classes)} class folder(s) of {data_source}, linked in {videos_dir}")
    return link_class_folders(data_source, pipeline.data.classes, videos_dir)


def link_class_folders(video_root: Path, class_names: tuple[str, ...], view_dir: Path) -> Path:
    """Make `view_dir/<Class>` a symlink to `video_root/<Class>` for each class, and nothing else; return view_dir.

    embed then finds exactly those classes, with the same relative paths (Class/video) as in video_root.
    """
    view_dir.mkdir(parents=True, exist_ok=True)
    wanted = {name: (video_root / name).resolve() for name in class_names}
    for entry in view_dir.iterdir():
        if entry.name in wanted and entry.is_symlink() and entry.resolve() == wanted[entry.name]:
            continue
        if not entry.is_symlink():
            raise InputError(f"{view_dir} holds {entry.name}, which is not a link made by featcache run; use another --out or remove it")
        entry.unlink()  # a link to a class no longer chosen, or to another video root
    for name, target in wanted.items():
        link = view_dir / name
        if not link.is_symlink():
            try:
                os.symlink(target, link, target_is_directory=True)
            except OSError as err:
                raise InputError(f"cannot link {link} -> {target} ({err}); list the videos in a CSV path,label[,group] and use it as video_root") from err
    return view_dir


def _reason_to_train(model_dir: Path, head_config: HeadConfig, train_config: TrainConfig, index: Any, num_embedded_now: int) -> str:
    """'' when model_dir already holds this head trained on this cache; else why it must be (re)trained."""
    from featcache.model_dir import MODEL_FILE, read_model_metadata

    if not (model_dir / MODEL_FILE).is_file():
        return "no model yet"
    try:
        metadata = read_model_metadata(model_dir)
    except InputError:
        return "the model folder is unfinished"
    if num_embedded_now:
        return "the cache has new videos"
    expected = {
        "head settings": (metadata["head"], dataclasses.asdict(head_config)),
        "training settings": (metadata["training"], dataclasses.asdict(train_config)),
        "cache": (metadata["cache"].get("path"), str(Path(index.path).resolve())),
        "number of cached videos": (metadata["cache"].get("num_videos"), index.num_videos),
        "classes": (metadata["class_names"], list(index.class_names)),
        "extractor": (metadata["extractor"], index.extractor),
        "sampling": (metadata["sampling"], index.sampling),
    }
    changed = [what for what, (stored, wanted) in expected.items() if _json_normal(stored) != _json_normal(wanted)]
    return f"{', '.join(changed)} changed" if changed else ""


def _json_normal(value: Any) -> str:
    """Compare through JSON, as featcache.json stores it (tuples become lists, numpy ints plain ints)."""
    return json.dumps(value, sort_keys=True, default=lambda item: item.item() if hasattr(item, "item") else str(item))


def _train_head(cache_path: Path, model_dir: Path, spec: HeadSpec, train_config: TrainConfig, say: Progress) -> None:
    from featcache.train import train

    result = train(cache_path, model_dir, spec.config, train_config)
    say(
        f"train {spec.name}: best epoch {result.best_epoch}, held-out accuracy {result.best_val_accuracy:.3f} "
        f"({result.seconds_per_epoch:.2f} s/epoch) -> {model_dir}"
    )


def _evaluate_head(spec: HeadSpec, model_dir: Path, cache_path: Path, evaluate_config: EvaluateConfig, trained: bool) -> HeadOutcome:
    from featcache.evaluate import evaluate
    from featcache.model_dir import read_model_metadata

    report = evaluate(model_dir, cache_path, subset=evaluate_config.split, top_k=evaluate_config.top_k)
    metadata = read_model_metadata(model_dir)
    return HeadOutcome(
        name=spec.name,
        head=spec.config.head,
        model_dir=model_dir,
        trained=trained,
        accuracy=report.accuracy,
        top_k=report.top_k,
        top_k_accuracy=report.top_k_accuracy,
        num_videos=report.num_videos,
        subset_description=report.subset_description,
        best_epoch=int(metadata["best_epoch"]),
        seconds_per_epoch=float(metadata["seconds_per_epoch"]),
        report_json=Path(report.report_json),
    )


# --- the report ---


def format_report_table(summary: PipelineSummary) -> str:
    """One line per head: held-out accuracy, top-k, videos scored, best epoch, seconds per epoch, model folder."""
    top_k = summary.heads[0].top_k if summary.heads else 1
    header = f"{'head':<16} {'accuracy':>8} {f'top-{top_k}':>6} {'videos':>6} {'best epoch':>10} {'s/epoch':>8}  model folder"
    lines = [header, "-" * len(header)]
    for outcome in summary.heads:
        state = "trained now" if outcome.trained else "up to date"
        lines.append(
            f"{outcome.name:<16} {outcome.accuracy:>8.3f} {outcome.top_k_accuracy:>6.3f} {outcome.num_videos:>6d} "
            f"{outcome.best_epoch:>10d} {outcome.seconds_per_epoch:>8.3f}  {outcome.model_dir} ({state})"
        )
    return "\n".join(lines)


def write_report(summary: PipelineSummary) -> Path:
    """Write OUT/report.txt (the table, with what was scored) and OUT/report.json (the same rows); return report.txt."""
    scored = summary.heads[0].subset_description if summary.heads else ""
    text = f"pipeline {summary.pipeline.name}: {summary.pipeline.description}\nscored on: {scored}\n\n{format_report_table(summary)}\n"
    report_path = summary.out_dir / "report.txt"
    report_path.write_text(text, encoding="utf-8")
    rows = [{key: (str(value) if isinstance(value, Path) else value) for key, value in dataclasses.asdict(outcome).items()} for outcome in summary.heads]
    document = {
        "pipeline": summary.pipeline.name,
        "description": summary.pipeline.description,
        "cache": str(summary.cache_path),
        "video_root": str(summary.video_root),
        "num_embedded": summary.num_embedded,
        "num_videos_in_cache": summary.embed.num_videos_in_cache,
        "failures": summary.embed.failures,
        "heads": rows,
    }
    (summary.out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return report_path
