"""Turning measurements into BENCHMARKS.md: tables, targets, the machine, and one PNG plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A markdown table under a heading; notes are printed below it, one bullet each."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """A goal from the issues, what was measured, and whether it was met (None: not measurable here)."""

    goal: str
    measured: str
    met: bool | None


@dataclass
class SectionResult:
    """What one benchmark section produced. `plot` holds the numbers the PNG draws (see `write_plot`)."""

    title: str
    tables: list[Table]
    targets: list[Target] = field(default_factory=list)
    plot: dict[str, Any] = field(default_factory=dict)


def seconds(value: float) -> str:
    """A duration for a table cell: 3 significant figures, in s (or min above 10 minutes)."""
    if value >= 600:
        return f"{value / 60:.1f} min"
    return f"{value:.3g} s"


def ratio(value: float) -> str:
    return f"{value:.3g}×"


def rate(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def mebibytes(value: float) -> str:
    return f"{value:,.0f} MiB" if value >= 100 else f"{value:.3g} MiB"


def render_markdown(
    sections: list[SectionResult],
    machine: dict[str, str],
    load_before: tuple,
    load_after: tuple,
    suite_seconds: float,
    command: str,
    plot_path: str | None,
) -> str:
    """The whole BENCHMARKS.md: how it was made, the machine, the targets, then each section's tables."""
    lines = [
        "# Benchmarks",
        "",
        (
            f"Written by `{command}` (the suite in `benchmarks/`; `make bench` runs the same). "
            "One run, one machine, the same"
        ),
        "videos for every contender in a section. Figures are ratios measured side by side in this run; absolute",
        "seconds are context for this machine only. ImageNet weights and UCF101 cannot be downloaded here, so the",
        "CNNs carry random weights (the same compute) and the videos are synthetic UCF101-like clips",
        "(featcache's demo motions upscaled to 320×240, 25 fps, XVID, ~520 KB each like UCF101's): these",
        "figures are about cost, not accuracy.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in machine.items()]
    lines += [
        f"| load average (1, 5, 15 min) at start | {', '.join(f'{value:.2f}' for value in load_before)} |",
        f"| load average at end | {', '.join(f'{value:.2f}' for value in load_after)} |",
        f"| suite wall time | {seconds(suite_seconds)} |",
        "",
        "Other work shared this machine's cores during the run when the load average exceeds the core count;",
        "side-by-side ratios are less affected by that than absolute seconds.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for section in sections:
        for target in section.targets:
            verdict = {True: "yes", False: "**no**", None: "not measured here"}[target.met]
            lines.append(f"| {target.goal} | {target.measured} | {verdict} |")
    if plot_path:
        lines += ["", f"![benchmark plot]({plot_path})"]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        for table in section.tables:
            lines += [table.to_markdown(), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_plot(sections: list[SectionResult], path: Path) -> bool:
    """One PNG: epoch seconds per contender (log scale), and growth of time and peak memory with size.

    Draws the panels whose numbers are present; returns False when no section gave any.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plot: dict[str, Any] = {}
    for section in sections:
        plot.update(section.plot)
    panels = [name for name in ("epoch_seconds", "growth_time", "growth_memory") if name in plot]
    if not panels:
        return False
    figure = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    for position, name in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        _DRAW[name](axes, plot[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return True


def _draw_epoch_seconds(axes, contenders: dict[str, dict[str, float]]) -> None:
    """contenders: extractor -> {contender label: seconds per epoch}."""
    labels = sorted(
        {label for values in contenders.values() for label in values}, key=list(next(iter(contenders.values()))).index
    )
    width = 0.8 / max(len(labels), 1)
    for offset, label in enumerate(labels):
        positions = [index + offset * width for index in range(len(contenders))]
        values = [contenders[extractor].get(label, float("nan")) for extractor in contenders]
        axes.bar(positions, values, width, label=label)
    axes.set_xticks([index + width * (len(labels) - 1) / 2 for index in range(len(contenders))], list(contenders))
    axes.set_yscale("log")
    axes.set_ylabel("seconds per epoch (log)")
    axes.set_title("One training epoch, same videos")
    axes.legend(fontsize=8)


def _draw_growth_time(axes, series: dict[str, dict[int, float]]) -> None:
    """series: label -> {size multiplier: seconds}; drawn relative to the 1x value, with the linear line."""
    multipliers = sorted({multiplier for values in series.values() for multiplier in values})
    axes.plot(multipliers, multipliers, color="grey", linestyle=":", label="linear")
    for label, values in series.items():
        sizes = sorted(values)
        axes.plot(sizes, [values[size] / values[sizes[0]] * sizes[0] for size in sizes], marker="o", label=label)
    axes.set_xlabel("videos (× the smallest size)")
    axes.set_ylabel("time (× the smallest size's)")
    axes.set_title("Growth: time")
    axes.legend(fontsize=8)


def _draw_growth_memory(axes, series: dict[str, dict[int, float]]) -> None:
    """series: label -> {size multiplier: peak RSS MiB}."""
    for label, values in series.items():
        sizes = sorted(values)
        axes.plot(sizes, [values[size] for size in sizes], marker="o", label=label)
    axes.set_xlabel("videos (× the smallest size)")
    axes.set_ylabel("peak RSS (MiB)")
    axes.set_ylim(bottom=0)
    axes.set_title("Growth: peak memory")
    axes.legend(fontsize=8)


_DRAW = {"epoch_seconds": _draw_epoch_seconds, "growth_time": _draw_growth_time, "growth_memory": _draw_growth_memory}
