"""Commands that run no model start without TensorFlow or Keras (checked in a fresh interpreter).

What is asserted is the modules a command's whole code path imported, not a time: importing
TensorFlow is what made `featcache --help` take ~4 s and ~840 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cache_fixtures import write_cache

# Runs the command in-process through typer's CliRunner, then reports what got imported.
PROBE = """
import json, sys
from typer.testing import CliRunner
from featcache.cli import app
result = CliRunner().invoke(app, json.loads(sys.argv[1]))
print(json.dumps({"exit_code": result.exit_code, "output": result.output,
                  "heavy": sorted(name for name in ("tensorflow", "keras", "jax", "torch") if name in sys.modules)}))
"""


def run_in_fresh_interpreter(arguments: list[str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(arguments)], capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def small_cache(tmp_path: Path) -> Path:
    return write_cache(tmp_path / "cache.h5", np.ones((4, 3, 2)), [3, 3, 2, 1], [0, 0, 1, 1], ["A", "B"])


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["--version"],
        ["info", "CACHE"],
        ["info", "CACHE", "--json"],
        ["demo-data", "DEMO", "--videos-per-class", "1"],
        ["extractors"],
        ["embed", "--help"],
        ["train", "--help"],
    ],
    ids=lambda arguments: " ".join(arguments),
)
def test_command_runs_without_importing_tensorflow(arguments: list[str], small_cache: Path, tmp_path: Path) -> None:
    arguments = [
        str(small_cache) if word == "CACHE" else str(tmp_path / "demo") if word == "DEMO" else word
        for word in arguments
    ]
    report = run_in_fresh_interpreter(arguments)
    assert report["exit_code"] == 0, report["output"]
    assert report["heavy"] == []


def test_embed_with_nothing_to_embed_runs_without_importing_tensorflow(tiny_dataset: Path, tmp_path: Path) -> None:
    # Keras comes in only when embed builds a model: re-running on an up-to-date cache (a cron job, a pipeline
    # step) costs no TensorFlow start-up. The Ray engine's driver never builds one either (tests/test_ray_engine.py).
    from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
    from featcache.embedding.embed import embed

    cache_path = tmp_path / "cache.h5"
    embed(
        tiny_dataset,
        cache_path,
        EmbedConfig(
            extractor=ExtractorConfig(name="scratch_cnn", weights="random", image_size=32),
            sampling=SamplingConfig(num_frames=4),
        ),
    )
    report = run_in_fresh_interpreter(["embed", str(tiny_dataset), "--out", str(cache_path)])
    assert report["exit_code"] == 0, report["output"]
    assert "0 embedded, 6 already cached" in report["output"]
    assert report["heavy"] == []


def test_version_is_printed_from_the_one_version_module() -> None:
    from featcache.version import __version__

    report = run_in_fresh_interpreter(["--version"])
    assert report["output"].strip() == f"featcache {__version__}"


def test_python_dash_m_featcache_is_the_cli() -> None:
    completed = subprocess.run([sys.executable, "-m", "featcache", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("featcache ")


def test_public_api_names_load_on_first_use() -> None:
    probe = (
        "import sys, featcache; before = 'tensorflow' in sys.modules; featcache.train; "
        "print(before, 'keras' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["False", "True"]
