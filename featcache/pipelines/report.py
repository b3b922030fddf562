"""The report of a pipeline run: one table row per head, written to OUT/report.txt, OUT/report.json and
OUT/report.html (the heads side by side, linking each model's page)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from featcache.pipelines.summary import PipelineSummary

HTML_REPORT_FILE = "report.html"


def format_report_table(summary: PipelineSummary) -> str:
    """One line per head: accuracy on the evaluated videos (the test videos by default), top-k, videos scored,
    best epoch, seconds per epoch, model folder."""
    top_k = summary.heads[0].top_k if summary.heads else 1
    header = (
        f"{'head':<16} {'accuracy':>8} {f'top-{top_k}':>6} {'videos':>6} "
        f"{'best epoch':>10} {'s/epoch':>8}  model folder"
    )
    lines = [header, "-" * len(header)]
    for outcome in summary.heads:
        state = "trained now" if outcome.trained else "up to date"
        lines.append(
            f"{outcome.name:<16} {outcome.accuracy:>8.3f} {_top_k_cell(outcome.top_k_accuracy)} "
            f"{outcome.num_videos:>6d} "
            f"{outcome.best_epoch:>10d} {outcome.seconds_per_epoch:>8.3f}  {outcome.model_dir} ({state})"
        )
    return "\n".join(lines)


def _top_k_cell(top_k_accuracy: float | None) -> str:
    return f"{'-':>6}" if top_k_accuracy is None else f"{top_k_accuracy:>6.3f}"


def write_report(summary: PipelineSummary) -> Path:
    """Write OUT/report.txt (the table, with what was scored) and OUT/report.json (the same rows); return report.txt."""
    scored = summary.heads[0].subset_description if summary.heads else ""
    text = (
        f"pipeline {summary.pipeline.name}: {summary.pipeline.description}\nscored on: {scored}\n\n"
        f"{format_report_table(summary)}\n"
    )
    report_path = summary.out_dir / "report.txt"
    report_path.write_text(text, encoding="utf-8")
    rows = [
        {key: (str(value) if isinstance(value, Path) else value) for key, value in dataclasses.asdict(outcome).items()}
        for outcome in summary.heads
    ]
    document = {
        "pipeline": summary.pipeline.name,
        "description": summary.pipeline.description,
        "cache": str(summary.cache_path),
        "video_root": str(summary.video_root),
        "num_embedded": summary.num_embedded,
        "num_videos_in_cache": summary.embed.num_videos_in_cache,
        "failures": summary.embed.failures,
        "heads": rows,
    }
    (summary.out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return report_path


def write_html_report(summary: PipelineSummary) -> Path:
    """Write OUT/report.html: every head side by side (accuracy, s/epoch, parameters, curves), linking the model
    pages the evaluate step wrote; return its path."""
    from featcache.report.comparison_page import ComparedHead, write_comparison_report

    heads = [
        ComparedHead(
            name=outcome.name,
            head=outcome.head,
            accuracy=outcome.accuracy,
            best_val_accuracy=_best_val_accuracy(outcome.model_dir),
            best_epoch=outcome.best_epoch,
            seconds_per_epoch=outcome.seconds_per_epoch,
            num_parameters=outcome.num_parameters,
            model_dir=outcome.model_dir,
            model_page=outcome.report_html,
        )
        for outcome in summary.heads
    ]
    scored = summary.heads[0].subset_description if summary.heads else ""
    title = f"pipeline {summary.pipeline.name}: {summary.pipeline.description}"
    return write_comparison_report(heads, summary.out_dir / HTML_REPORT_FILE, title, scored)


def _best_val_accuracy(model_dir: Path) -> float | None:
    from featcache.training.model_folder import ModelMetadata

    return ModelMetadata.read(model_dir).best_val_accuracy
