"""The comparison page: every head side by side (`compare --html`, `featcache run`), linking each model's page."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from featcache.cache import Cache
from featcache.errors import InputError
from featcache.report.images import figure_to_data_uri, new_figure
from featcache.report.render import render_page, write_page
from featcache.training.model_folder import read_history

if TYPE_CHECKING:
    from featcache.training.compare import ComparisonRow

COMPARISON_REPORT_FILE = "comparison.html"


@dataclass(frozen=True)
class ComparedHead:
    """One head's column: its scores, speed and size, its model folder, and its own page (None: not written).

    accuracy: on the scored videos (the held-out test videos); best_val_accuracy: None without a validation set;
    num_parameters: None where not known.
    """

    name: str
    head: str
    accuracy: float
    best_val_accuracy: float | None
    best_epoch: int
    seconds_per_epoch: float
    num_parameters: int | None
    model_dir: Path | None
    model_page: Path | None = None
    warnings: list[str] = field(default_factory=list)


def curves_figure_uri(heads: list[ComparedHead]) -> str | None:
    """Training loss and validation accuracy (training accuracy without validation) per epoch of every head
    that has a model folder, as one SVG data URI; None when no head has one."""
    histories = [(head, read_history(head.model_dir)) for head in heads if head.model_dir is not None]
    if not histories:
        return None
    figure = new_figure(9.0, 3.6)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for head, history in histories:
        epochs = [row["epoch"] for row in history]
        loss_axes.plot(epochs, [row["loss"] for row in history], label=head.name)
        has_validation = any(row["val_accuracy"] is not None for row in history)
        metric = "val_accuracy" if has_validation else "accuracy"
        accuracy_axes.plot(
            epochs, [row[metric] for row in history], label=head.name + ("" if has_validation else " (train)")
        )
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("training loss")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("validation accuracy")
    loss_axes.legend()
    accuracy_axes.legend()
    return figure_to_data_uri(figure)


def write_comparison_report(heads: list[ComparedHead], out: Path, title: str, scored: str) -> Path:
    """Write the comparison page to `out`; links to the model pages are relative, so the folder can move.

    title: what was compared (e.g. the cache); scored: which videos the accuracies are on.
    """
    out = Path(out)
    links = {
        head.name: os.path.relpath(head.model_page, out.parent) if head.model_page is not None else None
        for head in heads
    }
    best = max((head.accuracy for head in heads), default=None)
    html = render_page(
        "comparison.html.j2",
        title=title,
        scored=scored,
        heads=heads,
        links=links,
        best_accuracy=best,
        curves_uri=curves_figure_uri(heads),
    )
    return write_page(out, html)


def write_compared_heads_report(
    rows: list[ComparisonRow], cache_path: Path | Cache, out_dir: Path, video_root: Path | None = None
) -> Path:
    """`compare --html`: a model page per head (in its model folder's evaluation/) and OUT/comparison.html.

    rows: `compare_heads(..., out_dir=out_dir)`'s, each with its model folder. Returns the comparison page's path.
    """
    from featcache.report.model_page import write_model_report

    heads = []
    for row in rows:
        if row.model_dir is None:
            raise InputError("compare --html needs --out DIR (out_dir): the page links each head's model folder")
        model_page, _ = write_model_report(Path(row.model_dir), cache_path, video_root=video_root)
        heads.append(
            ComparedHead(
                name=row.head,
                head=row.head,
                accuracy=row.test_accuracy,
                best_val_accuracy=row.best_val_accuracy,
                best_epoch=row.best_epoch,
                seconds_per_epoch=row.seconds_per_epoch,
                num_parameters=row.num_parameters,
                model_dir=Path(row.model_dir),
                model_page=model_page,
                warnings=list(row.warnings),
            )
        )
    cache_name = cache_path.path if isinstance(cache_path, Cache) else Path(cache_path)
    return write_comparison_report(
        heads, Path(out_dir) / COMPARISON_REPORT_FILE, str(cache_name), "the held-out (test) videos of the split"
    )
