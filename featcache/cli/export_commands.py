"""`featcache export`: a cache's features for tools outside featcache (npy files + CSV, Parquet, one HDF5 file)."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from featcache.cli.common import app, errors_as_exit_codes, with_output_options

# Mirrors featcache.cache.export.EXPORT_FORMATS (that module imports numpy only, but the CLI keeps its imports lazy).
ExportFormat = enum.Enum("ExportFormat", {name: name for name in ("npy", "parquet", "h5")}, type=str)


@app.command("export")
@with_output_options
def export_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    out: Path = typer.Argument(..., help="npy: a folder to create; parquet: a .parquet file; h5: a .h5 file."),
    format: ExportFormat | None = typer.Option(
        None,
        "--format",
        help="npy: one .npy per video (real frames only) + index.csv; parquet: a row per frame (needs pyarrow). "
        "Default: from OUT's suffix (.parquet, .h5), else npy.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUT if it exists (only once the new export is complete)."
    ),
) -> None:
    # `\` joins the two lines: typer would show a line break of the docstring in `featcache --help`'s command list.
    """Export a cache's features: one .npy per video plus index.csv, or one Parquet file of \
(path, label, frame, vector)."""
    from featcache.cache.export import export_cache

    with errors_as_exit_codes():
        summary = export_cache(cache, out, None if format is None else format.value, overwrite=overwrite)
    typer.echo(
        f"exported {summary.num_videos} videos ({summary.num_frames} frames) as {summary.format} to {summary.out}"
    )
