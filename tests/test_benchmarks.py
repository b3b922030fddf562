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
        # every section at tiny sizes: ~4 minutes on the 2-core CI machine (13 sections, several start TensorFlow;
        # the runtimes section converts and quantizes a tiny scratch_cnn and runs `embed` once per runtime)
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
        "## 14. OpenVINO runtimes (issue 20)",
    ):
        assert heading in text
    assert "| CPU |" in text and "load average" in text
    assert text in completed.stdout  # the same markdown is printed
    assert plot.stat().st_size > 0


def test_the_runtimes_section_compares_every_runtime_with_keras():
    """`python -m benchmarks --sections runtimes`: its tables and issue 20's targets from measure_runtimes' figures
    (the quick suite above runs the measurement itself)."""
    from benchmarks.runtimes import runtimes_section
    from benchmarks.suite import SECTIONS

    assert "runtimes" in SECTIONS
    bare = {"extractor": "scratch_cnn", "image_size": 32, "frames": 12, "keras_images_per_s": 10.0}
    bare.update(openvino_f32_images_per_s=20.0, f32_max_abs_diff_per_scale=1e-6, f32_min_cosine=1.0)
    bare.update(first_conversion_s=3.0, int8_images_per_s=40.0, int8_mean_cosine_all_frames=0.98)
    bare.update(int8_min_cosine_all_frames=0.97)
    summary = "3 embedded, 0 already cached, 0 failed of 3 videos in 1.0 s (embedding {} videos/s, 9 frames/s) -> x"
    embeds = [
        {"extractor": "scratch_cnn", "runtime": "keras", "exit": 0, "wall_s": 30.0, "summary": summary.format(1.0)},
        {
            "extractor": "scratch_cnn",
            "runtime": "openvino f32",
            "exit": 0,
            "wall_s": 15.0,
            "summary": summary.format(3),
        },
        {"extractor": "scratch_cnn", "runtime": "openvino int8", "exit": 2, "wall_s": 5.0, "summary": "Error: refused"},
    ]
    results = {"bare": [bare], "embed": embeds, "onednn": "oneDNN on", "load_average_before": (1.0, 1.0, 1.0)}
    section = runtimes_section({**results, "load_average_after": (2.0, 2.0, 2.0)})
    bare_table, embed_table = section.tables
    assert bare_table.rows[0][2:4] == ["20 (2.00×)", "40 (4.00×)"]
    assert embed_table.rows[1][3:] == ["15.0", "3.00", "2.00×", "3.00×"]
    assert embed_table.rows[2][2:5] == ["2", "5.0", "Error: refused"]
    met = {target.goal.split(": ", 1)[1]: target.met for target in section.targets}
    assert met == {
        "OpenVINO f32 inference ≥ 1.7× Keras-TF": True,
        "int8 inference ≥ 3.0× Keras-TF at mean cosine ≥ 0.99": False,  # fast enough, but cosine 0.98
        "`embed` with OpenVINO f32 ≥ 1.5× Keras-TF end to end (wall)": True,
    }
