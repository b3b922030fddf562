"""The model page: `featcache report MODEL_DIR [CACHE]` and `featcache evaluate --html`."""

from __future__ import annotations

from pathlib import Path

from featcache.cache import Cache
from featcache.report.model_data import DEFAULT_MAX_MISCLASSIFIED, ModelPageData, gather_model_page
from featcache.report.render import render_page, write_page
from featcache.report.thumbnails import DEFAULT_THUMBNAIL_SIZE
from featcache.training.model_folder import ModelFolder

MODEL_REPORT_FILE = "report.html"  # beside report.json in the evaluation folder


def render_model_page(data: ModelPageData) -> str:
    """The model page's HTML."""
    return render_page("model.html.j2", page=data, report=data.evaluation)


def write_model_report(
    model_dir: Path | ModelFolder,
    cache_path: Path | Cache | None = None,
    out: Path | None = None,
    video_root: Path | None = None,
    subset: str = "default",
    top_k: int | None = None,
    report_dir: Path | None = None,
    max_misclassified: int = DEFAULT_MAX_MISCLASSIFIED,
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE,
) -> tuple[Path, ModelPageData]:
    """Evaluate the model on the cache and write its page; return (the page's path, what it shows).

    cache_path: default the model's training cache. out: default report.html in the evaluation folder
    (MODEL_DIR/evaluation/<cache stem>/, beside report.json). video_root: the folder the cache was embedded from,
    for the thumbnails of the frames the model saw (None: the strips say so).
    """
    data = gather_model_page(
        model_dir, cache_path, video_root, subset, top_k, report_dir, max_misclassified, thumbnail_size
    )
    path = Path(out) if out is not None else Path(data.evaluation.report_dir) / MODEL_REPORT_FILE
    return write_page(path, render_model_page(data)), data
