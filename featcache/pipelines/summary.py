"""What a pipeline run did: one HeadOutcome per head and the PipelineSummary (runner makes them, report prints them)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

from featcache.pipelines.spec import Pipeline

if typing.TYPE_CHECKING:
    from featcache.embedding.embed import EmbedSummary


@dataclass(frozen=True)
class HeadOutcome:
    """One head's row of the report: scores of the kept epoch on the evaluated videos (the test videos by
    default), and whether this run trained it."""

    name: str
    head: str
    model_dir: Path
    trained: bool
    accuracy: float
    top_k: int
    top_k_accuracy: float | None
    num_videos: int
    subset_description: str
    best_epoch: int
    seconds_per_epoch: float
    report_json: Path
    report_html: Path | None = None  # the model page (featcache.report)
    num_parameters: int | None = None


@dataclass
class PipelineSummary:
    """What one `run_pipeline` call did, and where its files are."""

    pipeline: Pipeline
    out_dir: Path
    video_root: Path
    cache_path: Path
    embed: EmbedSummary
    heads: list[HeadOutcome] = field(default_factory=list)
    report_path: Path | None = None
    html_report_path: Path | None = None  # OUT/report.html: the heads side by side, linking their model pages

    @property
    def num_embedded(self) -> int:
        return self.embed.num_embedded

    @property
    def num_trained(self) -> int:
        return sum(outcome.trained for outcome in self.heads)
