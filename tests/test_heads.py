"""Heads: registry, shapes, masking by length, order sensitivity, save/load."""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pytest
from cache_fixtures import ordered_sequences

from benchmarks.data import permuted_segments
from featcache.config import HEAD_NAMES, HEAD_SETTINGS_USED, SEQUENCE_HEAD_NAMES, HeadConfig
from featcache.errors import FeatcacheError
from featcache.training.heads import available_heads, build_head, compile_head

SMALL = {"units": 8, "dense": 8}
ORDER_AWARE_HEADS = ("lstm", "gru", "transformer", "tcn")
# Every head, plus the transformer's other position and pooling choices.
HEAD_VARIANTS = [HeadConfig(head=head, **SMALL) for head in SEQUENCE_HEAD_NAMES] + [
    HeadConfig(head="transformer", positions="learned", pooling="cls", num_heads=2, **SMALL),
    HeadConfig(head="tcn", num_layers=3, kernel_size=2, **SMALL),
]
VARIANT_IDS = [f"{config.head}-{config.positions}-{config.pooling}-{config.num_layers}" for config in HEAD_VARIANTS]


def test_registry_matches_config_names() -> None:
    assert tuple(available_heads()) == SEQUENCE_HEAD_NAMES == ("lstm", "gru", "meanpool", "transformer", "tcn")
    assert HEAD_NAMES == SEQUENCE_HEAD_NAMES + ("linear", "knn")  # the baselines (featcache.training.baselines)
    assert tuple(HEAD_SETTINGS_USED) == HEAD_NAMES
    assert HeadConfig(head="meanpool").used_settings() == {"dense": 128, "final_dropout": 0.3}


def test_unknown_head_lists_the_valid_ones() -> None:
    with pytest.raises(FeatcacheError, match="choose one of lstm, gru, meanpool, transformer, tcn"):
        HeadConfig(head="resnet")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"positions": "rotary"}, "choose one of learned, sinusoidal"),
        ({"pooling": "max"}, "choose one of mean, cls"),
        ({"num_layers": 0}, "--layers / num_layers must be at least 1"),
    ],
)
def test_bad_transformer_options_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(FeatcacheError, match=message):
        HeadConfig(head="transformer", **changes)


@pytest.mark.parametrize("head_config", HEAD_VARIANTS, ids=VARIANT_IDS)
def test_padding_values_do_not_change_a_prediction(head_config: HeadConfig) -> None:
    model = build_head(head_config, num_frames=6, feature_dim=3, num_classes=4)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 6, 3)).astype(np.float32)
    lengths = np.array([1, 2, 4, 5, 6], dtype=np.int32)
    garbage = features.copy()
    for row, length in enumerate(lengths):
        garbage[row, length:] = rng.normal(scale=100.0, size=garbage[row, length:].shape)
    probabilities = model.predict([features, lengths], verbose=0)
    assert probabilities.shape == (5, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.predict([garbage, lengths], verbose=0), probabilities, rtol=1e-5, atol=1e-6)
    # ...while a real frame does change it: the mask hides padding, not data.
    changed = features.copy()
    changed[:, 0] += 5.0
    assert not np.allclose(model.predict([changed, lengths], verbose=0), probabilities, atol=1e-4)


def _ramps(seed: int, num_per_class: int):
    return ordered_sequences(num_per_class=num_per_class, seed=seed)


def _segments(seed: int, num_per_class: int):
    return permuted_segments(num_per_class // 2, num_classes=6, num_frames=12, feature_dim=8, seed=seed)


@functools.cache
def _held_out_accuracy(head: str, task=_ramps, epochs: int = 25) -> float:
    """Test accuracy of `head` trained on one draw of an order-only task and scored on another draw."""
    keras.utils.set_random_seed(0)
    features, lengths, labels = task(seed=0, num_per_class=96)
    test_features, test_lengths, test_labels = task(seed=1, num_per_class=64)
    num_classes = int(labels.max()) + 1
    model = compile_head(
        build_head(
            HeadConfig(head=head, units=16, dense=16, dropout=0.0, final_dropout=0.0),
            features.shape[1],
            features.shape[2],
            num_classes,
        ),
        learning_rate=1e-2,
    )
    model.fit([features, lengths], labels, batch_size=32, epochs=epochs, verbose=0)
    predicted = model.predict([test_features, test_lengths], verbose=0).argmax(axis=1)
    return float(np.mean(predicted == test_labels))


def test_lstm_tells_a_sequence_from_its_reverse_meanpool_cannot() -> None:
    # The two classes differ only in time order (see cache_fixtures.ordered_sequences).
    assert _held_out_accuracy("lstm") > 0.9
    assert _held_out_accuracy("meanpool") < 0.7


@pytest.mark.parametrize("head", ["transformer", "tcn"])
def test_transformer_and_tcn_read_order_where_meanpool_cannot(head: str) -> None:
    # Rising vs falling ramps (2 classes), and 6 classes that show the same 3 segments in 6 orders: the mean
    # over frames is the same for every class, so meanpool sits near chance (1/2, 1/6).
    # 12 epochs: 0.98-1.00 for both heads over weight seeds 0-2 when this test was written.
    assert _held_out_accuracy("meanpool") < 0.7 < 0.9 < _held_out_accuracy(head, _ramps, 12)
    assert _held_out_accuracy("meanpool", _segments, 12) < 0.35 < 0.9 < _held_out_accuracy(head, _segments, 12)


@pytest.mark.parametrize("head_config", HEAD_VARIANTS, ids=VARIANT_IDS)
def test_saved_head_loads_with_the_same_predictions(head_config: HeadConfig, tmp_path: Path) -> None:
    model = build_head(head_config, num_frames=4, feature_dim=2, num_classes=3)
    features = np.random.default_rng(1).normal(size=(3, 4, 2)).astype(np.float32)
    lengths = np.array([1, 3, 4], dtype=np.int32)
    model.save(tmp_path / "head.keras")
    loaded = keras.saving.load_model(tmp_path / "head.keras", compile=False)
    np.testing.assert_allclose(
        loaded.predict([features, lengths], verbose=0), model.predict([features, lengths], verbose=0), rtol=1e-6
    )


def test_a_single_class_is_refused() -> None:
    with pytest.raises(FeatcacheError, match="at least 2 classes"):
        build_head(HeadConfig(), num_frames=4, feature_dim=2, num_classes=1)


@pytest.mark.parametrize(("num_frames", "kernel_size", "levels"), [(7, 3, 2), (8, 3, 3), (90, 3, 6), (16, 2, 4)])
def test_tcn_levels_give_a_receptive_field_spanning_the_frames(num_frames: int, kernel_size: int, levels: int) -> None:
    from featcache.training.heads import tcn_levels_to_cover

    assert tcn_levels_to_cover(num_frames, kernel_size) == levels
    assert 1 + (kernel_size - 1) * (2**levels - 1) >= num_frames > 1 + (kernel_size - 1) * (2 ** (levels - 1) - 1)


def test_tcn_middle_output_sees_the_first_and_last_frames() -> None:
    """With 2 levels (7 frames) a 90-frame clip's order showed only in boundary windows (test 0.20 on BENCHMARKS.md
    section 6's long order-only set); the levels now grow until the (centred) receptive field spans the clip."""
    num_frames = 40
    model = build_head(HeadConfig(head="tcn", units=8, dense=4, dropout=0.0), num_frames, 2, num_classes=2)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert len(convolutions) == 5  # 1 + 2 x (2^5 - 1) = 63 >= 40 > 31
    last_level = keras.Model(model.inputs, model.get_layer("level4_residual").output)
    features = np.random.default_rng(0).normal(size=(1, num_frames, 2)).astype(np.float32)
    lengths = np.array([num_frames], dtype=np.int32)
    before = last_level.predict([features, lengths], verbose=0)[0, num_frames // 2]
    for frame in (0, num_frames - 1):
        changed = features.copy()
        changed[0, frame] += 10.0
        after = last_level.predict([changed, lengths], verbose=0)[0, num_frames // 2]
        assert np.abs(after - before).max() > 1e-6, f"the middle output does not see frame {frame}"
