"""HTML reports: one self-contained page per model, per comparison of heads, per cache, per windowed prediction.

    write_model_report("model_dir", "cache.h5", video_root="videos")   # `featcache report`, `evaluate --html`
    write_compared_heads_report(rows, "cache.h5", "compare_out")       # `compare --out DIR --html`
    write_cache_report("cache.h5", "cache.html")                       # `info --html`
    write_windows_report(windows_report, "windows.html")               # `predict --window --html`

Each page is one .html file with its images inline (data: URIs), no network and no server: it opens from disk or
from a CI artifact, and its core content needs no JavaScript. Modules: `render` (Jinja2 templates, the
Content-Security-Policy), `images` (matplotlib figures and frames as data URIs), `thumbnails` (frames decoded
through the decode workers), `model_data` (what the model page shows) and one module per page. Names load on
first use (PEP 562): the cache page needs no Keras.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC_NAMES = {
    "write_model_report": "featcache.report.model_page",
    "write_comparison_report": "featcache.report.comparison_page",
    "write_compared_heads_report": "featcache.report.comparison_page",
    "write_cache_report": "featcache.report.cache_page",
    "write_windows_report": "featcache.report.windows_page",
}

__all__ = sorted(_PUBLIC_NAMES)


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'featcache.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
