"""Stage one on a Ray cluster (`embed --engine ray`): the local engine's decode, extractor and shards, spread over nodes.

Ray Data runs the pipeline; everything else is the local engine's code:

    videos still to embed (one row each)
      -> _DecodeVideos: a pool of CPU actors, each with one `decode_workers` process (a decoder crash costs one
         video, as locally; Ray itself would retry a crashed task forever), sampling with `frames.py`
      -> _EmbedVideos: a pool of actors, one GPU each when asked; each builds the extractor once, embeds
         batches of frames across videos (`batching.embed_decoded_videos`), checks each video
         (`embedded_videos.ShardBatch`) and writes each batch of videos as one format-2 shard straight
         into the cache's shard folder
      -> the driver: adopts each shard into the index as it arrives and commits every few seconds, so
         killing the driver loses at most that; a rerun adopts the shards it had not listed yet (checksummed).

A worker killed mid-batch is restarted by Ray and the batch retried: the retry writes a new shard, and the
shard of a batch that died after writing (never reported to the driver) is deleted at the end of the run,
as are any others the index does not list; a shard is renamed into place whole, so none is read half-written.
Videos and the cache must be on a filesystem every node sees (checked at the start).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from featcache.cache.index import CacheWriter
from featcache.cache.shards import ShardInfo, write_shard
from featcache.config import EmbedConfig, SamplingConfig
from featcache.errors import InputError, RayEngineError, VideoDecodeError
from featcache.fingerprints import FileFingerprint
from featcache.frames import SampledFrames
from featcache.version import __version__
from featcache.videos import VideoEntry

INSTALL_HINT = "pip install 'featcache[ray]'"
SECONDS_BETWEEN_COMMITS = 10.0  # at most this much embedding is lost when the driver dies (as the local engine's shards)
# ...unless the index has grown so large that rewriting it takes more than a tenth of that: commits then
# come COMMIT_TIME_FACTOR x their own duration apart, so the driver never spends over ~10% of its time
# committing (a Kinetics-size run has ~10,000 shards; see BENCHMARKS.md, "Ray engine").
COMMIT_TIME_FACTOR = 10.0
VIDEOS_PER_SHARD = 64  # one shard per embed batch; `featcache compact` merges small shards later
# Environment the workers get from the driver: failpoints and drills, and the Keras backend, which must be
# the driver's (the settings record names the extractor, not the backend, but features must not differ).
FORWARDED_ENVIRONMENT_PREFIXES = ("FEATCACHE_", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs Ray Data, not only the core)
    except ImportError as err:
        raise RayEngineError(f"--engine ray needs Ray Data, which is not installed ({err}); install it with: {INSTALL_HINT}") from err
    return ray


@dataclass(frozen=True)
class ClusterPlan:
    """How many workers of each kind, from the options and what the cluster has."""

    num_embed_workers: int
    gpus_per_embed_worker: float
    num_decode_workers: int
    decode_cpus: float

    @classmethod
    def from_cluster(cls, config: EmbedConfig, cluster_resources: dict[str, float]) -> "ClusterPlan":
        num_cpus = float(cluster_resources.get("CPU", 0))
        num_gpus = float(cluster_resources.get("GPU", 0))
        gpus_per_worker = config.gpus_per_worker if config.gpus_per_worker is not None else (1.0 if num_gpus else 0.0)
        if gpus_per_worker > num_gpus:
            raise RayEngineError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {num_gpus:g} GPU(s); use 0 for CPU workers")
        if config.embed_workers:
            num_embed_workers = config.embed_workers
        elif gpus_per_worker:
            num_embed_workers = max(1, int(num_gpus // gpus_per_worker))  # one per GPU (or GPU share)
        else:
            num_embed_workers = 1
        embed_cpus = num_embed_workers * EMBED_WORKER_CPUS
        if num_cpus < embed_cpus + config.decode_cpus:
            raise RayEngineError(
                f"the Ray cluster has {num_cpus:g} CPU(s): too few for {num_embed_workers} embed worker(s) ({EMBED_WORKER_CPUS:g} CPU each) "
                f"and one decode worker ({config.decode_cpus:g} CPU); lower --embed-workers or --decode-cpus"
            )
        num_decode_workers = config.num_decode_workers or max(1, int((num_cpus - embed_cpus) // config.decode_cpus))
        return cls(num_embed_workers, gpus_per_worker, num_decode_workers, config.decode_cpus)

    def describe(self) -> str:
        gpus = f", {self.gpus_per_embed_worker:g} GPU each" if self.gpus_per_embed_worker else " (CPU)"
        return f"{self.num_embed_workers} embed worker(s){gpus}, up to {self.num_decode_workers} decode worker(s) ({self.decode_cpus:g} CPU each)"


EMBED_WORKER_CPUS = 1.0  # an embed worker's own CPU (feeding the GPU, writing shards); the model's threads on a CPU worker


def connect(address: str | None, verbose: bool = False) -> Any:
    """Join the Ray cluster at `address` ("auto", HOST:PORT, None: RAY_ADDRESS or a new local instance); reuse a connection."""
    ray = import_ray()
    if not ray.is_initialized():
        if not verbose:
            # Ray's C++ core logs warnings straight to stderr (e.g. about actor constructor arguments kept in the
            # object store, which featcache's are by design); errors still reach the user as exceptions.
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(address=address, log_to_driver=verbose, logging_level="INFO" if verbose else "WARNING", include_dashboard=False)
        except ConnectionError as err:
            raise RayEngineError(f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS', 'a new local instance')}: {err}; start it with `ray start --head`") from err
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver reports progress itself
    context.print_on_execution_start = verbose
    return ray


def check_every_node_sees(ray: Any, video_root: Path, shard_folder: Path) -> None:
    """Raise RayEngineError naming the node when one cannot read `video_root`, write `shard_folder`, or runs another featcache."""
    shard_folder.mkdir(parents=True, exist_ok=True)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0)(_node_view)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    answers = ray.get([
        check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(str(video_root), str(shard_folder))
        for node in nodes
    ])  # fmt: skip
    for node, answer in zip(nodes, answers):
        problem = describe_node_problem(answer, str(video_root), str(shard_folder))
        if problem:
            raise RayEngineError(
                f"Ray node {node.get('NodeManagerAddress', node['NodeID'])} {problem}; every node must see the videos and the cache "
                "at the same paths (a shared filesystem: NFS, Lustre, a mounted bucket) and run the same featcache"
            )


def _node_view(video_root: str, shard_folder: str) -> dict[str, Any]:
    """Run on each node: what it sees of the paths, and its featcache version."""
    probe = Path(shard_folder) / f".probe-{os.uname().nodename}-{os.getpid()}.tmp"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        writable = True
    except OSError:
        writable = False
    return {"video_root": os.path.isdir(video_root) or os.path.isfile(video_root), "shard_folder": writable, "version": __version__}


def describe_node_problem(answer: dict[str, Any], video_root: str, shard_folder: str) -> str:
    """'' when a node's view (`_node_view`) is fine, else what is wrong."""
    if not answer["video_root"]:
        return f"cannot see {video_root}"
    if not answer["shard_folder"]:
        return f"cannot write the cache's shard folder {shard_folder}"
    if answer["version"] != __version__:
        return f"runs featcache {answer['version']}, the driver {__version__}"
    return ""


def embed_with_ray(
    to_embed: list[VideoEntry],
    video_source_root: Path,
    extractor_image_size: int,
    config: EmbedConfig,
    writer: CacheWriter,
    fingerprints: dict[str, FileFingerprint],
    on_video_done: Callable[[str, int, str | None], None],
) -> None:
    """Embed `to_embed` on the cluster into `writer`'s cache; `on_video_done(path, num_frames, failure or None)` per video."""
    # `featcache --verbose` shows Ray's own logs and the workers' output (FEATCACHE_VERBOSE is set by cli/output.py).
    ray = connect(config.ray_address, verbose=os.environ.get("FEATCACHE_VERBOSE") == "1")
    check_every_node_sees(ray, video_source_root, writer.shard_folder)
    plan = ClusterPlan.from_cluster(config, ray.cluster_resources())
    runtime_env = {"env_vars": {name: value for name, value in os.environ.items() if name.startswith(FORWARDED_ENVIRONMENT_PREFIXES)}}
    rows = [
        {"path": os.fsdecode(entry.path), "relative_path": entry.relative_path, "label": entry.label, "group": entry.group,
         "fingerprint": fingerprints[entry.relative_path].fingerprint, "mtime_ns": fingerprints[entry.relative_path].mtime_ns}
        for entry in to_embed
    ]  # fmt: skip
    decoded = ray.data.from_items(rows).map_batches(
        _DecodeVideos,
        fn_constructor_kwargs={"sampling": config.sampling, "image_size": extractor_image_size},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.num_decode_workers),
        num_cpus=plan.decode_cpus,
        runtime_env=runtime_env,
    )
    results = decoded.map_batches(
        _EmbedVideos,
        fn_constructor_kwargs={"config": config, "settings": writer.state.settings, "compression": writer.state.compression, "shard_folder": str(writer.shard_folder)},
        batch_size=VIDEOS_PER_SHARD,
        compute=ray.data.ActorPoolStrategy(size=plan.num_embed_workers),
        num_cpus=EMBED_WORKER_CPUS,
        num_gpus=plan.gpus_per_embed_worker or None,
        runtime_env=runtime_env,
    )
    last_commit, seconds_between_commits = time.perf_counter(), SECONDS_BETWEEN_COMMITS
    uncommitted = False
    try:
        for result in results.iter_rows():
            if result["refusal"]:
                uncommitted = False  # like the local engine, keep no shard of features refused as useless
                raise InputError(result["refusal"])
            failures = json.loads(result["failures"])
            if result["shard"]:
                writer.adopt_shard(ShardInfo(result["shard"], int(result["size"]), result["checksum"], int(result["num_videos"]), int(result["num_frames"])))
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
                seconds_between_commits = max(SECONDS_BETWEEN_COMMITS, COMMIT_TIME_FACTOR * (last_commit - commit_started))
        uncommitted = _delete_unreported_shards(writer) or uncommitted
    finally:
        # Also on Ctrl-C or an error: what arrived is kept for the next run.
        if uncommitted:
            writer.commit()


def _delete_unreported_shards(writer: CacheWriter) -> bool:
    """Shards no result reported (a worker died after writing one, and its retry wrote another): all their videos are
    live in other shards, so adopting keeps none and the commit deletes them. Returns whether there were any."""
    orphans = writer.orphan_shards()
    for name in orphans:
        writer.adopt_shard(name, keep=lambda path, fingerprint: writer.state.videos.get(path) is None)
    return bool(orphans)


class _DecodeVideos:
    """A decode worker: one `decode_workers` process, kept for the actor's life; one video per call."""

    def __init__(self, sampling: SamplingConfig, image_size: int) -> None:
        from featcache.decode_workers import DecodeWorkerPool

        self.image_size = image_size
        self.pool = DecodeWorkerPool(1, sampling, image_size).__enter__()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {name: [] for name in (*batch, "frames", "frame_indices", "timestamps_ms", "video_facts", "error")}
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
            out["video_facts"].append(np.array([sampled.video_fps, sampled.video_num_frames, sampled.video_width, sampled.video_height], np.float64))
            out["error"].append(error)
        return out

    def __del__(self) -> None:
        self.pool.__exit__(None, None, None)


def _no_frames(image_size: int) -> SampledFrames:
    return SampledFrames(np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros(0, np.int32), np.zeros(0, np.float32), 0.0, 0, 0, 0)


class _EmbedVideos:
    """An embed worker: builds the extractor once, embeds a batch of decoded videos, writes them as one shard."""

    def __init__(self, config: EmbedConfig, settings: dict[str, Any], compression: str, shard_folder: str) -> None:
        from featcache.embedded_videos import FeatureInformationCheck
        from featcache.extractors import load_extractor
        from featcache.settings import describe_settings_difference, settings_record

        self.config, self.settings, self.compression, self.shard_folder = config, settings, compression, Path(shard_folder)
        self.extractor = load_extractor(config.extractor)
        difference = describe_settings_difference(settings, settings_record(self.extractor.provenance, config.sampling, config.dtype))
        # Another weights file or library on this node would write features the cache's settings do not describe.
        self.refusal = f"a Ray worker on {os.uname().nodename} builds another extractor than the driver ({difference})" if difference else ""
        self.information_check = FeatureInformationCheck(config.extractor.name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from featcache.batching import embed_decoded_videos
        from featcache.embedded_videos import ShardBatch

        if self.refusal:
            return _result(refusal=self.refusal)
        shard_batch = ShardBatch(self.information_check, self.config.dtype)
        entries = [VideoEntry(Path(str(path)), str(relative), str(label), str(group)) for path, relative, label, group in
                   zip(batch["path"], batch["relative_path"], batch["label"], batch["group"])]  # fmt: skip
        fingerprints = {entry.relative_path: FileFingerprint(str(fingerprint), int(mtime)) for entry, fingerprint, mtime in zip(entries, batch["fingerprint"], batch["mtime_ns"])}
        try:
            for entry, sampled, features_or_error in embed_decoded_videos(self._decoded(entries, batch), self.extractor, self.config.batch_size):
                shard_batch.add(entry, sampled, features_or_error, fingerprints[entry.relative_path])
            if not self.information_check.checked and len(self.information_check.seen) >= 2:
                shard_batch.finish_checks()  # a worker given few videos still checks what it had
        except InputError as err:
            return _result(refusal=str(err))
        lengths = {video.path: len(video.features) for video in shard_batch.videos}
        if not shard_batch.videos:
            return _result(failures=shard_batch.failures)
        info = write_shard(self.shard_folder, shard_batch.videos, self.config.dtype, self.settings, self.compression)
        return _result(info, shard_batch.failures, lengths)

    def _decoded(self, entries: list[VideoEntry], batch: dict[str, np.ndarray]):
        for row, entry in enumerate(entries):
            if batch["error"][row]:
                yield entry, VideoDecodeError(str(batch["error"][row]))
                continue
            fps, num_frames, width, height = batch["video_facts"][row]
            yield entry, SampledFrames(
                np.asarray(batch["frames"][row]), batch["frame_indices"][row], batch["timestamps_ms"][row], float(fps), int(num_frames), int(width), int(height)
            )


def _result(info: ShardInfo | None = None, failures: dict[str, str] | None = None, lengths: dict[str, int] | None = None, refusal: str = "") -> dict[str, list[Any]]:
    """One output row per embed batch: the shard written (if any), its failures, each video's frame count, or a refusal."""
    return {
        "shard": [info.name if info else ""],
        "size": [info.size if info else 0],
        "checksum": [info.checksum if info else ""],
        "num_videos": [info.num_videos if info else 0],
        "num_frames": [info.num_frames if info else 0],
        "failures": [json.dumps(failures or {})],
        "lengths": [json.dumps(lengths or {})],
        "refusal": [refusal],
    }
