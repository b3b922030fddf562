"""The learning-curves figure of a model folder (learning_curves.png, and the HTML report's SVG): loss and accuracy
per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_learning_curves(history: list[dict[str, float]], png_path: Path, best_epoch: int) -> None:
    """Loss and accuracy per epoch, training and validation (when there is one), with the kept epoch marked."""
    learning_curves_figure(history, best_epoch).savefig(png_path, dpi=100)


def learning_curves_figure(history: list[dict[str, float | None]], best_epoch: int, width: float = 10.0) -> Any:
    """The matplotlib Figure of `plot_learning_curves` (the HTML report embeds it as SVG)."""
    # The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, width * 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    epochs = [row["epoch"] for row in history]
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        axes.plot(epochs, [row[metric] for row in history], marker="o", label="train")
        if any(row[f"val_{metric}"] is not None for row in history):
            axes.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", label="validation")
        axes.axvline(best_epoch, color="grey", linestyle="--", label=f"kept epoch {best_epoch}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.legend()
    return figure
