"""Section 7: temporal augmentation from a dense cache: T-frame clips at random segment positions vs uniform ones.

Each video set is embedded once, densely (every frame: fps sampling at the videos' own 12 fps), and every row
trains the same head for the same epochs on the same split from the same seeds; only the clips differ:
- the stored frames as they are (no clips), the baseline;
- `--frames T --clip-sampling uniform`: the same T frames every epoch (segment centres);
- `--frames T --clip-sampling random`: a new random frame per segment every epoch (TSN-style augmentation);
- the same with `--test-clips 3` (test softmax averaged over 3 evenly offset clips).
The demo set is `featcache demo`'s (3 classes); the harder set adds MovingDown/MovingUp (5 classes, two pairs that
are each other played backwards, so order decides) with fewer videos per class and longer videos.
"""

from __future__ import annotations

import numpy as np

from benchmarks.report import SectionResult, Table
from benchmarks.workspace import Workspace
from featcache.cache import read_cache_index
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.training.scoring import score_accuracy
from featcache.training.train import fit_head
from featcache.training.training_data import load_training_data
from featcache.video.demo_data import DEMO_VIDEO_FPS, make_demo_data

HEAD = HeadConfig(head="lstm", units=128, dense=64)  # the demo pipeline's head
CLIP_FRAMES = 8
VARIANTS = {
    "stored frames (no clips)": {},
    f"--frames {CLIP_FRAMES} --clip-sampling uniform": {"frames": CLIP_FRAMES},
    f"--frames {CLIP_FRAMES} --clip-sampling random": {"frames": CLIP_FRAMES, "clip_sampling": "random"},
    f"--frames {CLIP_FRAMES} --clip-sampling random --test-clips 3": {
        "frames": CLIP_FRAMES,
        "clip_sampling": "random",
        "test_clips": 3,
    },
}


def dense_embed_config() -> EmbedConfig:
    # `--sampling fps --fps 12 --frames 0`: every frame of the 12 fps videos, stored at its own length (format 2).
    return EmbedConfig(
        extractor=ExtractorConfig(name="scratch_cnn", weights="random", seed=0, image_size=64),
        sampling=SamplingConfig(num_frames=0, mode="fps", fps=DEMO_VIDEO_FPS),
    )


def run_clips(workspace: Workspace) -> SectionResult:
    sizes = workspace.sizes
    sets = {}
    for name, (num_classes, per_class, num_video_frames) in sizes.clips_video_sets.items():
        root = make_demo_data(
            workspace.folder / f"clips_{name}",
            num_classes=num_classes,
            videos_per_class=per_class,
            num_groups=8,
            num_frames=num_video_frames,
        )
        cache = workspace.folder / f"clips_{name}.h5"
        embed(root, cache, dense_embed_config(), overwrite=True)
        sets[name] = cache
    rows = []
    for variant, changes in VARIANTS.items():
        cells = [f"`{variant}`" if changes else variant]
        for cache in sets.values():
            accuracies, epoch_seconds = [], []
            for seed in sizes.heads_seeds:
                train_config = TrainConfig(epochs=sizes.clips_epochs, test_fraction=0.25, seed=seed, **changes)
                data = load_training_data(cache, train_config)
                result = fit_head(data, HEAD, train_config)
                accuracies.append(score_accuracy(result.model, data, "test", train_config))
                epoch_seconds.append(result.seconds_per_epoch)
            cells += [
                f"{np.mean(accuracies):.3f} ({min(accuracies):.2f}–{max(accuracies):.2f})",
                f"{np.mean(epoch_seconds):.3f}",
            ]
        rows.append(cells)
    columns = ["training clips", *[column for name in sets for column in (f"{name} test accuracy", f"{name} s/epoch")]]
    descriptions = []
    for name, cache in sets.items():
        index = read_cache_index(cache)
        num_classes, per_class, num_video_frames = sizes.clips_video_sets[name]
        descriptions.append(
            f"{name}: {index.num_videos} synthetic videos ({num_classes} classes, 8 groups, 2 held out for test), "
            f"{num_video_frames} frames each, "
            f"all stored (`--sampling fps --fps 12 --frames 0`; {index.feature_dim}-d scratch-CNN features, "
            "random weights)"
        )
    notes = [
        *descriptions,
        f"Head: LSTM(128) -> Dense(64), dropout 0.5, {sizes.clips_epochs} epochs for every row, "
        "best epoch by validation accuracy "
        f"(validation on uniform clips); seeds {', '.join(map(str, sizes.heads_seeds))} (split and weights); "
        "mean (min–max) over seeds.",
    ]
    return SectionResult(
        "7. Temporal augmentation",
        [
            Table(
                "Clips from a dense cache: test accuracy with and without augmentation, same epochs",
                columns,
                rows,
                notes,
            )
        ],
    )
