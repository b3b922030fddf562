"""Issue 17: exact seeking vs sequential decoding vs auto, side by side, on short clips and on long videos.

Each set is generated into the run's folder (kept between runs): UCF101-like clips (320x240 XVID, 7 s, written
with cv2.VideoWriter as UCF101 was), 10-s long-GOP H.264 clips (keyframe every 250 frames, B-frames, as
Kinetics-style downloads), and 2-minute and 10-minute videos of both codecs at UCF101's 320x240 (the size issue
17's own measurement used). Every decoder decodes every video of a set in this process (decode alone, on the
machine's cores: OpenCV's frame threads, seeking's run threads; `read_sampled_frames` at T = 10 uniform, 224 px),
rounds alternating between decoders so that the load of other jobs falls on all of them; the best round of each
counts. Frames decoded per video come from the stream index
(`plan_seek_decode`): the minimum is the frames from each target's keyframe to it (runs shared), seeking adds
the run to the last frame that proves the frame count, sequential decodes all.

End to end (`--embed`): `featcache.embed` on each long set, sequential then auto, mobilenet_v2 at 224 px with
the benchmarks' calibrated weights on the default runtime, beside auto's decoding alone and that extractor alone
on the same frames (bare batched inference), per video: embed is bound by the model, not the decoder, when
decoding a video costs less than embedding it.

`python -m benchmarks --sections seeking` runs it in the suite; `python -m benchmarks.seeking [--quick] FOLDER`
alone (what BENCHMARKS.md's figures come from). `run_window_decoding` times `predict --window`'s decoding
(`read_window_frames`, sequential vs auto) of one 2-minute H.264 video with sparse and with dense windows:
`python -m benchmarks.seeking --windows-only FOLDER` (not part of the suite's section).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.report import SectionResult, Table, Target
from benchmarks.workspace import QUICK, Workspace, benchmark_weights
from featcache.config import EmbedConfig, ExtractorConfig, SamplingConfig, WindowConfig
from featcache.embedding.embed import embed
from featcache.extractors.registry import load_extractor
from featcache.video.decode import read_sampled_frames
from featcache.video.sampling import sample_frame_indices
from featcache.video.seek_decode import DecodeTally, iterate_planned_frames, plan_seek_decode
from featcache.video.stream_index import StreamIndex, index_stream, the_video_stream
from featcache.video.window_frames import read_window_frames, window_frame_indices, window_layout

DECODERS = ("sequential", "seek", "auto")
SAMPLING = SamplingConfig(num_frames=10)
IMAGE_SIZE = 224
ROUNDS = 5
FPS = 25


@dataclass(frozen=True)
class VideoSet:
    """`count` videos of `seconds` s at `width`x`height`, written by `codec` ("xvid" or "h264")."""

    name: str
    codec: str
    seconds: float
    width: int
    height: int
    count: int


FULL_SETS = [
    VideoSet("UCF101-like (320x240 XVID, 7 s)", "xvid", 7.0, 320, 240, 8),
    VideoSet("10-s long-GOP H.264 (320x240)", "h264", 10.0, 320, 240, 4),
    VideoSet("2-min H.264 (320x240)", "h264", 120.0, 320, 240, 4),
    VideoSet("2-min XVID (320x240)", "xvid", 120.0, 320, 240, 4),
    VideoSet("10-min H.264 (320x240)", "h264", 600.0, 320, 240, 3),
    VideoSet("10-min XVID (320x240)", "xvid", 600.0, 320, 240, 3),
]
QUICK_SETS = [
    VideoSet("UCF101-like (320x240 XVID, 2 s)", "xvid", 2.0, 320, 240, 2),
    VideoSet("long-GOP H.264 (160x120, 12 s)", "h264", 12.0, 160, 120, 1),
]


def _frame(number: int, width: int, height: int) -> np.ndarray:
    """uint8 RGB: a gradient that drifts and a bar that walks down, so every frame differs (real motion)."""
    rows, columns = np.mgrid[0:height, 0:width]
    frame = np.stack(
        [(columns + number * 2) % 256, (rows + number * 3) % 256, (columns // 2 + rows // 2 + number) % 256], -1
    ).astype(np.uint8)
    bar = (number * 2) % height
    frame[bar : bar + 6] = 255
    return frame


def write_video(path: Path, video_set: VideoSet, seed: int) -> Path:
    num_frames = int(video_set.seconds * FPS)
    width, height = video_set.width, video_set.height
    if video_set.codec == "xvid":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), FPS, (width, height))
        try:
            for number in range(num_frames):
                writer.write(cv2.cvtColor(_frame(number + seed, width, height), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        return path
    with av.open(str(path), "w") as container:
        # A keyframe every 250 frames exactly (x264's default interval, no scene-cut keyframes), B-frames.
        options = {"g": "250", "keyint_min": "250", "sc_threshold": "0", "bf": "3", "preset": "veryfast"}
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for number in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_frame(number + seed, width, height), "rgb24")))
        container.mux(stream.encode())
    return path


def make_set(folder: Path, video_set: VideoSet) -> list[Path]:
    """The set's videos under `folder` (reused when a run already wrote them)."""
    set_folder = folder / f"{video_set.codec}-{int(video_set.seconds)}s-{video_set.width}x{video_set.height}"
    set_folder.mkdir(parents=True, exist_ok=True)
    suffix = ".avi" if video_set.codec == "xvid" else ".mp4"
    paths = []
    for number in range(video_set.count):
        path = set_folder / f"video{number:02d}{suffix}"
        if not path.exists():
            temporary = path.with_name("partial-" + path.name)
            write_video(temporary, video_set, seed=number * 17)
            temporary.rename(path)
        paths.append(path)
    return paths


def index_and_fps(path: Path) -> tuple[StreamIndex, float]:
    """The stream index of `path` and its frame rate as OpenCV reads it (what both decoders sample by)."""
    with av.open(str(path)) as container:
        index = index_stream(container, the_video_stream(container))
    capture = cv2.VideoCapture(str(path))
    try:
        return index, capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()


def frames_to_decode(path: Path) -> tuple[int, int, int, int]:
    """(minimum, seeking's runs, sequential's, seeking's decoded) frames for SAMPLING: the first three from the
    stream index, the last counted by decoding the plan (the decoder skips non-reference frames nobody wants)."""
    index, video_fps = index_and_fps(path)
    frame_indices = sample_frame_indices(index.num_frames, video_fps, SAMPLING)
    plan = plan_seek_decode(index, frame_indices)
    minimum = plan_seek_decode(index, frame_indices[:-1]).frames_to_decode if len(frame_indices) > 1 else 1
    # The uniform sample's last target is the last frame: the plan's proof run is then part of the minimum.
    minimum = plan.frames_to_decode if frame_indices[-1] == index.num_frames - 1 else minimum
    tally = DecodeTally()
    with av.open(str(path)) as container:
        stream = the_video_stream(container)
        for _ in iterate_planned_frames(container, stream, index, plan, frame_indices, "rgb24", tally):
            pass
    return minimum, plan.frames_to_decode, index.num_frames, tally.frames_decoded


def time_round(paths: list[Path], round_number: int) -> tuple[dict[str, list[float]], dict[str, dict[str, int]]]:
    """Seconds each decoder takes on each of `paths`, video by video with the decoders taking turns (the order
    rotates every video and round), so that a burst of load from other jobs falls on all of them; and which path
    each decoder took."""
    seconds: dict[str, list[float]] = {decoder: [] for decoder in DECODERS}
    taken: dict[str, dict[str, int]] = {decoder: {} for decoder in DECODERS}
    for number, path in enumerate(paths):
        shift = (number + round_number) % len(DECODERS)
        for decoder in DECODERS[shift:] + DECODERS[:shift]:
            started = time.perf_counter()
            sampled = read_sampled_frames(path, SAMPLING, IMAGE_SIZE, decoder)
            seconds[decoder].append(time.perf_counter() - started)
            taken[decoder][sampled.decoder] = taken[decoder].get(sampled.decoder, 0) + 1
    return seconds, taken


def measure_set(folder: Path, video_set: VideoSet, log) -> tuple[list[str], dict[str, float]]:
    log(f"{video_set.name}: writing or reusing {video_set.count} videos")
    paths = make_set(folder, video_set)
    counts = np.array([frames_to_decode(path) for path in paths], dtype=np.float64).mean(axis=0)
    # Each video's fastest round per decoder, summed: the machine is shared, and a burst of other work in one
    # round should not count against whichever decoder it fell on.
    read_sampled_frames(paths[0], SAMPLING, IMAGE_SIZE, "seek")  # imports PyAV once, outside the timings
    fastest = {decoder: np.full(len(paths), np.inf) for decoder in DECODERS}
    for round_number in range(ROUNDS):
        seconds, taken = time_round(paths, round_number)
        fastest = {decoder: np.minimum(fastest[decoder], seconds[decoder]) for decoder in DECODERS}
    best = {decoder: float(fastest[decoder].sum()) for decoder in DECODERS}
    rates = {decoder: len(paths) / best[decoder] for decoder in DECODERS}
    auto_frames = counts[3] if taken["auto"].get("seek", 0) == len(paths) else counts[2]
    log(f"{video_set.name}: " + ", ".join(f"{decoder} {rate:.2f} videos/s" for decoder, rate in rates.items()))
    row = [
        video_set.name,
        str(len(paths)),
        f"{counts[2]:,.0f}",
        f"{counts[0]:,.0f}",
        f"{counts[1]:,.0f} ({counts[1] / counts[0]:.2f}× min)",
        f"{counts[3]:,.0f} ({counts[3] / counts[0]:.2f}× min)",
        f"{auto_frames:,.0f}",
        f"{rates['sequential']:.2f}",
        f"{rates['seek']:.2f} ({rates['seek'] / rates['sequential']:.2f}×)",
        f"{rates['auto']:.2f} ({rates['auto'] / rates['sequential']:.2f}×)",
        ", ".join(f"{count} {name}" for name, count in sorted(taken["auto"].items())),
    ]
    ratios = {
        "seek": rates["seek"] / rates["sequential"],
        "auto": rates["auto"] / rates["sequential"],
        "frames_vs_min": counts[1] / counts[0],
    }
    return row, ratios


def run_seeking_sets(folder: Path, sets: list[VideoSet], log) -> SectionResult:
    rows, targets = [], []
    for video_set in sets:
        row, ratios = measure_set(folder, video_set, log)
        rows.append(row)
        targets.append(
            Target(
                f"{video_set.name}: auto never below 0.95× sequential",
                f"{ratios['auto']:.2f}× (seek {ratios['seek']:.2f}×)",
                ratios["auto"] >= 0.95,
            )
        )
    table = Table(
        f"Decode alone, T = {SAMPLING.num_frames} uniform at {IMAGE_SIZE} px, one process, "
        f"each video's fastest of {ROUNDS} rounds",
        [
            "set",
            "videos",
            "frames/video (sequential)",
            "minimum",
            "seek runs",
            "seek decodes",
            "auto decodes",
            "sequential videos/s",
            "seek videos/s",
            "auto videos/s",
            "auto chose",
        ],
        rows,
        notes=[
            "Frames per video from the stream index: minimum = from each target's keyframe to it (shared runs "
            "once); seek runs add the run that decodes the last frame (it proves the frame count). Seek decodes: "
            "the frames the decoder put out, counted; H.264 skips the non-reference frames nobody wants.",
            "Ratios are against sequential in the same run; the machine is shared (other jobs ran).",
        ],
    )
    return SectionResult("11. Seeking (issue 17): decode what you sample", [table], targets)


EMBED_EXTRACTOR = "mobilenet_v2"


def _embed_config(decoder: str) -> EmbedConfig:
    extractor = ExtractorConfig(
        name=EMBED_EXTRACTOR, weights=benchmark_weights(EMBED_EXTRACTOR, IMAGE_SIZE), image_size=IMAGE_SIZE
    )
    return EmbedConfig(extractor=extractor, sampling=SAMPLING, decoder=decoder)


def model_videos_per_second(paths: list[Path], config: EmbedConfig) -> float:
    """The extractor alone, as embed loads it, on the sampled frames of `paths` (decoded beforehand), warmed up:
    what embedding these videos costs when decoding is free."""
    extractor = load_extractor(config.extractor, config.runtime)
    frames = np.concatenate([read_sampled_frames(path, SAMPLING, IMAGE_SIZE).frames for path in paths])
    batches = [frames[start : start + config.batch_size] for start in range(0, len(frames), config.batch_size)]
    for batch in batches:
        extractor.embed_frames(batch)  # every batch shape once: compiling or tracing is not inference
    started = time.perf_counter()
    for batch in batches:
        extractor.embed_frames(batch)
    return len(paths) / (time.perf_counter() - started)


def auto_decode_seconds_per_video(paths: list[Path]) -> float:
    """`read_sampled_frames` with the default decoder (auto), one process: each video's fastest of 3, averaged."""
    fastest = np.full(len(paths), np.inf)
    for _ in range(3):
        for number, path in enumerate(paths):
            started = time.perf_counter()
            read_sampled_frames(path, SAMPLING, IMAGE_SIZE, "auto")
            fastest[number] = min(fastest[number], time.perf_counter() - started)
    return float(fastest.mean())


def measure_embed(folder: Path, video_set: VideoSet, log) -> tuple[list[str], float, float]:
    """One set's row of the end-to-end table, and the seconds per video of auto's decoding and of the model."""
    paths = make_set(folder, video_set)
    set_folder = paths[0].parent
    video_list = write_video_list(folder / f"{set_folder.name}.csv", paths)
    summaries = {}
    for decoder in ("sequential", "auto"):
        cache_path = folder / f"{set_folder.name}-{decoder}.h5"
        summaries[decoder] = embed(video_list, cache_path, _embed_config(decoder), overwrite=True)
        log(f"{video_set.name}: embed --decoder {decoder}: {summaries[decoder].videos_per_second:.2f} videos/s")
    model_seconds = 1 / model_videos_per_second(paths, _embed_config("auto"))
    decode_seconds = auto_decode_seconds_per_video(paths)
    sequential, auto = summaries["sequential"], summaries["auto"]
    row = [
        video_set.name,
        str(len(paths)),
        f"{sequential.videos_per_second:.2f} ({sequential.seconds:.1f} s)",
        f"{auto.videos_per_second:.2f} ({auto.seconds:.1f} s)",
        f"{auto.videos_per_second / sequential.videos_per_second:.2f}×",
        f"{decode_seconds * 1000:.0f}",
        f"{model_seconds * 1000:.0f}",
        "the model" if decode_seconds <= model_seconds else "decoding",
        auto.runtime,
    ]
    return row, decode_seconds, model_seconds


def write_video_list(path: Path, videos: list[Path]) -> Path:
    """A featcache CSV list of `videos` (paths relative to the list's folder), one class named after their folder."""
    lines = ["path,label"] + [f"{video.relative_to(path.parent).as_posix()},{video.parent.name}" for video in videos]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_embed_sets(folder: Path, sets: list[VideoSet], log) -> tuple[Table, list[Target]]:
    rows, targets = [], []
    for video_set in sets:
        row, decode_seconds, model_seconds = measure_embed(folder, video_set, log)
        rows.append(row)
        targets.append(
            Target(
                f"{video_set.name}: embed bound by the model, not the decoder (auto's decoding per video ≤ the "
                "model's)",
                f"{decode_seconds * 1000:.0f} ms vs {model_seconds * 1000:.0f} ms",
                decode_seconds <= model_seconds,
            )
        )
    table = Table(
        f"featcache.embed end to end, T = {SAMPLING.num_frames} uniform, {EMBED_EXTRACTOR} at {IMAGE_SIZE} px, "
        "default engine (decode worker processes) and runtime",
        [
            "set",
            "videos",
            "embed sequential videos/s (whole call)",
            "embed auto videos/s (whole call)",
            "auto × sequential",
            "auto decode alone ms/video",
            "model alone ms/video",
            "per video, the larger",
            "runtime",
        ],
        rows,
        notes=[
            "embed videos/s: the embedding phase (decode + model, as `embed` prints it), which with a few videos "
            "includes starting the decode workers; whole call: also loading the model and writing the cache.",
            "Decode alone: `read_sampled_frames` with auto in one process; model alone: the extractor as embed "
            "loads it, on the same frames decoded beforehand, warmed up. Both are CPU work on the same cores: "
            "embed is bound by the model when decoding a video costs less than embedding it.",
        ],
    )
    return table, targets


# `predict --window` on one long video: sparse windows (a 2 s window every 20 s) and dense ones (back to back).
WINDOW_VIDEO = VideoSet("2-min H.264 (160x120)", "h264", 120.0, 160, 120, 1)
WINDOW_CASES = {"sparse (2 s every 20 s)": WindowConfig(2.0, 20.0), "dense (2 s back to back)": WindowConfig(2.0)}
WINDOW_DECODERS = ("sequential", "auto")
# Frames per chunk `predict --window` asks for: featcache.embedding.new_videos.FRAMES_PER_BATCH (importing it loads
# Keras, seconds this decode-only benchmark does without).
CHUNK_FRAMES = 64


def window_frames_to_decode(path: Path, window: WindowConfig) -> tuple[int, int, int]:
    """(frames the windows sample, seeking's frames decoded, sequential's) for `window` on `path`."""
    index, video_fps = index_and_fps(path)
    frame_indices = window_frame_indices(window_layout(video_fps, window, SAMPLING), index.num_frames)
    return len(frame_indices), plan_seek_decode(index, frame_indices).frames_to_decode, index.num_frames


def time_window_frames(path: Path, window: WindowConfig, decoder: str) -> tuple[float, str]:
    """Seconds to take every chunk of `read_window_frames` (as a decode worker does), and the decoder it used."""
    started = time.perf_counter()
    chunks = list(read_window_frames(path, window, SAMPLING, IMAGE_SIZE, CHUNK_FRAMES, decoder))
    return time.perf_counter() - started, chunks[-1].decoder


def run_window_decoding(folder: Path, log) -> Table:
    """Sequential vs auto for `predict --window`'s decoding of one 2-minute video, each case's best of ROUNDS."""
    (path,) = make_set(folder, WINDOW_VIDEO)
    time_window_frames(path, WINDOW_CASES["sparse (2 s every 20 s)"], "auto")  # imports PyAV, outside the timings
    rows = []
    for case, window in WINDOW_CASES.items():
        sampled, seek_frames, num_frames = window_frames_to_decode(path, window)
        best = {decoder: np.inf for decoder in WINDOW_DECODERS}
        taken = {}
        for round_number in range(ROUNDS):
            shift = round_number % len(WINDOW_DECODERS)
            for decoder in WINDOW_DECODERS[shift:] + WINDOW_DECODERS[:shift]:
                seconds, taken[decoder] = time_window_frames(path, window, decoder)
                best[decoder] = min(best[decoder], seconds)
        log(f"windows, {case}: " + ", ".join(f"{decoder} {best[decoder]:.3f} s" for decoder in WINDOW_DECODERS))
        rows.append(
            [
                case,
                f"{sampled:,}",
                f"{num_frames:,}",
                f"{seek_frames:,}",
                f"{best['sequential']:.3f}",
                f"{best['auto']:.3f} ({best['sequential'] / best['auto']:.2f}×)",
                taken["auto"].partition(": ")[0],
            ]
        )
    return Table(
        f"predict --window decoding of one {WINDOW_VIDEO.name} video (keyframe every 250), T = "
        f"{SAMPLING.num_frames} uniform per window at {IMAGE_SIZE} px, one process, best of {ROUNDS}",
        ["windows", "frames sampled", "sequential frames", "seek frames", "sequential s", "auto s", "auto chose"],
        rows,
        notes=["Decode alone (`read_window_frames`, every chunk taken); the machine is shared (other jobs ran)."],
    )


def run_seeking(workspace: Workspace) -> SectionResult:
    """The suite's section: the full sets (or the quick ones) under the run's folder."""
    sets = QUICK_SETS if workspace.sizes is QUICK else FULL_SETS
    result = run_seeking_sets(workspace.folder / "seeking", sets, _log)
    if workspace.sizes is QUICK:
        return result
    long_sets = [video_set for video_set in sets if video_set.seconds >= 120]
    table, targets = run_embed_sets(workspace.folder / "seeking", long_sets, _log)
    return SectionResult(result.title, [*result.tables, table], [*result.targets, *targets])


def _log(message: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeking", description=__doc__)
    parser.add_argument("folder", type=Path, help="where the videos are written (and reused)")
    parser.add_argument("--quick", action="store_true", help="two tiny sets (a smoke test, not figures)")
    parser.add_argument("--without-10-min", action="store_true", help="leave out the 10-minute videos")
    parser.add_argument("--embed", action="store_true", help="also embed the long sets end to end (model included)")
    parser.add_argument("--only-embed", action="store_true", help="only the end-to-end embed table")
    parser.add_argument("--windows-only", action="store_true", help="only predict --window's decoding, 2-min video")
    args = parser.parse_args(argv)
    if args.windows_only:
        print(run_window_decoding(args.folder, _log).to_markdown())
        return 0
    sets = QUICK_SETS if args.quick else FULL_SETS
    if args.without_10_min:
        sets = [video_set for video_set in sets if video_set.seconds < 600]
    result = SectionResult("Seeking", [], []) if args.only_embed else run_seeking_sets(args.folder, sets, _log)
    if args.embed or args.only_embed:
        long_sets = [video_set for video_set in sets if video_set.seconds >= 120] or sets
        table, targets = run_embed_sets(args.folder, long_sets, _log)
        result = SectionResult(result.title, [*result.tables, table], [*result.targets, *targets])
    for table in result.tables:
        print(table.to_markdown())
    for target in result.targets:
        print(f"- {target.goal}: {target.measured} ({'met' if target.met else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
