"""`python3 -m benchmarks.few_shot`: train --init-from-text against the same head from scratch, few shots per class.

Needs KerasHub (pip install 'featcache[hub]'); no network: the CLIP preset is a tiny one with random weights,
built and saved here (save_to_preset) and loaded back through featcache's text tower code. Its text embeddings
carry no knowledge of the world, so the frames are planted around them: each video's frames are its class's
text embedding plus a random share (0 to 2x) of the next class's and noise, so zero-shot is right only when the
share is small. What this measures is the mechanism (does the head start at zero-shot and keep or improve on
it with 2 or 5 videos per class?), not what a real CLIP preset gives on real videos.
"""

from __future__ import annotations

import argparse
import csv
import string
import tempfile
from pathlib import Path

import numpy as np

import featcache  # noqa: F401  (sets TF_CPP_MIN_LOG_LEVEL before Keras imports TensorFlow)
from benchmarks.data import write_feature_cache
from featcache.cache import open_cache
from featcache.config import ExtractorConfig, HeadConfig, TrainConfig
from featcache.extractors.registry import load_extractor
from featcache.text.prompts import class_text_embeddings
from featcache.text.tower import load_text_tower
from featcache.text.zeroshot import video_embeddings, zero_shot_scores
from featcache.training.scoring import score_accuracy
from featcache.training.train import fit_head
from featcache.training.training_data import load_training_data

CLASS_NAMES = [
    "ApplyEyeMakeup", "BasketballDunk", "Biking", "Diving", "JumpingJack",
    "PlayingCello", "PushUps", "Rowing", "Surfing", "YoYo",
]  # fmt: skip
TEST_VIDEOS_PER_CLASS = 20
NUM_FRAMES = 8


def tiny_clip_preset(folder: Path) -> Path:
    """A random-weights CLIP (16-d text and vision towers, 12-d projection) with a letter tokenizer, saved."""
    import keras_hub

    vocabulary = {character: position for position, character in enumerate(string.ascii_lowercase)}
    vocabulary.update({f"{character}</w>": 26 + position for position, character in enumerate(string.ascii_lowercase)})
    for token in ("ll", "<|startoftext|>", "<|endoftext|>"):
        vocabulary[token] = len(vocabulary)
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=["l l"])
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, image_shape=(32, 32, 3)
    )
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary),
        embedding_dim=16,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    backbone = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12)
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    keras_hub.layers.CLIPImageConverter(image_size=(32, 32), scale=1 / 255).save_to_preset(folder)
    return folder


def planted_frames(text_embeddings: np.ndarray, per_class: int, noise: float, seed: int):
    """Frames around the class text embedding, pulled toward the next class's by a random share per video."""
    rng = np.random.default_rng(seed)
    num_classes, dim = text_embeddings.shape
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    shares = rng.uniform(0.0, 2.0, size=len(labels))
    centres = text_embeddings[labels] + shares[:, None] * text_embeddings[(labels + 1) % num_classes]
    features = centres[:, None, :] + noise * rng.normal(size=(len(labels), NUM_FRAMES, dim))
    return features.astype(np.float32), np.full(len(labels), NUM_FRAMES, np.int32), labels


def few_shot_cache(
    work: Path, pool: tuple[np.ndarray, np.ndarray, np.ndarray], shots: int, record: dict
) -> tuple[Path, Path]:
    """A cache of the first `shots` videos of each class of the pool (train) and its last TEST_VIDEOS_PER_CLASS
    (test, the same videos for every `shots`), and its split.csv (a CSV split lists every video)."""
    features, lengths, labels = pool
    keep = []
    for label in range(len(CLASS_NAMES)):
        rows = np.flatnonzero(labels == label)
        keep += [(row, "train") for row in rows[:shots]] + [(row, "test") for row in rows[-TEST_VIDEOS_PER_CLASS:]]
    rows = np.array([row for row, _ in keep])
    cache_path = write_feature_cache(
        work / f"few_shot_{shots}.h5", features[rows], lengths[rows], labels[rows], CLASS_NAMES, extractor=record
    )
    # write_feature_cache names row i `<class>/v_<class>_g08_c<i>.avi` (benchmarks.data.rows_from_features).
    subsets = {}
    for position, (row, subset) in enumerate(keep):
        name = CLASS_NAMES[labels[row]]
        subsets[f"{name}/v_{name}_g08_c{position:05d}.avi"] = subset
    assert set(subsets) == set(open_cache(cache_path).index.paths)
    split_file = work / f"split_{shots}.csv"
    with split_file.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("path", "subset"), *subsets.items()])
    return cache_path, split_file


def spread(accuracies: list[float]) -> str:
    return f"{np.mean(accuracies):.3f} ({min(accuracies):.2f}–{max(accuracies):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.few_shot", description=__doc__)
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--heads", nargs="+", default=["meanpool", "lstm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="featcache-few-shot-"))
    folder = tiny_clip_preset(work / "tiny_clip")
    record = load_extractor(ExtractorConfig(name=f"keras_hub:{folder}", image_size=None)).provenance
    texts = class_text_embeddings(load_text_tower(record), CLASS_NAMES)
    pool = planted_frames(texts.embeddings, TEST_VIDEOS_PER_CLASS + max(args.shots), 0.3, 0)
    print("| videos per class | head | zero-shot | from scratch | --init-from-text |")
    print("|---|---|---|---|---|")
    for shots in args.shots:
        cache_path, split_file = few_shot_cache(work, pool, shots, record)
        for head in args.heads:
            scratch, text_init = [], []
            for seed in args.seeds:
                train_config = TrainConfig(
                    epochs=args.epochs, split_file=str(split_file), val_fraction=0.0, seed=seed, batch_size=8
                )
                data = load_training_data(cache_path, train_config)
                head_config = HeadConfig(head=head, units=64, dense=32)
                for embeddings, accuracies in ((None, scratch), (texts.embeddings, text_init)):
                    result = fit_head(data, head_config, train_config, text_embeddings=embeddings)
                    accuracies.append(score_accuracy(result.model, data, "test", train_config))
            test_rows = data.split.test_indices
            zero_shot = np.mean(
                zero_shot_scores(video_embeddings(cache_path, test_rows), texts).argmax(1)
                == data.index.labels[test_rows]
            )
            print(f"| {shots} | {head} | {zero_shot:.3f} | {spread(scratch)} | {spread(text_init)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
