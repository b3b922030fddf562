"""Frozen settings for each stage, saved with each stage's output and rebuilt with `Config(**saved)`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from featcache.errors import InputError
from featcache.extractors.catalog import KERAS_HUB_PREFIX, default_image_size

SAMPLING_MODES = ("uniform", "fps")
# How the sampled frames are decoded (featcache.video.decode): they are the same frames whichever runs.
DECODERS = ("auto", "seek", "sequential")


def check_decoder(decoder: str) -> None:
    """InputError unless `decoder` is one of DECODERS (`embed` and `predict` take the same --decoder)."""
    if decoder not in DECODERS:
        raise InputError(f"unknown --decoder / decoder {decoder!r}; choose one of {', '.join(DECODERS)}")


# Accepted ranges of the embed options (inclusive). The upper bounds only catch typos and absurd values
# (a machine's memory is checked separately, see `resources.check_embed_memory`): 100,000 frames is
# an hour at 30 fps; 4096 px is beyond any image model's input; 256 decode worker processes is
# beyond any machine this runs on.
MAX_FRAMES = 100_000
MAX_SAMPLING_FPS = 1000.0
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096
MAX_BATCH_SIZE = 65_536
MAX_DECODE_WORKERS = 256


def check_in_range(option: str, value: float, low: float, high: float, note: str = "") -> None:
    """Raise InputError naming `option` and [low, high] unless `value` is a finite number in it.

    option: the CLI flag and the config field, "--frames / num_frames", so the message serves CLI and API users alike.
    """
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and low <= value <= high):
        raise InputError(f"{option} must be in [{low:g}, {high:g}]{note}, got {value}")


FEATURE_DTYPES = ("float16", "float32")
COMPRESSIONS = ("none", "gzip", "lzf")


@dataclass(frozen=True)
class SamplingConfig:
    """Which frames of a video are decoded, in temporal order.

    uniform: `num_frames` frames spread evenly over the whole video (first and last frame included).
    fps: one frame every 1/`fps` seconds from the start, at most `num_frames`; `num_frames` 0 takes every
    sampled frame of the whole video (variable length: a cache stores each video's frames unpadded).
    """

    num_frames: int = 10
    mode: str = "uniform"
    fps: float | None = None

    def __post_init__(self) -> None:
        if not (self.num_frames == 0 and self.mode == "fps"):  # 0 with fps: every sampled frame
            check_in_range(
                "--frames / num_frames",
                self.num_frames,
                1,
                MAX_FRAMES,
                " (or 0 with --sampling fps: every sampled frame)",
            )
        if self.mode not in SAMPLING_MODES:
            raise InputError(f"unknown --sampling / mode {self.mode!r}; choose one of {', '.join(SAMPLING_MODES)}")
        if self.mode == "fps" and self.fps is None:
            raise InputError('--sampling fps (mode "fps") needs --fps / fps F > 0 (frames per second to take)')
        if self.mode == "fps":
            if not (math.isfinite(self.fps) and 0 < self.fps <= MAX_SAMPLING_FPS):
                raise InputError(f"--fps / fps must be in (0, {MAX_SAMPLING_FPS:g}] frames per second, got {self.fps}")
        if self.mode == "uniform" and self.fps is not None:
            raise InputError('--fps / fps only applies to --sampling fps (mode "fps")')


@dataclass(frozen=True)
class ExtractorConfig:
    """Which frozen image model turns a frame into a feature vector.

    name: a registry name (`featcache extractors`): mobilenet_v2, keras:ResNet50, keras_file,
      keras_hub:PRESET_OR_FOLDER, ...
    weights: "imagenet" (Keras downloads it; for tfhub/keras_hub the handle's or preset's own weights),
      "random" (explicit, seeded by `seed`) or a file path (a weights file; the model file for keras_file).
    handle: TF-Hub URL or local SavedModel folder (only for the `tfhub` extractor).
    image_size: the square input size frames are resized to; None: the extractor's own
      (featcache.extractors.catalog.default_image_size), resolved here so the saved config always has a number.
    """

    name: str = "mobilenet_v2"
    weights: str = "imagenet"
    handle: str | None = None
    image_size: int | None = 224
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weights not in ("imagenet", "random"):
            # Stored with the cache and the model: an absolute path still names the file from another folder.
            object.__setattr__(self, "weights", str(Path(self.weights).expanduser().absolute()))
        preset = self.name.removeprefix(KERAS_HUB_PREFIX)
        if self.name.startswith(KERAS_HUB_PREFIX) and Path(preset).expanduser().is_dir():
            # A local preset folder, named absolutely for the same reason as a weights file.
            object.__setattr__(self, "name", KERAS_HUB_PREFIX + str(Path(preset).expanduser().absolute()))
        if self.image_size is None:
            object.__setattr__(self, "image_size", default_image_size(self.name, self.weights))
        check_in_range("--image-size / image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, " pixels")


ENGINES = ("local", "ray")
# What runs the extractor on frames (featcache.extractors.runtimes): same features, so not a stored setting.
RUNTIMES = ("auto", "keras", "openvino")
# Inference precision of the extractor (featcache.extractors.openvino_int8): int8 features are other features,
# so precision is stored with the cache (its extractor record's `precision`, absent = "f32").
PRECISIONS = ("f32", "int8")
# Frames NNCF calibrates int8 on (as many again are held out for the gate); see openvino_int8.py for the default.
DEFAULT_CALIBRATION_FRAMES = 128
DEFAULT_INT8_MIN_COSINE = 0.99  # the int8 gate: mean cosine of int8 vs f32 features on held-out frames
# (option, EmbedConfig field, default) of the options only the Ray engine reads.
RAY_ONLY_OPTIONS = (
    ("--ray-address", "ray_address", None),
    ("--embed-workers", "embed_workers", 0),
    ("--gpus-per-worker", "gpus_per_worker", None),
    ("--decode-cpus", "decode_cpus", 1.0),
)
MAX_GPUS_PER_WORKER = 8  # one node's GPUs
MAX_DECODE_CPUS = 64


@dataclass(frozen=True)
class EmbedConfig:
    """Everything `featcache embed` needs besides the video list and the output path."""

    extractor: ExtractorConfig = ExtractorConfig()
    sampling: SamplingConfig = SamplingConfig()
    dtype: str = "float16"
    compression: str = "none"
    batch_size: int = 64
    num_decode_workers: int = 0  # 0: one per core this process may use (featcache.embedding.resources)
    # How frames are decoded (DECODERS, featcache.video.decode): not a setting features depend on, since every
    # decoder gives the same frames (tests/test_seek_decode.py), so it is not in the settings record.
    decoder: str = "auto"
    allow_outside_root: bool = False  # CSV rows may name files outside the CSV's folder (see videos.find_videos)
    # Where stage one runs (featcache.embedding.ray_engine): "local", or "ray" with the cluster options below.
    engine: str = "local"
    ray_address: str | None = None  # "auto", HOST:PORT; None: RAY_ADDRESS, or a new local Ray instance
    embed_workers: int = 0  # Ray actors running the extractor; 0: one per GPU (gpus_per_worker each), or 1 without GPUs
    gpus_per_worker: float | None = None  # GPUs per embed worker; None: 1 when the cluster has GPUs, else 0
    decode_cpus: float = (
        1.0  # CPUs per Ray decode worker (their number: num_decode_workers, 0: the cluster's CPUs left)
    )
    runtime: str = "auto"  # RUNTIMES: auto = OpenVINO on a CPU when installed, else Keras
    precision: str = "f32"  # PRECISIONS; int8 runs on OpenVINO, quantized on the run's first frames
    calibration_frames: int = DEFAULT_CALIBRATION_FRAMES
    int8_min_cosine: float = DEFAULT_INT8_MIN_COSINE

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise InputError(f"unknown --runtime / runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise InputError(
                f"unknown --precision / precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if self.precision == "int8" and (self.runtime == "keras" or self.engine != "local"):
            raise InputError(
                "--precision int8 runs on OpenVINO with the local engine: drop --runtime keras / --engine ray"
            )
        check_in_range("--calibration-frames / calibration_frames", self.calibration_frames, 8, MAX_BATCH_SIZE)
        check_in_range("--int8-min-cosine / int8_min_cosine", self.int8_min_cosine, -1.0, 1.0)
        if self.engine not in ENGINES:
            raise InputError(f"unknown --engine / engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.engine == "local":
            given = [option for option, value, default in RAY_ONLY_OPTIONS if getattr(self, value) != default]
            if given:
                raise InputError(f'{", ".join(given)} only apply to --engine ray (engine="ray")')
        check_in_range(
            "--embed-workers / embed_workers", self.embed_workers, 0, MAX_DECODE_WORKERS, " (0: one per GPU, or 1)"
        )
        if self.gpus_per_worker is not None and not 0 <= self.gpus_per_worker <= MAX_GPUS_PER_WORKER:
            raise InputError(
                f"--gpus-per-worker / gpus_per_worker must be in [0, {MAX_GPUS_PER_WORKER}], got {self.gpus_per_worker}"
            )
        if not 0 < self.decode_cpus <= MAX_DECODE_CPUS:
            raise InputError(f"--decode-cpus / decode_cpus must be in (0, {MAX_DECODE_CPUS}], got {self.decode_cpus}")
        check_decoder(self.decoder)
        if self.dtype not in FEATURE_DTYPES:
            raise InputError(f"unknown --dtype / dtype {self.dtype!r}; choose one of {', '.join(FEATURE_DTYPES)}")
        if self.compression not in COMPRESSIONS:
            raise InputError(
                f"unknown --compression / compression {self.compression!r}; choose one of {', '.join(COMPRESSIONS)}"
            )
        check_in_range("--batch-size / batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_in_range(
            "--workers / num_decode_workers",
            self.num_decode_workers,
            0,
            MAX_DECODE_WORKERS,
            " (0: one per usable CPU core)",
        )


ConfigT = TypeVar("ConfigT")


def config_from_dict(config_class: type[ConfigT], saved: dict[str, Any]) -> ConfigT:
    """Rebuild a config dataclass from its saved dict; unknown keys are an error, not ignored."""
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise InputError(
            f"{config_class.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return config_class(**saved)


SEQUENCE_HEAD_NAMES = (
    "lstm",
    "gru",
    "meanpool",
    "transformer",
    "tcn",
)  # mirrors featcache.training.heads.HEADS (kept here so configs import no Keras)
# Baselines on mean-pooled features, no sequence model (featcache.training.baselines.BASELINE_KINDS).
BASELINE_NAMES = ("linear", "knn")
HEAD_NAMES = SEQUENCE_HEAD_NAMES + BASELINE_NAMES  # what `train --head` and `compare --heads` accept
POSITION_ENCODINGS = ("learned", "sinusoidal")
POOLINGS = ("mean", "cls")
CLASS_WEIGHTS = ("none", "balanced")
_TOP = ("dense", "final_dropout")
HEAD_SETTINGS_USED = {
    "lstm": ("units", "dropout", "recurrent_dropout", *_TOP),
    "gru": ("units", "dropout", "recurrent_dropout", *_TOP),
    "meanpool": _TOP,
    "transformer": ("units", "num_layers", "num_heads", "positions", "pooling", "dropout", *_TOP),
    "tcn": ("units", "num_layers", "kernel_size", "dropout", *_TOP),
    "linear": (),  # its C is chosen on the validation set (featcache.training.baselines)
    "knn": (),  # its k is chosen on the validation set
}
CLIP_SAMPLINGS = ("uniform", "random")  # featcache.training.clips (kept here so configs import nothing else)
SPLIT_NAMES = ("auto", "ucf101-1", "ucf101-2", "ucf101-3")


@dataclass(frozen=True)
class HeadConfig:
    """A sequence classifier on cached features (see featcache.training.heads).

    units: size of the recurrent state (lstm, gru), the model width (transformer), the filters (tcn);
      unused by meanpool.
    dense: width of the ReLU layer before the softmax.
    dropout: dropout on the sequence layer's inputs (the notebook's 0.5; every head but meanpool).
    recurrent_dropout: dropout on the recurrent state (the notebook's 0.5; lstm, gru).
    final_dropout: dropout after the dense layer (the notebook's 0.3).
    num_layers: encoder blocks (transformer) or dilated convolution levels, dilations 1, 2, 4, ... (tcn: at least
      this many, more where needed for the receptive field to span the head's frames; with 2 levels, 7 frames, the
      tcn was at chance on 45-90-frame order-only videos, BENCHMARKS.md section 6).
    num_heads: attention heads (transformer); each attends with units // num_heads dims.
    positions: "sinusoidal" (fixed) or "learned" (one trained vector per frame position) (transformer). Sinusoidal by
      measurement: on a 12-class permuted-segments set (benchmarks/heads.py, lr 1e-3, 30 epochs) learned positions
      (initialised small) had not learned the order (test 0.15) where sinusoidal ones reached 0.96.
    pooling: "mean" over the real frames or "cls" (a learned token prepended, its output classifies) (transformer).
    kernel_size: frames each convolution sees at dilation 1 (tcn).

    Defaults by measurement (2-core CPU, 3 seeds, demo-data cache and a 600-video order-only synthetic cache):
    recurrent_dropout 0.5 was no more accurate than 0 but cost 1.5-2.5x per epoch (a 9,537 x 10 x 1280 cache:
    LSTM(256) ~7-11 s/epoch at 0 vs ~10-19 s at 0.5), and only 0 allows the fused cuDNN kernel on a GPU.
    Accuracy did not move between 128, 256 and 512 units (nor dense 64-256); 512 (the notebook's) cost 1.5-2x
    the epoch time of 256. 256 is kept over 128 as headroom for 101-class data, which was not measured.
    """

    head: str = "lstm"
    units: int = 256
    dense: int = 128
    dropout: float = 0.5
    recurrent_dropout: float = 0.0
    final_dropout: float = 0.3
    num_layers: int = 2
    num_heads: int = 4
    positions: str = "sinusoidal"
    pooling: str = "mean"
    kernel_size: int = 3

    def __post_init__(self) -> None:
        if self.head not in HEAD_NAMES:
            raise InputError(f"unknown head {self.head!r}; choose one of {', '.join(HEAD_NAMES)}")
        if self.units < 1:
            raise InputError(f"--units / units must be at least 1, got {self.units}")
        if self.dense < 1:
            raise InputError(f"--dense / dense must be at least 1, got {self.dense}")
        for option, value in (
            ("--dropout / dropout", self.dropout),
            ("--recurrent-dropout / recurrent_dropout", self.recurrent_dropout),
            ("final_dropout", self.final_dropout),
        ):
            if not 0.0 <= value < 1.0:
                raise InputError(f"{option} must be in [0, 1), got {value}")
        for option, value in (
            ("--layers / num_layers", self.num_layers),
            ("--attention-heads / num_heads", self.num_heads),
            ("--kernel-size / kernel_size", self.kernel_size),
        ):
            if value < 1:
                raise InputError(f"{option} must be at least 1, got {value}")
        if self.positions not in POSITION_ENCODINGS:
            raise InputError(
                f"unknown --positions / positions {self.positions!r}; choose one of {', '.join(POSITION_ENCODINGS)}"
            )
        if self.pooling not in POOLINGS:
            raise InputError(f"unknown --pooling / pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")

    def used_settings(self) -> dict[str, Any]:
        """The settings this head reads (the others keep their defaults and change nothing), for messages."""
        return {name: getattr(self, name) for name in HEAD_SETTINGS_USED[self.head]}


@dataclass(frozen=True)
class TrainConfig:
    """How a head is trained on a cache.

    split: which videos are the test set, never seen in training or epoch selection: "auto" (group-aware
      stratified, `test_fraction` of the videos) or "ucf101-1|2|3" (official splits); ignored in favour of
      `split_file` when that is given (a UCF101 trainlist/testlist or a path,subset CSV).
    test_fraction: the test share of the "auto" split.
    val_fraction: the share of the training videos (the non-test side) held out, group-aware and stratified,
      as the validation set that picks the best epoch; 0: no validation set, the last epoch is kept.
    memory_budget_mb: caches whose float32 features fit load into memory once; larger ones stream from disk.
    frames: 0 trains on the stored frames as they are; T > 0 on a T-frame clip of each video taken from what is
      stored (featcache.training.clips: one frame from each of T equal segments), for dense caches.
    clip_sampling: "uniform" (each segment's centre, the same clip every epoch) or "random" (a random frame of
      each segment, a new clip every epoch: augmentation without decoding). Validation always takes uniform clips.
    test_clips: scoring (test accuracy, evaluate, predict) averages the softmax over K evenly offset uniform clips.
    patience: stop when this many epochs in a row bring no better validation epoch (0: train all epochs).
    class_weight: "none", or "balanced": each training video's loss weighs n / (num_classes * n_class), counted
      on the training videos, so a rare class counts as much as a common one in total (scikit-learn's rule).
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    split: str = "auto"
    split_file: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    seed: int = 0
    tensorboard_dir: str | None = None
    memory_budget_mb: int = 2048
    class_weight: str = "none"
    patience: int = 0
    frames: int = 0
    clip_sampling: str = "uniform"
    test_clips: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InputError(f"--epochs / epochs must be at least 1, got {self.epochs}")
        if self.patience < 0:
            raise InputError(f"--patience / patience must be 0 (no early stopping) or more epochs, got {self.patience}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size / batch_size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise InputError(f"--learning-rate / learning_rate must be above 0, got {self.learning_rate}")
        if self.split not in SPLIT_NAMES:
            raise InputError(
                f"unknown --split / split {self.split!r}; choose one of {', '.join(SPLIT_NAMES)} "
                "(or pass --split-file FILE)"
            )
        if self.split_file is not None and self.split != "auto":
            raise InputError(
                f"--split / split {self.split} and --split-file / split_file both choose the split; pass only one"
            )
        # 0.5 at most: a group-aware split holds out one of round(1 / fraction) >= 2 folds.
        if not 0.0 < self.test_fraction <= 0.5:
            raise InputError(f"--test-fraction / test_fraction must be in (0, 0.5], got {self.test_fraction}")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise InputError(
                "--val-fraction / val_fraction must be in [0, 0.5] (0: no validation, keep the last epoch), "
                f"got {self.val_fraction}"
            )
        if self.memory_budget_mb < 0:
            raise InputError(f"memory_budget_mb must be 0 (always stream) or more, got {self.memory_budget_mb}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise InputError(
                f"unknown --class-weight / class_weight {self.class_weight!r}; choose one of {', '.join(CLASS_WEIGHTS)}"
            )
        if self.frames < 0:
            raise InputError(f"--frames / frames must be 0 (the stored frames) or more, got {self.frames}")
        if self.clip_sampling not in CLIP_SAMPLINGS:
            raise InputError(
                f"unknown --clip-sampling / clip_sampling {self.clip_sampling!r}; "
                f"choose one of {', '.join(CLIP_SAMPLINGS)}"
            )
        if self.test_clips < 1:
            raise InputError(f"--test-clips / test_clips must be at least 1, got {self.test_clips}")
        if self.frames == 0 and (self.clip_sampling != "uniform" or self.test_clips != 1):
            raise InputError(
                "--clip-sampling / clip_sampling and --test-clips / test_clips take clips of T frames; "
                "pass --frames T too (frames=T)"
            )


@dataclass(frozen=True)
class WindowConfig:
    """Sliding windows over a long video for `predict --window` (see featcache.inference.windows).

    window_seconds: the length of each window, classified like a whole video of that length.
    stride_seconds: from one window's start to the next; None: the window length (back to back, no overlap).
    """

    window_seconds: float
    stride_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise InputError(f"--window / window_seconds must be above 0 seconds, got {self.window_seconds}")
        if self.stride_seconds is None:
            object.__setattr__(self, "stride_seconds", self.window_seconds)
        if not self.stride_seconds > 0:
            raise InputError(f"--stride / stride_seconds must be above 0 seconds, got {self.stride_seconds}")
