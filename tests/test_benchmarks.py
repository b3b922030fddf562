"""Smoke test of the benchmark suite (`python -m benchmarks --quick`): every section's code runs at tiny sizes.

The figures themselves are not checked (they measure this machine, not featcache's correctness); what is
checked is that the suite still runs end to end against the current library and writes its report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def test_quick_suite_writes_the_report_and_plot(tmp_path):
    report, plot = tmp_path / "BENCHMARKS.md", tmp_path / "benchmarks.png"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--out",
            str(report),
            "--plot",
            str(plot),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        # every section at tiny sizes: ~4 minutes on the 2-core CI machine (11 sections, several start TensorFlow)
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    text = report.read_text()
    for heading in (
        "## Machine",
        "## Targets",
        "## 1. Training",
        "## 2. Stage one",
        "## 3. Cache format",
        "## 4. Growth",
        "## 5. Accelerator",
    ):
        assert heading in text
    assert "| CPU |" in text and "load average" in text
    assert text in completed.stdout  # the same markdown is printed
    assert plot.stat().st_size > 0
