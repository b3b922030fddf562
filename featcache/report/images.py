"""Images for a page as data: URIs: matplotlib figures as SVG, video frames as JPEG."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

# Thumbnails are small and photographic: JPEG at this quality keeps a page of 100 strips of 8 frames under a few MB.
THUMBNAIL_JPEG_QUALITY = 85


def data_uri(payload: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(payload).decode('ascii')}"


def figure_to_data_uri(figure: Any) -> str:
    """A matplotlib Figure -> 'data:image/svg+xml;base64,...' (vector: sharp at any zoom, small for line plots)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg")
    return data_uri(buffer.getvalue(), "image/svg+xml")


def frame_to_data_uri(frame_rgb: np.ndarray) -> str:
    """uint8 RGB (height, width, 3) -> 'data:image/jpeg;base64,...'."""
    import cv2

    encoded, payload = cv2.imencode(
        ".jpg", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY]
    )
    if not encoded:
        raise ValueError(f"cv2.imencode failed on a frame of shape {frame_rgb.shape}")
    return data_uri(payload.tobytes(), "image/jpeg")


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas: no pyplot global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def bar_chart(labels: list[str], values: list[int], xlabel: str, ylabel: str) -> str:
    """A vertical bar chart as an SVG data URI (e.g. videos per class)."""
    figure = new_figure(max(4.0, 0.35 * len(labels) + 2.0), 3.5)
    axes = figure.add_subplot()
    axes.bar(range(len(labels)), values, color="#4878a8")
    axes.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 6 else 0)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return figure_to_data_uri(figure)


def histogram(values: np.ndarray, xlabel: str, bins: int = 20) -> str:
    """A histogram of `values` as an SVG data URI (e.g. video lengths)."""
    figure = new_figure(6.0, 3.5)
    axes = figure.add_subplot()
    axes.hist(values, bins=bins, color="#4878a8")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("videos")
    return figure_to_data_uri(figure)
