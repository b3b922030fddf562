"""Stage-two commands: `train`, `compare`, `evaluate`, `predict` (they read the cache, never the videos)."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import typer

from featcache.cli.common import (
    DECODER_HELP,
    EXIT_SOME_VIDEOS_FAILED,
    RUNTIME_HELP,
    DecoderChoice,
    RuntimeChoice,
    app,
    count_progress,
    errors_as_exit_codes,
    import_keras_quietly,
    say,
    warn,
    with_output_options,
)
from featcache.config import (
    CLASS_WEIGHTS,
    CLIP_SAMPLINGS,
    HEAD_NAMES,
    POOLINGS,
    POSITION_ENCODINGS,
    SPLIT_NAMES,
    HeadConfig,
    TrainConfig,
)
from featcache.errors import InputError
from featcache.text.wording import read_class_texts

# Choices come from the registries (config.HEAD_NAMES mirrors featcache.training.heads.HEADS without importing Keras).
HeadChoice = enum.Enum("HeadChoice", {name: name for name in HEAD_NAMES}, type=str)
SplitChoice = enum.Enum("SplitChoice", {name: name for name in SPLIT_NAMES}, type=str)
PositionsChoice = enum.Enum("PositionsChoice", {name: name for name in POSITION_ENCODINGS}, type=str)
PoolingChoice = enum.Enum("PoolingChoice", {name: name for name in POOLINGS}, type=str)
ClipSamplingChoice = enum.Enum("ClipSamplingChoice", {name: name for name in CLIP_SAMPLINGS}, type=str)
ClassWeightChoice = enum.Enum("ClassWeightChoice", {name: name for name in CLASS_WEIGHTS}, type=str)
TEST_FRACTION_HELP = (
    "Share of the videos held out as the test set by --split auto (whole groups); "
    "never seen in training or epoch selection."
)
VAL_FRACTION_HELP = (
    "Share of the training videos held out (whole groups) as the validation set that picks the best epoch; "
    "0: no validation, the last epoch is kept."
)


# Options that train and compare share, declared once so their defaults and help cannot drift apart.
UNITS_OPTION = typer.Option(
    HeadConfig.units, help="Recurrent units (lstm, gru), model width (transformer), filters (tcn)."
)
LAYERS_OPTION = typer.Option(
    HeadConfig.num_layers,
    "--layers",
    help="Encoder blocks (transformer) or dilated convolution levels, dilations 1, 2, 4, ... "
    "(tcn: at least this many, more for the receptive field to span the frames).",
)
ATTENTION_HEADS_OPTION = typer.Option(HeadConfig.num_heads, "--attention-heads", help="Attention heads (transformer).")
POSITIONS_OPTION = typer.Option(HeadConfig.positions, help="Frame positions: fixed sinusoids or learned (transformer).")
POOLING_OPTION = typer.Option(HeadConfig.pooling, help="mean over the real frames, or a cls token (transformer).")
KERNEL_SIZE_OPTION = typer.Option(HeadConfig.kernel_size, help="Frames per convolution at dilation 1 (tcn).")
FRAMES_OPTION = typer.Option(
    TrainConfig.frames,
    "--frames",
    help="0: the stored frames as they are; T: a T-frame clip of each video from its stored frames (one per segment), "
    "e.g. from a dense cache.",
)
CLIP_SAMPLING_OPTION = typer.Option(
    TrainConfig.clip_sampling,
    help="With --frames T: uniform (each segment's centre) or random (a random frame per segment, "
    "new every epoch: augmentation).",
)
TEST_CLIPS_OPTION = typer.Option(
    TrainConfig.test_clips,
    help="With --frames T: test accuracy (and evaluate, predict) averages the softmax over K evenly offset clips.",
)
CLASS_WEIGHT_OPTION = typer.Option(
    TrainConfig.class_weight,
    help="balanced: weigh each training video by n / (classes x its class's count), for imbalanced caches.",
)
DENSE_OPTION = typer.Option(HeadConfig.dense, help="Width of the ReLU layer before the softmax.")
DROPOUT_OPTION = typer.Option(HeadConfig.dropout, help="Dropout on the recurrent layer's inputs.")
RECURRENT_DROPOUT_OPTION = typer.Option(
    HeadConfig.recurrent_dropout, help="Dropout on the recurrent state (the notebook's 0.5 is slower)."
)
PATIENCE_OPTION = typer.Option(
    TrainConfig.patience, help="Stop after this many epochs without a better validation epoch; 0: train every epoch."
)
EPOCHS_HELP = (
    "Training epochs; the kept epoch has the best validation accuracy, ties broken by validation loss "
    "(the last epoch with --val-fraction 0)."
)
BATCH_SIZE_OPTION = typer.Option(TrainConfig.batch_size, help="Videos per training step.")
LEARNING_RATE_OPTION = typer.Option(TrainConfig.learning_rate, help="Adam learning rate.")
SPLIT_OPTION = typer.Option(
    "auto", help="The test videos: auto: group-aware stratified (--test-fraction); ucf101-N: official UCF101 split N."
)
SPLIT_FILE_OPTION = typer.Option(
    None, help="UCF101 trainlist/testlist .txt, or a CSV path,subset (train|val|test; e.g. a model folder's split.csv)."
)
TEST_FRACTION_OPTION = typer.Option(TrainConfig.test_fraction, help=TEST_FRACTION_HELP)
VAL_FRACTION_OPTION = typer.Option(TrainConfig.val_fraction, help=VAL_FRACTION_HELP)
SEED_OPTION = typer.Option(TrainConfig.seed, help="Seed of the split, the weights and the batch order.")


@app.command("train")
@with_output_options
def train_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The model folder to write (new or empty; --overwrite replaces a model folder)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the model folder at --out (and its evaluation reports)."
    ),
    head: HeadChoice = typer.Option(
        "lstm",
        help="Sequence head, or a baseline on mean-pooled features: linear (logistic regression, C chosen on "
        "validation) or knn (cosine k-nearest neighbours, k chosen on validation).",
    ),
    units: int = UNITS_OPTION,
    dense: int = DENSE_OPTION,
    dropout: float = DROPOUT_OPTION,
    recurrent_dropout: float = RECURRENT_DROPOUT_OPTION,
    layers: int = LAYERS_OPTION,
    attention_heads: int = ATTENTION_HEADS_OPTION,
    positions: PositionsChoice = POSITIONS_OPTION,
    pooling: PoolingChoice = POOLING_OPTION,
    kernel_size: int = KERNEL_SIZE_OPTION,
    epochs: int = typer.Option(TrainConfig.epochs, help=EPOCHS_HELP),
    patience: int = PATIENCE_OPTION,
    batch_size: int = BATCH_SIZE_OPTION,
    learning_rate: float = LEARNING_RATE_OPTION,
    split: SplitChoice = SPLIT_OPTION,
    split_file: Path | None = SPLIT_FILE_OPTION,
    test_fraction: float = TEST_FRACTION_OPTION,
    val_fraction: float = VAL_FRACTION_OPTION,
    seed: int = SEED_OPTION,
    frames: int = FRAMES_OPTION,
    clip_sampling: ClipSamplingChoice = CLIP_SAMPLING_OPTION,
    test_clips: int = TEST_CLIPS_OPTION,
    class_weight: ClassWeightChoice = CLASS_WEIGHT_OPTION,
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help="Also write TensorBoard logs to this folder."),
    init_from_text: bool = typer.Option(
        False,
        "--init-from-text",
        help="Start the final layer from the class text embeddings of the cache's preset (CLIP, SigLIP): "
        "training starts at zero-shot accuracy.",
    ),
    prompt: list[str] = typer.Option(
        [], "--prompt", help="With --init-from-text: a prompt template with one {}; repeat to ensemble."
    ),
    class_texts: Path | None = typer.Option(
        None, "--class-texts", help="With --init-from-text: a CSV class,text giving the words of some classes."
    ),
) -> None:
    """Train a sequence head on a cache and write MODEL_DIR: model.keras, featcache.json, history, curves, split."""
    import_keras_quietly()  # before the model modules import it
    from featcache.training.train import train

    with errors_as_exit_codes():
        head_config = HeadConfig(
            head=head.value,
            units=units,
            dense=dense,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            num_layers=layers,
            num_heads=attention_heads,
            positions=positions.value,
            pooling=pooling.value,
            kernel_size=kernel_size,
        )
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
            class_weight=class_weight.value,
            frames=frames,
            clip_sampling=clip_sampling.value,
            test_clips=test_clips,
            patience=patience,
        )
        if (prompt or class_texts) and not init_from_text:
            raise InputError("--prompt and --class-texts only apply with --init-from-text")
        result = train(
            cache,
            out,
            head_config,
            train_config,
            progress=say,
            overwrite=overwrite,
            init_from_text=init_from_text,
            prompts=prompt,
            class_texts=None if class_texts is None else read_class_texts(class_texts),
        )
    if result.baseline is not None:
        choice = result.baseline
        accuracy = "" if result.best_val_accuracy is None else f": validation accuracy {result.best_val_accuracy:.3f}"
        typer.echo(
            f"{head.value}: {choice['setting']} {choice['value']:g} kept{accuracy} "
            f"({choice['chosen_on']}; {result.seconds_per_epoch:.2f} s per candidate)"
        )
    elif result.best_val_accuracy is None:
        typer.echo(
            f"no validation set: the last epoch ({result.best_epoch}) is kept ({result.seconds_per_epoch:.2f} s/epoch)"
        )
    else:
        typer.echo(
            f"best epoch {result.best_epoch}: validation accuracy {result.best_val_accuracy:.3f} "
            f"({result.seconds_per_epoch:.2f} s/epoch); its weights are kept"
        )
    model_file = result.metadata.model_file if result.metadata is not None else "model.keras"
    say(f"model folder: {out} ({model_file}, featcache.json, history.csv, learning_curves.png, split.csv)")
    say(f"test accuracy (the {result.split.num_test} test videos): featcache evaluate {out} {cache}")
    print_warnings(result.warnings)


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        warn(warning)


@app.command("compare")
@with_output_options
def compare_command(
    cache: Path = typer.Argument(..., help="An HDF5 cache written by `featcache embed`."),
    heads: str = typer.Option(",".join(HEAD_NAMES), help=f"Comma-separated heads from {', '.join(HEAD_NAMES)}."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Keep each head's model folder in OUT/<head>/ and the table in OUT/comparison.json."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace model folders already in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as one JSON object and nothing else."),
    html: bool = typer.Option(
        False, "--html", help="With --out: also write OUT/comparison.html and each head's model page."
    ),
    videos: Path | None = typer.Option(
        None, "--videos", help="With --html: the folder (or CSV) the cache was embedded from, for thumbnails."
    ),
    zero_shot: bool = typer.Option(
        False, "--zero-shot", help="Also a zero-shot row: class names through the cache's text tower (CLIP, SigLIP)."
    ),
    units: int = UNITS_OPTION,
    dense: int = DENSE_OPTION,
    dropout: float = DROPOUT_OPTION,
    recurrent_dropout: float = RECURRENT_DROPOUT_OPTION,
    layers: int = LAYERS_OPTION,
    attention_heads: int = ATTENTION_HEADS_OPTION,
    positions: PositionsChoice = POSITIONS_OPTION,
    pooling: PoolingChoice = POOLING_OPTION,
    kernel_size: int = KERNEL_SIZE_OPTION,
    epochs: int = typer.Option(
        TrainConfig.epochs, help="Training epochs per head; " + EPOCHS_HELP[len("Training epochs; ") :]
    ),
    patience: int = PATIENCE_OPTION,
    batch_size: int = BATCH_SIZE_OPTION,
    learning_rate: float = LEARNING_RATE_OPTION,
    split: SplitChoice = SPLIT_OPTION,
    split_file: Path | None = SPLIT_FILE_OPTION,
    test_fraction: float = TEST_FRACTION_OPTION,
    val_fraction: float = VAL_FRACTION_OPTION,
    seed: int = SEED_OPTION,
    frames: int = FRAMES_OPTION,
    clip_sampling: ClipSamplingChoice = CLIP_SAMPLING_OPTION,
    test_clips: int = TEST_CLIPS_OPTION,
    class_weight: ClassWeightChoice = CLASS_WEIGHT_OPTION,
) -> None:
    # `\` joins the two lines: typer would show a line break of the docstring in `featcache --help`'s command list.
    """Train several heads on the same cache and split; print test accuracy, validation accuracy, seconds per epoch \
and size."""
    import_keras_quietly()  # before the model modules import it
    from featcache.training.compare import compare_heads, comparison_as_json, format_comparison

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
            class_weight=class_weight.value,
            frames=frames,
            clip_sampling=clip_sampling.value,
            test_clips=test_clips,
            patience=patience,
        )
        if html and out is None:
            raise InputError("--html needs --out DIR: the page links each head's model folder")
        if videos is not None and not html:
            raise InputError("--videos only applies with --html")
        head_names = [name.strip() for name in heads.split(",") if name.strip()]
        head_overrides = {
            "units": units,
            "dense": dense,
            "dropout": dropout,
            "recurrent_dropout": recurrent_dropout,
            "num_layers": layers,
            "num_heads": attention_heads,
            "positions": positions.value,
            "pooling": pooling.value,
            "kernel_size": kernel_size,
        }
        rows = compare_heads(
            cache,
            head_names,
            head_overrides,
            train_config,
            progress=None if as_json else say,
            out_dir=out,
            overwrite=overwrite,
            zero_shot=zero_shot,
        )
        if html:
            from featcache.report.comparison_page import write_compared_heads_report

            comparison_page = write_compared_heads_report(rows, cache, out, video_root=videos)
    typer.echo(comparison_as_json(rows) if as_json else format_comparison(rows))
    if html and not as_json:
        say(f"comparison page: {comparison_page}")
    for row in rows:
        print_warnings([f"{row.head}: {warning}" for warning in row.warnings])


@app.command("evaluate")
@with_output_options
def evaluate_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    cache: Path = typer.Argument(..., help="The HDF5 feature cache to score the model on."),
    subset: str = typer.Option(
        "default",
        "--subset",
        help="default: the test videos on the model's own training cache, "
        "on any other cache all videos but those the model trained or validated on; test; all.",
    ),
    old_split: str | None = typer.Option(None, "--split", hidden=True, help="The old name of --subset."),
    top_k: int | None = typer.Option(
        None,
        "--top-k",
        help="k of the top-k accuracy (default: min(3, number of classes - 1); not shown when k >= the classes).",
    ),
    report_dir: Path | None = typer.Option(
        None, "--report-dir", help="Where report.json and the PNG go (default: MODEL_DIR/evaluation/<cache stem>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object and nothing else."),
    html: bool = typer.Option(
        False, "--html", help="Also write report.html beside report.json (what `featcache report` writes)."
    ),
    videos: Path | None = typer.Option(
        None, "--videos", help="With --html: the folder (or CSV) the cache was embedded from, for thumbnails."
    ),
) -> None:
    """Score a trained model on a cache: accuracy, top-k, per-class metrics, confusion matrix, misclassified videos."""
    # No Keras import here: a sequence head's loading imports it (quietly), a baseline's is numbers only.
    from featcache.inference.evaluate import evaluate, format_report

    if old_split is not None:
        # Renamed: train's --split chooses the split itself, this picks which of its videos to score.
        typer.secho("Note: evaluate --split is now --subset (the old name still works for now).", err=True)
        subset = old_split
    with errors_as_exit_codes():
        if videos is not None and not html:
            raise InputError("--videos only applies with --html")
        if html:
            from featcache.report import write_model_report

            html_path, data = write_model_report(
                model_dir, cache, video_root=videos, subset=subset, top_k=top_k, report_dir=report_dir
            )
            report = data.evaluation
        else:
            report = evaluate(model_dir, cache, subset=subset, top_k=top_k, report_dir=report_dir)
    typer.echo(report.to_json() if as_json else format_report(report))
    if html and not as_json:
        typer.echo(f"Report HTML: {html_path}")


@app.command("predict")
@with_output_options
def predict_command(
    model_dir: Path = typer.Argument(..., help="A model folder written by `featcache train`."),
    videos: list[Path] = typer.Argument(
        ..., help="Video files, folders (every video below them) or CSV lists path,label[,group]."
    ),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to list per video (at most the model's classes)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Also write the predictions as CSV: path, true_label, predicted, probability, the other top-k, error.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object {model_dir, predictions} (with --window: the windows.json object) "
        "and nothing else.",
    ),
    window: float | None = typer.Option(
        None,
        "--window",
        help="Seconds: classify every window of this length (long videos; one decode each) instead of the whole video.",
    ),
    stride: float | None = typer.Option(
        None, "--stride", help="Seconds from one window's start to the next (default: --window, back to back)."
    ),
    window_dir: Path | None = typer.Option(
        None,
        "--window-dir",
        help="Where windows.csv, windows.json and a timeline PNG per video go (default: MODEL_DIR/windows).",
    ),
    html: bool = typer.Option(
        False, "--html", help="With --window: also write windows.html (timelines, frames at the window centres)."
    ),
    runtime: RuntimeChoice = typer.Option("auto", help=RUNTIME_HELP),
    decoder: DecoderChoice = typer.Option("auto", help=DECODER_HELP),
) -> None:
    """Classify videos with a trained model, embedded with the extractor and sampling stored with it.

    With --window: every window of each video, written as CSV, JSON and a timeline PNG (class probability over time).
    Exit code 1 when some videos could not be read (each is listed with its reason; the others are still predicted).
    """
    # No Keras import here: a sequence head's loading imports it, and so does the extractor unless OpenVINO starts
    # from its compile cache (both quietly), so a baseline on OpenVINO predicts without TensorFlow (BENCHMARKS.md §9).
    if window is not None:
        _predict_windows(model_dir, videos, window, stride, window_dir, as_json, html, runtime.value, decoder.value)
        return
    from featcache.inference.predict import describe_failure, format_predictions, predict_videos, write_predictions_csv

    with errors_as_exit_codes():
        if stride is not None or window_dir is not None or html:
            raise InputError("--stride, --window-dir and --html only apply with --window SECONDS")
        with count_progress("predicting") as report_progress:
            predictions = predict_videos(
                model_dir, videos, top_k=top_k, progress=report_progress, runtime=runtime.value, decoder=decoder.value
            )
        if out is not None:
            write_predictions_csv(predictions, out)
    if as_json:
        typer.echo(
            json.dumps({"model_dir": str(model_dir), "predictions": [p.to_dict() for p in predictions]}, indent=2)
        )
    else:
        typer.echo(format_predictions(predictions))
        if out is not None:
            say(f"predictions written to {out}")
    failed = [prediction for prediction in predictions if prediction.error is not None]
    for prediction in failed:
        typer.secho(f"Error: {describe_failure(prediction)}", fg=typer.colors.RED, err=True)
    if failed:
        typer.secho(f"{len(failed)} of {len(predictions)} videos could not be read", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)


def _predict_windows(
    model_dir: Path,
    videos: list[Path],
    window: float,
    stride: float | None,
    window_dir: Path | None,
    as_json: bool,
    html: bool,
    runtime: str,
    decoder: str,
) -> None:
    from featcache.cache.describe import count_decoders, format_decoder_counts
    from featcache.config import WindowConfig
    from featcache.inference.windows import format_windows, predict_windows, write_window_reports

    with errors_as_exit_codes():
        window_config = WindowConfig(window_seconds=window, stride_seconds=stride)
        report = predict_windows(model_dir, videos, window_config, runtime, decoder)
        written = write_window_reports(report, window_dir if window_dir is not None else Path(model_dir) / "windows")
        if html:
            from featcache.report import write_windows_report
            from featcache.report.windows_page import WINDOWS_REPORT_FILE

            written.append(write_windows_report(report, written[0].parent / WINDOWS_REPORT_FILE))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(format_windows(report))
        # As `embed` prints them: how many videos each decoder took, and why some were decoded sequentially.
        for line in format_decoder_counts(count_decoders(video.decoder for video in report.videos if video.decoder)):
            typer.echo(line)
        typer.echo(f"windows written to {written[0].parent} ({', '.join(path.name for path in written)})")
    failed = [video for video in report.videos if video.error is not None]
    if failed:
        typer.secho(f"{len(failed)} of {len(report.videos)} videos could not be read", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_SOME_VIDEOS_FAILED)
