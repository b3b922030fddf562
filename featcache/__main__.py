"""`python -m featcache`: the same as the `featcache` command."""

from featcache.cli import app

app(prog_name="featcache")
