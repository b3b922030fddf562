"""`embed --engine ray` (featcache/ray_engine.py) on one local Ray instance shared by these tests.

Real scratch_cnn models with seeded random weights (the workers are other processes: a monkeypatched
extractor would not reach them), on 32x32 videos, so each Ray embed costs mostly its workers' start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import ray  # featcache[test] installs featcache[ray]

from featcache.cache import CacheWriter, ShardVideo, open_cache, read_all_features, shard_folder_for, write_shard
from featcache.cache.writer import WritableCache
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding import ray_cluster, ray_engine
from featcache.embedding.embed import embed
from featcache.errors import InputError, RayEngineError
from featcache.failpoints import EXIT_CODE

LOCAL = EmbedConfig(
    extractor=ExtractorConfig(name="scratch_cnn", weights="random", image_size=32),
    sampling=SamplingConfig(num_frames=4),
    batch_size=8,
)
ON_RAY = EmbedConfig(**{**LOCAL.__dict__, "engine": "ray"})


@pytest.fixture(scope="module")
def ray_address() -> str:
    """One local Ray instance (2 CPUs, as CI has) for every test here; its address for driver subprocesses."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    # address="local": a new instance even when the machine runs a cluster (`ray start`) that ray.init would join.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def frame_indices_by_path(cache_path: Path) -> dict[str, list[int]]:
    """Each video's frame indices, read through the documented layout with plain h5py."""
    with h5py.File(cache_path, "r") as handle:
        offsets, frame_indices = handle["offsets"][()], handle["frame_indices"][()]
        paths = [path.decode() for path in handle["paths"][()]]
    return {path: frame_indices[offsets[row] : offsets[row + 1]].tolist() for row, path in enumerate(paths)}


def assert_same_cache(expected: Path, actual: Path) -> None:
    """Same videos, each once, same frame indices, features equal within float16 rounding, same failures."""
    first, second = open_cache(expected), open_cache(actual)
    assert sorted(first.index.paths) == sorted(second.index.paths)
    assert len(set(second.index.paths)) == len(second.index.paths)
    order_first, order_second = np.argsort(first.index.paths), np.argsort(second.index.paths)
    np.testing.assert_allclose(
        read_all_features(first)[order_first].astype(np.float32),
        read_all_features(second)[order_second].astype(np.float32),
        rtol=1e-3,
        atol=1e-3,
    )
    assert frame_indices_by_path(expected) == frame_indices_by_path(actual)
    assert first.index.failures == second.index.failures


def no_unlisted_shards(cache_path: Path) -> bool:
    listed = set(open_cache(cache_path).state.shards)
    return {path.name for path in shard_folder_for(cache_path).iterdir()} == listed


@pytest.fixture
def local_reference(dataset_with_bad_files: Path, tmp_path: Path) -> Path:
    cache_path = tmp_path / "local.h5"
    embed(dataset_with_bad_files, cache_path, LOCAL)
    return cache_path


def test_ray_engine_writes_what_the_local_engine_writes(
    ray_address: str, dataset_with_bad_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bad files, and a decoder that crashes on one good file (FEATCACHE_CRASH_DECODER is forwarded to the workers):
    # each costs one video on either engine.
    monkeypatch.setenv("FEATCACHE_CRASH_DECODER", "v_Beta_g02_c01.avi")
    embed(dataset_with_bad_files, tmp_path / "local.h5", LOCAL)
    progress = []
    summary = embed(dataset_with_bad_files, tmp_path / "ray.h5", ON_RAY, progress=progress.append)
    assert summary.num_embedded == 5 and len(summary.failures) == 4
    assert "SIGSEGV" in summary.failures["Beta/v_Beta_g02_c01.avi"]
    assert progress[-1].num_done == 9 and progress[-1].num_failed == 4
    assert_same_cache(tmp_path / "local.h5", tmp_path / "ray.h5")
    assert (
        open_cache(tmp_path / "ray.h5").index.paths == open_cache(tmp_path / "local.h5").index.paths
    )  # the same row order too
    # The driver built no model: the new cache took its settings record from the first embed worker, the local one's.
    assert open_cache(tmp_path / "ray.h5").state.settings == open_cache(tmp_path / "local.h5").state.settings
    assert no_unlisted_shards(tmp_path / "ray.h5")


def test_an_embed_worker_killed_mid_batch_is_retried_without_duplicates(
    ray_address: str,
    dataset_with_bad_files: Path,
    local_reference: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker dies right after renaming its shard into place, before the driver hears of it; Ray restarts
    # it and retries the batch, which writes a second shard of the same videos.
    marker = tmp_path / "failpoint-fired"
    monkeypatch.setenv("FEATCACHE_FAILPOINT", "shard-renamed")
    monkeypatch.setenv("FEATCACHE_FAILPOINT_ONCE", str(marker))
    summary = embed(dataset_with_bad_files, tmp_path / "ray.h5", ON_RAY)
    assert marker.exists()  # the worker did die
    assert summary.num_embedded == 6
    assert_same_cache(local_reference, tmp_path / "ray.h5")
    assert no_unlisted_shards(tmp_path / "ray.h5")  # the dead worker's shard is gone


def test_a_rerun_after_the_driver_dies_adopts_its_shards(
    ray_address: str, dataset_with_bad_files: Path, local_reference: Path, tmp_path: Path
) -> None:
    cache_path = tmp_path / "ray.h5"
    # A driver in its own process that commits after every 2-video shard and dies at its first commit. It cannot
    # import Keras or TensorFlow (None in sys.modules): the driver never builds a model, its workers do.
    driver = (
        "import sys; sys.modules.update(keras=None, tensorflow=None); from pathlib import Path; "
        "import featcache.embedding.ray_engine as engine; "
        "engine.VIDEOS_PER_SHARD = 2; engine.SECONDS_BETWEEN_COMMITS = 0.0; "
        "from featcache.embedding.embed import embed; from featcache.config import *; "
        "embed(Path(sys.argv[1]), Path(sys.argv[2]), "
        f"EmbedConfig(**{{**{LOCAL.__dict__!r}, 'engine': 'ray', 'ray_address': sys.argv[3]}}))"
    )
    environment = {**os.environ, "FEATCACHE_FAILPOINT": "index-replaced"}
    finished = subprocess.run(
        [sys.executable, "-c", driver, str(dataset_with_bad_files), str(cache_path), ray_address],
        env=environment,
        capture_output=True,
        timeout=300,
    )
    assert finished.returncode == EXIT_CODE, finished.stderr.decode()[-2000:]
    assert 0 < len(open_cache(cache_path).index.paths) < 6  # the first shard was committed, the rest not
    summary = embed(dataset_with_bad_files, cache_path, ON_RAY)
    assert summary.num_embedded + summary.num_resumed + summary.num_already_cached == 6
    assert summary.num_embedded < 6  # what the dead driver finished was not embedded again
    assert_same_cache(local_reference, cache_path)
    assert no_unlisted_shards(cache_path)


def test_one_cache_can_be_filled_by_both_engines(
    ray_address: str, dataset_with_bad_files: Path, local_reference: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from featcache.cli import app

    listing = dataset_with_bad_files / "alpha.csv"
    listing.write_text(
        "path,label\n"
        + "".join(f"Alpha/{path.name},Alpha\n" for path in sorted((dataset_with_bad_files / "Alpha").glob("*g0[123]*")))
    )
    cache_path = tmp_path / "mixed.h5"
    assert embed(listing, cache_path, LOCAL).num_embedded == 3
    listing.unlink()
    (shard_folder_for(cache_path) / "junk.h5").write_bytes(
        b"not a shard"
    )  # reported, not fatal, left alone (as locally)
    result = CliRunner().invoke(
        app,
        [
            "embed",
            str(dataset_with_bad_files),
            "--out",
            str(cache_path),
            "--engine",
            "ray",
            "--ray-address",
            ray_address,
            "--batch-size",
            "8",
        ],
    )
    assert result.exit_code == 1, result.output  # 1: some videos failed (the bad files)
    assert "3 embedded, 3 already cached, 3 failed" in result.output
    assert (
        "on Ray: 1 embed worker(s) on CPU, up to 1 decode worker(s) of 1 CPU" in result.output
    )  # what ran, on the 2-CPU instance
    assert result.output.count("junk.h5") == 1
    assert (shard_folder_for(cache_path) / "junk.h5").exists()
    (shard_folder_for(cache_path) / "junk.h5").unlink()
    assert_same_cache(local_reference, cache_path)


def test_features_without_information_are_refused_and_leave_no_shard(
    ray_address: str, tiny_dataset: Path, tmp_path: Path
) -> None:
    # Random-initialised MobileNetV2 outputs ~1e-11 for every input (see embedded_videos.FeatureInformationCheck).
    useless = EmbedConfig(
        **{**ON_RAY.__dict__, "extractor": ExtractorConfig(name="mobilenet_v2", weights="random", image_size=32)}
    )
    with pytest.raises(InputError, match="features without information"):
        embed(tiny_dataset, tmp_path / "ray.h5", useless)
    assert list(shard_folder_for(tmp_path / "ray.h5").glob("*.h5")) == []


def test_a_batch_that_kills_its_worker_every_time_fails_the_job_in_one_line(
    ray_address: str, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATCACHE_FAILPOINT", "shard-renamed")  # no _ONCE: every restarted worker dies again
    monkeypatch.setattr(ray_engine, "WORKER_RETRIES", 1)  # the rule, at the cost of two worker starts rather than four
    with pytest.raises(
        RayEngineError, match=r"^the Ray job failed \(\w+: [^\n]*\); videos finished before it are kept"
    ):
        embed(tiny_dataset, tmp_path / "ray.h5", ON_RAY)


def test_without_ray_the_error_says_how_to_install_it(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayEngineError, match=r"pip install 'featcache\[ray\]'"):
        embed(tiny_dataset, tmp_path / "ray.h5", ON_RAY)
    assert not shard_folder_for(tmp_path / "ray.h5").exists()


def test_a_node_that_cannot_see_the_videos_is_named(ray_address: str, tmp_path: Path) -> None:
    with pytest.raises(RayEngineError, match=r"Ray node .* cannot see .*no-such-folder.*shared filesystem"):
        ray_cluster.check_every_node_sees(ray, tmp_path / "no-such-folder", tmp_path / "cache.h5.shards")
    ray_cluster.check_every_node_sees(ray, tmp_path, tmp_path / "cache.h5.shards")  # both visible: no error


def test_node_problems_are_described() -> None:
    fine = {"video_root": True, "shard_folder": True, "version": ray_cluster.__version__}
    assert ray_cluster.describe_node_problem(fine, "/videos", "/cache.h5.shards") == ""
    assert "cannot write the cache's shard folder /cache.h5.shards" in ray_cluster.describe_node_problem(
        {**fine, "shard_folder": False}, "/videos", "/cache.h5.shards"
    )
    assert "runs featcache 0.0.1" in ray_cluster.describe_node_problem(
        {**fine, "version": "0.0.1"}, "/videos", "/cache.h5.shards"
    )


@pytest.mark.parametrize(
    "options, nodes, expected",
    [
        ({}, [{"CPU": 2}], (1, 0.0, 1)),  # CPU only: one embed worker, the other CPU decodes
        ({}, [{"CPU": 32, "GPU": 4}], (4, 1.0, 28)),  # one embed worker per GPU
        ({}, [{"CPU": 16, "GPU": 2}, {"CPU": 16, "GPU": 2}], (4, 1.0, 28)),
        ({"gpus_per_worker": 0.5}, [{"CPU": 32, "GPU": 2}], (4, 0.5, 28)),
        ({"embed_workers": 2, "decode_cpus": 0.5}, [{"CPU": 4}], (2, 0.0, 4)),
        ({"num_decode_workers": 3}, [{"CPU": 16, "GPU": 1}], (1, 1.0, 3)),
        ({}, [{"CPU": 1, "GPU": 1}, {"CPU": 8}], (1, 1.0, 8)),  # decoding on the CPU-only node
    ],
)
def test_cluster_plan(options: dict, nodes: list, expected: tuple) -> None:
    plan = ray_cluster.ClusterPlan.from_nodes(EmbedConfig(engine="ray", **options), nodes)
    assert (plan.num_embed_workers, plan.gpus_per_embed_worker, plan.num_decode_workers) == expected


@pytest.mark.parametrize(
    "options, nodes, message",
    [
        ({"gpus_per_worker": 1}, [{"CPU": 8}], r"--gpus-per-worker 1: no Ray node has that many GPUs"),
        (
            {"gpus_per_worker": 2},
            [{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}],
            r"no Ray node has that many GPUs \(the most on one node: 1\)",
        ),
        ({"embed_workers": 3}, [{"CPU": 8, "GPU": 1}], r"can hold 1 embed worker\(s\) of 1 CPU and 1 GPU, not 3"),
        ({"embed_workers": 2}, [{"CPU": 2}], r"no Ray node has 1 CPU\(s\) left for a decode worker"),
        ({"decode_cpus": 4}, [{"CPU": 3}, {"CPU": 3}], r"no Ray node has 4 CPU\(s\) left"),
    ],
)
def test_cluster_plan_refuses_what_no_placement_holds(options: dict, nodes: list, message: str) -> None:
    # Ray would wait for ever for workers it cannot place; featcache says so before starting.
    with pytest.raises(RayEngineError, match=message):
        ray_cluster.ClusterPlan.from_nodes(EmbedConfig(engine="ray", **options), nodes)


def test_an_embed_worker_that_cannot_build_the_extractor_refuses_in_one_line(tmp_path: Path) -> None:
    # The worker class run in this process: what it would send the driver from a node without the weights file.
    config = EmbedConfig(
        **{
            **ON_RAY.__dict__,
            "extractor": ExtractorConfig(
                name="scratch_cnn", weights=str(tmp_path / "missing.weights.h5"), image_size=32
            ),
        }
    )
    worker = ray_engine._EmbedVideos(config, None, {}, "none", str(tmp_path / "shards"))
    result = worker({"path": np.array(["x.avi"])})
    assert result["refusal"][0].startswith(f"a Ray worker on {os.uname().nodename} cannot build the extractor:")
    assert "missing.weights.h5" in result["refusal"][0] and "\n" not in result["refusal"][0]
    assert not (tmp_path / "shards").exists()


def test_a_worker_with_another_settings_record_than_the_first_is_refused(tmp_path: Path) -> None:
    first = {
        "extractor": {
            "name": "scratch_cnn",
            "weights": "random",
            "seed": 0,
            "feature_dim": 3,
            "keras_version": "3.10.0",
        },
        "sampling": {"num_frames": 4},
        "dtype": "float16",
    }
    with WritableCache.open(tmp_path / "cache.h5") as cache:
        same = {"settings": json.dumps(first), "node": "node-a"}
        assert (
            ray_engine._other_extractor_than_first(cache, same) == ""
        )  # before any: the first one's becomes the cache's
        cache.writer_for(first)
        assert ray_engine._other_extractor_than_first(cache, same) == ""
        other = {
            "settings": json.dumps({**first, "extractor": {**first["extractor"], "keras_version": "3.11.1"}}),
            "node": "node-b",
        }
        refusal = ray_engine._other_extractor_than_first(cache, other)
        assert refusal.startswith(
            "a Ray worker on node-b builds another extractor than the first worker "
            "(extractor keras_version '3.10.0' vs '3.11.1')"
        )


def shard_of(videos: list[str], settings: dict, folder: Path) -> str:
    features = np.ones((2, 3), np.float32)
    return write_shard(
        folder,
        [
            ShardVideo(
                path,
                "c",
                "",
                f"1:{path}",
                features,
                np.arange(2, dtype=np.int32),
                np.zeros(2, np.float32),
                25.0,
                2,
                32,
                32,
            )
            for path in videos
        ],
        "float16",
        settings,
    ).name


RECORD = {
    "extractor": {"name": "scratch_cnn", "weights": "random", "seed": 0, "feature_dim": 3},
    "sampling": {"num_frames": 2},
    "dtype": "float16",
}


def test_a_writer_opened_at_the_first_shard_leaves_other_workers_half_written_shards_alone(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.h5"
    folder = shard_folder_for(cache_path)
    folder.mkdir()
    (folder / ".left-by-a-killed-run.h5.1.tmp").write_bytes(b"x")
    with WritableCache.open(cache_path) as cache:
        assert not (
            folder / ".left-by-a-killed-run.h5.1.tmp"
        ).exists()  # cleaned once, under the lock, before workers start
        being_written = folder / ".another-worker.h5.2.tmp"
        being_written.write_bytes(b"half")
        cache.writer_for(RECORD)  # the first worker's shard arrived
        assert being_written.exists()


def test_shards_of_other_settings_are_left_alone_at_the_end_of_a_run(tmp_path: Path) -> None:
    # An interrupted run's shard that this cache cannot take (another Keras version) does not fail the run;
    # as locally, it stays.
    cache_path = tmp_path / "cache.h5"
    with CacheWriter.open(cache_path, RECORD, 3) as writer:
        other = shard_of(
            ["c/a.avi"], {**RECORD, "extractor": {**RECORD["extractor"], "keras_version": "9"}}, writer.shard_folder
        )
        assert ray_engine._delete_unreported_shards(writer) == []
        writer.commit()
    assert (shard_folder_for(cache_path) / other).exists()


def test_before_the_writer_opens_the_shards_an_old_index_lists_are_not_unlisted(tmp_path: Path) -> None:
    # --overwrite on the Ray engine: until the new index replaces the old one,
    # a refusal must not delete the old cache's shards.
    cache_path = tmp_path / "cache.h5"
    with CacheWriter.open(cache_path, RECORD, 3) as writer:
        listed = shard_of(["c/a.avi"], RECORD, writer.shard_folder)
        writer.adopt_shard(listed)
        writer.commit()
    new = shard_of(["c/b.avi"], RECORD, shard_folder_for(cache_path))
    with WritableCache.open(cache_path, overwrite=True) as cache:
        assert cache.unlisted_shards() == [new]


def test_ray_options_without_the_ray_engine_are_refused() -> None:
    with pytest.raises(InputError, match="--embed-workers, --decode-cpus only apply to --engine ray"):
        EmbedConfig(embed_workers=2, decode_cpus=2.0)
