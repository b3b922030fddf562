"""Issue 21's reliability rows: damaged shards, foreign shards, damaged model folders, a full disk, readers beside
`compact`, two trains into one folder. Every row is a real `featcache` process on a tiny cache (scratch_cnn, random
weights, 32-pixel frames, 4 frames); `benchmarks.reliability --damage-only` runs just these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import h5py

FEATCACHE = [sys.executable, "-m", "featcache.cli"]
SMALL = ["--extractor", "scratch_cnn", "--weights", "random", "--image-size", "32", "--frames", "4", "--workers", "1"]
TRAIN = ["--head", "meanpool", "--epochs", "1", "--units", "8", "--dense", "8"]


def run(arguments: list[str], timeout: int = 300) -> tuple[int, str]:
    """(exit status, the last line of stderr, or of stdout when stderr is empty) of one featcache process."""
    done = subprocess.run(FEATCACHE + arguments, capture_output=True, text=True, errors="replace", timeout=timeout)
    lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    return done.returncode, (errors or lines or [""])[-1]


def flip_a_feature_byte(shard: Path) -> None:
    with h5py.File(shard, "r") as handle:
        dataset = handle["features"]
        start = dataset.id.get_offset() if dataset.chunks is None else dataset.id.get_chunk_info(0).byte_offset
    data = bytearray(shard.read_bytes())
    data[start + 7] ^= 0x40
    shard.write_bytes(bytes(data))


def first_shard(cache: Path) -> Path:
    from featcache.cache import open_cache

    return open_cache(cache).shard_paths[0]


def row(case: str, command: str, outcome: tuple[int, str]) -> list[str]:
    status, message = outcome
    return [case, f"`{command}`", str(status), message[:170].replace("|", "\\|")]


def damage_rows(work: Path, videos: Path) -> list[list[str]]:
    """The rows of RELIABILITY.md's section on damaged caches and model folders (see the module docstring)."""
    rows = []
    cache = work / "cache.h5"
    run(["embed", str(videos), "--out", str(cache), *SMALL])
    pristine = work / "pristine"
    shutil.copytree(cache.parent, pristine, ignore=shutil.ignore_patterns("pristine", "*.lock"))

    def restore() -> None:
        shutil.rmtree(cache.with_name(cache.name + ".shards"))
        shutil.copytree(pristine / (cache.name + ".shards"), cache.with_name(cache.name + ".shards"))
        shutil.copyfile(pristine / cache.name, cache)

    flip_a_feature_byte(first_shard(cache))
    rows.append(
        row(
            "a flipped byte in a shard",
            "featcache export CACHE out.h5",
            run(["export", str(cache), str(work / "out.h5")]),
        )
    )
    rows.append(row("the same, compacted", "featcache compact CACHE", run(["compact", str(cache)])))
    rows.append(
        row(
            "the same, damaged videos dropped",
            "featcache compact --drop-damaged CACHE",
            run(["compact", "--drop-damaged", str(cache)]),
        )
    )
    rows.append(
        row(
            "then re-embedded",
            "featcache embed VIDEOS --out CACHE",
            run(["embed", str(videos), "--out", str(cache), *SMALL]),
        )
    )
    restore()

    other = work / "other" / "cache.h5"
    run(["embed", str(videos), "--out", str(other), *SMALL[:-2], "--seed", "1", "--workers", "1"])
    shutil.copyfile(first_shard(other), first_shard(cache))
    rows.append(
        row(
            "a same-size shard of a --seed 1 cache",
            "featcache export CACHE out.h5",
            run(["export", str(cache), str(work / "out2.h5")]),
        )
    )
    restore()

    model = work / "model"
    run(["train", str(cache), "--out", str(model), *TRAIN])
    for case, change in (
        ("class_names reordered in featcache.json", lambda saved: saved.update(class_names=saved["class_names"][::-1])),
        ("a class renamed in featcache.json", lambda saved: saved["class_names"].__setitem__(0, "Renamed")),
    ):
        damaged = work / f"model-{uuid.uuid4().hex[:4]}"
        shutil.copytree(model, damaged)
        saved = json.loads((damaged / "featcache.json").read_text())
        change(saved)
        (damaged / "featcache.json").write_text(json.dumps(saved))
        rows.append(row(case, "featcache evaluate MODEL CACHE", run(["evaluate", str(damaged), str(cache)])))

    mount_point = work / "full"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount_point)]).returncode == 0:
        try:
            outcome = run(["embed", str(videos), "--out", str(mount_point / "cache.h5"), *SMALL])
            leftovers = [path.name for path in mount_point.rglob("*.tmp")]
            rows.append(
                row(
                    f"disk full (48 KiB tmpfs; {len(leftovers)} temporary files left)",
                    "featcache embed VIDEOS --out FULL/cache.h5",
                    outcome,
                )
            )
        finally:
            subprocess.run(["umount", str(mount_point)])
    else:
        rows.append(["disk full", "(not run: no permission to mount a tmpfs here)", "", ""])

    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READ_LOOP, str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    compacts = [run(["compact", str(cache)])[0] for _ in range(6)]
    outputs = [reader.communicate(timeout=600) for reader in readers]
    errors = sum(int(out.strip().splitlines()[-1].split()[1]) for out, _ in outputs if out.strip())
    reads = sum(int(out.strip().splitlines()[-1].split()[0]) for out, _ in outputs if out.strip())
    rows.append(
        [
            "2 readers looping (open_cache, read every video) beside 6 compacts",
            "`featcache compact CACHE` x6",
            ",".join(map(str, compacts)),
            f"{reads} full reads, {errors} errors",
        ]
    )

    together = work / "together"
    trains = [
        subprocess.Popen(
            FEATCACHE + ["train", str(cache), "--out", str(together), *TRAIN],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(train.wait(timeout=600), train.communicate()[1]) for train in trains]
    refusals = [line for _, err in results for line in err.splitlines() if line.startswith("Error:")]
    rows.append(
        [
            "two `train --out SAME` at once",
            "`featcache train CACHE --out MODEL` x2",
            ",".join(str(status) for status, _ in results),
            (refusals[0] if refusals else "no refusal").replace(str(work), "WORK")[:170],
        ]
    )
    return [[cell.replace(str(work), "WORK") for cell in table_row] for table_row in rows]


# A reader process: loops for a while over open_cache + reading every video; prints "reads errors".
READ_LOOP = """
import sys, time
from featcache.cache import open_cache
from featcache.errors import FeatcacheError
reads = errors = 0
deadline = time.time() + 20
while time.time() < deadline:
    try:
        cache = open_cache(sys.argv[1])
        with cache.reader() as reader:
            for row in range(cache.index.num_videos):
                reader.read_sequence(row)
        reads += 1
    except FeatcacheError as err:
        errors += 1
        print(err, file=sys.stderr)
print(reads, errors)
"""


def damage_section(work: Path, videos: Path) -> list[str]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return [
        "## Damaged caches and model folders, a full disk, readers beside compact, concurrent trains",
        "",
        "Produced by `python -m benchmarks.reliability --out RELIABILITY.md --damage-only` (issue 21; every row a real",
        "`featcache` process on a tiny cache). The suite checks the same in `tests/test_cache_integrity.py`,",
        "`tests/test_model_integrity.py` and `tests/test_disk_full.py` (fuzz tests included).",
        "",
        "| case | command | exit | message / outcome |",
        "|---|---|---|---|",
        *[f"| {' | '.join(table_row)} |" for table_row in damage_rows(work, videos)],
        "",
    ]
