"""Stage-one commands: `embed`, `info`, `extractors`, `demo-data`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from featcache.cli.common import (
    EXIT_SOME_VIDEOS_FAILED,
    app,
    embed_progress_bar,
    errors_as_exit_codes,
)

if TYPE_CHECKING:
    from featcache.embed import EmbedSummary

@app.command("embed")
def embed_command(
    video_root: Path = typer.Argument(..., help="UCF101-layout folder VIDEO_ROOT/<ClassName>/<video>, or a CSV list path,label[,group]."),
    out: Path = typer.Option(..., "--out", "-o", help="The HDF5 cache to write (resumed or extended if it exists)."),
    extractor: str = typer.Option("mobilenet_v2", help="Frozen image model: mobilenet_v2, keras:NAME, keras_file, keras_hub:PRESET, ...; `featcache extractors` lists them."),
    weights: str = typer.Option("imagenet", help="'imagenet' (downloaded by Keras), 'random' (seeded by --seed), a weights file, or the model file for keras_file."),
    handle: Optional[str] = typer.Option(None, help="TF-Hub URL or local SavedModel folder (with --extractor tfhub)."),
    frames: int = typer.Option(10, "--frames", "-t", help="Frames per video (T); 0 with --sampling fps: every sampled frame (variable length)."),
    sampling: str = typer.Option("uniform", help="'uniform': T frames spread over the whole video; 'fps': one every 1/F s."),
    fps: Optional[float] = typer.Option(None, help="Frames per second to take with --sampling fps."),
    image_size: Optional[int] = typer.Option(None, help="Frames are resized (whole frame) to this square size (default: the extractor's own input size, 224 for mobilenet_v2)."),
    batch_size: int = typer.Option(64, help="Frames per model call, gathered across videos."),
    dtype: str = typer.Option("float16", help="Feature dtype in the cache: float16 or float32."),
    compression: str = typer.Option("none", help="HDF5 compression of features: none, gzip or lzf."),
    workers: int = typer.Option(0, help="Decode worker processes; 0 = one per CPU core."),
    seed: int = typer.Option(0, help="Seed of 'random' weights."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cache written with other settings."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root", help="Accept CSV rows naming files outside the CSV's folder (../x.avi, absolute); stored as written."
    ),
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
            allow_outside_root=allow_outside_root,
        )
        try:
            with embed_progress_bar() as report_progress:
                summary = embed(video_root, out, config, overwrite=overwrite, progress=report_progress)
        except KeyboardInterrupt:
            typer.secho(f"Interrupted: finished videos are kept in {out}; re-run the same command to add the rest.", err=True)
            raise typer.Exit(130) from None
    typer.echo(_embed_summary_line(summary))
    if summary.num_outside_root:
        typer.echo(f"{summary.num_outside_root} video(s) lie outside the CSV's folder and are stored by the paths as written (--allow-outside-root)")
    for part in summary.unreadable_parts:
        typer.secho(f"  an unreadable shard of an interrupted run was ignored (its videos were embedded again): {part}", err=True)
    if summary.suggests_compact:
        typer.secho(f"{summary.num_dead_rows} rows in the shards are dead (removed or re-embedded videos); `featcache compact {out}` reclaims their space", err=True)
    if summary.failures:
        typer.secho(f"{len(summary.failures)} video(s) failed and are listed in the cache's failures:", fg=typer.colors.YELLOW, err=True)
        for video_path, reason in sorted(summary.failures.items()):
            typer.secho(f"  {video_path}: {reason}", err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


def _embed_summary_line(summary: "EmbedSummary") -> str:
    changes = f", {summary.num_removed} removed (their files are gone)" if summary.num_removed else ""
    changes += f", {summary.num_relabelled} relabelled" if summary.num_relabelled else ""
    changes += f", {summary.num_changed} changed on disk (embedded again)" if summary.num_changed else ""
    changes += f", {summary.num_resumed} taken from an interrupted run" if summary.num_resumed else ""
    return (
        f"{summary.num_embedded} embedded, {summary.num_already_cached} already cached, {len(summary.failures)} failed{changes} "
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


@app.command("verify")
def verify_command(cache: Path = typer.Argument(..., help="A featcache cache (CACHE.h5 and its CACHE.h5.shards/).")) -> None:
    """Check every shard of a cache against its index (present, size, BLAKE2b); exit 1 on any problem."""
    from featcache.cache.maintenance import verify_cache

    with errors_as_exit_codes():
        report = verify_cache(cache)
    for problem in report.problems:
        typer.secho(f"  {problem}", err=True)
    if not report.ok:
        typer.secho(f"{cache}: {len(report.problems)} problem(s); re-embed the affected videos with `featcache embed --overwrite`", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"{cache}: ok ({report.num_videos} videos, {report.num_shards} shards checked)")


@app.command("compact")
def compact_command(cache: Path = typer.Argument(..., help="A format-2 featcache cache.")) -> None:
    """Rewrite the live rows into fewer shards and delete dead rows' shards (atomic)."""
    from featcache.cache.maintenance import compact_cache

    with errors_as_exit_codes():
        num_dead, num_shards = compact_cache(cache)
    typer.echo(f"{cache}: compacted, {num_dead} dead row(s) dropped, {num_shards} shard(s) now")


@app.command("upgrade")
def upgrade_command(cache: Path = typer.Argument(..., help="A format-1 cache (written by featcache before format 2).")) -> None:
    """Convert a format-1 cache to format 2 in place (atomic: the old file stays until the new index replaces it)."""
    from featcache.cache.maintenance import upgrade_cache

    with errors_as_exit_codes():
        num_videos = upgrade_cache(cache)
    typer.echo(f"{cache}: upgraded to format 2 ({num_videos} videos)")


@app.command("extractors")
def extractors_command() -> None:
    """List the extractors with their output dims and input sizes."""
    from featcache.extractor_catalog import available_extractors

    extractors = available_extractors()
    width = max(map(len, extractors))
    for name, description in extractors.items():
        typer.echo(f"{name:{width}s} {description}")


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


