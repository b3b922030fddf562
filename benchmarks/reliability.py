"""Issue 11's reliability figures: what each kind of bad input does to `featcache embed`, and a kill drill.

    python -m benchmarks.reliability --out RELIABILITY.md [--kills 10] [--work-dir DIR]

Every run is a real `featcache embed` process (scratch_cnn, random weights, tiny frames), so a crash shows
as what it is (exit 139), and a hang as a timeout. The kill drill embeds a video set once undisturbed
(the reference), then again with `kill -9` at random moments, resuming each time, and finally to the end;
it counts videos lost, duplicated and changed against the reference.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import load_average
from featcache.cache import read_all_features, read_cache_index
from featcache.video.decode_workers import CRASH_DECODER_ENV

EMBED = [sys.executable, "-m", "featcache.cli", "embed"]
SMALL = ["--extractor", "scratch_cnn", "--weights", "random", "--image-size", "32", "--frames", "4", "--workers", "2"]
RUN_TIMEOUT_SECONDS = 300  # a run this long on these tiny inputs is a hang


def write_video(path: Path, num_frames: int = 12, size: int = 32, seed: int = 0) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size, size))
    rng = np.random.default_rng(seed)
    try:
        for _ in range(num_frames):
            writer.write(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    finally:
        writer.release()
    return path


def run_embed(arguments: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit status, stderr) of one `featcache embed` process; exit status "timeout" as -1000."""
    try:
        done = subprocess.run(
            EMBED + arguments,
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=RUN_TIMEOUT_SECONDS,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        return -1000, "timed out (hang)"
    return done.returncode, done.stderr


def make_bad_video_folder(root: Path) -> dict[str, str]:
    """Good videos and one file per bad kind in root/<Class>/; returns {kind: relative path as stored}."""
    good = write_video(root / "Good" / "good_1.avi")
    write_video(root / "Good" / "good_2.avi", seed=1)
    data = good.read_bytes()
    bad = root / "Bad"
    bad.mkdir()
    kinds = {}

    def add(kind: str, name: str, content: bytes | None = None) -> Path:
        kinds[kind] = f"Bad/{name}"
        path = bad / name
        if content is not None:
            path.write_bytes(content)
        return path

    add("text file named .avi", "text.avi", b"this is not a video\n")
    add("empty file", "empty.avi", b"")
    add("truncated to its header (200 bytes)", "header_only.avi", data[:200])
    add("truncated at half", "half.avi", data[: len(data) // 2])
    add("random bytes", "random.avi", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    flipped = bytearray(data)
    for position in np.random.default_rng(1).integers(0, len(data), 16):
        flipped[position] ^= 0xFF
    add("16 flipped bytes", "bit_flips.avi", bytes(flipped))
    add("decoder crash (failpoint: SIGSEGV in the worker)", "crash.avi", data)
    kinds["file name not UTF-8"] = "Bad/bad\\xff\\xfe.avi"
    Path(os.fsdecode(os.fsencode(bad) + b"/bad\xff\xfe.avi")).write_bytes(data)
    os.mkfifo(add("FIFO named .avi", "fifo.avi"))
    add("symlink to /dev/zero", "zero.avi").symlink_to("/dev/zero")
    loop = add("symlink loop", "loop.avi")
    loop.symlink_to(loop)
    add("broken symlink", "dangling.avi").symlink_to(bad / "nowhere.avi")
    add("folder named .avi (skipped: folders are not videos)", "folder.avi").mkdir()
    add("hidden file .x.avi (skipped by design)", ".hidden.avi", data)
    return kinds


def bad_video_rows(work: Path) -> tuple[list[list[str]], int]:
    root = work / "bad_videos"
    kinds = make_bad_video_folder(root)
    cache_path = work / "bad_videos.h5"
    status, _ = run_embed([str(root), "--out", str(cache_path), *SMALL], env={CRASH_DECODER_ENV: "crash.avi"})
    index = read_cache_index(cache_path)
    failures = dict(index.failures)
    rows = []
    for kind, path in kinds.items():
        if path in index.paths:
            outcome = "embedded"
        elif path in failures:
            outcome = f"listed in failures: {failures[path]}"
        else:
            outcome = "not listed"
        rows.append([kind, f"`{path}`", outcome])
    good_kept = sum(path.startswith("Good/") for path in index.paths)
    rows.append(["(the 2 good videos beside them)", "`Good/*`", f"{good_kept} of 2 embedded"])
    return rows, status


def bad_command_rows(work: Path) -> list[list[str]]:
    root = work / "commands"
    write_video(root / "videos" / "A" / "a.avi")
    latin1 = root / "videos" / "latin1.csv"
    latin1.write_bytes("path,label\nA/a.avi,Caf\u00e9\n".encode("latin-1"))
    nul_label = root / "videos" / "nul_label.csv"
    nul_label.write_bytes(b"path,label\nA/a.avi,\x00\n")
    open_quote = root / "videos" / "open_quote.csv"
    open_quote.write_text('path,label\nA/a.avi,"\nA/b.avi,A\n')
    (root / "outside.avi").write_bytes((root / "videos" / "A" / "a.avi").read_bytes())
    outside = root / "videos" / "outside.csv"
    outside.write_text("path,label\n../outside.avi,A\n")
    absolute = root / "videos" / "absolute.csv"
    absolute.write_text(f"path,label\n{root / 'outside.avi'},A\n")
    missing = root / "videos" / "missing.csv"
    missing.write_text("path,label\nA/none.avi,A\n")
    no_header = root / "videos" / "no_header.csv"
    no_header.write_text("A/a.avi,A\n")
    videos = str(root / "videos")
    cases = [
        ("CSV in Latin-1", [str(latin1)]),
        ("CSV with a NUL character as a label", [str(nul_label)]),
        ("CSV with a quote left open (it would swallow the rows after it)", [str(open_quote)]),
        ("CSV row ../outside.avi", [str(outside)]),
        ("CSV row ../outside.avi with --allow-outside-root", [str(outside), "--allow-outside-root"]),
        ("CSV row with an absolute path", [str(absolute)]),
        ("CSV listing a missing file", [str(missing)]),
        ("CSV without header", [str(no_header)]),
        ("source does not exist", [str(root / "nowhere")]),
        ("--sampling fps --fps nan", [videos, "--sampling", "fps", "--fps", "nan"]),
        ("--fps inf", [videos, "--sampling", "fps", "--fps", "inf"]),
        ("--frames 100000000", [videos, "--frames", "100000000"]),
        ("--frames 100000 --image-size 4096 (memory)", [videos, "--frames", "100000", "--image-size", "4096"]),
        ("--image-size 0", [videos, "--image-size", "0"]),
        ("--batch-size -1", [videos, "--batch-size", "-1"]),
        ("--workers -1", [videos, "--workers", "-1"]),
        ("--frames abc", [videos, "--frames", "abc"]),
    ]
    rows = []
    for number, (kind, arguments) in enumerate(cases):
        source, options = arguments[0], arguments[1:]
        status, stderr = run_embed([source, "--out", str(work / f"command_{number}.h5"), *SMALL, *options])
        lines = [line.strip(" │╭╰─") for line in stderr.splitlines() if line.strip(" │╭╰─")]
        message = next(
            (line for line in lines if "Error" in line or "Invalid value" in line), lines[-1] if lines else ""
        )
        traceback = " (traceback!)" if "Traceback" in stderr else ""
        rows.append([kind, str(status), (message[:160] + traceback).replace("|", "\\|")])
    return rows


def kill_drill(work: Path, num_kills: int, seed: int) -> list[str]:
    root = work / "drill_videos"
    for number in range(120):
        write_video(root / f"C{number % 4}" / f"v_{number:03d}.avi", num_frames=48, size=96, seed=number)
    arguments = [*SMALL[:4], "--image-size", "64", "--frames", "8", "--workers", "2", "--dtype", "float32"]
    reference = work / "drill_reference.h5"
    started = time.perf_counter()
    run_embed([str(root), "--out", str(reference), *arguments])
    reference_seconds = time.perf_counter() - started
    cache_path = work / "drill.h5"
    rng = random.Random(seed)
    kills_landed = 0
    for _ in range(num_kills):
        process = subprocess.Popen(
            EMBED + [str(root), "--out", str(cache_path), *arguments],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.2, reference_seconds))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the embed process and its decode workers, at once
            kills_landed += 1
        process.wait()
    final_status, _ = run_embed([str(root), "--out", str(cache_path), *arguments])
    expected, got = read_cache_index(reference), read_cache_index(cache_path)
    expected_features, got_features = read_all_features(reference), read_all_features(cache_path)
    position = {path: row for row, path in enumerate(got.paths)}
    lost = [path for path in expected.paths if path not in position]
    duplicated = len(got.paths) - len(set(got.paths))
    changed = sum(
        1
        for row, path in enumerate(expected.paths)
        if path in position
        and not np.allclose(expected_features[row], got_features[position[path]], rtol=1e-4, atol=1e-5)
    )
    return [
        f"{len(expected.paths)} videos, reference run {reference_seconds:.1f} s (process start included)",
        f"{num_kills} runs killed with SIGKILL (process group: embed and its decode workers) "
        f"at uniform random moments in [0.2 s, {reference_seconds:.1f} s]; "
        f"{kills_landed} landed before the run finished; then one run to the end (exit {final_status})",
        f"lost: {len(lost)}; duplicated: {duplicated}; "
        f"changed (features not allclose to the reference, rtol 1e-4): {changed}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/featcache-reliability"))
    parser.add_argument(
        "--damage-only", action="store_true", help="only the section on damaged caches and model folders (issue 21)"
    )
    args = parser.parse_args(argv)
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    args.work_dir.mkdir(parents=True)
    if args.damage_only:
        return write_damage_section(args.out, args.work_dir)
    load_before = load_average()
    video_rows, video_status = bad_video_rows(args.work_dir)
    command_rows = bad_command_rows(args.work_dir)
    drill = kill_drill(args.work_dir, args.kills, args.seed)
    load_after = load_average()
    lines = [
        "# Reliability: bad input and kill -9",
        "",
        "What `featcache embed` promises for hostile input, and how it is checked. Produced by",
        (
            f"`python -m benchmarks.reliability --out RELIABILITY.md --kills {args.kills} --seed {args.seed}` "
            "(every row is a real"
        ),
        "`featcache embed` process: scratch_cnn, random weights, tiny frames). The suite checks the same promises in",
        "`tests/test_decode_workers.py`, `tests/test_frames.py`, `tests/test_videos.py`, `tests/test_user_text.py`,",
        "`tests/test_cli_stage_one.py`",
        (
            "and the hypothesis fuzz test `tests/test_fuzz_embed.py` "
            "(`benchmarks/fuzz_nightly.sh` runs it at 2000 examples)."
        ),
        "",
        f"## Bad videos beside good ones (one run; exit status {video_status})",
        "",
        "| kind | stored as | outcome |",
        "|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in video_rows],
        "",
        "## Bad lists and options (one run each; nothing is loaded before these checks)",
        "",
        "| input | exit | message |",
        "|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in command_rows],
        "",
        "## Kill drill",
        "",
        *[f"- {line}" for line in drill],
        "",
        f"Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2-core machine shared with other work).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return write_damage_section(args.out, args.work_dir)


def write_damage_section(out: Path, work: Path) -> int:
    """Run issue 21's rows (benchmarks/reliability_damage.py) and put their section at the end of `out`, replacing
    the one there."""
    from benchmarks.reliability_damage import damage_section

    videos = work / "damage-videos"
    for number in range(8):
        write_video(videos / f"Class{number % 2}" / f"v_Class{number % 2}_g{number:02d}_c01.avi", seed=number)
    load_before = load_average()
    section = damage_section(work / "damage", videos)
    load_after = load_average()
    section += [f"Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2-core machine shared).", ""]
    heading = section[0]
    text = out.read_text() if out.exists() else ""
    kept = text.split("\n" + heading)[0].rstrip("\n") if heading in text else text.rstrip("\n")
    out.write_text(kept + "\n\n" + "\n".join(section))
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
