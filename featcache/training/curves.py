"""The learning-curves figure of a model folder (learning_curves.png): loss and accuracy per epoch."""

from __future__ import annotations

from pathlib import Path


def plot_learning_curves(history: list[dict[str, float]], png_path: Path, best_epoch: int) -> None:
    """Loss and accuracy per epoch, training and validation (when there is one), with the kept epoch marked."""
    # The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
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
    figure.savefig(png_path, dpi=100)
