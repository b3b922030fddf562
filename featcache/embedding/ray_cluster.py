"""The Ray cluster `embed --engine ray` runs on: joining it, checking its nodes, planning its workers.

`ray_engine.py` runs the pipeline; this module answers the questions to settle before it starts, each with
a one-line RayEngineError instead of a hang or a Ray traceback: is Ray installed, is the cluster there, does
every node see the videos and the cache and run the same featcache, can the cluster hold the workers asked for.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featcache.config import EmbedConfig
from featcache.errors import RayEngineError
from featcache.version import __version__

INSTALL_HINT = "pip install 'featcache[ray]'"
EMBED_WORKER_CPUS = (
    1.0  # an embed worker's own CPU: feeding its GPU and writing shards, or running the model on a CPU node
)
NODE_CHECK_TIMEOUT_SECONDS = 120.0  # a node listed alive that does not answer in this time is reported, not waited for


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise RayEngineError(
            f"--engine ray needs Ray Data, which is not installed ({err}); install it with: {INSTALL_HINT}"
        ) from err
    return ray


def connect(address: str | None, verbose: bool) -> Any:
    """Join the Ray cluster at `address` ("auto", HOST:PORT; None: RAY_ADDRESS or a new local instance).

    A process already connected keeps its connection (`address` is then not used). Not verbose: Ray's own
    INFO and WARNING lines (its C++ core writes some straight to stderr) stay out of featcache's output;
    errors still reach the user as exceptions.
    """
    ray = import_ray()
    if not ray.is_initialized():
        if not verbose:
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(
                address=address,
                log_to_driver=verbose,
                logging_level=logging.INFO if verbose else logging.ERROR,
                include_dashboard=False,
            )
        except ConnectionError as err:
            where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise RayEngineError(
                f"cannot reach the Ray cluster at {where}: {err}; start one with `ray start --head`"
            ) from err
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver reports progress itself
    context.print_on_execution_start = verbose
    # Ray Data's default: workers start without the pipeline waiting for them. A bounded wait (which would turn a
    # cluster busy with other jobs into an error instead of a wait) starts the operators one after another: 3-4 s
    # more on 144 videos here (BENCHMARKS.md, section 10). A plan that no node can hold is refused by ClusterPlan.
    context.wait_for_min_actors_s = -1
    return ray


def node_resources(ray: Any) -> list[dict[str, float]]:
    """Each alive node's resources ({"CPU": 16.0, "GPU": 2.0, ...})."""
    return [dict(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]


@dataclass(frozen=True)
class ClusterPlan:
    """How many workers of each kind, from the options and what the cluster's nodes have."""

    num_embed_workers: int
    gpus_per_embed_worker: float
    num_decode_workers: int
    decode_cpus: float

    @classmethod
    def from_nodes(cls, config: EmbedConfig, nodes: list[dict[str, float]]) -> ClusterPlan:
        """Raises RayEngineError for a plan no placement of workers on these nodes can hold
        (Ray would wait for ever)."""
        total_gpus = sum(node.get("GPU", 0.0) for node in nodes)
        gpus_per_worker = config.gpus_per_worker if config.gpus_per_worker is not None else (1.0 if total_gpus else 0.0)
        # Embed workers per node: each needs its CPU and its GPU share on one node.
        embed_slots = [_fits(node, EMBED_WORKER_CPUS, gpus_per_worker) for node in nodes]
        if gpus_per_worker and not any(embed_slots):
            largest = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
            raise RayEngineError(
                f"--gpus-per-worker {gpus_per_worker:g}: no Ray node has that many GPUs "
                f"(the most on one node: {largest:g}); use 0 for CPU workers"
            )
        if config.embed_workers:
            num_embed_workers = config.embed_workers
        elif gpus_per_worker:
            num_embed_workers = sum(embed_slots)  # every GPU (share) busy
        else:
            num_embed_workers = 1
        if num_embed_workers > sum(embed_slots):
            raise RayEngineError(
                f"the Ray cluster can hold {sum(embed_slots)} embed worker(s) of {EMBED_WORKER_CPUS:g} CPU "
                f"and {gpus_per_worker:g} GPU, not {num_embed_workers}; "
                "lower --embed-workers or --gpus-per-worker"
            )
        decode_slots = [
            int(cpus // config.decode_cpus)
            for cpus in _cpus_left_after_embed_workers(nodes, embed_slots, num_embed_workers)
        ]
        if not any(decode_slots):
            raise RayEngineError(
                f"no Ray node has {config.decode_cpus:g} CPU(s) left for a decode worker "
                f"beside {num_embed_workers} embed worker(s); "
                "lower --decode-cpus or --embed-workers, or add CPU nodes"
            )
        num_decode_workers = config.num_decode_workers or sum(decode_slots)
        return cls(num_embed_workers, gpus_per_worker, num_decode_workers, config.decode_cpus)

    def describe(self) -> str:
        gpus = f", {self.gpus_per_embed_worker:g} GPU each" if self.gpus_per_embed_worker else " on CPU"
        return (
            f"{self.num_embed_workers} embed worker(s){gpus}, "
            f"up to {self.num_decode_workers} decode worker(s) of {self.decode_cpus:g} CPU"
        )


def _fits(node: dict[str, float], cpus: float, gpus: float) -> int:
    """How many workers of `cpus` CPUs and `gpus` GPUs this node holds."""
    by_cpu = int(node.get("CPU", 0.0) // cpus)
    return min(by_cpu, int(node.get("GPU", 0.0) // gpus)) if gpus else by_cpu


def _cpus_left_after_embed_workers(
    nodes: list[dict[str, float]], embed_slots: list[int], num_embed_workers: int
) -> list[float]:
    """Each node's CPUs once the embed workers are placed (filling nodes in order, as a worst case for decoding)."""
    left, to_place = [], num_embed_workers
    for node, slots in zip(nodes, embed_slots):
        placed = min(slots, to_place)
        to_place -= placed
        left.append(node.get("CPU", 0.0) - placed * EMBED_WORKER_CPUS)
    return left


def check_every_node_sees(ray: Any, video_root: Path, shard_folder: Path) -> None:
    """Raise RayEngineError naming the node when one cannot read `video_root`, write `shard_folder`,
    or run this featcache."""
    shard_folder.mkdir(parents=True, exist_ok=True)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0, max_retries=0)(_node_view)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    pending = [
        check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
            str(video_root), str(shard_folder)
        )
        for node in nodes
    ]
    for node, answer_ref in zip(nodes, pending):
        name = node.get("NodeManagerAddress", node["NodeID"])
        try:
            answer = ray.get(answer_ref, timeout=NODE_CHECK_TIMEOUT_SECONDS)
        except ray.exceptions.GetTimeoutError as err:
            raise RayEngineError(
                f"Ray node {name} did not answer within {NODE_CHECK_TIMEOUT_SECONDS:.0f} s; "
                "check it (`ray status`) or remove it"
            ) from err
        except ray.exceptions.RayError as err:
            # Typically featcache missing there: the check itself cannot be unpickled.
            raise RayEngineError(
                f"Ray node {name} cannot run featcache ({_first_line(err)}); "
                f"install featcache {__version__} on every node"
            ) from err
        problem = describe_node_problem(answer, str(video_root), str(shard_folder))
        if problem:
            raise RayEngineError(
                f"Ray node {name} {problem}; every node must see the videos and the cache at the same paths "
                "(a shared filesystem: NFS, Lustre, a mounted bucket) and run the same featcache"
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
    return {"video_root": os.path.exists(video_root), "shard_folder": writable, "version": __version__}


def describe_node_problem(answer: dict[str, Any], video_root: str, shard_folder: str) -> str:
    """'' when a node's view (`_node_view`) is fine, else what is wrong."""
    if not answer["video_root"]:
        return f"cannot see {video_root}"
    if not answer["shard_folder"]:
        return f"cannot write the cache's shard folder {shard_folder}"
    if answer["version"] != __version__:
        return f"runs featcache {answer['version']}, the driver {__version__}"
    return ""


def describe_ray_failure(err: BaseException) -> str:
    """A Ray error as one line: its type and the first line of its message (the rest is a remote traceback)."""
    return f"{type(err).__name__}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
