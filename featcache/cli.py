"""The `featcache` command line: parses options, builds a config, calls one library function, prints.

No logic lives only here. Errors map to exit codes:
  0 success; 1 the run finished but some videos failed (listed); 2 bad options or input (one line, no traceback).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides our output

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer

from featcache.errors import FeatcacheError, InputError

EXIT_SOME_VIDEOS_FAILED = 1
EXIT_USAGE = 2  # typer's own code for a usage error

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Embed video frames once with a frozen CNN into an HDF5 cache, then train sequence heads on it in seconds.",
)


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


# --- stage two commands (train, evaluate, compare, predict) ---


@app.command("evaluate")
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    cache: Path = typer.Argument(..., help="The HDF5 feature cache to score the model on."),
    split: str = typer.Option(
        "default",
        "--split",
        help="default: the held-out videos on the model's own training cache, all videos on any other cache; test; all.",
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


# --- pipelines and demo (run, demo) ---


if __name__ == "__main__":
    app()
