"""Commands that answer from text, without training: `zeroshot` (class names through the preset's text tower)."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from featcache.cli.common import app, errors_as_exit_codes, import_keras_quietly, with_output_options
from featcache.cli.model_commands import (
    SEED_OPTION,
    SPLIT_FILE_OPTION,
    SPLIT_OPTION,
    TEST_FRACTION_OPTION,
    SplitChoice,
)
from featcache.config import TrainConfig
from featcache.text.wording import DEFAULT_PROMPTS

ZeroShotSubset = enum.Enum("ZeroShotSubset", {name: name for name in ("all", "test")}, type=str)
PROMPT_HELP = (
    "A prompt template with one {} for the class's words; repeat it to ensemble several (averaged, as in the CLIP "
    f"paper). Default: {DEFAULT_PROMPTS[0]!r}."
)


@app.command("zeroshot")
@with_output_options
def zeroshot_command(
    cache: Path = typer.Argument(..., help="A cache embedded with --extractor keras_hub:PRESET (CLIP, SigLIP)."),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated classes to choose from (default: the cache's class names)."
    ),
    prompt: list[str] = typer.Option([], "--prompt", help=PROMPT_HELP),
    class_texts: Path | None = typer.Option(
        None, "--class-texts", help="A CSV class,text giving the words of some classes (default: from their names)."
    ),
    subset: ZeroShotSubset = typer.Option(
        "all", "--subset", help="all: every video (nothing is trained); test: the test videos of train's split."
    ),
    split: SplitChoice = SPLIT_OPTION,
    split_file: Path | None = SPLIT_FILE_OPTION,
    test_fraction: float = TEST_FRACTION_OPTION,
    seed: int = SEED_OPTION,
    top_k: int | None = typer.Option(None, "--top-k", help="k of the top-k accuracy (default: min(3, classes - 1))."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where report.json and the confusion matrix PNG go (default: CACHE_STEM-zeroshot/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object and nothing else."),
) -> None:
    """Classify a cache's videos from class names alone (the preset's text tower): the report evaluate writes."""
    import_keras_quietly()  # before the model modules import it
    from featcache.inference.evaluate import format_report
    from featcache.inference.zeroshot import zeroshot

    with errors_as_exit_codes():
        train_config = TrainConfig(
            split=split.value,
            split_file=None if split_file is None else str(split_file),
            test_fraction=test_fraction,
            seed=seed,
        )
        class_names = [name.strip() for name in classes.split(",") if name.strip()] if classes else None
        report = zeroshot(
            cache,
            class_names,
            prompt,
            class_texts,
            subset=subset.value,
            train_config=train_config,
            top_k=top_k,
            report_dir=out,
        )
    typer.echo(report.to_json() if as_json else format_report(report))
