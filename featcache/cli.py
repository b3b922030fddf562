"""The `featcache` command line: parses options, builds a config, calls one library function, prints.

No logic lives only here. Errors map to exit codes:
  0 success; 1 the run finished but some videos failed (listed); 2 bad options or input (one line, no traceback).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides our output

import contextlib
import enum
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from featcache.config import HEAD_NAMES, SPLIT_NAMES, HeadConfig, TrainConfig
from featcache.errors import FeatcacheError, InputError

if TYPE_CHECKING:
    from featcache.embed import EmbedProgress, EmbedSummary

EXIT_SOME_VIDEOS_FAILED = 1
EXIT_USAGE = 2  # typer's own code for a usage error

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Embed video frames once with a frozen CNN into an HDF5 cache, then train sequence heads on it in seconds.",
)


@app.callback()
def load_keras_quietly() -> None:
    """Import Keras (and TensorFlow) before any command, with native stderr muted meanwhile.

    TensorFlow's C++ code prints INFO lines while it loads, before any log level applies
    (TF_CPP_MIN_LOG_LEVEL does not reach them); they would bury our one-line messages. Python
    errors raised by the import still show: stderr is restored before they propagate.
    """
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(devnull)
        os.close(saved_stderr)


@contextlib.contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Turn our errors into one line on stderr and an exit code (2 for bad input, 1 otherwise)."""
    try:
        yield
    except InputError as err:
        typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except FeatcacheError as err:
        typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


# --- stage one commands (embed, info, extractors, demo-data) ---


def _extractor_names() -> list[str]:
    from featcache.extractors import available_extractors

    return list(available_extractors())


@app.command("embed")
def embed_command(
    video_root: Path = typer.Argument(..., help="UCF101-layout folder VIDEO_ROOT/<ClassName>/<video>, or a CSV list path,label[,group]."),
    out: Path = typer.Option(..., "--out", "-o", help="The HDF5 cache to write (resumed or extended if it exists)."),
    extractor: str = typer.Option("mobilenet_v2", help="Frozen image model; `featcache extractors` lists them."),
    weights: str = typer.Option("imagenet", help="'imagenet' (downloaded by Keras), 'random' (seeded by --seed), or a weights file."),
    handle: Optional[str] = typer.Option(None, help="TF-Hub URL or local SavedModel folder (with --extractor tfhub)."),
    frames: int = typer.Option(10, "--frames", "-t", help="Frames per video (T)."),
    sampling: str = typer.Option("uniform", help="'uniform': T frames spread over the whole video; 'fps': one every 1/F s."),
    fps: Optional[float] = typer.Option(None, help="Frames per second to take with --sampling fps."),
    image_size: int = typer.Option(224, help="Frames are resized (whole frame) to this square size."),
    batch_size: int = typer.Option(64, help="Frames per model call, gathered across videos."),
    dtype: str = typer.Option("float16", help="Feature dtype in the cache: float16 or float32."),
    compression: str = typer.Option("none", help="HDF5 compression of features: none, gzip or lzf."),
    workers: int = typer.Option(0, help="Decoding threads; 0 = one per CPU core."),
    seed: int = typer.Option(0, help="Seed of 'random' weights."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cache written with other settings."),
) -> None:
    """Decode sampled frames of every video once, embed them with a frozen CNN, store them in one HDF5 cache.

    Exit codes: 0 all videos embedded; 1 some videos failed (listed, the rest is in the cache);
    2 bad options or input; 130 interrupted (finished videos are kept: re-run the same command to resume).
    """
    from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
    from featcache.embed import embed

    with errors_as_exit_codes():
        config = EmbedConfig(
            extractor=ExtractorConfig(name=extractor, weights=weights, handle=handle, image_size=image_size, seed=seed),
            sampling=SamplingConfig(num_frames=frames, mode=sampling, fps=fps),
            dtype=dtype,
            compression=compression,
            batch_size=batch_size,
            num_decode_workers=workers,
        )
        try:
            with _embed_progress_bar() as report_progress:
                summary = embed(video_root, out, config, overwrite=overwrite, progress=report_progress)
        except KeyboardInterrupt:
            typer.secho(f"Interrupted: finished videos are kept in {out}.parts; re-run the same command to resume.", err=True)
            raise typer.Exit(130) from None
    typer.echo(_embed_summary_line(summary))
    for part in summary.unreadable_parts:
        typer.secho(f"  an unreadable journal part was ignored (its videos were embedded again): {part}", err=True)
    if summary.failures:
        typer.secho(f"{len(summary.failures)} video(s) failed and are listed in the cache's failures:", fg=typer.colors.YELLOW, err=True)
        for video_path, reason in sorted(summary.failures.items()):
            typer.secho(f"  {video_path}: {reason}", err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


@contextlib.contextmanager
def _embed_progress_bar() -> Iterator[Callable[..., None]]:
    """A progress bar (videos/s, ETA) on a terminal; silent when output goes to a file or pipe."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not sys.stderr.isatty(), console=None, transient=True) as bar:
        task = bar.add_task("embed", total=None, rate="")

        def report(progress: "EmbedProgress") -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{progress.num_done / elapsed:.1f} videos/s" if elapsed > 0 else ""
            bar.update(task, completed=progress.num_done, total=progress.num_to_embed, rate=rate)

        yield report


def _embed_summary_line(summary: "EmbedSummary") -> str:
    return (
        f"{summary.num_embedded} embedded, {summary.num_already_cached} already cached, {len(summary.failures)} failed "
        f"of {summary.num_videos_found} videos in {summary.seconds:.1f} s "
        f"(embedding {summary.videos_per_second:.1f} videos/s, {summary.frames_per_second:.0f} frames/s) -> "
        f"{summary.cache_path} ({summary.num_videos_in_cache} videos, {summary.cache_size_bytes / 1e6:.1f} MB)"
    )


@app.command("info")
def info_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Videos per class, dims, extractor, sampling, failures and size of a cache."""
    from featcache.info import describe_cache, format_cache_description

    with errors_as_exit_codes():
        description = describe_cache(cache)
    typer.echo(json.dumps(description, indent=2) if as_json else format_cache_description(description))


@app.command("extractors")
def extractors_command() -> None:
    """List the extractors with their output dims."""
    from featcache.extractors import available_extractors

    for name, description in available_extractors().items():
        typer.echo(f"{name:14s} {description}")


@app.command("demo-data")
def demo_data_command(
    out_dir: Path = typer.Argument(..., help="Folder to write the synthetic UCF101-like dataset into."),
    videos_per_class: int = typer.Option(12, help="Videos per class."),
    seed: int = typer.Option(0, help="Seed of the synthetic videos."),
) -> None:
    """Write a small UCF101-like dataset of synthetic videos (3 classes), without network, in seconds."""
    from featcache.demo_data import make_demo_data

    with errors_as_exit_codes():
        root = make_demo_data(out_dir, videos_per_class=videos_per_class, seed=seed)
    typer.echo(f"demo videos in {root}")


# --- stage two commands (train, evaluate, compare, predict) ---


@app.command("evaluate")
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    cache: Path = typer.Argument(..., help="The HDF5 feature cache to score the model on."),
    split: str = typer.Option(
        "default",
        "--split",
        help="default: the test videos on the model's own training cache, all videos on any other cache; test; all.",
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="k of the top-k accuracy (default: min(3, number of classes))."),
    report_dir: Path | None = typer.Option(None, "--report-dir", help="Where report.json and the PNG go (default: MODEL_DIR/evaluation/<cache stem>)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object and nothing else."),
) -> None:
    """Score a trained model on a cache: accuracy, top-k, per-class metrics, confusion matrix, misclassified videos."""
    from featcache.evaluate import evaluate, format_report

    with errors_as_exit_codes():
        report = evaluate(model_dir, cache, subset=split, top_k=top_k, report_dir=report_dir)
    typer.echo(report.to_json() if as_json else format_report(report))


@app.command("predict")
def predict_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    videos: list[Path] = typer.Argument(..., help="Video files to classify."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to list per video."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {model_dir, predictions} and nothing else."),
) -> None:
    """Classify videos with a trained model, embedded with the extractor and sampling stored with it.

    Exit code 1 when some videos could not be read (each is listed with its reason; the others are still predicted).
    """
    import json

    from featcache.predict import format_predictions, predict_videos

    with errors_as_exit_codes():
        predictions = predict_videos(model_dir, videos, top_k=top_k)
    if as_json:
        typer.echo(json.dumps({"model_dir": str(model_dir), "predictions": [p.to_dict() for p in predictions]}, indent=2))
    else:
        typer.echo(format_predictions(predictions))
    failed = [prediction for prediction in predictions if prediction.error is not None]
    if failed:
        typer.secho(f"{len(failed)} of {len(predictions)} videos could not be read", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


# Choices come from the registries (config.HEAD_NAMES mirrors featcache.heads.HEADS without importing Keras).
HeadChoice = enum.Enum("HeadChoice", {name: name for name in HEAD_NAMES}, type=str)
SplitChoice = enum.Enum("SplitChoice", {name: name for name in SPLIT_NAMES}, type=str)
TEST_FRACTION_HELP = "Share of the videos held out as the test set by --split auto (whole groups); never seen in training or epoch selection."
VAL_FRACTION_HELP = "Share of the training videos held out (whole groups) as the validation set that picks the best epoch; 0: no validation, the last epoch is kept."


@app.command("train")
def train_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    out: Path = typer.Option(..., "--out", "-o", help="The model folder to write (a previous model folder there is overwritten)."),
    head: HeadChoice = typer.Option("lstm", help="Sequence head."),
    units: int = typer.Option(HeadConfig.units, help="Recurrent units (lstm, gru)."),
    dense: int = typer.Option(HeadConfig.dense, help="Width of the ReLU layer before the softmax."),
    dropout: float = typer.Option(HeadConfig.dropout, help="Dropout on the recurrent layer's inputs."),
    recurrent_dropout: float = typer.Option(HeadConfig.recurrent_dropout, help="Dropout on the recurrent state (the notebook's 0.5 is slower)."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Training epochs; the best one by validation accuracy is kept (the last with --val-fraction 0)."),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="Videos per training step."),
    learning_rate: float = typer.Option(TrainConfig.learning_rate, help="Adam learning rate."),
    split: SplitChoice = typer.Option("auto", help="The test videos: auto: group-aware stratified (--test-fraction); ucf101-N: official UCF101 split N."),
    split_file: Optional[Path] = typer.Option(None, help="UCF101 trainlist/testlist .txt, or a CSV path,subset (train|val|test; e.g. a model folder's split.csv)."),
    test_fraction: float = typer.Option(TrainConfig.test_fraction, help=TEST_FRACTION_HELP),
    val_fraction: float = typer.Option(TrainConfig.val_fraction, help=VAL_FRACTION_HELP),
    seed: int = typer.Option(TrainConfig.seed, help="Seed of the split, the weights and the batch order."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="Also write TensorBoard logs to this folder."),
) -> None:
    """Train a sequence head on a cache and write MODEL_DIR: model.keras, featcache.json, history, curves, split."""
    from featcache.train import train

    with errors_as_exit_codes():
        head_config = HeadConfig(head=head.value, units=units, dense=dense, dropout=dropout, recurrent_dropout=recurrent_dropout)
        train_config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            split=split.value,
            split_file=None if split_file is None else str(split_file),
            test_fraction=test_fraction,
            val_fraction=val_fraction,
            seed=seed,
            tensorboard_dir=None if tensorboard is None else str(tensorboard),
        )
        result = train(cache, out, head_config, train_config, progress=typer.echo)
    if result.best_val_accuracy is None:
        typer.echo(f"no validation set: the last epoch ({result.best_epoch}) is kept ({result.seconds_per_epoch:.2f} s/epoch)")
    else:
        typer.echo(
            f"best epoch {result.best_epoch}: validation accuracy {result.best_val_accuracy:.3f} ({result.seconds_per_epoch:.2f} s/epoch); its weights are kept"
        )
    typer.echo(f"model folder: {out} (model.keras, featcache.json, history.csv, learning_curves.png, split.csv)")
    typer.echo(f"test accuracy (the {result.split.num_test} test videos): featcache evaluate {out} {cache}")


@app.command("compare")
def compare_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    heads: str = typer.Option(",".join(HEAD_NAMES), help=f"Comma-separated heads from {', '.join(HEAD_NAMES)}."),
    units: int = typer.Option(HeadConfig.units, help="Recurrent units (lstm, gru)."),
    dense: int = typer.Option(HeadConfig.dense, help="Width of the ReLU layer before the softmax."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Training epochs per head."),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="Videos per training step."),
    learning_rate: float = typer.Option(TrainConfig.learning_rate, help="Adam learning rate."),
    split: SplitChoice = typer.Option("auto", help="The test videos: auto: group-aware stratified (--test-fraction); ucf101-N: official UCF101 split N."),
    split_file: Optional[Path] = typer.Option(None, help="UCF101 trainlist/testlist .txt, or a CSV path,subset (train|val|test)."),
    test_fraction: float = typer.Option(TrainConfig.test_fraction, help=TEST_FRACTION_HELP),
    val_fraction: float = typer.Option(TrainConfig.val_fraction, help=VAL_FRACTION_HELP),
    seed: int = typer.Option(TrainConfig.seed, help="Seed of the split, the weights and the batch order."),
) -> None:
    """Train several heads on the same cache and split; print test accuracy, validation accuracy, seconds per epoch and size."""
    from featcache.compare import compare_heads, format_comparison

    with errors_as_exit_codes():
        train_config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            split=split.value,
            split_file=None if split_file is None else str(split_file),
            test_fraction=test_fraction,
            val_fraction=val_fraction,
            seed=seed,
        )
        head_names = [name.strip() for name in heads.split(",") if name.strip()]
        rows = compare_heads(cache, head_names, {"units": units, "dense": dense}, train_config, progress=typer.echo)
    typer.echo(format_comparison(rows))


# --- pipelines and demo (run, demo) ---

if TYPE_CHECKING:
    from featcache.pipelines import Pipeline, PipelineSummary


@app.command("run")
def run_command(
    pipeline: str = typer.Argument(..., help="A pipeline .toml file, or a shipped pipeline's name (demo, ucf3_mobilenet_v2, ...)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the pipeline's `out`, else runs/<pipeline name>)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Read the videos from this folder instead of the pipeline's [data] video_root."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cache embedded with other settings than the pipeline's."),
) -> None:
    """Run a pipeline: data -> embed -> train each head -> evaluate on the test videos -> one report table.

    Finished stages are skipped: the cache resumes (nothing is re-embedded), and a head whose model folder
    already holds the same settings trained on the same cache is not retrained. Exit code 1 when some videos
    failed to embed (listed; the rest is used), 2 for a bad pipeline or missing data.
    """
    from featcache.pipelines import load_pipeline, with_video_root

    with errors_as_exit_codes():
        loaded = load_pipeline(pipeline)
        if data is not None:
            loaded = with_video_root(loaded, data)
        summary = _run_pipeline_with_progress(loaded, out, overwrite)
    _print_pipeline_summary(summary)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("featcache-demo"), "--out", "-o", help="Folder for the demo videos, cache, model and report."),
) -> None:
    """End to end on generated demo videos, no network: make data -> embed -> train -> evaluate -> report.

    Runs the shipped `demo` pipeline (`featcache run demo --out DIR` does the same); a second run reuses
    everything it finds finished.
    """
    from featcache.pipelines import load_pipeline

    with errors_as_exit_codes():
        pipeline = load_pipeline("demo")
        typer.echo(f"featcache demo: {pipeline.description}")
        summary = _run_pipeline_with_progress(pipeline, out, overwrite=False)
    _print_pipeline_summary(summary)
    model_dir = summary.heads[0].model_dir
    typer.echo("next:")
    typer.echo(f"  featcache info {summary.cache_path}")
    typer.echo(f"  featcache evaluate {model_dir} {summary.cache_path}")
    typer.echo(f"  featcache predict {model_dir} {next(summary.video_root.glob('*/*.avi'), summary.video_root)}")
    typer.echo(f"  featcache compare {summary.cache_path} --heads lstm,gru,meanpool --epochs 60")


def _run_pipeline_with_progress(pipeline: "Pipeline", out: Optional[Path], overwrite: bool) -> "PipelineSummary":
    from featcache.pipelines import run_pipeline

    try:
        with _embed_progress_bar() as report_progress:
            return run_pipeline(pipeline, out, overwrite=overwrite, progress=typer.echo, embed_progress=report_progress)
    except KeyboardInterrupt:
        typer.secho("Interrupted: finished work is kept; re-run the same command to resume.", err=True)
        raise typer.Exit(130) from None


def _print_pipeline_summary(summary: "PipelineSummary") -> None:
    from featcache.pipelines import format_report_table

    typer.echo("")
    typer.echo(f"scored on: {summary.heads[0].subset_description}")
    typer.echo(format_report_table(summary))
    typer.echo("")
    typer.echo(f"files in {summary.out_dir}: videos {summary.video_root}, cache {summary.cache_path}, report {summary.report_path}")
    failures = summary.embed.failures
    if failures:
        typer.secho(f"{len(failures)} video(s) failed to embed and are listed in the cache's failures:", fg=typer.colors.YELLOW, err=True)
        for video_path, reason in sorted(failures.items()):
            typer.secho(f"  {video_path}: {reason}", err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


if __name__ == "__main__":
    app()
