from featcache.cli import app

app()
