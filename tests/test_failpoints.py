"""Crash safety by injection: an embed dies (os._exit) at each named failpoint; the rerun repairs everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featcache.cache import open_cache, read_all_features, shard_folder_for, verify_cache
from featcache.embedding.embed import embed
from featcache.failpoints import ENVIRONMENT_VARIABLE, EXIT_CODE, available_failpoints

EMBED_ONE_SHARD_PER_VIDEO = """
import importlib, sys
sys.path.insert(0, {tests_dir!r})
embed_module = importlib.import_module("featcache.embedding.embed")
extractors_module = importlib.import_module("featcache.extractors.registry")
from featcache.embedding import local_engine
from conftest import mean_colour_extractor
from test_embed import FAKE_CONFIG
extractors_module.load_extractor = lambda config, runtime="keras": mean_colour_extractor(config)
local_engine.MAX_VIDEOS_PER_SHARD = 1
embed_module.embed({root!r}, {cache!r}, FAKE_CONFIG)
"""


def run_embed_until(failpoint: str, root: Path, cache_path: Path) -> subprocess.CompletedProcess:
    script = EMBED_ONE_SHARD_PER_VIDEO.format(
        tests_dir=str(Path(__file__).parent), root=str(root), cache=str(cache_path)
    )
    environment = {**os.environ, ENVIRONMENT_VARIABLE: failpoint}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.parametrize("failpoint", available_failpoints())
def test_a_run_killed_at_each_failpoint_is_finished_by_the_rerun(
    failpoint: str, tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    from test_embed import FAKE_CONFIG

    reference_path = tmp_path / "reference.h5"
    embed(tiny_dataset, reference_path, FAKE_CONFIG)
    cache_path = tmp_path / "cache.h5"
    completed = run_embed_until(failpoint, tiny_dataset, cache_path)
    assert completed.returncode == EXIT_CODE, completed.stderr  # it died exactly there

    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert summary.num_embedded + summary.num_already_cached + summary.num_resumed == 6
    cache, reference = open_cache(cache_path), open_cache(reference_path)
    assert cache.index.paths == reference.index.paths  # none lost, none twice
    np.testing.assert_array_equal(read_all_features(cache_path), read_all_features(reference_path))
    assert cache.index.fingerprints == reference.index.fingerprints
    assert verify_cache(cache_path).ok
    listed = set(cache.state.shards)
    on_disk = {path.name for path in shard_folder_for(cache_path).iterdir()}
    assert on_disk == listed  # no orphan or temporary file left behind
    assert cache.state.num_dead_rows == 0


def test_a_kill_after_the_shard_is_renamed_loses_no_embedding(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    """The orphan shard is adopted, not embedded again: embedded bytes are written once."""
    from test_embed import FAKE_CONFIG

    cache_path = tmp_path / "cache.h5"
    assert run_embed_until("shard-renamed", tiny_dataset, cache_path).returncode == EXIT_CODE
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert (summary.num_resumed, summary.num_embedded) == (1, 5)


def test_a_video_deleted_after_an_interrupted_run_just_leaves(
    tiny_dataset: Path, tmp_path: Path, fake_extractor: list
) -> None:
    """Format 1's resume crashed with KeyError when a video in the journal was deleted; now its row is dropped."""
    from test_embed import FAKE_CONFIG

    cache_path = tmp_path / "cache.h5"
    assert run_embed_until("shard-renamed", tiny_dataset, cache_path).returncode == EXIT_CODE
    orphan = next(shard_folder_for(cache_path).glob("*.h5"))
    from featcache.cache import read_shard_contents

    (deleted,) = read_shard_contents(orphan).paths
    (tiny_dataset / deleted).unlink()
    summary = embed(tiny_dataset, cache_path, FAKE_CONFIG)
    assert (summary.num_resumed, summary.num_embedded) == (0, 5)
    assert deleted not in open_cache(cache_path).index.paths
    assert not orphan.exists()  # nothing in it was wanted: deleted at the commit
