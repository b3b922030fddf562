"""Stage-two commands: `train`, `compare`, `evaluate`, `predict` (they read the cache, never the videos)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Optional

import typer

from featcache.cli.common import EXIT_SOME_VIDEOS_FAILED, app, errors_as_exit_codes
from featcache.config import HEAD_NAMES, SPLIT_NAMES, HeadConfig, TrainConfig

# Choices come from the registries (config.HEAD_NAMES mirrors featcache.heads.HEADS without importing Keras).
HeadChoice = enum.Enum("HeadChoice", {name: name for name in HEAD_NAMES}, type=str)
SplitChoice = enum.Enum("SplitChoice", {name: name for name in SPLIT_NAMES}, type=str)
TEST_FRACTION_HELP = "Share of the videos held out as the test set by --split auto (whole groups); never seen in training or epoch selection."
VAL_FRACTION_HELP = "Share of the training videos held out (whole groups) as the validation set that picks the best epoch; 0: no validation, the last epoch is kept."


# Options that train and compare share, declared once so their defaults and help cannot drift apart.
UNITS_OPTION = typer.Option(HeadConfig.units, help="Recurrent units (lstm, gru).")
DENSE_OPTION = typer.Option(HeadConfig.dense, help="Width of the ReLU layer before the softmax.")
BATCH_SIZE_OPTION = typer.Option(TrainConfig.batch_size, help="Videos per training step.")
LEARNING_RATE_OPTION = typer.Option(TrainConfig.learning_rate, help="Adam learning rate.")
SPLIT_OPTION = typer.Option("auto", help="The test videos: auto: group-aware stratified (--test-fraction); ucf101-N: official UCF101 split N.")
SPLIT_FILE_OPTION = typer.Option(None, help="UCF101 trainlist/testlist .txt, or a CSV path,subset (train|val|test; e.g. a model folder's split.csv).")
TEST_FRACTION_OPTION = typer.Option(TrainConfig.test_fraction, help=TEST_FRACTION_HELP)
VAL_FRACTION_OPTION = typer.Option(TrainConfig.val_fraction, help=VAL_FRACTION_HELP)
SEED_OPTION = typer.Option(TrainConfig.seed, help="Seed of the split, the weights and the batch order.")


@app.command("train")
def train_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    out: Path = typer.Option(..., "--out", "-o", help="The model folder to write (a previous model folder there is overwritten)."),
    head: HeadChoice = typer.Option("lstm", help="Sequence head."),
    units: int = UNITS_OPTION,
    dense: int = DENSE_OPTION,
    dropout: float = typer.Option(HeadConfig.dropout, help="Dropout on the recurrent layer's inputs."),
    recurrent_dropout: float = typer.Option(HeadConfig.recurrent_dropout, help="Dropout on the recurrent state (the notebook's 0.5 is slower)."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Training epochs; the best one by validation accuracy is kept (the last with --val-fraction 0)."),
    batch_size: int = BATCH_SIZE_OPTION,
    learning_rate: float = LEARNING_RATE_OPTION,
    split: SplitChoice = SPLIT_OPTION,
    split_file: Optional[Path] = SPLIT_FILE_OPTION,
    test_fraction: float = TEST_FRACTION_OPTION,
    val_fraction: float = VAL_FRACTION_OPTION,
    seed: int = SEED_OPTION,
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="Also write TensorBoard logs to this folder."),
    frames: int = typer.Option(0, "--frames", "-t", help="Frames per video the head takes (T), uniform over each video's stored frames; 0: the cache's T (for a --frames 0 cache, its longest video)."),
) -> None:
    """Train a sequence head on a cache and write MODEL_DIR: model.keras, featcache.json, history, curves, split."""
    from featcache.train import train

    with errors_as_exit_codes():
        head_config = HeadConfig(head=head.value, units=units, dense=dense, dropout=dropout, recurrent_dropout=recurrent_dropout)
        train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, split=split.value,
            split_file=None if split_file is None else str(split_file), test_fraction=test_fraction,
            val_fraction=val_fraction, seed=seed, tensorboard_dir=None if tensorboard is None else str(tensorboard),
            num_frames=frames,
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
    units: int = UNITS_OPTION,
    dense: int = DENSE_OPTION,
    epochs: int = typer.Option(TrainConfig.epochs, help="Training epochs per head."),
    batch_size: int = BATCH_SIZE_OPTION,
    learning_rate: float = LEARNING_RATE_OPTION,
    split: SplitChoice = SPLIT_OPTION,
    split_file: Optional[Path] = SPLIT_FILE_OPTION,
    test_fraction: float = TEST_FRACTION_OPTION,
    val_fraction: float = VAL_FRACTION_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Train several heads on the same cache and split; print test accuracy, validation accuracy, seconds per epoch and size."""
    from featcache.compare import compare_heads, format_comparison

    with errors_as_exit_codes():
        train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, split=split.value,
            split_file=None if split_file is None else str(split_file), test_fraction=test_fraction,
            val_fraction=val_fraction, seed=seed,
        )
        head_names = [name.strip() for name in heads.split(",") if name.strip()]
        rows = compare_heads(cache, head_names, {"units": units, "dense": dense}, train_config, progress=typer.echo)
    typer.echo(format_comparison(rows))


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
