"""Stage-one commands: `embed`, `info`, `extractors`, `demo-data`."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from featcache.cli.common import (
    DECODER_HELP,
    EXIT_SOME_VIDEOS_FAILED,
    RUNTIME_HELP,
    DecoderChoice,
    RuntimeChoice,
    app,
    embed_progress_bar,
    errors_as_exit_codes,
    import_keras_quietly,
    say,
    with_output_options,
)
from featcache.cli.output import VERBOSITY
from featcache.config import (
    COMPRESSIONS,
    DEFAULT_CALIBRATION_FRAMES,
    DEFAULT_INT8_MIN_COSINE,
    ENGINES,
    FEATURE_DTYPES,
    PRECISIONS,
    SAMPLING_MODES,
)
from featcache.extractors.catalog import KERAS_APPLICATION_PREFIX, available_extractors

if TYPE_CHECKING:
    from featcache.embedding.embed import EmbedSummary

SamplingChoice = enum.Enum("SamplingChoice", {name: name for name in SAMPLING_MODES}, type=str)
DtypeChoice = enum.Enum("DtypeChoice", {name: name for name in FEATURE_DTYPES}, type=str)
CompressionChoice = enum.Enum("CompressionChoice", {name: name for name in COMPRESSIONS}, type=str)
EngineChoice = enum.Enum("EngineChoice", {name: name for name in ENGINES}, type=str)
PrecisionChoice = enum.Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)
FROM_CACHE = "(default: an existing --out cache's own, else {})"
# The registry's names, with the ~40 keras.applications models folded into one pattern for --help.
EXTRACTOR_NAMES = [name for name in available_extractors() if not name.startswith(KERAS_APPLICATION_PREFIX)] + [
    f"{KERAS_APPLICATION_PREFIX}NAME (e.g. keras:ResNet50)"
]


@app.command("embed")
@with_output_options
def embed_command(
    video_root: Path = typer.Argument(
        ..., help="UCF101-layout folder VIDEO_ROOT/<ClassName>/<video>, or a CSV list path,label[,group]."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The HDF5 cache to write (resumed or extended if it exists, with its own settings)."
    ),
    extractor: str | None = typer.Option(
        None,
        help="Frozen image model: "
        + ", ".join(EXTRACTOR_NAMES)
        + "; `featcache extractors` lists them. "
        + FROM_CACHE.format("mobilenet_v2"),
    ),
    weights: str | None = typer.Option(
        None,
        help="'imagenet' (downloaded by Keras), 'random' (seeded by --seed), a weights file, "
        "or the model file for keras_file. " + FROM_CACHE.format("imagenet"),
    ),
    handle: str | None = typer.Option(None, help="TF-Hub URL or local SavedModel folder (with --extractor tfhub)."),
    frames: int | None = typer.Option(
        None,
        "--frames",
        "-t",
        help="Frames per video (T); 0 with --sampling fps: every sampled frame (variable length). "
        + FROM_CACHE.format("10"),
    ),
    sampling: SamplingChoice | None = typer.Option(
        None,
        help="uniform: T frames spread over the whole video; fps: one every 1/F s. " + FROM_CACHE.format("uniform"),
    ),
    fps: float | None = typer.Option(None, help="Frames per second to take with --sampling fps."),
    image_size: int | None = typer.Option(
        None,
        help="Frames are resized (whole frame) to this square size. "
        + FROM_CACHE.format("the extractor's own, 224 for mobilenet_v2"),
    ),
    batch_size: int = typer.Option(64, help="Frames per model call, gathered across videos."),
    dtype: DtypeChoice | None = typer.Option(None, help="Feature dtype in the cache. " + FROM_CACHE.format("float16")),
    compression: CompressionChoice = typer.Option("none", help="HDF5 compression of features."),
    workers: int = typer.Option(
        0,
        help="Decode worker processes; 0 = one per CPU core this process may use "
        "(with --engine ray: per CPU the cluster has left after the embed workers).",
    ),
    seed: int | None = typer.Option(None, help="Seed of 'random' weights. " + FROM_CACHE.format("0")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cache written with other settings."),
    allow_outside_root: bool = typer.Option(
        False,
        "--allow-outside-root",
        help="Accept CSV rows naming files outside the CSV's folder (../x.avi, absolute); stored as written.",
    ),
    engine: EngineChoice = typer.Option(
        "local",
        help="local: this machine; ray: a Ray cluster "
        "(pip install 'featcache[ray]'; videos and --out on a filesystem every node sees).",
    ),
    ray_address: str | None = typer.Option(
        None,
        help="[ray] The cluster: 'auto' (the one `ray start` joined here), HOST:PORT. "
        "Default: RAY_ADDRESS, else a new local Ray instance.",
    ),
    embed_workers: int = typer.Option(
        0,
        help="[ray] Workers running the extractor, each loading it once; "
        "0 = one per GPU of the cluster, or 1 without GPUs.",
    ),
    gpus_per_worker: float | None = typer.Option(
        None, help="[ray] GPUs per embed worker (default: 1 when the cluster has GPUs, else 0)."
    ),
    decode_cpus: float = typer.Option(1.0, help="[ray] CPUs per decode worker."),
    decoder: DecoderChoice = typer.Option("auto", help=DECODER_HELP),
    runtime: RuntimeChoice = typer.Option("auto", help=RUNTIME_HELP),
    precision: PrecisionChoice | None = typer.Option(
        None,
        help="int8: OpenVINO with NNCF quantization, calibrated on the run's first frames and refused below "
        "--int8-min-cosine to f32 (other features: stored with the cache). " + FROM_CACHE.format("f32"),
    ),
    calibration_frames: int = typer.Option(
        DEFAULT_CALIBRATION_FRAMES, help="[int8] Frames to calibrate on (as many again held out for the gate)."
    ),
    int8_min_cosine: float = typer.Option(
        DEFAULT_INT8_MIN_COSINE, help="[int8] Refuse int8 below this mean cosine to f32 on held-out frames."
    ),
) -> None:
    """Decode sampled frames of every video once, embed them with a frozen CNN, store them in one HDF5 cache.

    Re-running on an existing cache with no extractor or sampling options continues it with its own settings;
    options that differ from the cache's are refused (another --out, or --overwrite).
    Exit codes: 0 all videos embedded; 1 some videos failed (listed, the rest is in the cache);
    2 bad options or input; 130 interrupted (finished videos are kept: re-run the same command to resume).
    """
    from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
    from featcache.embedding.options import resolve_embed_settings

    with errors_as_exit_codes():
        given = {
            "extractor": extractor,
            "weights": weights,
            "handle": handle,
            "image_size": image_size,
            "seed": seed,
            "frames": frames,
            "sampling": None if sampling is None else sampling.value,
            "fps": fps,
            "dtype": None if dtype is None else dtype.value,
            "precision": None if precision is None else precision.value,
        }
        settings = resolve_embed_settings(out, given, overwrite)
        if settings.from_cache:
            say(f"{out} exists: embedding with its settings ({settings.describe()})")
        values = settings.values
        config = EmbedConfig(
            extractor=ExtractorConfig(
                name=values["extractor"],
                weights=values["weights"],
                handle=values["handle"],
                image_size=values["image_size"],
                seed=values["seed"],
            ),
            sampling=SamplingConfig(num_frames=values["frames"], mode=values["sampling"], fps=values["fps"]),
            dtype=values["dtype"],
            compression=compression.value,
            batch_size=batch_size,
            num_decode_workers=workers,
            allow_outside_root=allow_outside_root,
            engine=engine.value,
            ray_address=ray_address,
            embed_workers=embed_workers,
            gpus_per_worker=gpus_per_worker,
            decode_cpus=decode_cpus,
            decoder=decoder.value,
            runtime=runtime.value,
            precision=values["precision"],
            calibration_frames=calibration_frames,
            int8_min_cosine=int8_min_cosine,
        )
    from featcache.embedding.embed import (
        embed,
    )  # imports Keras itself, only if it builds a model (not for --engine ray)

    with errors_as_exit_codes():
        try:
            with embed_progress_bar() as report_progress:
                summary = embed(
                    video_root, out, config, overwrite=overwrite, progress=report_progress, verbose=VERBOSITY.verbose
                )
        except KeyboardInterrupt:
            typer.secho(
                f"Interrupted: finished videos are kept in {out}; re-run the same command to add the rest.", err=True
            )
            raise typer.Exit(130) from None
    typer.echo(_embed_summary_line(summary))
    if summary.runtime:
        typer.echo(f"extractor runtime: {summary.runtime}")
    if summary.engine_workers:
        typer.echo(f"on Ray: {summary.engine_workers}")
    from featcache.cache.describe import format_decoder_counts

    for line in format_decoder_counts(summary.decoders):
        typer.echo(line)
    if summary.num_outside_root:
        typer.echo(
            f"{summary.num_outside_root} video(s) lie outside the CSV's folder and are stored by the paths as written "
            "(--allow-outside-root)"
        )
    for part in summary.unreadable_parts:
        typer.secho(
            f"  an unreadable shard of an interrupted run was ignored (its videos were embedded again): {part}",
            err=True,
        )
    if summary.suggests_compact:
        typer.secho(
            f"{summary.num_dead_rows} rows in the shards are dead (removed or re-embedded videos); "
            f"`featcache compact {out}` reclaims their space",
            err=True,
        )
    if summary.failures:
        typer.secho(
            f"{len(summary.failures)} video(s) failed and are listed in the cache's failures:",
            fg=typer.colors.YELLOW,
            err=True,
        )
        for video_path, reason in sorted(summary.failures.items()):
            typer.secho(f"  {video_path}: {reason}", err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


def _embed_summary_line(summary: EmbedSummary) -> str:
    changes = f", {summary.num_removed} removed (their files are gone)" if summary.num_removed else ""
    changes += f", {summary.num_relabelled} relabelled" if summary.num_relabelled else ""
    changes += f", {summary.num_changed} changed on disk (embedded again)" if summary.num_changed else ""
    changes += f", {summary.num_resumed} taken from an interrupted run" if summary.num_resumed else ""
    return (
        f"{summary.num_embedded} embedded, {summary.num_already_cached} already cached, "
        f"{len(summary.failures)} failed{changes} "
        f"of {summary.num_videos_found} videos in {summary.seconds:.1f} s "
        f"(embedding {summary.videos_per_second:.1f} videos/s, {summary.frames_per_second:.0f} frames/s) -> "
        f"{summary.cache_path} ({summary.num_videos_in_cache} videos, {summary.cache_size_bytes / 1e6:.1f} MB)"
    )


@app.command("info")
@with_output_options
def info_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write an HTML page (charts, failures, duplicates, shards) to this file."
    ),
) -> None:
    """Videos per class, dims, extractor, sampling, failures and size of a cache."""
    from featcache.cache.describe import describe_cache, format_cache_description

    with errors_as_exit_codes():
        description = describe_cache(cache)
        if html is not None:
            from featcache.report.cache_page import write_cache_report

            write_cache_report(cache, html)
    typer.echo(json.dumps(description, indent=2) if as_json else format_cache_description(description))
    if html is not None and not as_json:
        say(f"cache page: {html}")


@app.command("verify")
def verify_command(
    cache: Path = typer.Argument(..., help="A featcache cache (CACHE.h5 and its CACHE.h5.shards/)."),
) -> None:
    """Check every shard of a cache against its index (present, size, BLAKE2b, identity); exit 1 on any problem."""
    from featcache.cache.maintenance import verify_cache

    with errors_as_exit_codes():
        report = verify_cache(cache)
    for problem in report.problems:
        typer.secho(f"  {problem}", err=True)
    if report.unlisted_shards:
        typer.echo(
            f"{cache}: {len(report.unlisted_shards)} shard file(s) the index does not list "
            f"({', '.join(report.unlisted_shards)}): left by a killed run; `featcache embed` adopts an embed's, "
            f"`featcache compact {cache}` removes them"
        )
    if not report.ok:
        typer.secho(
            f"{cache}: {len(report.problems)} problem(s), {len(report.damaged_videos)} video(s) affected; "
            f"`featcache compact --drop-damaged {cache}` drops them, then `featcache embed` re-embeds them",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{cache}: ok ({report.num_videos} videos, {report.num_shards} shards checked)")


@app.command("compact")
def compact_command(
    cache: Path = typer.Argument(..., help="A format-2 featcache cache."),
    drop_damaged: bool = typer.Option(
        False, "--drop-damaged", help="Drop the videos of damaged shards (the next `embed` embeds them again)."
    ),
) -> None:
    """Rewrite the live rows into fewer shards, verified, and delete dead rows' shards and unlisted ones (atomic)."""
    from featcache.cache.maintenance import compact_cache

    with errors_as_exit_codes():
        summary = compact_cache(cache, drop_damaged=drop_damaged)
    typer.echo(f"{cache}: compacted, {summary.num_dead} dead row(s) dropped, {summary.num_shards} shard(s) now")
    if summary.dropped_videos:
        typer.echo(
            f"{cache}: {len(summary.dropped_videos)} video(s) of damaged shards dropped "
            f"({', '.join(summary.dropped_videos[:5])}{', ...' if len(summary.dropped_videos) > 5 else ''}); "
            "`featcache embed` with the same videos and options embeds them again"
        )
    if summary.removed_unlisted:
        typer.echo(f"{cache}: {len(summary.removed_unlisted)} unlisted shard file(s) removed")


@app.command("upgrade")
def upgrade_command(
    cache: Path = typer.Argument(..., help="A format-1 cache, or a format-2 cache with unchecksummed shards."),
) -> None:
    """Bring a cache to the current format in place: format 1 -> 2, old shards rewritten checksummed (atomic)."""
    from featcache.cache.maintenance import upgrade_cache

    with errors_as_exit_codes():
        summary = upgrade_cache(cache)
    if summary.done == "already upgraded":
        typer.echo(f"{cache}: already upgraded (format 2, every shard checksummed; {summary.num_videos} videos)")
    elif summary.done == "shards rewritten checksummed":
        typer.echo(f"{cache}: shards rewritten with chunk checksums ({summary.num_videos} videos)")
    else:
        typer.echo(f"{cache}: upgraded to format 2 ({summary.num_videos} videos)")


@app.command("extractors")
@with_output_options
def extractors_command() -> None:
    """List the extractors with their output dims and input sizes."""
    from featcache.extractors.catalog import available_extractors

    extractors = available_extractors()
    width = max(map(len, extractors))
    for name, description in extractors.items():
        typer.echo(f"{name:{width}s} {description}")


@app.command("demo-data")
@with_output_options
def demo_data_command(
    out_dir: Path = typer.Argument(..., help="Folder to write the synthetic UCF101-like dataset into."),
    videos_per_class: int = typer.Option(12, help="Videos per class."),
    seed: int = typer.Option(0, help="Seed of the synthetic videos."),
) -> None:
    """Write a small UCF101-like dataset of synthetic videos (3 classes), without network, in seconds."""
    from featcache.video.demo_data import make_demo_data

    with errors_as_exit_codes():
        root = make_demo_data(out_dir, videos_per_class=videos_per_class, seed=seed)
    typer.echo(f"demo videos in {root}")


weights_app = typer.Typer(no_args_is_help=True, help="Weights files for offline use.")
app.add_typer(weights_app, name="weights")


@weights_app.command("fetch")
@with_output_options
def weights_fetch_command(
    extractor: str = typer.Argument(..., help="mobilenet_v2 or keras:NAME (e.g. keras:ResNet50)."),
    out: Path = typer.Option(..., "--out", "-o", help="The weights file to write (NAME.weights.h5)."),
    image_size: int | None = typer.Option(
        None, help="The input size the weights are for [default: the extractor's own]."
    ),
) -> None:
    # `\` joins the two lines: typer would show a line break of the docstring in `featcache --help`'s command list.
    """Download an extractor's ImageNet weights (Keras' own download, cached) into a file for \
`embed --weights FILE` offline."""
    import_keras_quietly()
    from featcache.extractors.weights_fetch import fetch_imagenet_weights

    with errors_as_exit_codes():
        written = fetch_imagenet_weights(extractor, out, image_size)
    typer.echo(
        f"wrote {written}; offline: featcache embed VIDEO_ROOT --out CACHE.h5 "
        f"--extractor {extractor} --weights {written}"
    )
