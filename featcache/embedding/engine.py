"""What every stage-one engine takes and gives back, so that `embed` does not care which one runs.

An engine is started for a run once `embed` knows there is something to embed. The local engine builds the model
then, so its settings record is known before a video is embedded; the Ray engine only checks that Ray is there
(its workers build the model, and a new cache takes the first worker's record). Either one then embeds the job
into the cache, writing shards and committing the index as it goes, and says what it ran and what it found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from featcache.config import EmbedConfig
from featcache.video.find import VideoEntry
from featcache.video.fingerprints import FileFingerprint

if TYPE_CHECKING:
    from featcache.cache.writer import WritableCache

VideoDone = Callable[[str, int, "str | None"], None]  # (relative path, frames embedded, failure or None)


@dataclass(frozen=True)
class EmbedJob:
    """The videos an engine embeds, and how.

    requested: the settings record the options ask for (`settings.requested_settings`): what a model must match on a
      cache that has no record yet. on_video_done: called once per video as it finishes or fails.
    verbose: show the engine's own logs (Ray's, its workers' output).
    """

    videos: list[VideoEntry]
    video_root: Path
    config: EmbedConfig
    fingerprints: dict[str, FileFingerprint]
    requested: dict[str, Any]
    on_video_done: VideoDone
    verbose: bool = False


@dataclass
class EngineOutcome:
    """What an engine reports besides the videos: the workers it ran, and shards it found unreadable and left alone.

    runtimes: what ran the extractor ("openvino", "keras (why not OpenVINO)"; several, comma-separated, on Ray).
    """

    workers: str = ""
    problems: list[str] = field(default_factory=list)
    runtimes: str = ""


class Engine(Protocol):
    """A started engine.

    settings_record: its model's record when known before embedding (the local engine), else None.
    """

    settings_record: dict[str, Any] | None

    def embed(self, job: EmbedJob, cache: WritableCache) -> EngineOutcome: ...
