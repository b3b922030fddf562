"""A seek plan's runs decoded on several threads give the frames of one thread, and of the sequential decode."""

from __future__ import annotations

import itertools
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from featcache.config import SamplingConfig
from featcache.video import run_threads
from featcache.video.capture import open_capture
from featcache.video.decode import PlannedSeek, plan_seeking, read_sampled_frames
from featcache.video.sampling import sample_frame_indices
from featcache.video.seek_decode import DecodeTally, SeekMismatch, plan_seek_decode
from featcache.video.stream_index import StreamIndex
from tests.decode_corpus import write_decode_corpus

# The corpus's videos whose sampled frames need more than one run (a keyframe every 12 to 96 frames).
MULTI_RUN = ["h264_long_gop_bframes.mp4", "h264.mkv", "xvid.avi", "mp4v.avi", "vp9.webm", "variable_frame_rate.mkv"]
SAMPLINGS = {
    "uniform-10": SamplingConfig(num_frames=10),
    "fps-5-all": SamplingConfig(num_frames=0, mode="fps", fps=5.0),
}


@pytest.fixture(scope="module")
def decode_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_decode_corpus(tmp_path_factory.mktemp("decode_corpus"))


def _planned(path: Path, sampling: SamplingConfig) -> PlannedSeek:
    capture = open_capture(path)
    try:
        planned = plan_seeking(
            path, capture, lambda num_frames: sample_frame_indices(num_frames, 25.0, sampling), "seek"
        )
    finally:
        capture.release()
    assert isinstance(planned, PlannedSeek), planned
    return planned


def _seek_run_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("featcache-seek-run")]


def _is_open(container: av.container.InputContainer) -> bool:
    """PyAV says a container is closed by refusing to demux (its `_assert_open`); an open one reads a packet."""
    try:
        next(container.demux(), None)
    except AssertionError:
        return False
    return True


@pytest.fixture
def runs_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two runs wait for each other holding their decoders, so a second decoder is opened however fast
    a run of the corpus's small videos decodes."""
    barrier = threading.Barrier(2, timeout=30)
    calls = itertools.count()
    real_decode_run = run_threads.decode_run

    def overlapping_decode_run(*args: object, **kwargs: object):
        if next(calls) < 2:
            barrier.wait()
        return real_decode_run(*args, **kwargs)

    monkeypatch.setattr(run_threads, "decode_run", overlapping_decode_run)


@pytest.mark.parametrize("sampling_name", SAMPLINGS)
@pytest.mark.parametrize("video_name", MULTI_RUN)
def test_runs_on_three_threads_give_the_sequential_frames(
    decode_corpus: dict[str, Path], video_name: str, sampling_name: str, runs_overlap: None
) -> None:
    path, sampling = decode_corpus[video_name], SAMPLINGS[sampling_name]
    with _planned(path, sampling) as planned:
        assert len(planned.plan.runs) > 1  # else the threads would not be used
    sequential = read_sampled_frames(path, sampling, 32, decoder="sequential")
    threaded = read_sampled_frames(path, sampling, 32, decoder="seek", seek_threads=3)
    assert threaded.decoder == "seek", threaded.decoder_note
    np.testing.assert_array_equal(threaded.frame_indices, sequential.frame_indices)
    np.testing.assert_array_equal(threaded.frames, sequential.frames)
    assert threaded.video_num_frames == sequential.video_num_frames


def test_threads_decode_the_same_frames_in_order_and_count_the_same(
    decode_corpus: dict[str, Path], runs_overlap: None
) -> None:
    """Full-size frames, one thread against three: the same positions in the same order, the same pixels, and the
    tally adds up every run's decoded frames."""
    path = decode_corpus["h264_long_gop_bframes.mp4"]
    decoded: dict[int, list[tuple[int, np.ndarray]]] = {}
    tallies: dict[int, DecodeTally] = {}
    for threads in (1, 3):
        tallies[threads] = DecodeTally()
        with _planned(path, SamplingConfig(num_frames=10)) as planned:
            decoded[threads] = planned.decode_all_frames("rgb24", tallies[threads], threads=threads)
    assert [position for position, _ in decoded[3]] == [position for position, _ in decoded[1]]
    for (_, one), (_, three) in zip(decoded[1], decoded[3], strict=True):
        np.testing.assert_array_equal(three, one)
    assert tallies[3].frames_decoded == tallies[1].frames_decoded > 0


def test_finish_runs_on_the_thread_that_decoded_each_frame_and_the_list_holds_what_it_returns(
    decode_corpus: dict[str, Path], runs_overlap: None
) -> None:
    """`read_sampled_frames` resizes each frame for the model this way, beside the other runs' decoding."""
    path = decode_corpus["xvid.avi"]
    with _planned(path, SamplingConfig(num_frames=10)) as planned:
        plain = planned.decode_all_frames("rgb24", threads=2)
    with _planned(path, SamplingConfig(num_frames=10)) as planned:
        finished = planned.decode_all_frames(
            "rgb24", threads=2, finish=lambda frame: (frame[::2, ::2].copy(), threading.current_thread().name)
        )
    assert [position for position, _ in finished] == [position for position, _ in plain]
    for (_, frame), (_, (half, thread_name)) in zip(plain, finished, strict=True):
        np.testing.assert_array_equal(half, frame[::2, ::2])
        assert thread_name.startswith("featcache-seek-run")


def test_one_thread_never_opens_the_file_again_and_three_open_it_at_most_twice(
    decode_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch, runs_overlap: None
) -> None:
    path = decode_corpus["xvid.avi"]  # a keyframe every 12 frames: 10 runs for 10 samples
    opened: list[object] = []
    real_open = PlannedSeek._open_another_decoder

    def counting_open(planned: PlannedSeek):
        opened.append(planned)
        return real_open(planned)

    monkeypatch.setattr(PlannedSeek, "_open_another_decoder", counting_open)
    for threads, most in [(3, 2), (1, 0)]:  # three first: its first two runs meet at the barrier
        opened.clear()
        with _planned(path, SamplingConfig(num_frames=10)) as planned:
            assert len(planned.plan.runs) >= 6
            frames = planned.decode_all_frames("rgb24", threads=threads)
        assert len(frames) == 10
        assert (threads == 1 or opened) and len(opened) <= most


def test_a_mismatch_in_a_later_run_raises_and_ends_the_threads_and_the_containers_opened(
    decode_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch, runs_overlap: None
) -> None:
    """An index counting one frame more than the stream has: the last run (the longest, started first, beside
    another) finds the stream ending early. That SeekMismatch is raised (no frame is returned), no thread is left,
    and the containers opened for the threads are closed; the plan's own stays open for its context to close."""
    opened: list[av.container.InputContainer] = []
    real_open = PlannedSeek._open_another_decoder

    def recording_open(planned: PlannedSeek):
        decoder = real_open(planned)
        opened.append(decoder.container)
        return decoder

    monkeypatch.setattr(PlannedSeek, "_open_another_decoder", recording_open)
    with _planned(decode_corpus["xvid.avi"], SamplingConfig(num_frames=10)) as planned:
        index = planned.index
        longer = StreamIndex(np.append(index.pts, index.pts[-1] + 1), index.keyframe_positions, index.time_base)
        wanted = np.array([0, 30, 60, longer.num_frames - 1])
        tampered = PlannedSeek(
            planned.path, planned.container, planned.stream, longer, plan_seek_decode(longer, wanted), wanted
        )
        with pytest.raises(SeekMismatch, match=f"the stream ended after {index.num_frames} frames"):
            tampered.decode_all_frames("rgb24", threads=2)
        assert _seek_run_threads() == []
        assert opened and not any(_is_open(container) for container in opened)
        assert _is_open(planned.container)


def test_a_file_that_no_longer_opens_for_a_second_thread_is_decoded_by_the_decoder_open(
    decode_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file opened for the index, then fails to open again (out of file descriptors, replaced): the runs share
    the decoder already open, and the frames are the ones one thread gives. The first run waits until a second run
    has tried to open the file, so the failing open is always reached."""
    path = decode_corpus["xvid.avi"]
    real_open = av.open
    opens: list[str] = []
    second_open_tried = threading.Event()

    def failing_second_open(file: str, *args: object, **kwargs: object):
        opens.append(file)
        if len(opens) > 1:
            second_open_tried.set()
            raise av.error.FileNotFoundError(2, "No such file or directory", file)
        return real_open(file, *args, **kwargs)

    calls = itertools.count()
    real_decode_run = run_threads.decode_run

    def first_run_waits(*args: object, **kwargs: object):
        if next(calls) == 0:
            assert second_open_tried.wait(timeout=30)
        return real_decode_run(*args, **kwargs)

    monkeypatch.setattr(av, "open", failing_second_open)
    monkeypatch.setattr(run_threads, "decode_run", first_run_waits)
    sampled = read_sampled_frames(path, SamplingConfig(num_frames=10), 32, decoder="seek", seek_threads=3)
    assert second_open_tried.is_set() and len(opens) == 2  # after one failure no other opening is tried
    assert sampled.decoder == "seek", sampled.decoder_note
    monkeypatch.setattr(av, "open", real_open)
    np.testing.assert_array_equal(
        sampled.frames, read_sampled_frames(path, SamplingConfig(num_frames=10), 32, decoder="sequential").frames
    )


def test_a_failed_run_skips_the_runs_waiting_and_its_failure_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs taking turns on one decoder (the file does not open again): the longest, decoded first, fails; the two
    waiting for the decoder are skipped, and the failure is raised though the plan's first run never decoded."""
    decoded: list[int] = []

    def fake_decode_run(decoder, index, plan, run_number, targets, tally):
        decoded.append(run_number)
        if run_number == 1:
            raise SeekMismatch("run 1 disagrees with the index")
        return iter([(plan.runs[run_number].end, np.zeros((2, 2, 3), np.uint8))])

    def no_second_opening():
        raise SeekMismatch("the file does not open again")

    monkeypatch.setattr(run_threads, "decode_run", fake_decode_run)
    index = StreamIndex(np.arange(30, dtype=np.int64), np.array([0, 10, 20]), Fraction(1, 25))
    plan = plan_seek_decode(index, np.array([0, 14, 22]))
    assert [run.num_frames for run in plan.runs] == [1, 5, 10]  # the last, to the end of the stream, longest
    plan.runs[1], plan.runs[2] = plan.runs[2], plan.runs[1]  # now run 1 is the longest, decoded first
    with pytest.raises(SeekMismatch, match="run 1 disagrees"):
        run_threads.decode_runs_on_threads(
            object(), no_second_opening, index, plan, np.array([0, 14, 22]), "rgb24", DecodeTally(), threads=2
        )
    assert decoded == [1]
    assert _seek_run_threads() == []


def test_a_container_without_a_stored_index_decodes_its_runs_on_one_thread(
    decode_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MPEG-TS seeks by searching timestamps, where a second opening may land elsewhere than the indexed one: its
    runs stay on one thread, so its fallback reason is the one thread's, every time."""
    monkeypatch.setattr(PlannedSeek, "_open_another_decoder", lambda planned: pytest.fail("opened a second time"))
    for _ in range(3):
        sampled = read_sampled_frames(
            decode_corpus["nonzero_start.ts"], SamplingConfig(num_frames=1), 32, decoder="seek", seek_threads=3
        )
        assert sampled.decoder == "sequential" and "not at a keyframe at or before it" in sampled.decoder_note


@pytest.mark.parametrize(("cores", "processes", "threads"), [(2, 2, 1), (2, 1, 2), (16, 4, 4), (3, 2, 1), (1, 8, 1)])
def test_seek_threads_share_the_cores_among_the_decoding_processes(
    monkeypatch: pytest.MonkeyPatch, cores: int, processes: int, threads: int
) -> None:
    monkeypatch.setattr(run_threads, "usable_cores", lambda: cores)
    assert run_threads.seek_threads_for(processes) == threads


def test_the_default_is_one_thread_per_usable_core(decode_corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    """threads=None asks `usable_cores`: with one core, nothing opens the file a second time."""
    monkeypatch.setattr(run_threads, "usable_cores", lambda: 1)
    monkeypatch.setattr(PlannedSeek, "_open_another_decoder", lambda planned: pytest.fail("opened a second time"))
    sampled = read_sampled_frames(decode_corpus["xvid.avi"], SamplingConfig(num_frames=10), 32, decoder="seek")
    assert sampled.decoder == "seek"
