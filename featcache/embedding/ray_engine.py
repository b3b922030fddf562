"""Stage one on a Ray cluster (`embed --engine ray`): the local engine's decode, extractor and shards,
spread over nodes.

Ray Data runs the pipeline; everything else is the local engine's code:

    videos still to embed (one row each)
      -> _DecodeVideos: a pool of CPU actors, each with one `decode_workers` process (a decoder crash costs one
         video, as locally; Ray itself would retry a crashed task forever), sampling with `video/decode.py`
      -> _EmbedVideos: a pool of actors, one GPU each when asked; each builds the extractor once, embeds
         batches of frames across videos (`batching.embed_decoded_videos`), checks each video
         (`checks.ShardBatch`) and writes each batch of videos as one format-2 shard straight
         into the cache's shard folder
      -> the driver: adopts each shard into the index as it arrives and commits every few seconds, so
         killing the driver loses at most that; a rerun adopts the shards it had not listed yet (checksummed).

The driver builds no model and imports no TensorFlow: on a new cache the first embed worker's settings record
becomes the cache's, and every other worker's must equal it.

A worker killed mid-batch is restarted by Ray and the batch retried: the retry writes a new shard, and the
shard of a batch that died after writing (never reported to the driver) is deleted at the end of the run,
as are any others the index does not list; a shard is renamed into place whole, so none is read half-written.
Videos and the cache must be on a filesystem every node sees (checked at the start).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featcache.cache.settings import describe_settings_difference
from featcache.cache.shards import ShardInfo, write_shard
from featcache.config import EmbedConfig, SamplingConfig
from featcache.embedding.engine import EmbedJob, EngineOutcome
from featcache.embedding.ray_cluster import (
    EMBED_WORKER_CPUS,
    ClusterPlan,
    check_every_node_sees,
    connect,
    describe_ray_failure,
    import_ray,
    node_resources,
)
from featcache.errors import (
    CacheFormatError,
    CacheMismatchError,
    FeatcacheError,
    InputError,
    RayEngineError,
    VideoDecodeError,
)
from featcache.video.decode import SampledFrames
from featcache.video.find import VideoEntry
from featcache.video.fingerprints import FileFingerprint

if TYPE_CHECKING:
    from featcache.cache.writer import CacheWriter, WritableCache

SECONDS_BETWEEN_COMMITS = (
    10.0  # at most this much embedding is lost when the driver dies (as the local engine's shards)
)
# ...unless the index has grown so large that rewriting it takes more than a tenth of that: commits then
# come COMMIT_TIME_FACTOR x their own duration apart, so the driver never spends over ~10% of its time
# committing (a Kinetics-size run has ~10,000 shards; see BENCHMARKS.md, "Ray engine").
COMMIT_TIME_FACTOR = 10.0
VIDEOS_PER_SHARD = 64  # one shard per embed batch; `featcache compact` merges small shards later
# Environment the workers get from the driver: failpoints and drills, and the Keras backend, which must be
# the driver's (the settings record names the extractor, not the backend, but features must not differ).
FORWARDED_ENVIRONMENT_PREFIXES = ("FEATCACHE_", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")
WORKER_RETRIES = 3  # restarts of a worker that dies, and retries of the batch it held


class RayEngine:
    """Started with the run's config: only checks that Ray Data is installed (the driver builds no model)."""

    settings_record = None  # the embed workers build the model; a new cache takes the first worker's record

    def __init__(self, config: EmbedConfig) -> None:
        import_ray()  # said before anything else starts

    def embed(self, job: EmbedJob, cache: WritableCache) -> EngineOutcome:
        """Embed the job's videos on the cluster into `cache`.

        The outcome names the workers that ran (`ClusterPlan.describe`) and the shards left in the folder that could
        not be read (left alone, as locally). Raises RayEngineError for a cluster that cannot run the plan or a job
        that fails, InputError when a worker refuses its features or cannot build the extractor.
        """
        runtimes: set[str] = set()
        workers, problems = _embed_on_cluster(job, cache, runtimes)
        return EngineOutcome(workers, problems, ", ".join(sorted(runtimes)))


def _embed_on_cluster(job: EmbedJob, cache: WritableCache, runtimes: set[str]) -> tuple[str, list[str]]:
    """Run the pipeline into `cache`: (workers, unreadable shards); the workers' runtimes go into `runtimes`."""
    config, on_video_done = job.config, job.on_video_done
    ray = connect(config.ray_address, verbose=job.verbose)  # verbose: Ray's own logs and the workers' output
    check_every_node_sees(ray, job.video_root, cache.shard_folder)
    plan = ClusterPlan.from_nodes(config, node_resources(ray))
    results = _build_pipeline(ray, job, cache, plan)
    pipeline_started = time.time()  # wall clock, as shard files' modification times
    last_commit, seconds_between_commits = time.perf_counter(), SECONDS_BETWEEN_COMMITS
    uncommitted = False
    rows = _results_or_one_line_errors(ray, results)
    try:
        for result in rows:
            refusal = result["refusal"] or _other_extractor_than_first(cache, result)
            if refusal:
                rows.close()  # stops the pipeline: Ray ends its workers
                # Like the local engine, keep no shard of features refused: none of this run's unlisted shards.
                uncommitted = False
                _delete_shards_written_since(cache, pipeline_started)
                raise InputError(refusal)
            writer = cache.writer_for(json.loads(result["settings"]))  # on a new cache: the first worker's record
            failures = json.loads(result["failures"])
            runtimes.add(result["runtime"])
            if result["shard"]:
                writer.adopt_shard(
                    ShardInfo(
                        result["shard"],
                        int(result["size"]),
                        result["checksum"],
                        int(result["num_videos"]),
                        int(result["num_frames"]),
                    )
                )
            writer.state.failures.update(failures)
            uncommitted = True
            for path, num_frames in json.loads(result["lengths"]).items():
                on_video_done(path, num_frames, None)
            for path, reason in failures.items():
                on_video_done(path, 0, reason)
            if time.perf_counter() - last_commit > seconds_between_commits:
                commit_started = time.perf_counter()
                writer.commit()
                uncommitted, last_commit = False, time.perf_counter()
                seconds_between_commits = max(
                    SECONDS_BETWEEN_COMMITS, COMMIT_TIME_FACTOR * (last_commit - commit_started)
                )
        unreadable = _delete_unreported_shards(cache.writer) if cache.writer else []
        uncommitted = True
        return plan.describe(), unreadable
    finally:
        # Also on Ctrl-C or an error: what arrived is kept for the next run.
        if uncommitted and cache.writer:
            cache.writer.commit()


def _other_extractor_than_first(cache: WritableCache, result: dict[str, Any]) -> str:
    """A refusal when this batch's worker wrote another settings record than the cache's ('' when the same).

    Workers check their model against the cache's record, or on a new cache against the options (no sha256 yet for
    `imagenet`, no feature_dim...); the first worker's full record then becomes the cache's, and every later one must
    equal it: the same weights file hash, Keras version and backend on every node.
    """
    if cache.settings is None:
        return ""
    written_with = json.loads(result["settings"])
    if written_with == cache.settings:
        return ""
    difference = describe_settings_difference(cache.settings, written_with) or "; ".join(
        f"extractor {name} {cache.settings['extractor'].get(name)!r} vs {written_with['extractor'].get(name)!r}"
        for name in sorted(set(cache.settings["extractor"]) | set(written_with["extractor"]))
        if cache.settings["extractor"].get(name) != written_with["extractor"].get(name)
    )
    what_differs = difference or "another settings record"
    return (
        f"a Ray worker on {result['node']} builds another extractor than the first worker ({what_differs}); "
        "every node needs the same weights and libraries"
    )


def _build_pipeline(ray: Any, job: EmbedJob, cache: WritableCache, plan: ClusterPlan) -> Any:
    """The Ray Data dataset: one row per video in, one row per embed batch (its shard, failures, lengths) out."""
    config, fingerprints = job.config, job.fingerprints
    runtime_env = {
        "env_vars": {
            name: value for name, value in os.environ.items() if name.startswith(FORWARDED_ENVIRONMENT_PREFIXES)
        }
    }
    # A batch that kills its worker again and again (say, out of memory) fails the job after this many tries instead of
    # looping for ever (Ray Data's default for actors); one crash, as from a lost node, is retried.
    retries = {"max_restarts": WORKER_RETRIES, "max_task_retries": WORKER_RETRIES}
    rows = [
        {
            "path": os.fsdecode(entry.path),
            "relative_path": entry.relative_path,
            "label": entry.label,
            "group": entry.group,
            "fingerprint": fingerprints[entry.relative_path].fingerprint,
            "mtime_ns": fingerprints[entry.relative_path].mtime_ns,
        }
        for entry in job.videos
    ]
    # In order, so that a cache's rows come out in the local engine's order whatever engine wrote them
    # (row order decides the order a seeded shuffle starts from: the same training run on either).
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    decoded = ray.data.from_items(rows).map_batches(
        _DecodeVideos,
        fn_constructor_kwargs={
            "sampling": config.sampling,
            "image_size": config.extractor.image_size,
            "decoder": config.decoder,
            # The CPUs Ray gives the actor, not the node's: other actors decode on the rest.
            "seek_threads": max(1, int(plan.decode_cpus)),
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.num_decode_workers),
        num_cpus=plan.decode_cpus,
        runtime_env=runtime_env,
        **retries,
    )
    return decoded.map_batches(
        _EmbedVideos,
        fn_constructor_kwargs={
            "config": config,
            "settings": cache.settings,
            "requested": job.requested,
            "compression": cache.compression,
            "shard_folder": str(cache.shard_folder),
        },
        batch_size=VIDEOS_PER_SHARD,
        compute=ray.data.ActorPoolStrategy(size=plan.num_embed_workers),
        num_cpus=EMBED_WORKER_CPUS,
        num_gpus=plan.gpus_per_embed_worker or None,
        runtime_env=runtime_env,
        **retries,
    )


def _results_or_one_line_errors(ray: Any, results: Any) -> Iterator[dict[str, Any]]:
    """The pipeline's output rows; a failed job raises a one-line RayEngineError, not a remote traceback."""
    try:
        yield from results.iter_rows()
    except (ray.exceptions.RayError, TimeoutError) as err:
        raise RayEngineError(
            f"the Ray job failed ({describe_ray_failure(err)}); videos finished before it are kept. "
            "Run again with --verbose to see the workers' output"
        ) from err


def _delete_unreported_shards(writer: CacheWriter) -> list[str]:
    """Delete the shards no result reported: a worker died after writing one and its retry wrote another, so all its
    videos are live in other shards (adopting keeps none, and the commit deletes it). Shards that cannot be read are
    left alone and returned as problems, as the local engine does with them. Shards of other settings (an interrupted
    run's that this cache could not take) are left alone, as the local engine leaves them."""
    unreadable = []
    for name in writer.orphan_shards():
        try:
            writer.adopt_shard(name, keep=lambda path, fingerprint: writer.state.videos.get(path) is None)
        except CacheFormatError as err:
            unreadable.append(str(err))
        except CacheMismatchError:
            continue
    return unreadable


def _delete_shards_written_since(cache: WritableCache, started: float) -> None:
    """After a refusal: the shards this run's workers wrote before refusing (unlisted, and newer than the pipeline).
    Ray stops its workers when the driver stops reading; a shard renamed in that instant would be an orphan that the
    next run checks like any other."""
    for name in cache.unlisted_shards():
        shard_path = cache.shard_folder / name
        if shard_path.stat().st_mtime >= started - 1.0:  # 1 s: filesystems that round times
            shard_path.unlink(missing_ok=True)


class _DecodeVideos:
    """A decode worker: one `decode_workers` process, kept for the actor's life (an actor has no `with` around
    its life: the process is closed in `__del__`, and it exits by itself when the actor dies and its pipe closes)."""

    def __init__(self, sampling: SamplingConfig, image_size: int, decoder: str, seek_threads: int) -> None:
        from featcache.video.decode_workers import DecodeWorkerPool

        self.pool = None
        self.image_size = image_size
        self.pool = DecodeWorkerPool(1, sampling, image_size, decoder, seek_threads).__enter__()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {
            name: [] for name in (*batch, "frames", "frame_indices", "timestamps_ms", "video_facts", "decoder", "error")
        }
        for row in range(len(batch["path"])):
            for name in batch:
                out[name].append(batch[name][row])
            sampled = self.pool.decode(Path(str(batch["path"][row])))
            if isinstance(sampled, VideoDecodeError):
                sampled, error = _no_frames(self.image_size), str(sampled)
            else:
                error = ""
            out["frames"].append(sampled.frames)
            out["frame_indices"].append(np.asarray(sampled.frame_indices, np.int32))
            out["timestamps_ms"].append(np.asarray(sampled.timestamps_ms, np.float32))
            out["video_facts"].append(
                np.array(
                    [sampled.video_fps, sampled.video_num_frames, sampled.video_width, sampled.video_height], np.float64
                )
            )
            out["decoder"].append(sampled.describe_decoder())
            out["error"].append(error)
        return out

    def __del__(self) -> None:
        if self.pool is not None:
            self.pool.__exit__(None, None, None)


def _no_frames(image_size: int) -> SampledFrames:
    return SampledFrames(
        np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros(0, np.int32), np.zeros(0, np.float32), 0.0, 0, 0, 0
    )


class _EmbedVideos:
    """An embed worker: builds the extractor once, embeds a batch of decoded videos, writes them as one shard.

    Its problems go back to the driver as a refusal (one line, naming the node), never as an exception: Ray would
    turn an exception into a remote traceback, and a worker that refused once refuses every later batch too.
    """

    def __init__(
        self,
        config: EmbedConfig,
        settings: dict[str, Any] | None,
        requested: dict[str, Any],
        compression: str,
        shard_folder: str,
    ) -> None:
        """settings: the cache's record, which its shards carry; None for a new cache: this worker's own then."""
        from featcache.cache.settings import settings_record
        from featcache.embedding.checks import FeatureInformationCheck
        from featcache.extractors.openvino_start import start_extractor

        self.config, self.compression, self.shard_folder = config, compression, Path(shard_folder)
        self.node = os.uname().nodename
        self.information_check = FeatureInformationCheck(config.extractor.name)
        self.refusal = ""
        try:
            self.extractor = start_extractor(config.extractor, config.runtime)
        except (FeatcacheError, OSError) as err:
            self.refusal = f"a Ray worker on {self.node} cannot build the extractor: {err}"
            return
        own = settings_record(self.extractor.provenance, config.sampling, config.dtype)
        self.settings = settings or own
        difference = describe_settings_difference(settings or requested, own)
        if difference:
            # Another weights file on this node would write features the cache's settings do not describe.
            self.refusal = (
                f"a Ray worker on {self.node} builds another extractor than "
                f"{'the cache' if settings else 'asked for'} ({difference})"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        if not self.refusal:
            try:
                return self._embed_and_write(batch)
            except (FeatcacheError, OSError) as err:
                self.refusal = f"a Ray worker on {self.node}: {err}" if not isinstance(err, InputError) else str(err)
        return _result(refusal=self.refusal, node=self.node)

    def _embed_and_write(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from featcache.embedding.batching import embed_decoded_videos
        from featcache.embedding.checks import ShardBatch

        shard_batch = ShardBatch(self.information_check, self.config.dtype)
        entries = [
            VideoEntry(Path(str(path)), str(relative), str(label), str(group))
            for path, relative, label, group in zip(
                batch["path"], batch["relative_path"], batch["label"], batch["group"]
            )
        ]
        fingerprints = {
            entry.relative_path: FileFingerprint(str(fingerprint), int(mtime))
            for entry, fingerprint, mtime in zip(entries, batch["fingerprint"], batch["mtime_ns"])
        }
        for entry, sampled, features_or_error in embed_decoded_videos(
            self._decoded(entries, batch), self.extractor, self.config.batch_size
        ):
            shard_batch.add(entry, sampled, features_or_error, fingerprints[entry.relative_path])
        shard_batch.finish_checks()  # on what this worker has seen, if fewer videos than the check waits for
        runtime = self.extractor.runtime + (f" ({self.extractor.runtime_note})" if self.extractor.runtime_note else "")
        if not shard_batch.videos:
            return _result(failures=shard_batch.failures, settings=self.settings, node=self.node, runtime=runtime)
        info = write_shard(
            self.shard_folder,
            shard_batch.videos,
            self.config.dtype,
            self.settings,
            self.compression,
            runtime=self.extractor.runtime,
        )
        lengths = {video.path: len(video.features) for video in shard_batch.videos}
        return _result(info, shard_batch.failures, lengths, settings=self.settings, node=self.node, runtime=runtime)

    def _decoded(
        self, entries: list[VideoEntry], batch: dict[str, np.ndarray]
    ) -> Iterator[tuple[VideoEntry, SampledFrames | VideoDecodeError]]:
        for row, entry in enumerate(entries):
            if batch["error"][row]:
                yield entry, VideoDecodeError(str(batch["error"][row]))
                continue
            fps, num_frames, width, height = batch["video_facts"][row]
            yield (
                entry,
                SampledFrames(
                    np.asarray(batch["frames"][row]),
                    batch["frame_indices"][row],
                    batch["timestamps_ms"][row],
                    float(fps),
                    int(num_frames),
                    int(width),
                    int(height),
                    *_decoder_fields(str(batch["decoder"][row])),
                ),
            )


def _decoder_fields(description: str) -> tuple[str, str]:
    """SampledFrames.describe_decoder() back into (decoder, decoder_note)."""
    decoder, _, note = description.partition(": ")
    return decoder, note


def _result(
    info: ShardInfo | None = None,
    failures: dict[str, str] | None = None,
    lengths: dict[str, int] | None = None,
    refusal: str = "",
    settings: dict[str, Any] | None = None,
    node: str = "",
    runtime: str = "",
) -> dict[str, list[Any]]:
    """One output row per embed batch: the shard written (if any), its failures, each video's frame count, the
    settings record its worker writes, that worker's node and runtime; or a refusal."""
    return {
        "runtime": [runtime],
        "settings": [json.dumps(settings) if settings else ""],
        "node": [node],
        "shard": [info.name if info else ""],
        "size": [info.size if info else 0],
        "checksum": [info.checksum if info else ""],
        "num_videos": [info.num_videos if info else 0],
        "num_frames": [info.num_frames if info else 0],
        "failures": [json.dumps(failures or {})],
        "lengths": [json.dumps(lengths or {})],
        "refusal": [refusal],
    }
