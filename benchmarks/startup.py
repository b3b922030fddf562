"""Section 9: how fast the CLI starts, and how much memory training takes next to TensorFlow's own baseline.

Each command runs in a fresh interpreter (as a user runs it); wall time is the median of REPEATS runs, peak RSS
the child process's ru_maxrss. `import keras` is the cost every command paid before featcache loaded
TensorFlow only for commands that run a model.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import numpy as np

from benchmarks.data import write_feature_cache
from benchmarks.report import SectionResult, Table
from benchmarks.workspace import QUICK, Workspace

REPEATS = 3
# Runs ARGV in a child and prints its wall time and peak RSS (KiB on Linux).
MEASURE = (
    "import json, resource, subprocess, sys, time; started = time.perf_counter(); "
    "code = subprocess.run(json.loads(sys.argv[1]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
    "print(json.dumps([time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code]))"
)
# TensorFlow's baseline for training: Keras + TensorFlow imported and one tiny model fitted.
TRAINING_BASELINE = (
    "import numpy as np, keras; model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]); "
    "model.compile('adam', 'mse'); model.fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0)"
)


def measure(argv: list[str], repeats: int = REPEATS) -> tuple[float, float]:
    """(median seconds, peak MiB) of running argv `repeats` times in fresh processes."""
    seconds, peaks = [], []
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(argv)], capture_output=True, text=True, check=True
        )
        elapsed, peak_kib, code = json.loads(completed.stdout)
        if code != 0:
            raise RuntimeError(f"{argv} exited {code}")
        seconds.append(elapsed)
        peaks.append(peak_kib / 1024)
    return statistics.median(seconds), max(peaks)


def run_startup(workspace: Workspace) -> SectionResult:
    folder = workspace.folder / "startup"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    # 120 videos x 10 frames x 1280 (MobileNetV2-sized) with some signal: 5.9 MB float32 on disk.
    features = rng.normal(size=(120, 10, 1280)).astype(np.float32) + labels[:, None, None] * 0.05
    cache = write_feature_cache(folder / "cache.h5", features, np.full(120, 10), labels, ["A", "B", "C"])
    featcache = [sys.executable, "-m", "featcache"]
    repeats = 1 if workspace.sizes == QUICK else REPEATS  # the smoke test only checks the code runs
    commands = {
        "`featcache --help`": [*featcache, "--help"],
        "`featcache info CACHE`": [*featcache, "info", str(cache)],
        "`featcache extractors`": [*featcache, "extractors"],
        "`python -c 'import keras'` (what every command paid before)": [sys.executable, "-c", "import keras"],
    }
    rows = []
    for name, argv in commands.items():
        seconds, peak = measure(argv, repeats)
        rows.append([name, f"{seconds:.2f}", f"{peak:.0f}"])
    start_up = Table(
        "CLI start-up (fresh process each run; median of 3)",
        ["command", "wall s", "peak RSS MiB"],
        rows,
        notes=["targets: ≤ 0.5 s and ≤ 150 MB for --help and info"],
    )

    baseline_seconds, baseline_peak = measure([sys.executable, "-c", TRAINING_BASELINE], repeats)
    features_mib = features.nbytes / 2**20
    train_argv = [
        *featcache,
        "train",
        str(cache),
        "--out",
        str(folder / "model"),
        "--overwrite",
        "--epochs",
        "3",
        "--quiet",
    ]
    _, train_peak = measure(train_argv, repeats)
    memory = Table(
        "Training peak RSS next to TensorFlow's baseline (LSTM 256 head, 3 epochs, 120 x 10 x 1280 features)",
        ["what", "peak RSS MiB"],
        [
            ["TensorFlow baseline: import + fit a 4 -> 2 Dense", f"{baseline_peak:.0f}"],
            ["features as float32", f"{features_mib:.0f}"],
            ["`featcache train`", f"{train_peak:.0f}"],
            ["ratio to (baseline + features)", f"{train_peak / (baseline_peak + features_mib):.2f}"],
        ],
        notes=["target: ≤ 1.5 × (baseline + features)"],
    )
    return SectionResult("9. CLI start-up and training memory", [start_up, memory])
