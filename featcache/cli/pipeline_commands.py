"""Pipeline commands: `run` (a TOML pipeline) and `demo` (the shipped demo pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from featcache.cli.common import (
    EXIT_SOME_VIDEOS_FAILED,
    app,
    embed_progress_bar,
    errors_as_exit_codes,
    import_keras_quietly,
    say,
    with_output_options,
)
from featcache.cli.output import VERBOSITY

if TYPE_CHECKING:
    from featcache.pipelines import Pipeline, PipelineSummary


@app.command("run")
@with_output_options
def run_command(
    pipeline: str = typer.Argument(
        ..., help="A pipeline .toml file, or a shipped pipeline's name (demo, ucf3_mobilenet_v2, ...)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: the pipeline's `out`, else runs/<pipeline name>)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Read the videos from this folder instead of the pipeline's [data] video_root."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a cache embedded with other settings than the pipeline's."
    ),
) -> None:
    """Run a pipeline: data -> embed -> train each head -> evaluate on the test videos -> one report table.

    Finished stages are skipped: the cache resumes (nothing is re-embedded), and a head whose model folder
    already holds the same settings trained on the same cache is not retrained. Exit code 1 when some videos
    failed to embed (listed; the rest is used), 2 for a bad pipeline or missing data.
    """
    import_keras_quietly()  # before the model modules import it
    from featcache.pipelines import load_pipeline, with_video_root

    with errors_as_exit_codes():
        loaded = load_pipeline(pipeline)
        if data is not None:
            loaded = with_video_root(loaded, data)
        summary = _run_pipeline_with_progress(loaded, out, overwrite)
    _print_pipeline_summary(summary)


@app.command("demo")
@with_output_options
def demo_command(
    out: Path = typer.Option(
        Path("featcache-demo"), "--out", "-o", help="Folder for the demo videos, cache, model and report."
    ),
) -> None:
    """End to end on generated demo videos, no network: make data -> embed -> train -> evaluate -> report.

    Runs the shipped `demo` pipeline (`featcache run demo --out DIR` does the same); a second run reuses
    everything it finds finished.
    """
    import_keras_quietly()  # before the model modules import it
    from featcache.pipelines import load_pipeline

    with errors_as_exit_codes():
        pipeline = load_pipeline("demo")
        say(f"featcache demo: {pipeline.description}")
        summary = _run_pipeline_with_progress(pipeline, out, overwrite=False)
    _print_pipeline_summary(summary)
    model_dir = summary.heads[0].model_dir
    typer.echo(f"open the report in a browser: {summary.html_report_path}")
    say("next:")
    say(f"  featcache info {summary.cache_path}")
    say(f"  featcache evaluate {model_dir} {summary.cache_path}")
    say(f"  featcache predict {model_dir} {_a_test_video(model_dir, summary.video_root)}")
    say(f"  featcache compare {summary.cache_path} --heads lstm,gru,meanpool --epochs 60")


def _run_pipeline_with_progress(pipeline: Pipeline, out: Path | None, overwrite: bool) -> PipelineSummary:
    from featcache.pipelines import run_pipeline

    try:
        with embed_progress_bar() as report_progress:
            return run_pipeline(
                pipeline,
                out,
                overwrite=overwrite,
                progress=say,
                embed_progress=report_progress,
                verbose=VERBOSITY.verbose,
            )
    except KeyboardInterrupt:
        typer.secho("Interrupted: finished work is kept; re-run the same command to resume.", err=True)
        raise typer.Exit(130) from None


def _print_pipeline_summary(summary: PipelineSummary) -> None:
    from featcache.pipelines import format_report_table

    typer.echo("")
    typer.echo(f"scored on: {summary.heads[0].subset_description}")
    typer.echo(format_report_table(summary))
    typer.echo("")
    typer.echo(
        f"files in {summary.out_dir}: videos {summary.video_root}, cache {summary.cache_path}, "
        f"report {summary.report_path} (and {summary.html_report_path})"
    )
    failures = summary.embed.failures
    if failures:
        typer.secho(
            f"{len(failures)} video(s) failed to embed and are listed in the cache's failures:",
            fg=typer.colors.YELLOW,
            err=True,
        )
        for video_path, reason in sorted(failures.items()):
            typer.secho(f"  {video_path}: {reason}", err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


def _a_test_video(model_dir: Path, video_root: Path) -> Path:
    """A video the model never trained or validated on (from its split.csv), so the predict example is fair."""
    from featcache.training.model_folder import ModelFolder

    test_paths = sorted(path for path, subset in ModelFolder.open(model_dir).split.items() if subset == "test")
    return video_root / test_paths[0] if test_paths else video_root
