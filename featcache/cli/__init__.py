"""The `featcache` command line: parses options, builds a config, calls one library function, prints.

No logic lives only here. One module per group of commands registers them on the shared typer app.
"""

# Imported for their side effect, in the order `featcache --help` lists them: each registers its commands.
from featcache.cli import video_commands, model_commands, text_commands, export_commands, pipeline_commands  # noqa: F401  # isort: skip
from featcache.cli.common import app

__all__ = ["app"]
