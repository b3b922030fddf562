"""The `featcache` command line: parses options, builds a config, calls one library function, prints.

No logic lives only here. Errors map to exit codes:
  0 success; 1 the run finished but some videos failed (listed); 2 bad options or input (one line, no traceback).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides our output

import contextlib
from collections.abc import Iterator

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


# --- pipelines and demo (run, demo) ---


if __name__ == "__main__":
    app()
