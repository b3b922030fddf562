"""`embed --precision int8`: quantized on the run's frames, behind the gate; precision is a stored setting."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import nncf  # noqa: F401  (the featcache[openvino] extra, in `test`: int8 is tested, never skipped)
import numpy as np
import pytest
from conftest import write_video

import featcache.extractors.openvino_runtime as openvino_runtime
from featcache.cache import read_cache_index
from featcache.cache.describe import describe_cache, format_cache_description
from featcache.cache.settings import describe_settings_difference, requested_settings
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig
from featcache.embedding.embed import embed
from featcache.errors import CacheMismatchError, ExtractorError, InputError
from featcache.extractors.nncf_quantization import nncf_output_on_stderr
from featcache.extractors.openvino_int8 import quantize_extractor
from featcache.extractors.registry import load_extractor
from featcache.extractors.runtimes import AUTO_RUNTIME_VARIABLE

EXTRACTOR = ExtractorConfig(name="scratch_cnn", weights="random", image_size=32, seed=2)
SAMPLING = SamplingConfig(num_frames=4)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the session: test_openvino_runtime.py and test_openvino_int8.py convert the same models."""
    folder = tmp_path_factory.getbasetemp() / "featcache-compile-cache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def shared_compile_cache(compile_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(openvino_runtime.CACHE_DIR_VARIABLE, str(compile_cache))
    monkeypatch.delenv(AUTO_RUNTIME_VARIABLE, raising=False)
    return compile_cache


def int8_config(min_cosine: float = 0.99) -> EmbedConfig:
    # 6 videos x 4 frames: 8 calibration + 8 held-out frames, every other frame of the first 4 videos.
    return EmbedConfig(
        extractor=EXTRACTOR,
        sampling=SAMPLING,
        precision="int8",
        calibration_frames=8,
        int8_min_cosine=min_cosine,
        num_decode_workers=1,
    )


def test_int8_passes_its_gate_records_its_calibration_and_is_another_setting(tiny_dataset: Path, tmp_path: Path):
    cache_path = tmp_path / "int8.h5"
    summary = embed(tiny_dataset, cache_path, int8_config())
    assert summary.num_embedded == 6
    assert summary.runtime.startswith("openvino, int8, calibrated on 8 frames of 4 videos")
    extractor_record = read_cache_index(cache_path).extractor
    assert extractor_record["precision"] == "int8"
    calibration = extractor_record["int8_calibration"]
    assert len(calibration["videos"]) == 4 and all(path.endswith(".avi") for path in calibration["videos"])
    assert calibration["num_held_out_frames"] == 8 and calibration["held_out_mean_cosine"] >= 0.99
    info = format_cache_description(describe_cache(cache_path))
    assert "embedded by: 6 openvino; precision int8 (calibrated on 8 frames of 4 videos, mean cosine 0.9" in info
    assert calibration["float_layers"] == []  # plain int8 passed: nothing kept in float
    # A new video cannot be embedded as this cache's videos were (the int8 model is its own frames'): refused.
    from featcache.search.neighbors import find_neighbors

    with pytest.raises(ExtractorError, match="the cache holds int8 features.*f32 extractor only"):
        find_neighbors(cache_path, file=next(tiny_dataset.rglob("*.avi")), k=2)
    with pytest.raises(CacheMismatchError, match="precision int8 vs f32"):
        embed(tiny_dataset, cache_path, EmbedConfig(extractor=EXTRACTOR, sampling=SAMPLING, runtime="openvino"))


def test_int8_below_its_gate_is_refused_with_the_measured_cosine(tiny_dataset: Path, tmp_path: Path):
    # No quantization keeps a cosine of 1 - 1e-9 to f32: a threshold that forces the refusing side of the gate,
    # after the retry with layers kept in float.
    with pytest.raises(
        ExtractorError,
        match=r"mean cosine 0\.\d+ on 8 held-out frames with \d+ layers? kept in float \(the gate is 1\); use",
    ):
        embed(tiny_dataset, tmp_path / "refused.h5", int8_config(min_cosine=1.0))
    assert not list((tmp_path).glob("refused.h5.shards/*.h5"))


@pytest.fixture(scope="module")
def f32_scratch_cnn(compile_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """EXTRACTOR on OpenVINO f32, and 16 frames of seeded noise: 8 to calibrate on, 8 held out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(openvino_runtime.CACHE_DIR_VARIABLE, str(compile_cache))
        f32 = load_extractor(EXTRACTOR, "openvino").openvino_model
    frames = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    return f32, frames


def test_below_the_gate_the_worst_layers_are_kept_in_float_until_it_passes(f32_scratch_cnn):
    f32, frames = f32_scratch_cnn
    plain_model, plain = quantize_extractor(f32, frames, ["v.avi"], min_mean_cosine=-1.0)
    assert plain.float_layers == [] and plain.mean_cosine < 1.0
    # A quarter of the way from plain int8 to f32: plain int8 is below it, and two layers in float (the most a
    # quarter of this CNN's 8 int8 layers allows) reach it.
    gate = plain.mean_cosine + (1.0 - plain.mean_cosine) / 4
    kept_model, kept = quantize_extractor(f32, frames, ["v.avi"], min_mean_cosine=gate)
    assert kept.float_layers and kept.mean_cosine >= gate > plain.mean_cosine
    assert kept.record()["float_layers"] == kept.float_layers
    # Another model, so another compile-cache entry, named for its layers kept in float.
    assert kept_model.ir_path != plain_model.ir_path and "-float-" in kept_model.ir_path.parent.name
    # A recorded calibration rebuilds that model: its layers, no new choice, the same features.
    again_model, again = quantize_extractor(f32, frames, ["v.avi"], gate, float_layers=kept.float_layers)
    assert again.float_layers == kept.float_layers and again_model.ir_path == kept_model.ir_path
    np.testing.assert_array_equal(again_model.embed_frames(frames), kept_model.embed_frames(frames))


def test_nncf_writes_its_progress_and_log_to_stderr_not_stdout(
    f32_scratch_cnn, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdout carries featcache's results; NNCF's rich progress bars and its INFO log would land there."""
    from nncf.common.logging import nncf_logger

    # NNCF made its log handler on the stdout of its import; here that is the stdout this test captures.
    (stdout_handler,) = [handler for handler in nncf_logger.handlers if type(handler) is logging.StreamHandler]
    monkeypatch.setattr(stdout_handler, "stream", sys.stdout)
    f32, frames = f32_scratch_cnn
    # Frames no other test calibrates on: a model the compile cache holds would not run NNCF at all.
    quantize_extractor(f32, np.ascontiguousarray(frames[::-1]), ["v.avi"], min_mean_cosine=-1.0)
    with nncf_output_on_stderr():
        nncf_logger.info("a line of NNCF's log")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Statistics collection" in captured.err and "a line of NNCF's log" in captured.err
    assert stdout_handler.stream is sys.stdout  # put back afterwards


def test_a_recorded_plain_calibration_is_not_retried(f32_scratch_cnn):
    f32, frames = f32_scratch_cnn
    _, plain = quantize_extractor(f32, frames, ["v.avi"], min_mean_cosine=-1.0)
    gate = plain.mean_cosine + (1.0 - plain.mean_cosine) / 4
    # float_layers=[]: the cache was embedded by plain int8, so keeping layers in float would mix two models.
    with pytest.raises(ExtractorError, match=rf"mean cosine {plain.mean_cosine:.6f} .* with 0 layers kept in float"):
        quantize_extractor(f32, frames, ["v.avi"], gate, float_layers=[])


def test_int8_needs_openvino_and_the_local_engine():
    with pytest.raises(InputError, match="--precision int8 runs on OpenVINO"):
        EmbedConfig(extractor=EXTRACTOR, precision="int8", runtime="keras")
    with pytest.raises(InputError, match="unknown --precision"):
        EmbedConfig(extractor=EXTRACTOR, precision="int4")


def test_a_record_without_precision_is_f32():
    old = requested_settings(EmbedConfig(extractor=EXTRACTOR, sampling=SAMPLING))
    assert "precision" not in old["extractor"]  # f32 caches keep the record featcache 0.2 wrote
    int8 = requested_settings(int8_config())
    assert describe_settings_difference(old, {**old, "extractor": {**old["extractor"], "precision": "f32"}}) == ""
    assert "precision f32 vs int8" in describe_settings_difference(old, int8)


def test_a_cache_whose_int8_kept_layers_in_float_keeps_them_on_its_next_run(tiny_dataset: Path, tmp_path: Path):
    embed(tiny_dataset, tmp_path / "plain.h5", int8_config(-1.0))
    plain_cosine = read_cache_index(tmp_path / "plain.h5").extractor["int8_calibration"]["held_out_mean_cosine"]
    gate = plain_cosine + (1.0 - plain_cosine) / 4  # plain int8 is below it (as in the test above)
    cache_path = tmp_path / "kept.h5"
    embed(tiny_dataset, cache_path, int8_config(gate))
    recorded = read_cache_index(cache_path).extractor["int8_calibration"]
    assert recorded["float_layers"] and recorded["held_out_mean_cosine"] > plain_cosine
    # A new video, the same calibration videos, and a gate plain int8 would pass: the recorded layers are kept in
    # float again all the same (plain int8 would embed the new video with another model than the cache's).
    frames = np.random.default_rng(5).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    write_video(tiny_dataset / "Alpha" / "v_Alpha_g04_c01.avi", frames)
    summary = embed(tiny_dataset, cache_path, int8_config(-1.0))
    num_kept = len(recorded["float_layers"])
    assert (
        summary.num_embedded == 1 and f"{num_kept} layer{'' if num_kept == 1 else 's'} kept in float" in summary.runtime
    )
    assert f"of {len(recorded['videos'])} videos," in summary.runtime
    assert read_cache_index(cache_path).extractor["int8_calibration"] == recorded


def test_a_new_calibration_uses_the_full_bias_correction_and_a_recorded_one_its_own(f32_scratch_cnn):
    f32, frames = f32_scratch_cnn
    full_model, full = quantize_extractor(f32, frames, ["v.avi"], min_mean_cosine=-1.0)
    assert full.record()["bias_correction"] == "full" and full_model.ir_path.parent.name.endswith("-full-bias")
    # The fast one is another model: the compile-cache key plain int8 had before the bias correction was recorded.
    fast_model, fast = quantize_extractor(f32, frames, ["v.avi"], -1.0, float_layers=[], bias_correction="fast")
    assert fast.record()["bias_correction"] == "fast"
    assert fast_model.ir_path.parent.name == full_model.ir_path.parent.name.removesuffix("-full-bias")
    with pytest.raises(ExtractorError, match="bias correction 'exact', which this featcache does not know"):
        quantize_extractor(f32, frames, ["v.avi"], -1.0, float_layers=[], bias_correction="exact")


def test_a_cache_calibrated_before_the_bias_correction_was_recorded_goes_on_with_the_fast_one(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import featcache.extractors.openvino_int8 as openvino_int8

    # A compile cache of its own: which int8 models this test's two runs made is then what is in it.
    monkeypatch.setenv(openvino_runtime.CACHE_DIR_VARIABLE, str(tmp_path / "compile-cache"))
    cache_path = tmp_path / "before.h5"
    with monkeypatch.context() as patch:
        # As featcache calibrated before it recorded the bias correction: NNCF's fast one, no key in the record.
        patch.setattr(openvino_int8, "BIAS_CORRECTION", "fast")
        record = openvino_int8.Int8Calibration.record
        patch.setattr(
            openvino_int8.Int8Calibration,
            "record",
            lambda self: {key: value for key, value in record(self).items() if key != "bias_correction"},
        )
        embed(tiny_dataset, cache_path, int8_config(-1.0))
    recorded = read_cache_index(cache_path).extractor["int8_calibration"]
    assert "bias_correction" not in recorded
    frames = np.random.default_rng(6).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    write_video(tiny_dataset / "Beta" / "v_Beta_g05_c01.avi", frames)
    assert embed(tiny_dataset, cache_path, int8_config(-1.0)).num_embedded == 1
    # The new video was embedded by the fast model the cache's other videos were: no full-bias model was made.
    made = [folder.name for folder in (tmp_path / "compile-cache" / "openvino").iterdir()]
    calibrated = [name for name in made if f"-int8-{recorded['frames_sha256'][:24]}" in name]
    assert calibrated and not any(name.endswith("-full-bias") for name in calibrated)
