"""Running a pipeline: data -> embed -> train each head -> evaluate, skipping the stages already done.

run_pipeline writes OUT as described in featcache.pipelines; a head is retrained only when _reason_to_train
finds a reason, and evaluation always re-runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featcache.cache.settings import describe_settings_difference
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import InputError
from featcache.pipelines.report import write_html_report, write_report
from featcache.pipelines.spec import EvaluateConfig, HeadSpec, Pipeline
from featcache.pipelines.summary import HeadOutcome, PipelineSummary
from featcache.training.model_folder import MODEL_FILE, ModelFolder, open_finished_model_folder

if typing.TYPE_CHECKING:
    from featcache.cache import Cache
    from featcache.embedding.embed import EmbedProgress

Progress = Callable[[str], None]

UCF101_URL = "https://www.crcv.ucf.edu/data/UCF101.php"
UCF101_HELP = (
    f"UCF101 comes from {UCF101_URL} (UCF101.rar, 6.5 GB): unpack it and move its UCF-101 folder to "
    "data/UCF101 so that the videos are data/UCF101/<ClassName>/v_<ClassName>_gNN_cNN.avi; "
    "then `featcache run PIPELINE --data data/UCF101`"
)

CACHE_FILE_NAME = "features.h5"
VIDEOS_FOLDER_NAME = "videos"
MODELS_FOLDER_NAME = "models"


def run_pipeline(
    pipeline: Pipeline,
    out_dir: Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    embed_progress: Callable[[EmbedProgress], None] | None = None,
    verbose: bool = False,
) -> PipelineSummary:
    """Run a validated pipeline into `out_dir` (default: pipeline.default_out_dir()), skipping finished stages.

    overwrite: replace a cache embedded with other settings (otherwise CacheMismatchError says so).
    verbose: let the embed engine show its own logs (`featcache.embed`'s verbose).
    Returns a PipelineSummary; its `report_path` is OUT/report.txt. Raises InputError for missing data.
    """
    from featcache.embedding.embed import embed

    say = progress or (lambda message: None)
    out_dir = Path(out_dir) if out_dir is not None else pipeline.default_out_dir()
    data_source = _check_data_source(pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_pipeline_copy(pipeline, out_dir)

    video_root = _prepare_videos(pipeline, data_source, out_dir, say)
    cache_path = out_dir / CACHE_FILE_NAME
    say(f"embed: {video_root} -> {cache_path}")
    embed_summary = embed(
        video_root, cache_path, pipeline.embed, overwrite=overwrite, progress=embed_progress, verbose=verbose
    )
    say(
        f"embed: {embed_summary.num_embedded} embedded, {embed_summary.num_already_cached} already cached, "
        f"{len(embed_summary.failures)} failed ({embed_summary.num_videos_in_cache} videos in the cache)"
    )
    summary = PipelineSummary(pipeline, out_dir, video_root, cache_path, embed_summary)

    from featcache.cache import open_cache

    cache = open_cache(cache_path)  # opened once, handed to every head's train and evaluate
    index = cache.index
    for spec in pipeline.heads:
        model_dir = out_dir / MODELS_FOLDER_NAME / spec.name
        folder = open_finished_model_folder(
            model_dir
        )  # any problem with a finished one is an error, not a reason to retrain
        reason = _reason_to_train(model_dir, folder, spec.config, pipeline.train, index, embed_summary.num_embedded)
        if reason:
            say(f"train {spec.name}: {reason}; training {pipeline.train.epochs} epochs ...")
            _train_head(cache, model_dir, spec, pipeline.train, say)
            folder = ModelFolder.open(model_dir)
        else:
            say(f"train {spec.name}: {model_dir} is up to date (same settings and cache), not retrained")
        summary.heads.append(
            _evaluate_head(spec, folder, cache, pipeline.evaluate, trained=bool(reason), video_root=video_root)
        )
    summary.report_path = write_report(summary)
    summary.html_report_path = write_html_report(summary)
    say(f"report: {summary.html_report_path}")
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
            raise InputError(
                f"{pipeline.path.name}: [data] classes needs video_root to be a folder of class folders, "
                f"{root} is a file"
            )
        missing = [name for name in data.classes if not (root / name).is_dir()]
        if missing:
            raise InputError(
                f"{pipeline.path.name}: no class folder(s) {', '.join(missing)} in {root}; "
                f"expected {root}/<ClassName>/<video>. {UCF101_HELP}"
            )
    return root


def _write_pipeline_copy(pipeline: Pipeline, out_dir: Path) -> None:
    if pipeline.path.resolve() != (out_dir / "pipeline.toml").resolve():
        shutil.copyfile(pipeline.path, out_dir / "pipeline.toml")


def _prepare_videos(pipeline: Pipeline, data_source: Path | None, out_dir: Path, say: Progress) -> Path:
    """The video source embed reads: generated demo videos, the video root, or a view of its chosen classes."""
    from featcache.video.demo_data import make_demo_data

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
            raise InputError(
                f"{view_dir} holds {entry.name}, which is not a link made by featcache run; "
                "use another --out / out_dir or remove it"
            )
        entry.unlink()  # a link to a class no longer chosen, or to another video root
    for name, target in wanted.items():
        link = view_dir / name
        if not link.is_symlink():
            try:
                os.symlink(target, link, target_is_directory=True)
            except OSError as err:
                raise InputError(
                    f"cannot link {link} -> {target} ({err}); "
                    "list the videos in a CSV path,label[,group] and use it as video_root"
                ) from err
    return view_dir


def _reason_to_train(
    model_dir: Path,
    folder: ModelFolder | None,
    head_config: HeadConfig,
    train_config: TrainConfig,
    index: Any,
    num_embedded_now: int,
) -> str:
    """'' when `folder` (the one at model_dir, None if unfinished) holds this head trained on this cache; else why it
    must be (re)trained."""
    if folder is None:
        return "the model folder is unfinished" if (model_dir / MODEL_FILE).is_file() else "no model yet"
    if num_embedded_now:
        return "the cache has new videos"
    metadata = folder.metadata
    expected = {
        "head settings": (metadata.head_settings, dataclasses.asdict(head_config)),
        "training settings": (metadata.training_settings, dataclasses.asdict(train_config)),
        "cache": (metadata.cache.get("path"), str(Path(index.path).resolve())),
        "number of cached videos": (metadata.cache.get("num_videos"), index.num_videos),
        "classes": (list(metadata.class_names), list(index.class_names)),
    }
    changed = [what for what, (stored, wanted) in expected.items() if _json_normal(stored) != _json_normal(wanted)]
    if describe_settings_difference(
        metadata.training_cache_settings, index.settings
    ):  # the one settings check embed/evaluate/predict use
        changed.append("embedding settings")
    return f"{', '.join(changed)} changed" if changed else ""


def _json_normal(value: Any) -> str:
    """Compare through JSON, as featcache.json stores it (tuples become lists, numpy ints plain ints)."""
    return json.dumps(value, sort_keys=True, default=lambda item: item.item() if hasattr(item, "item") else str(item))


def _train_head(
    cache_path: Path | Cache, model_dir: Path, spec: HeadSpec, train_config: TrainConfig, say: Progress
) -> None:
    from featcache.training.train import train

    result = train(
        cache_path, model_dir, spec.config, train_config, overwrite=True
    )  # _reason_to_train decided to retrain
    say(
        f"train {spec.name}: split {result.split.num_train} train / {result.split.num_val} val / "
        f"{result.split.num_test} test videos"
    )
    for warning in result.warnings:
        say(f"train {spec.name}: warning: {warning}")
    kept = (
        f"last epoch {result.best_epoch} (no validation set)"
        if result.best_val_accuracy is None
        else f"best epoch {result.best_epoch}, validation accuracy {result.best_val_accuracy:.3f}"
    )
    say(f"train {spec.name}: {kept} ({result.seconds_per_epoch:.2f} s/epoch) -> {model_dir}")


def _evaluate_head(
    spec: HeadSpec,
    folder: ModelFolder,
    cache_path: Path | Cache,
    evaluate_config: EvaluateConfig,
    trained: bool,
    video_root: Path,
) -> HeadOutcome:
    """Evaluate the head and write its model page (with thumbnails from the videos the run embedded)."""
    from featcache.report.model_page import write_model_report

    html_path, data = write_model_report(
        folder, cache_path, video_root=video_root, subset=evaluate_config.subset, top_k=evaluate_config.top_k
    )
    report = data.evaluation
    return HeadOutcome(
        name=spec.name,
        head=spec.config.head,
        model_dir=folder.path,
        trained=trained,
        accuracy=report.accuracy,
        top_k=report.top_k,
        top_k_accuracy=report.top_k_accuracy,
        num_videos=report.num_videos,
        subset_description=report.subset_description,
        best_epoch=folder.metadata.best_epoch,
        seconds_per_epoch=folder.metadata.seconds_per_epoch,
        report_json=Path(report.report_json),
        report_html=html_path,
        num_parameters=data.num_parameters,
    )
