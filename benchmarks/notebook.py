"""The notebook's pipeline, ported as it was to TensorFlow 2.21 / Keras 3: the baseline featcache replaces.

Its stage one seeks (CAP_PROP_POS_FRAMES) to evenly spaced frames of each video and writes each frame to
disk as a JPEG. Its training reads the JPEGs of every batch back in a Python generator, resizes and
preprocesses them, and fits TimeDistributed(CNN) -> Masking -> LSTM -> Dense -> Dropout -> softmax with
`model.fit`, so every epoch decodes every JPEG again and runs the CNN on every frame again. With
MobileNetV2 the CNN is frozen; the scratch CNN is trained end to end with the head.

Its habits are kept on purpose, since they are what is being measured: seeking, full-size JPEGs,
preprocessing in Python, and the mask taken from zero-valued features (which, after a CNN, never
masks anything). Only the notebook's globals became arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import layers

from featcache.video.find import VideoEntry


def dump_frames_as_jpegs(entries: list[VideoEntry], frames_dir: Path, num_frames: int) -> list[list[Path]]:
    """The notebook's frame extraction: seek to `num_frames` evenly spaced frames, write each as a JPEG.

    Returns the JPEG paths of each video, in order. Trusts CAP_PROP_FRAME_COUNT and the seek, as it did.
    """
    frames_dir.mkdir(parents=True, exist_ok=True)
    frame_paths = []
    for entry in entries:
        capture = cv2.VideoCapture(str(entry.path))
        paths = []
        try:
            frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            for position, frame_index in enumerate(np.linspace(0, frame_count - 1, num_frames).astype(int)):
                capture.set(cv2.CAP_PROP_POS_FRAMES, int(frame_index))
                read, frame = capture.read()
                if read:
                    path = frames_dir / f"{Path(entry.relative_path).stem}_frame{position:03d}.jpg"
                    cv2.imwrite(str(path), frame)
                    paths.append(path)
        finally:
            capture.release()
        frame_paths.append(paths)
    return frame_paths


def jpeg_batches(
    frame_paths: list[list[Path]],
    labels: np.ndarray,
    batch_size: int,
    num_frames: int,
    image_size: int,
    preprocess: Callable[[np.ndarray], np.ndarray],
    shuffle: bool,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The notebook's generator: endless full batches of (float32 (batch, T, size, size, 3), int labels).

    Each batch reads its videos' JPEGs from disk, converts BGR to RGB, resizes, zero-pads short videos
    to `num_frames` and preprocesses, every time it is drawn. Like the notebook, an epoch is
    len(videos) // batch_size batches.
    """
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(frame_paths)) if shuffle else np.arange(len(frame_paths))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[start : start + batch_size]
            videos = np.zeros((batch_size, num_frames, image_size, image_size, 3), dtype=np.float32)
            for slot, row in enumerate(rows):
                for position, path in enumerate(frame_paths[row][:num_frames]):
                    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
                    videos[slot, position] = cv2.resize(image, (image_size, image_size))
            yield preprocess(videos), labels[rows]


def _mobilenet_v2_cnn(image_size: int) -> keras.Model:
    """keras.applications.MobileNetV2 without its top, average-pooled, frozen (random weights: same compute)."""
    cnn = keras.applications.MobileNetV2(
        include_top=False, pooling="avg", input_shape=(image_size, image_size, 3), weights=None
    )
    cnn.trainable = False
    return cnn


def _scratch_cnn(image_size: int) -> keras.Model:
    """The notebook's CNN as it wrote it: eight 'same' ReLU convolutions, four max-pools, Flatten; trainable."""
    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 4, padding="same", activation="relu"),
            layers.Conv2D(128, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
        ],
        name="notebook_scratch_cnn",
    )


@dataclass(frozen=True)
class NotebookExperiment:
    """One of the notebook's two experiments: its CNN, its preprocessing and its head."""

    build_cnn: Callable[[int], keras.Model]
    preprocess: Callable[[np.ndarray], np.ndarray]
    lstm_units: int
    dense_units: int
    cnn_trained: bool


NOTEBOOK_EXPERIMENTS = {
    "mobilenet_v2": NotebookExperiment(
        _mobilenet_v2_cnn, keras.applications.mobilenet_v2.preprocess_input, 512, 128, cnn_trained=False
    ),
    "scratch_cnn": NotebookExperiment(_scratch_cnn, lambda videos: videos / 255.0, 128, 32, cnn_trained=True),
}


def build_notebook_model(
    experiment: NotebookExperiment, num_frames: int, image_size: int, num_classes: int, seed: int = 0
) -> keras.Model:
    """TimeDistributed(CNN) -> Masking(0) -> LSTM(dropout 0.5, recurrent_dropout 0.5) -> Dense(relu) -> Dropout(0.3)
    -> softmax.
    """
    keras.utils.set_random_seed(seed)
    videos = keras.Input((num_frames, image_size, image_size, 3), name="videos")
    features = layers.TimeDistributed(experiment.build_cnn(image_size), name="frame_cnn")(videos)
    features = layers.Masking(mask_value=0.0)(features)
    summary = layers.LSTM(experiment.lstm_units, dropout=0.5, recurrent_dropout=0.5)(features)
    hidden = layers.Dropout(0.3)(layers.Dense(experiment.dense_units, activation="relu")(summary))
    model = keras.Model(videos, layers.Dense(num_classes, activation="softmax")(hidden), name="notebook")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


@dataclass(frozen=True)
class NotebookEpochs:
    """Steady-state epoch seconds of the notebook's model.fit (one epoch = training + validation pass).

    seconds_per_epoch: the fastest of the epochs timed (the least disturbed by other work on the machine).
    """

    seconds_per_epoch: float
    num_epochs_measured: int
    warmup_seconds: float
    build_seconds: float


def time_notebook_epochs(
    experiment: NotebookExperiment,
    train_frames: list[list[Path]],
    train_labels: np.ndarray,
    test_frames: list[list[Path]],
    test_labels: np.ndarray,
    num_classes: int,
    num_frames: int,
    image_size: int,
    batch_size: int,
    num_epochs: int,
) -> NotebookEpochs:
    """Build the notebook's model and time `num_epochs` epochs of its model.fit on the JPEG generators.

    One training and one validation step run first (untimed), so the epochs measured do not include
    tracing the graph: the figure is the cost every later epoch pays.
    """
    started = time.perf_counter()
    model = build_notebook_model(experiment, num_frames, image_size, num_classes)
    build_seconds = time.perf_counter() - started

    def generator(frames: list[list[Path]], labels: np.ndarray, shuffle: bool) -> Iterator:
        return jpeg_batches(frames, labels, batch_size, num_frames, image_size, experiment.preprocess, shuffle)

    train_steps, test_steps = len(train_frames) // batch_size, len(test_frames) // batch_size
    if train_steps == 0 or test_steps == 0:
        raise ValueError(
            f"the notebook needs at least one full batch of {batch_size} on each side, "
            f"got {len(train_frames)} / {len(test_frames)} videos"
        )
    started = time.perf_counter()
    model.fit(generator(train_frames, train_labels, True), steps_per_epoch=1, epochs=1, verbose=0)
    model.evaluate(generator(test_frames, test_labels, False), steps=1, verbose=0)
    warmup_seconds = time.perf_counter() - started
    epoch_times = _EpochTimes()
    model.fit(
        generator(train_frames, train_labels, True),
        steps_per_epoch=train_steps,
        epochs=num_epochs,
        validation_data=generator(test_frames, test_labels, False),
        validation_steps=test_steps,
        callbacks=[epoch_times],
        verbose=0,
    )
    del model
    keras.backend.clear_session()
    return NotebookEpochs(min(epoch_times.seconds), num_epochs, warmup_seconds, build_seconds)
