"""Rendering a page: the Jinja2 templates in templates/, and writing the page as one file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from featcache.files import write_atomically
from featcache.version import __version__

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Every page is self-contained: the browser may load nothing but inline styles, inline scripts and data: images,
# so a page cannot fetch anything even if a path or class name smuggled a URL into it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # paths and class names are data, never markup
        undefined=jinja2.StrictUndefined,  # a missing value is a bug in the page's data, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["metric"] = format_metric
    environment.filters["seconds"] = format_seconds
    return environment


def format_metric(value: float | None, digits: int = 3) -> str:
    """0.12345 -> '0.123'; None (undefined, e.g. the recall of an absent class) -> '-'."""
    return "-" if value is None else f"{value:.{digits}f}"


def format_seconds(milliseconds: float) -> str:
    """A timestamp for a thumbnail caption: 1234.5 ms -> '1.23 s'."""
    return f"{milliseconds / 1000.0:.2f} s"


def render_page(template_name: str, **context: Any) -> str:
    """The HTML of `template_name` (under templates/) filled with `context`."""
    template = _environment().get_template(template_name)
    return template.render(content_security_policy=CONTENT_SECURITY_POLICY, featcache_version=__version__, **context)


def write_page(path: Path, html: str) -> Path:
    """Write `html` to `path` atomically (a reader sees the old page or the new one) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temporary: temporary.write_text(html, encoding="utf-8"))
    return path
