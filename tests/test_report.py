"""featcache.report: what each page shows (its data), the HTML it renders, and the commands that write it.

The model page is checked on a world whose every prediction is known (tests/report_fixtures.py): the misclassified
videos, their top-3, and thumbnails that are the cached frames (numbered videos: a frame's grey level gives its
index back). The real-browser check of the same page is tests/test_report_browser.py.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import frame_number_from_level, numbered_frames, write_video
from format1_writer import write_cache as write_format1_cache
from markupsafe import escape
from report_fixtures import (
    BEST_EPOCH,
    FRAME_INDICES,
    VIDEO_FPS,
    WRONG,
    build_report_world,
    report_video_rows,
    video_paths,
    write_source_videos,
)
from test_evaluate import CLASS_NAMES, EXTRACTOR, SAMPLING
from typer.testing import CliRunner

from featcache.cache import VideoRows, open_cache, write_cache
from featcache.cli import app
from featcache.config import SamplingConfig, WindowConfig
from featcache.errors import VideoDecodeError
from featcache.inference.windows import VideoWindows, WindowsReport
from featcache.report import write_cache_report, write_comparison_report, write_model_report, write_windows_report
from featcache.report.comparison_page import ComparedHead
from featcache.report.model_data import MAX_STRIP_FRAMES, _strip_request, gather_model_page, summarise_split
from featcache.report.model_page import render_model_page
from featcache.report.render import CONTENT_SECURITY_POLICY
from featcache.report.thumbnails import (
    STRIP_FAILED,
    STRIP_MISSING,
    STRIP_NOT_LOCATED,
    STRIP_OK,
    StripRequest,
    decode_thumbnail_strips,
)
from featcache.training.model_folder import ModelFolder
from featcache.video.decode_workers import CRASH_DECODER_ENV, DecodeWorkerPool
from featcache.video.frame_lookup import FrameRequest, FramesAt

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory):
    """One world for the tests that only read it (building and scoring it takes seconds)."""
    return build_report_world(tmp_path_factory.mktemp("report-world"))


@pytest.fixture(scope="module")
def page(shared_world):
    return gather_model_page(shared_world.model_dir, shared_world.cache, video_root=shared_world.video_root)


@pytest.fixture
def world(tmp_path: Path):
    """A world of one's own, for a test that moves or breaks its files."""
    return build_report_world(tmp_path)


def decoded_frame_number(image_uri: str) -> int:
    """The frame index a numbered-video thumbnail shows (its grey level, through JPEG)."""
    payload = base64.b64decode(image_uri.split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_GRAYSCALE)
    return frame_number_from_level(float(image.mean()))


def test_the_misclassified_videos_show_the_frames_the_model_saw(page) -> None:
    assert {video.path for video in page.misclassified} == set(WRONG)
    assert page.num_misclassified == len(WRONG) == len(page.evaluation.misclassified)
    for video in page.misclassified:
        assert video.predicted == WRONG[video.path] != video.true
        assert video.top[0][0] == video.predicted and len(video.top) == 3
        assert [probability for _, probability in video.top] == sorted((p for _, p in video.top), reverse=True)
        assert video.strip.status == STRIP_OK
        assert [thumbnail.frame_index for thumbnail in video.strip.thumbnails] == FRAME_INDICES.tolist()
        np.testing.assert_allclose(
            [thumbnail.timestamp_ms for thumbnail in video.strip.thumbnails], FRAME_INDICES / VIDEO_FPS * 1000
        )
        # The pictures are those frames of the source video, not merely labelled so.
        assert [decoded_frame_number(thumbnail.image_uri) for thumbnail in video.strip.thumbnails] == (
            FRAME_INDICES.tolist()
        )


def test_the_most_confident_correct_video_of_each_class(page, shared_world) -> None:
    world = shared_world
    correct = {video.true: video for video in page.confident_correct}
    assert set(correct) == set(CLASS_NAMES)
    for name, video in correct.items():
        assert video.predicted == name
        # The fixture gives later rows a higher first-frame feature: the most confident is the last right one.
        right_ones = [path for path, label in zip(world.paths, world.labels) if label == name]
        right_ones = [path for path in right_ones if path in world.test_paths and path not in WRONG]
        assert video.path == max(right_ones, key=world.paths.index)


def test_headline_left_out_split_and_curves(page) -> None:
    assert page.evaluation.num_videos == 6 and page.evaluation.accuracy == pytest.approx(4 / 6)
    assert any("3 cached videos not scored" in sentence for sentence in page.left_out)
    assert any("Beta/broken.avi" in sentence and "no decodable frame" in sentence for sentence in page.left_out)
    assert page.split.totals == {"train": 3, "val": 0, "test": 6}
    assert dict(page.split.rows)["Alpha"] == {"train": 1, "val": 0, "test": 2}
    # groups g0..g3 over rows 0-8: g0, g1, g2 hold train and test videos
    assert page.split.groups == {"train": 3, "val": 0, "test": 4}
    assert any("3 group(s) have videos in both train/val and test" in warning for warning in page.split.leakage)
    assert page.best_epoch == BEST_EPOCH and page.num_epochs == 4
    assert page.learning_curves_uri.startswith("data:image/svg+xml;base64,")
    provenance = dict(page.provenance)
    assert provenance["extractor"] == "scratch_cnn" and "num_frames=4" in provenance["sampling"]


def test_a_test_video_with_a_training_videos_contents_is_a_leak(tmp_path: Path) -> None:
    fingerprints = [f"{row}:contents{row}" for row in range(9)]
    fingerprints[5] = fingerprints[0]  # a test video (row 5) is a copy of a train video (row 0)
    world = build_report_world(tmp_path, fingerprints=fingerprints)
    split = summarise_split(ModelFolder.open(world.model_dir), open_cache(world.cache).index)
    leak = [warning for warning in split.leakage if "same contents" in warning]
    assert len(leak) == 1 and world.paths[5] in leak[0] and world.paths[0] in leak[0]


def test_moved_source_videos_are_marked_missing_and_the_page_still_renders(world, tmp_path: Path) -> None:
    shutil.move(world.video_root, tmp_path / "moved-away")
    # No cache given: the model's training cache (featcache.json).
    path, page = write_model_report(world.model_dir, out=tmp_path / "r.html", video_root=world.video_root)
    assert [video.strip.status for video in page.misclassified] == [STRIP_MISSING] * len(WRONG)
    html = path.read_text()
    assert html.count('data-status="missing"') == len(WRONG) + len(page.confident_correct)
    assert "source video missing" in html and '<img src="data:image/jpeg' not in html


def test_a_broken_source_video_costs_only_its_strip(tmp_path: Path) -> None:
    write_source_videos(tmp_path, ["good.avi", "broken.avi"])
    (tmp_path / "broken.avi").write_bytes(b"not a video at all")
    requests = [StripRequest(name, FRAME_INDICES, FRAME_INDICES * 100.0) for name in ("broken.avi", "good.avi")]
    broken, good = decode_thumbnail_strips(requests, tmp_path, image_size=16)
    assert broken.status == STRIP_FAILED and "cannot be opened" in broken.reason and not broken.thumbnails
    assert good.status == STRIP_OK and [thumbnail.frame_index for thumbnail in good.thumbnails] == [1, 4, 7, 10]


def test_without_a_video_folder_the_strips_say_how_to_get_thumbnails() -> None:
    (strip,) = decode_thumbnail_strips([StripRequest("a.avi", FRAME_INDICES, FRAME_INDICES * 100.0)], None)
    assert strip.status == STRIP_NOT_LOCATED and "--videos" in strip.reason


def test_the_page_is_self_contained(page) -> None:
    html = render_model_page(page)
    assert f'content="{escape(CONTENT_SECURITY_POLICY)}"' in html
    assert not re.findall(r'(?:src|href)="(?!data:|#)', html), "every image is inline, nothing links out"
    assert html.count('class="class-row"') == len(CLASS_NAMES)
    assert html.count('class="video misclassified-video"') == len(WRONG)
    confusion = html.split('id="confusion-matrix"')[1].split("</table>")[0]
    assert confusion.count("<td ") == len(CLASS_NAMES) ** 2


def test_report_and_evaluate_html_commands(shared_world, tmp_path: Path) -> None:
    world = shared_world
    out = tmp_path / "page.html"
    result = RUNNER.invoke(
        app, ["report", str(world.model_dir), str(world.cache), "--videos", str(world.video_root), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.output and out.read_text().count("misclassified-video") == len(WRONG)

    evaluated = RUNNER.invoke(app, ["evaluate", str(world.model_dir), str(world.cache), "--html"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "Accuracy: 0.6667" in evaluated.output
    assert f"Report HTML: {world.model_dir / 'evaluation' / 'cache' / 'report.html'}" in evaluated.output
    refused = RUNNER.invoke(app, ["evaluate", str(world.model_dir), str(world.cache), "--videos", "x"])
    assert refused.exit_code == 2 and "--videos only applies with --html" in refused.output


def test_cache_page_shows_classes_failures_duplicates_and_shards(tmp_path: Path) -> None:
    fingerprints = [f"{row}:contents{row}" for row in range(9)]
    fingerprints[4] = fingerprints[1]
    world = build_report_world(tmp_path, fingerprints=fingerprints)
    out = tmp_path / "cache.html"
    result = RUNNER.invoke(app, ["info", str(world.cache), "--html", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert 'id="videos-per-class"' in html and 'id="lengths"' in html
    assert re.search(r'id="num-videos">9<', html) and html.count('class="failure"') == 1
    assert "Beta/broken.avi" in html and "no decodable frame" in html
    duplicates = html.split('id="duplicates"')[1].split("</ul>")[0]
    assert world.paths[1] in duplicates and world.paths[4] in duplicates
    assert html.count("</tr>", html.index('id="shards"')) >= 2  # a header and a live shard
    assert write_cache_report(world.cache).name == "cache.html"  # default: beside the cache


def test_comparison_page_links_each_model_page_relatively(shared_world, tmp_path: Path) -> None:
    world = shared_world
    model_page = tmp_path / "models" / "lstm" / "report.html"
    model_page.parent.mkdir(parents=True)
    model_page.write_text("<html></html>")
    heads = [
        ComparedHead("lstm", "lstm", 0.75, 0.7, 3, 0.5, 1234, world.model_dir, model_page),
        ComparedHead("meanpool", "meanpool", 0.5, None, 4, 0.25, None, None, None, ["at chance"]),
    ]
    out = write_comparison_report(heads, tmp_path / "runs" / "comparison.html", "cache.h5", "the test videos")
    html = out.read_text()
    links = re.findall(r'class="model-link" href="([^"]+)"', html)
    assert len(links) == 1 and (out.parent / links[0]).resolve() == model_page.resolve()
    assert html.count('class="head-row"') == 2 and "1,234" in html and "meanpool: at chance" in html
    assert 'id="comparison-curves"' in html  # drawn from the lstm's history.csv


def test_windows_page_shows_the_frames_at_the_window_centres(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", numbered_frames(12), fps=VIDEO_FPS)
    starts = np.array([0.0, 0.4, 0.8])
    windows = VideoWindows(
        str(video), starts, starts + 0.4, np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32), video_fps=10.0
    )
    failed = VideoWindows("gone.avi", np.zeros(0), np.zeros(0), np.zeros((0, 2)), error="gone.avi: file not found")
    report = WindowsReport("model", ["Left", "Right"], WindowConfig(window_seconds=0.4), [windows, failed])
    html = write_windows_report(report, tmp_path / "windows.html").read_text()
    assert html.count('class="plot timeline"') == 1 and "gone.avi: file not found" in html
    thumbnails = re.findall(r'src="(data:image/jpeg[^"]+)"', html)
    # centres at 0.2, 0.6, 1.0 s = frames 2, 6, 10
    assert [decoded_frame_number(uri) for uri in thumbnails] == [2, 6, 10]


def test_decode_workers_decode_chosen_frames_and_a_crash_costs_one_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_video(tmp_path / "good.avi", numbered_frames(12))
    crashing = write_video(tmp_path / "crash.avi", numbered_frames(12))
    monkeypatch.setenv(CRASH_DECODER_ENV, crashing.name)
    with DecodeWorkerPool(1, SamplingConfig(), 16) as pool:
        crashed = pool.decode_frames_at(FrameRequest(crashing, (1, 2), 16))
        frames = pool.decode_frames_at(FrameRequest(good, (3, 9, 40), 16))  # 40: past the end
    assert isinstance(crashed, VideoDecodeError) and "decoder crashed: signal 11" in str(crashed)
    assert isinstance(frames, FramesAt) and frames.frame_indices.tolist() == [3, 9]
    assert [frame_number_from_level(frame.mean()) for frame in frames.frames] == [3, 9]
    assert frames.frames.shape == (2, 16, 16, 3) and frames.video_fps == pytest.approx(10.0)


def test_cache_page_of_a_format_1_cache(tmp_path: Path) -> None:
    paths, labels = video_paths()
    cache = tmp_path / "old.h5"
    write_format1_cache(
        cache,
        [report_video_rows(paths, labels)],
        paths,
        CLASS_NAMES,
        [],
        {"extractor": EXTRACTOR, "sampling": SAMPLING},
        len(FRAME_INDICES),
        len(CLASS_NAMES),
        "float32",
    )
    html = write_cache_report(cache, tmp_path / "old.html").read_text()
    assert re.search(r'id="num-videos">9<', html) and "featcache upgrade" in html and 'id="shards"' not in html


def test_a_strip_shows_at_most_16_of_a_dense_videos_frames(tmp_path: Path) -> None:
    """A head on every stored frame of a dense cache reads 40 frames here; its strip shows 16, evenly spread."""
    num_frames = 40
    rows = VideoRows(
        features=np.zeros((1, num_frames, 3), np.float32),
        frame_indices=(np.arange(num_frames, dtype=np.int32) * 2)[None],
        timestamps_ms=(np.arange(num_frames, dtype=np.float32) * 200)[None],
        lengths=np.array([num_frames], np.int32),
        video_fps=np.array([10.0], np.float32),
        video_num_frames=np.array([80], np.int32),
        video_width=np.array([32], np.int32),
        video_height=np.array([32], np.int32),
        labels=["Alpha"],
        paths=["Alpha/dense.avi"],
        groups=[""],
    )
    cache_path = tmp_path / "dense.h5"
    attributes = {"extractor": EXTRACTOR, "sampling": {**SAMPLING, "num_frames": 0}}
    write_cache(cache_path, [rows], ["Alpha/dense.avi"], ["Alpha"], [], attributes, num_frames, 3, "float32")
    request = _strip_request(open_cache(cache_path), num_frames, 0)
    assert len(request.frame_indices) == MAX_STRIP_FRAMES == 16
    assert request.frame_indices[0] == 0 and request.frame_indices[-1] == 78
    assert np.all(np.diff(request.frame_indices) > 0)
