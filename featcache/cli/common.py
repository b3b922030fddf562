"""What every `featcache` command shares: the typer app, quiet Keras import, errors as exit codes, progress.

Exit codes: 0 success; 1 the run finished but some videos failed (listed); 2 bad options or input (one
line, no traceback); 130 interrupted (finished work is kept).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer

from featcache.cli.output import VERBOSITY, count_progress, say, warn, with_output_options
from featcache.config import DECODERS, RUNTIMES
from featcache.errors import FeatcacheError, InputError
from featcache.extractors.keras_loader import import_keras_quietly
from featcache.version import __version__

if TYPE_CHECKING:
    pass

EXIT_SOME_VIDEOS_FAILED = 1
EXIT_USAGE = 2  # typer's own code for a usage error
EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT death
# `--runtime` of every command that runs the extractor on frames (embed, predict).
RuntimeChoice = enum.Enum("RuntimeChoice", {name: name for name in RUNTIMES}, type=str)
RUNTIME_HELP = (
    "What runs the extractor: openvino (CPU; pip install 'featcache[openvino]'), keras (its backend), "
    "auto (OpenVINO on a CPU when installed, else Keras; $FEATCACHE_RUNTIME pins it). "
    "Same features either way (docs/runtimes.md)."
)
# `--decoder` of every command that decodes videos to embed them (embed, predict with or without --window).
DecoderChoice = enum.Enum("DecoderChoice", {name: name for name in DECODERS}, type=str)
DECODER_HELP = (
    "auto: seek where the stream index is trustworthy and seeking decodes fewer frames, else sequential; "
    "seek: exact keyframe seeking (falls back to sequential, with the reason); sequential: every frame. "
    "The frames are the same whichever decodes them."
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Embed video frames once with a frozen CNN into an HDF5 cache, then train sequence heads on it in seconds.",
)

__all__ = [
    "app",
    "count_progress",
    "errors_as_exit_codes",
    "import_keras_quietly",
    "say",
    "warn",
    "with_output_options",
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"featcache {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print featcache's version and exit."
    ),
) -> None:
    """Embed video frames once with a frozen CNN into an HDF5 cache, then train sequence heads on it in seconds."""


@contextlib.contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Turn our errors into one line on stderr and an exit code (2 for bad input, 1 otherwise).

    OSError too: an unwritable --out or a full disk is the user's to fix, and a traceback hides the path.
    Ctrl-C exits 130 without a traceback; what a command had finished is kept (embed's committed shards).
    """
    try:
        yield
    except (InputError, OSError) as err:
        _print_error(err)
        raise typer.Exit(EXIT_USAGE) from None
    except FeatcacheError as err:
        _print_error(err)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("Interrupted.", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_error(err: BaseException) -> None:
    """One line; with --verbose also the third-party error behind it (an HDF5 or OpenCV message)."""
    typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
    if VERBOSITY.verbose and err.__cause__ is not None:
        typer.secho(f"  caused by {type(err.__cause__).__name__}: {err.__cause__}", err=True)


@contextlib.contextmanager
def embed_progress_bar() -> Iterator[Callable[..., None]]:
    """embed's progress (videos done / to do, rate, ETA, failures): see featcache.cli.output.count_progress."""
    with count_progress("embedding") as report:
        yield lambda progress: report(progress.num_done, progress.num_to_embed, progress.num_failed)
