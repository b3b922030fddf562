"""Report commands: `report` (the model page). The other pages are options of the commands they report on:
`evaluate --html`, `compare --html`, `info --html`, `predict --window --html`."""

from __future__ import annotations

from pathlib import Path

import typer

from featcache.cli.common import app, errors_as_exit_codes, import_keras_quietly, say, with_output_options

VIDEOS_OPTION_HELP = (
    "The folder (or CSV list) the cache was embedded from: the page shows the frames the model saw, "
    "decoded from these source videos (without it, no thumbnails)."
)


@app.command("report")
@with_output_options
def report_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    cache: Path | None = typer.Argument(
        None, help="The cache to score the model on (default: the model's training cache, from featcache.json)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The HTML file to write (default: report.html beside the evaluation's report.json)."
    ),
    videos: Path | None = typer.Option(None, "--videos", help=VIDEOS_OPTION_HELP),
    subset: str = typer.Option("default", "--subset", help="Which videos to score, as `evaluate --subset`."),
    top_k: int | None = typer.Option(None, "--top-k", help="k of the top-k accuracy, as `evaluate --top-k`."),
) -> None:
    """Write the model's HTML page: accuracy, confusion matrix, per-class table, learning curves, misclassified \
videos with the frames the model saw, the split. One self-contained file, no network."""
    import_keras_quietly()  # before the model modules import it
    from featcache.report import write_model_report

    with errors_as_exit_codes():
        path, data = write_model_report(model_dir, cache, out=out, video_root=videos, subset=subset, top_k=top_k)
    report = data.evaluation
    say(f"accuracy {report.accuracy:.3f} on {report.num_videos} videos ({report.subset_description})")
    typer.echo(f"report: {path}")
