"""predict --window: every window of a long video from one decode, per-window probabilities, reports, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import test_predict
from conftest import frame_number_from_level, numbered_frames, write_video
from test_evaluate import first_frame_softmax_model, write_model_folder
from test_predict import COLOUR_CLASSES
from typer.testing import CliRunner

import featcache.inference.predict as predict_module
import featcache.inference.windows as windows_module
from featcache.cli import app
from featcache.config import SamplingConfig, WindowConfig
from featcache.errors import InputError, VideoDecodeError
from featcache.extractors.extractor import Extractor
from featcache.inference.windows import predict_windows, window_layout, write_window_reports
from featcache.video.decode_workers import CRASH_DECODER_ENV, DecodeWorkerPool
from featcache.video.sampling import uniform_frame_indices

# test_predict's fixtures, under the same names here: pytest finds a fixture by the module attribute that holds it.
colour_model = test_predict.colour_model
fake_extractor = test_predict.fake_extractor

VIDEO_FPS = 10.0


@pytest.fixture
def red_then_blue_video(tmp_path: Path) -> Path:
    """A 6 s 32x32 video at 10 fps: red for the first 3 s (frames 0-29), then blue (frames 30-59)."""
    frames = np.zeros((60, 32, 32, 3), dtype=np.uint8)
    frames[:30, ..., 0] = 255
    frames[30:, ..., 2] = 255
    return write_video(tmp_path / "red_then_blue.avi", frames, fps=VIDEO_FPS)


@pytest.fixture
def counting_captures(monkeypatch) -> list[Path]:
    """Record every video the windows module has a decode worker decode (each request is one sequential pass)."""
    opened: list[Path] = []
    original = DecodeWorkerPool.read_window_frames

    def counting(pool: DecodeWorkerPool, path: Path, *arguments):
        opened.append(path)
        return original(pool, path, *arguments)

    monkeypatch.setattr(DecodeWorkerPool, "read_window_frames", counting)
    return opened


# Where windows lie


def test_window_layout_takes_the_models_own_sampling_of_each_window():
    uniform = window_layout(VIDEO_FPS, WindowConfig(0.6, 0.3), SamplingConfig(num_frames=3))
    assert (uniform.window_frames, uniform.stride_frames) == (6, 3.0)
    np.testing.assert_array_equal(uniform.offsets, uniform_frame_indices(6, 3))
    fps = window_layout(VIDEO_FPS, WindowConfig(1.0, 0.5), SamplingConfig(num_frames=4, mode="fps", fps=5.0))
    np.testing.assert_array_equal(fps.offsets, [0, 2, 4, 6])
    assert [fps.start_frame(k) for k in range(4)] == [0, 5, 10, 15]


def test_window_and_stride_options_are_checked():
    assert WindowConfig(2.0).stride_seconds == 2.0
    with pytest.raises(InputError, match="--window / window_seconds must be above 0"):
        WindowConfig(0)
    with pytest.raises(InputError, match="--stride / stride_seconds must be above 0"):
        WindowConfig(1.0, -1.0)
    with pytest.raises(VideoDecodeError, match="must each span at least one frame"):
        window_layout(VIDEO_FPS, WindowConfig(1.0, 0.05), SamplingConfig(num_frames=3))


# One decode pass, each frame embedded once, the right frames in each window


def test_each_window_gets_its_sampled_frames_from_one_pass(tmp_path: Path, monkeypatch, counting_captures: list[Path]):
    """12 numbered frames, uniform T=3, 0.6 s windows every 0.3 s: windows [0,3,5], [3,6,8], [6,9,11]."""
    video = write_video(tmp_path / "numbered.avi", numbered_frames(12), fps=VIDEO_FPS)
    extractor_record = {
        "name": "grey",
        "weights": "random",
        "handle": None,
        "image_size": 16,
        "seed": 0,
        "weights_sha256": None,
    }
    model_dir = write_model_folder(
        tmp_path / "model",
        ["Dark", "Light"],
        {"x.avi": "test"},
        model=first_frame_softmax_model(3, 1, 2, kernel=np.array([[-1.0, 1.0]])),
        extractor=extractor_record,
        sampling={"num_frames": 3, "mode": "uniform", "fps": None},
        num_frames=3,
        feature_dim=1,
    )
    embedded_rows: list[int] = []

    def grey_level_extractor(config, runtime="keras"):
        def embed_frames(frames: np.ndarray) -> np.ndarray:
            embedded_rows.append(len(frames))
            return frames.mean(axis=(1, 2, 3))[:, None].astype(np.float32)

        return Extractor("grey", config.image_size, 1, embed_frames, {"weights_sha256": None})

    monkeypatch.setattr(predict_module, "start_extractor", grey_level_extractor)
    windows_seen: list[list[int]] = []
    original_classify = windows_module.classify_padded

    def recording_classify(model, windows, num_frames, *clip_settings):
        windows_seen.extend([frame_number_from_level(level) for level in features[:, 0]] for _, features in windows)
        return original_classify(model, windows, num_frames, *clip_settings)

    monkeypatch.setattr(windows_module, "classify_padded", recording_classify)

    (video_windows,) = predict_windows(model_dir, [video], WindowConfig(0.6, 0.3)).videos

    assert video_windows.error is None
    assert windows_seen == [[0, 3, 5], [3, 6, 8], [6, 9, 11]]
    np.testing.assert_allclose(video_windows.start_seconds, [0.0, 0.3, 0.6])
    np.testing.assert_allclose(video_windows.end_seconds, [0.6, 0.9, 1.2])
    # Frames 0, 3, 5, 6, 8, 9, 11 (and 9's window, cut off by the end, asked for none new): each embedded once.
    assert sum(embedded_rows) == 7
    assert counting_captures == [video]


def test_window_probabilities_switch_where_the_video_changes_class(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, counting_captures: list[Path]
):
    """The colour model reads a window's first sampled frame: red windows before 3 s, blue ones from 3 s on."""
    report = predict_windows(colour_model, [red_then_blue_video], WindowConfig(1.0, 0.5))
    (video,) = report.videos
    np.testing.assert_allclose(video.start_seconds, np.arange(11) * 0.5)
    np.testing.assert_allclose(video.end_seconds, np.arange(11) * 0.5 + 1.0)
    top_classes = [COLOUR_CLASSES[label] for label in video.probabilities.argmax(axis=1)]
    assert top_classes == ["Red"] * 6 + ["Blue"] * 5
    assert video.probabilities.max(axis=1).min() > 0.9
    np.testing.assert_allclose(video.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert counting_captures == [red_then_blue_video]


def test_short_unreadable_and_good_videos(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path
):
    short = write_video(tmp_path / "short.avi", np.zeros((5, 32, 32, 3), dtype=np.uint8), fps=VIDEO_FPS)
    not_a_video = tmp_path / "notes.avi"
    not_a_video.write_text("not a video")
    report = predict_windows(colour_model, [short, not_a_video, red_then_blue_video], WindowConfig(1.0))
    short_result, bad_result, good_result = report.videos
    assert "0.50 s long, shorter than one 1 s window" in short_result.error
    assert "cannot be opened as a video" in bad_result.error and bad_result.error.startswith(str(not_a_video))
    assert good_result.error is None and len(good_result.start_seconds) == 6


def test_every_decoder_gives_the_same_windows_and_each_video_says_which_decoded_it(
    colour_model: Path, red_then_blue_video: Path, fake_extractor
):
    """2 s windows of MJPG (every frame a keyframe): 12 of 60 frames sampled, so auto seeks; 1 s windows every
    0.5 s sample most frames, so auto decodes them sequentially."""
    sparse = {
        decoder: predict_windows(colour_model, [red_then_blue_video], WindowConfig(2.0), decoder=decoder).videos[0]
        for decoder in ("sequential", "seek", "auto")
    }
    assert {decoder: video.decoder for decoder, video in sparse.items()} == {
        "sequential": "sequential",
        "seek": "seek",
        "auto": "seek",
    }
    for video in sparse.values():
        np.testing.assert_array_equal(video.start_seconds, sparse["sequential"].start_seconds)
        np.testing.assert_array_equal(video.probabilities, sparse["sequential"].probabilities)
    (dense,) = predict_windows(colour_model, [red_then_blue_video], WindowConfig(1.0, 0.5)).videos
    assert dense.decoder.startswith("sequential: auto: seeking would decode")
    with pytest.raises(InputError, match="unknown --decoder / decoder 'fast'"):
        predict_windows(colour_model, [red_then_blue_video], WindowConfig(1.0), decoder="fast")


# Reports and the CLI


def test_cli_writes_csv_json_and_a_timeline(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path
):
    out_dir = tmp_path / "windows"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(colour_model),
            str(red_then_blue_video),
            "--window",
            "1",
            "--stride",
            "0.5",
            "--window-dir",
            str(out_dir),
            "--html",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "11 windows of 1 s every 0.5 s" in result.stdout and "Blue" in result.stdout
    page = (out_dir / "windows.html").read_text()  # the timeline and the frames at the window centres
    assert page.count('class="plot timeline"') == 1 and page.count('<img src="data:image/jpeg') == 11

    with open(out_dir / "windows.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["path", "window", "start_seconds", "end_seconds", "top_class", *COLOUR_CLASSES]
    assert [row["top_class"] for row in rows] == ["Red"] * 6 + ["Blue"] * 5
    assert rows[6]["start_seconds"] == "3.000" and float(rows[6]["Blue"]) > 0.9

    saved = json.loads((out_dir / "windows.json").read_text())
    assert saved["window_seconds"] == 1.0 and saved["stride_seconds"] == 0.5 and saved["class_names"] == COLOUR_CLASSES
    assert [window["top_class"] for window in saved["videos"][0]["windows"]] == [row["top_class"] for row in rows]
    assert (out_dir / "red_then_blue.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_default_folder_and_exit_code_1(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path
):
    missing = tmp_path / "missing.avi"
    result = CliRunner().invoke(
        app, ["predict", str(colour_model), str(red_then_blue_video), str(missing), "--window", "2", "--json"]
    )
    assert result.exit_code == 1, result.output
    printed = json.loads(result.stdout)
    assert [len(video["windows"]) for video in printed["videos"]] == [3, 0]
    assert "file not found" in printed["videos"][1]["error"]
    assert (colour_model / "windows" / "windows.json").is_file()


def test_cli_takes_the_decoder_and_prints_how_videos_were_decoded(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path
):
    arguments = ["predict", str(colour_model), str(red_then_blue_video), "--window-dir", str(tmp_path / "windows")]
    result = CliRunner().invoke(app, [*arguments, "--window", "2", "--decoder", "seek"])
    assert result.exit_code == 0, result.output
    assert "decoded: 1 seek" in result.stdout
    assert json.loads((tmp_path / "windows" / "windows.json").read_text())["videos"][0]["decoder"] == "seek"
    result = CliRunner().invoke(app, [*arguments, "--window", "1", "--stride", "0.5"])  # auto: dense windows
    assert result.exit_code == 0, result.output
    assert (
        "decoded: 1 sequential" in result.stdout
        and "auto: seeking would decode more than N of N frames" in result.stdout
    )
    result = CliRunner().invoke(app, [*arguments, "--window", "2", "--decoder", "fast"])
    assert result.exit_code == 2 and "fast" in result.output


def test_cli_stride_without_window_exits_2(colour_model: Path, red_then_blue_video: Path):
    result = CliRunner().invoke(app, ["predict", str(colour_model), str(red_then_blue_video), "--stride", "1"])
    assert result.exit_code == 2
    assert "only apply with --window" in result.output


def test_timelines_of_videos_with_the_same_name_do_not_overwrite(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path
):
    copy = tmp_path / "other" / red_then_blue_video.name
    copy.parent.mkdir()
    copy.write_bytes(red_then_blue_video.read_bytes())
    report = predict_windows(colour_model, [red_then_blue_video, copy], WindowConfig(3.0))
    written = write_window_reports(report, tmp_path / "out")
    assert sorted(path.name for path in written) == [
        "red_then_blue-2.timeline.png",
        "red_then_blue.timeline.png",
        "windows.csv",
        "windows.json",
    ]


def test_a_trained_model_follows_the_class_change(tmp_path: Path, red_then_blue_video: Path):
    """No stand-ins: embed colour videos with a real .keras extractor (mean RGB), train a head,
    window the long video."""
    import keras

    from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, TrainConfig
    from featcache.embedding.embed import embed
    from featcache.training.train import train

    rng = np.random.default_rng(0)
    for channel, class_name in enumerate(COLOUR_CLASSES):
        for group in range(1, 5):
            frames = rng.integers(0, 80, size=(12, 32, 32, 3), dtype=np.uint8)
            frames[..., channel] = 255
            write_video(
                tmp_path / "videos" / class_name / f"v_{class_name}_g{group:02d}_c01.avi", frames, fps=VIDEO_FPS
            )
    inputs = keras.Input((16, 16, 3))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))).save(
        tmp_path / "mean_rgb.keras"
    )
    extractor = ExtractorConfig(name="keras_file", weights=str(tmp_path / "mean_rgb.keras"), image_size=None)
    embed(
        tmp_path / "videos",
        tmp_path / "cache.h5",
        EmbedConfig(extractor=extractor, sampling=SamplingConfig(num_frames=4)),
    )
    keras.utils.set_random_seed(0)
    train(
        tmp_path / "cache.h5",
        tmp_path / "model",
        HeadConfig(head="meanpool", dense=16, final_dropout=0.0),
        TrainConfig(epochs=15, batch_size=4, learning_rate=0.05, val_fraction=0, test_fraction=0.25),
    )

    (video,) = predict_windows(tmp_path / "model", [red_then_blue_video], WindowConfig(1.0, 0.5)).videos

    classes = json.loads((tmp_path / "model" / "featcache.json").read_text())["class_names"]
    top_classes = [classes[label] for label in video.probabilities.argmax(axis=1)]
    # Windows wholly before 3 s are red, wholly after are blue; the one across (2.5-3.5 s) may go either way.
    assert top_classes[:5] == ["Red"] * 5 and top_classes[6:] == ["Blue"] * 5


def test_a_crashing_decoder_costs_one_video_of_predict_windows(
    colour_model: Path, red_then_blue_video: Path, fake_extractor, tmp_path: Path, monkeypatch
):
    """The decoding runs in a worker process: a decoder that dies (SIGSEGV) fails its video, the next is predicted."""
    crashing = tmp_path / "hostile.avi"
    crashing.write_bytes(red_then_blue_video.read_bytes())
    monkeypatch.setenv(CRASH_DECODER_ENV, crashing.name)
    report = predict_windows(colour_model, [crashing, red_then_blue_video, crashing], WindowConfig(1.0))
    first, good, again = report.videos
    assert first.error == f"{crashing}: decoder crashed: signal 11 (SIGSEGV)" and again.error == first.error
    assert good.error is None and len(good.start_seconds) == 6
