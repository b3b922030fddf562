"""The `featcache` command line: parses options, builds a config, calls one library function, prints.

No logic lives only here. One module per group of commands registers them on the shared typer app.
"""

# Imported for their side effect, in the order `featcache --help` lists them: each registers its commands.
# isort: off
from featcache.cli import video_commands  # noqa: F401
from featcache.cli import model_commands  # noqa: F401
from featcache.cli import text_commands  # noqa: F401
from featcache.cli import search_commands  # noqa: F401
from featcache.cli import report_commands  # noqa: F401
from featcache.cli import export_commands  # noqa: F401
from featcache.cli import pipeline_commands  # noqa: F401

# isort: on
from featcache.cli.common import app

__all__ = ["app"]
