"""The sizes of a suite run and the things its sections share: one video set, its caches, its JPEG dump."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.data import (
    RandomCacheParameters,
    VideoSetParameters,
    make_ucf_like_videos,
    ucf101_split1_cache_parameters,
)
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import EmbedSummary
from featcache.video.find import VideoEntry, find_videos

# The extractors of the notebook's two experiments (issue 4): MobileNetV2 and its scratch CNN.
EXTRACTORS = ("mobilenet_v2", "scratch_cnn")
# Cache dtype per extractor: MobileNetV2's caches stay float32, as in the figures measured before its benchmark
# weights were calibrated (benchmark_weights); the scratch CNN's are float16 (the default).
RANDOM_WEIGHTS_CACHE_DTYPES = {"mobilenet_v2": "float32", "scratch_cnn": "float16"}


def benchmark_weights(extractor_name: str, image_size: int) -> str:
    """--weights for the benchmarks (no network): random, but for MobileNetV2 with BatchNorm statistics calibrated,
    since featcache refuses random MobileNetV2's features (all ~1e-11: benchmarks/calibrated_weights.py)."""
    if extractor_name == "mobilenet_v2":
        from benchmarks.calibrated_weights import calibrated_mobilenet_v2_weights

        return str(calibrated_mobilenet_v2_weights(image_size))
    return "random"


@dataclass(frozen=True)
class SuiteSizes:
    """How big each section's inputs are. FULL fits ~15 minutes on a 2-core CPU; QUICK a smoke test.

    extractors: the extractors stage one embeds with and sections 1 and 3 compare (the first one's figures are the
      targets').
    videos: the one video set every section uses (growth takes its first 1/4, 1/2 and all).
    image_size, num_frames: the notebook's 224x224 and 10 frames per video.
    test_fraction, val_fraction: the group-aware split (TrainConfig's): one group is the test set, never
      used here; one group of the rest validates (picks the best epoch). An epoch is a training pass plus a
      validation pass, on both the notebook's side and featcache's.
    notebook_batch_size: videos per notebook batch; the train and validation sides are multiples of it,
      so the notebook's `len // batch_size` steps see every video.
    notebook_epochs: notebook epochs timed (the fastest counts); its 10-epoch and sweep figures are that epoch time
      multiplied.
    head_epochs: epochs of every featcache fit (the notebook's 10).
    sweep_size: head settings in the sweep (issue 4: 5); the first is the notebook's head, the second featcache's
      default.
    ucf101_cache: the random-feature cache sized like UCF101 split 1, trained for `ucf101_epochs` with the
      first `ucf101_heads` of (the notebook's MobileNetV2 head, featcache's default head).
    format_rows: videos per cache in the format benchmark, per extractor (rows of real features, tiled).
    growth_multipliers: sizes of the growth benchmark, as multiples of its smallest.
    growth_parallel_children: growth child processes run at once; 1 for figures (more only to make the smoke test
      quick).
    streaming_rows: rows of the smallest scratch_cnn-sized cache that is streamed (memory budget below it).
    heads_*: the heads section (benchmarks/heads.py): demo videos per class and epochs, the order-only set
      (classes, videos per class, segments) and epochs, the long order-only set (classes, videos per class,
      frames), and the seeds each head trains from.
    format2_add_*, format2_read_videos: section 8's add-one-video caches (base size, x1/x2/x4) and repeats, and its
      read benchmark's videos.
    format2_train_*: section 8's training-epoch comparison (benchmarks/format2.py): videos per cache (10 frames x
      1280-d, float16, written as format 1 and as format 2), epochs per `train` call and calls per format.
    clips_*: the temporal augmentation section (benchmarks/clips.py): its video sets, name -> (classes, videos
      per class, frames per video), embedded densely, and the epochs of every row (seeds: heads_seeds).
    """

    extractors: tuple[str, ...]
    videos: VideoSetParameters
    image_size: int
    num_frames: int
    test_fraction: float
    val_fraction: float
    notebook_batch_size: int
    notebook_epochs: int
    head_epochs: int
    sweep_size: int
    ucf101_cache: RandomCacheParameters
    ucf101_epochs: int
    ucf101_heads: int
    format_rows: dict[str, int]
    growth_multipliers: tuple[int, ...]
    growth_parallel_children: int
    streaming_rows: int
    streaming_feature_dim: int
    streaming_budget_mb: int
    heads_demo_videos_per_class: int = 32
    heads_demo_epochs: int = 60
    heads_order_only: tuple[int, int, int] = (12, 50, 4)  # classes, videos per class, segments
    heads_order_only_epochs: int = 30
    heads_seeds: tuple[int, ...] = (0, 1, 2)
    heads_long_order_only: tuple[int, int, int] = (6, 20, 90)  # classes, videos per class, frames (45-90 each)
    clips_video_sets: dict = field(default_factory=lambda: {"demo": (3, 32, 24), "harder": (5, 16, 48)})
    clips_epochs: int = 40
    format2_add_videos: int = 1818  # the scratch_cnn cache: 1,818 videos, 0.9 GB (x1, x2, x4)
    format2_add_repeats: int = 5
    format2_read_videos: int = 1818
    format2_train_videos: int = 900
    format2_train_epochs: int = 4
    format2_train_repeats: int = 3

    def embed_config(self, extractor_name: str, num_decode_workers: int = 0) -> EmbedConfig:
        return EmbedConfig(
            extractor=ExtractorConfig(
                name=extractor_name,
                weights=benchmark_weights(extractor_name, self.image_size),
                image_size=self.image_size,
            ),
            sampling=SamplingConfig(num_frames=self.num_frames),
            dtype=RANDOM_WEIGHTS_CACHE_DTYPES[extractor_name],
            num_decode_workers=num_decode_workers,
        )

    def train_config(self, **changes) -> TrainConfig:
        return TrainConfig(
            **{
                "epochs": self.head_epochs,
                "test_fraction": self.test_fraction,
                "val_fraction": self.val_fraction,
                **changes,
            }
        )


FULL = SuiteSizes(
    extractors=EXTRACTORS,
    # 144 videos: the scale of the notebook's own 3-class UCF101 experiment (~400 clips) rather than a toy,
    # so per-epoch ratios are not dominated by Keras' fixed per-epoch cost (about 50 ms here).
    videos=VideoSetParameters(num_classes=4, num_groups=6, clips_per_group=6, num_frames=186, width=320, height=240),
    image_size=224,
    num_frames=10,
    test_fraction=1 / 6,  # 96 train / 24 validation / 24 test videos
    val_fraction=0.2,
    notebook_batch_size=8,
    notebook_epochs=2,
    head_epochs=10,
    sweep_size=5,
    ucf101_cache=ucf101_split1_cache_parameters(),
    ucf101_epochs=3,
    ucf101_heads=2,
    format_rows={"mobilenet_v2": 2048, "scratch_cnn": 128},
    growth_multipliers=(1, 2, 4),
    growth_parallel_children=1,
    streaming_rows=256,
    streaming_feature_dim=25088,  # scratch_cnn at 224x224
    streaming_budget_mb=64,
)

# The smoke test's sizes: every code path once, as fast as Keras' graph building allows.
QUICK = SuiteSizes(
    extractors=("scratch_cnn",),
    videos=VideoSetParameters(num_classes=3, num_groups=3, clips_per_group=1, num_frames=24, width=64, height=48),
    image_size=32,
    num_frames=4,
    test_fraction=1 / 3,  # 3 train / 3 validation / 3 test videos
    val_fraction=0.5,
    notebook_batch_size=3,
    notebook_epochs=1,
    head_epochs=2,
    sweep_size=2,
    ucf101_cache=RandomCacheParameters(48, 16, 4, 64, 8),
    ucf101_epochs=2,
    ucf101_heads=1,
    format_rows={"mobilenet_v2": 16, "scratch_cnn": 8},
    growth_multipliers=(1,),
    growth_parallel_children=3,
    streaming_rows=16,
    streaming_feature_dim=512,  # scratch_cnn at 32x32
    streaming_budget_mb=0,
    heads_demo_videos_per_class=8,
    heads_demo_epochs=2,
    heads_order_only=(3, 8, 3),
    heads_order_only_epochs=2,
    heads_seeds=(0,),
    heads_long_order_only=(3, 8, 24),
    clips_video_sets={"demo": (3, 8, 12)},
    clips_epochs=2,
    format2_add_videos=20,
    format2_add_repeats=1,
    format2_read_videos=64,
    format2_train_videos=100,
    format2_train_epochs=2,
    format2_train_repeats=1,
)


@dataclass
class EmbedRun:
    """One `featcache.embed` call of the stage-one section: its cache and its summary."""

    cache_path: Path
    summary: EmbedSummary


@dataclass
class Workspace:
    """The folder a run works in and what its sections hand each other."""

    sizes: SuiteSizes
    folder: Path
    video_root: Path
    entries: list[VideoEntry]
    embeds: dict[str, EmbedRun] = field(default_factory=dict)
    notebook_frames: list[list[Path]] | None = None
    notebook_dump_seconds: float = 0.0


def prepare_workspace(folder: Path, sizes: SuiteSizes) -> Workspace:
    """Make (or reuse) the run's video set under `folder`; everything else is rebuilt by the sections."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video_root = make_ucf_like_videos(folder / "videos", sizes.videos)
    _, entries = find_videos(video_root)
    return Workspace(sizes=sizes, folder=folder, video_root=video_root, entries=entries)
