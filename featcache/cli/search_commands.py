"""Commands that answer from a cache without training: `neighbors` (nearest videos) and `audit` (near-duplicate
leakage across a split)."""

from __future__ import annotations

from pathlib import Path

import typer

from featcache.cli.common import (
    DECODER_HELP,
    RUNTIME_HELP,
    DecoderChoice,
    RuntimeChoice,
    app,
    errors_as_exit_codes,
    import_keras_quietly,
    say,
    with_output_options,
)
from featcache.config import SPLIT_NAMES

# The measured default of featcache.search.audit.DEFAULT_THRESHOLD, repeated so `--help` imports no numpy stack;
# tests/test_search.py checks the two agree.
DEFAULT_AUDIT_THRESHOLD = 0.95


@app.command("neighbors")
@with_output_options
def neighbors_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    video: str | None = typer.Option(
        None, "--video", help="Query: a video of the cache, by its path in the cache (as `featcache ls` lists it)."
    ),
    file: Path | None = typer.Option(
        None, "--file", help="Query: a new video file, embedded the way the cache was (its extractor and sampling)."
    ),
    text: str | None = typer.Option(
        None, "--text", help="Query: a sentence, through the text tower of the cache's CLIP / SigLIP preset."
    ),
    k: int = typer.Option(10, "--k", help="How many neighbours to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the neighbours as one JSON object and nothing else."),
    runtime: RuntimeChoice = typer.Option("auto", help="With --file: " + RUNTIME_HELP),
    decoder: DecoderChoice = typer.Option("auto", help="With --file: " + DECODER_HELP),
) -> None:
    """The cache's videos nearest to a query video: cosine of L2-normalized mean-pooled features, exact search."""
    from featcache.search.neighbors import find_neighbors, format_neighbors

    # The query options are one mutually exclusive group: find_neighbors refuses none or several.
    with errors_as_exit_codes():
        if text is not None:
            import_keras_quietly()  # the preset's text tower is built (a --file's extractor imports Keras itself
            # only where it does not start from a start record, openvino_start.py)
        result = find_neighbors(
            cache, video=video, file=file, text=text, k=k, runtime=runtime.value, decoder=decoder.value
        )
    typer.echo(result.to_json() if as_json else format_neighbors(result))


@app.command("audit")
@with_output_options
def audit_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    split: str | None = typer.Option(
        None,
        "--split",
        help=f"The split to audit: {', '.join(SPLIT_NAMES)}, a split file (UCF101 list or CSV path,subset) or a "
        "model folder (its settings); default: train's default split.",
    ),
    model: Path | None = typer.Option(None, "--model", help="Audit this model folder's split.csv as written."),
    threshold: float = typer.Option(
        DEFAULT_AUDIT_THRESHOLD,
        "--threshold",
        help="Cosine similarity of pooled features at or above which two videos count as near-duplicates "
        "(default measured: see BENCHMARKS.md).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as one JSON object and nothing else."),
) -> None:
    """Test videos with a near-duplicate in train/val (pooled-feature cosine >= threshold), exact copies first."""
    from featcache.search.audit import format_audit
    from featcache.training.leakage import audit_cache

    with errors_as_exit_codes():
        report = audit_cache(cache, split=split, model_dir=model, threshold=threshold)
    if as_json:
        typer.echo(report.to_json())
        return
    typer.echo(format_audit(report))
    if report.num_test_with_duplicate:
        say("group such videos together (a CSV group column) so that a group is never on both sides of the split")
