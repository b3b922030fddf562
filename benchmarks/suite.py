"""Running the benchmark sections in one process, on one video set, and writing BENCHMARKS.md."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.backbones import run_backbones
from benchmarks.cache_formats import run_cache_formats
from benchmarks.clips import run_clips
from benchmarks.decode_isolation import run_decode_isolation
from benchmarks.format2 import run_format2
from benchmarks.growth import run_growth
from benchmarks.heads import run_heads
from benchmarks.machine import describe_machine, load_average
from benchmarks.notebook_vs_featcache import run_notebook_vs_featcache
from benchmarks.ray_scaling import run_ray_scaling
from benchmarks.report import SectionResult, Table, render_markdown, write_plot
from benchmarks.runtimes import run_runtimes
from benchmarks.seeking import run_seeking
from benchmarks.stage_one import run_stage_one
from benchmarks.startup import run_startup
from benchmarks.workspace import SuiteSizes, Workspace, prepare_workspace

# Run order: stage one embeds the caches and dumps the notebook's JPEGs the later sections use.
SECTIONS: dict[str, Callable[[Workspace], SectionResult]] = {
    "stage_one": run_stage_one,
    "notebook": run_notebook_vs_featcache,
    "cache_formats": run_cache_formats,
    "growth": run_growth,
    "decode_isolation": run_decode_isolation,
    "backbones": run_backbones,
    "heads": run_heads,
    "clips": run_clips,
    "startup": run_startup,
    "format2": run_format2,
    "ray": run_ray_scaling,
    "seeking": run_seeking,
    "runtimes": run_runtimes,
}
SECTIONS_NEEDING_STAGE_ONE = {"notebook", "cache_formats"}
GPU_NOTE = (
    "`benchmarks/gpu.sh` runs the embed and train benchmarks under `KERAS_BACKEND=jax` on one NVIDIA GPU "
    "without TensorFlow (targets: embed ≥ 500 UCF-like videos/s, head epoch on a 9,537-video split ≤ 0.5 s). "
    "This task had no GPU lent, so it has not been run: no GPU figures are recorded here."
)


def section_number(title: str) -> tuple[int, str]:
    """ "4b. Backbones" -> (4, "b"): sections in number order (10 after 9, not after 1)."""
    number = re.match(r"(\d+)([a-z]*)", title)
    return (int(number.group(1)), number.group(2)) if number else (10**6, title)


def run_suite(
    sizes: SuiteSizes,
    markdown_path: Path,
    plot_path: Path,
    work_dir: Path,
    section_names: list[str],
    command: str,
    log: Callable[[str], None],
) -> str:
    """Run `section_names` (in SECTIONS order), write the markdown and the plot, return the markdown."""
    # Keras creates new tf.functions for every fit; TensorFlow's retracing warnings about it are noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    load_before = load_average()
    machine = describe_machine()
    wanted = [
        name
        for name in SECTIONS
        if name in section_names or (name == "stage_one" and SECTIONS_NEEDING_STAGE_ONE & set(section_names))
    ]
    log(f"preparing {sizes.videos.num_videos} videos in {work_dir} ...")
    workspace = prepare_workspace(work_dir, sizes)
    results = []
    for name in wanted:
        log(f"section {name} ... (load average {load_average()[0]:.2f})")
        section_started = time.perf_counter()
        results.append(SECTIONS[name](workspace))
        log(f"section {name} took {time.perf_counter() - section_started:.0f} s")
    results.sort(key=lambda section: section_number(section.title))  # sections are numbered in their titles
    results.append(SectionResult("5. Accelerator", [Table("GPU (`benchmarks/gpu.sh`)", ["status"], [[GPU_NOTE]])]))
    plotted = write_plot(results, plot_path)
    relative_plot = os.path.relpath(plot_path, markdown_path.parent) if plotted else None
    markdown = render_markdown(
        results, machine, load_before, load_average(), time.perf_counter() - started, command, relative_plot
    )
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(markdown)
    return markdown


def clean_work_dir(work_dir: Path, keep_videos: bool) -> None:
    """Remove what a run wrote in `work_dir`; the (deterministic) videos may stay for the next run."""
    if not work_dir.exists():
        return
    for path in work_dir.iterdir():
        if keep_videos and path.name == "videos":
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
