"""Finding videos: UCF101 folder layout, CSV lists, group ids, and each bad source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from featcache.errors import FeatcacheError
from featcache.video.find import VideoEntry, find_videos, parse_ucf101_group, storable_relative_path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")
    return path


@pytest.mark.parametrize(
    ("file_name", "group"),
    [
        ("v_PlayingCello_g03_c02.avi", "3"),
        ("v_ApplyEyeMakeup_g25_c07.avi", "25"),
        ("v_Jumping_Jack_g10_c01.mp4", "10"),
        ("clip_0001.avi", ""),
        ("v_PlayingCello_g03.avi", ""),
    ],
)
def test_parse_ucf101_group(file_name, group):
    assert parse_ucf101_group(file_name) == group


def test_find_videos_in_ucf101_folder(tiny_dataset):
    root, entries = find_videos(tiny_dataset)
    assert root == tiny_dataset.resolve()
    assert len(entries) == 6
    assert entries[0] == VideoEntry(
        path=root / "Alpha" / "v_Alpha_g01_c01.avi",
        relative_path="Alpha/v_Alpha_g01_c01.avi",
        label="Alpha",
        group="1",
    )
    assert [entry.relative_path for entry in entries] == sorted(entry.relative_path for entry in entries)
    assert {entry.label for entry in entries} == {"Alpha", "Beta"}
    assert [entry.group for entry in entries] == ["1", "2", "3"] * 2


def test_find_videos_ignores_other_files_and_hidden_ones(tmp_path):
    root = tmp_path / "videos"
    touch(root / "Walk" / "a.AVI")
    touch(root / "Walk" / "b.webm")
    touch(root / "Walk" / "notes.txt")
    touch(root / "Walk" / ".hidden.avi")
    touch(root / ".cache" / "c.avi")
    touch(root / "README.md")
    (root / "Walk" / "folder.avi").mkdir()
    _, entries = find_videos(root)
    assert [entry.relative_path for entry in entries] == ["Walk/a.AVI", "Walk/b.webm"]
    assert all(entry.group == "" for entry in entries)


def test_find_videos_missing_source(tmp_path):
    with pytest.raises(FeatcacheError, match="does not exist"):
        find_videos(tmp_path / "nowhere")


def test_find_videos_source_neither_folder_nor_csv(tmp_path):
    with pytest.raises(FeatcacheError, match="neither a folder nor a .csv"):
        find_videos(touch(tmp_path / "list.txt"))


def test_find_videos_empty_folder(tmp_path):
    with pytest.raises(FeatcacheError, match="is empty"):
        find_videos(tmp_path)


def test_find_videos_no_class_folders(tmp_path):
    touch(tmp_path / "loose.avi")
    with pytest.raises(FeatcacheError, match="no class folders"):
        find_videos(tmp_path)


def test_find_videos_class_folders_without_videos(tmp_path):
    touch(tmp_path / "Walk" / "notes.txt")
    (tmp_path / "Run").mkdir()
    with pytest.raises(FeatcacheError, match="no videos"):
        find_videos(tmp_path)


def test_find_videos_in_csv(tmp_path):
    touch(tmp_path / "clips" / "v_Walk_g02_c01.avi")
    touch(tmp_path / "clips" / "b.mp4")
    touch(tmp_path / "clips" / "c.mp4")
    outside = touch(tmp_path.parent / f"{tmp_path.name}_elsewhere" / "d.mkv")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(
        "path,label,group\n"
        "./clips/v_Walk_g02_c01.avi,Walk,\n"
        "clips/b.mp4,Run,7\n"
        "clips/x/../c.mp4,Run,\n"
        f"{outside},Walk,1\n"
    )
    root, entries = find_videos(csv_path, allow_outside_root=True)
    assert root == tmp_path.resolve()
    by_path = {entry.relative_path: entry for entry in entries}
    assert sorted(by_path) == sorted(["clips/v_Walk_g02_c01.avi", "clips/b.mp4", "clips/c.mp4", outside.as_posix()])
    assert by_path["clips/v_Walk_g02_c01.avi"].group == "2"  # empty cell: parsed from the UCF101 name
    assert by_path["clips/b.mp4"] == VideoEntry(root / "clips" / "b.mp4", "clips/b.mp4", "Run", "7")
    assert by_path["clips/c.mp4"].group == ""
    assert by_path[outside.as_posix()].path == outside


def test_csv_group_column_wins_over_the_name(tmp_path):
    touch(tmp_path / "v_Walk_g02_c01.avi")
    (tmp_path / "list.csv").write_text("path,label,group\nv_Walk_g02_c01.avi,Walk,subject9\n")
    _, entries = find_videos(tmp_path / "list.csv")
    assert entries[0].group == "subject9"


def test_csv_without_group_column_parses_names(tmp_path):
    touch(tmp_path / "v_Walk_g04_c01.avi")
    (tmp_path / "list.csv").write_text("\ufefflabel,path\nWalk,v_Walk_g04_c01.avi\n")
    _, entries = find_videos(tmp_path / "list.csv")
    assert entries == [VideoEntry(tmp_path.resolve() / "v_Walk_g04_c01.avi", "v_Walk_g04_c01.avi", "Walk", "4")]


def test_csv_missing_columns(tmp_path):
    (tmp_path / "list.csv").write_text("file,class\na.avi,Walk\n")
    with pytest.raises(FeatcacheError, match="missing column.*path, label"):
        find_videos(tmp_path / "list.csv")


def test_csv_listing_missing_files(tmp_path):
    touch(tmp_path / "a.avi")
    (tmp_path / "list.csv").write_text("path,label\na.avi,Walk\nb.avi,Walk\n")
    with pytest.raises(FeatcacheError, match="1 file.* that do not exist: b.avi"):
        find_videos(tmp_path / "list.csv")


def test_csv_row_without_label(tmp_path):
    touch(tmp_path / "a.avi")
    (tmp_path / "list.csv").write_text("path,label\na.avi,\n")
    with pytest.raises(FeatcacheError, match="line 2: every row needs a path and a label"):
        find_videos(tmp_path / "list.csv")


def test_csv_listing_a_file_twice(tmp_path):
    touch(tmp_path / "a.avi")
    (tmp_path / "list.csv").write_text("path,label\na.avi,Walk\n./a.avi,Run\n")
    with pytest.raises(FeatcacheError, match="more than once"):
        find_videos(tmp_path / "list.csv")


def test_csv_without_rows(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\n")
    with pytest.raises(FeatcacheError, match="lists no videos"):
        find_videos(tmp_path / "list.csv")


@pytest.mark.parametrize("byte_order_mark", [b"", b"\xef\xbb\xbf"])
def test_csv_in_utf8_with_or_without_byte_order_mark(tmp_path, byte_order_mark):
    touch(tmp_path / "a.avi")
    (tmp_path / "list.csv").write_bytes(byte_order_mark + "path,label\na.avi,Caf\u00e9\n".encode("utf-8"))
    _, entries = find_videos(tmp_path / "list.csv")
    assert [(entry.relative_path, entry.label) for entry in entries] == [("a.avi", "Caf\u00e9")]


@pytest.fixture
def csv_pointing_outside(tmp_path: Path) -> Path:
    """A CSV in list/ naming ../outside.avi next to its own inside.avi."""
    touch(tmp_path / "list" / "inside.avi")
    touch(tmp_path / "outside.avi")
    csv_path = tmp_path / "list" / "videos.csv"
    csv_path.write_text("path,label\ninside.avi,A\n../outside.avi,B\n")
    return csv_path


def test_csv_rows_outside_the_csv_folder_are_refused(csv_pointing_outside, tmp_path):
    with pytest.raises(
        FeatcacheError,
        match=(
            r"names 1 file\(s\) by an absolute path or outside its folder "
            r"\(\.\./outside\.avi\).*--allow-outside-root"
        ),
    ):
        find_videos(csv_pointing_outside)
    csv_pointing_outside.write_text(f"path,label\ninside.avi,A\n{tmp_path / 'outside.avi'},B\n")
    with pytest.raises(FeatcacheError, match="absolute path or outside its folder"):
        find_videos(csv_pointing_outside)


def test_csv_rows_outside_the_csv_folder_are_stored_as_written_when_allowed(csv_pointing_outside, tmp_path):
    _, entries = find_videos(csv_pointing_outside, allow_outside_root=True)
    assert [(entry.relative_path, entry.is_outside_root) for entry in entries] == [
        ("../outside.avi", True),
        ("inside.avi", False),
    ]
    assert entries[0].path.resolve() == (tmp_path / "outside.avi").resolve()


def test_special_files_named_like_videos_are_listed_not_skipped(tmp_path):
    """Decoding reports what is wrong with them (tests/test_frames.py); finding must not drop them silently."""
    touch(tmp_path / "A" / "good.avi")
    os.mkfifo(tmp_path / "A" / "fifo.avi")
    (tmp_path / "A" / "zero.avi").symlink_to("/dev/zero")
    (tmp_path / "A" / "loop.avi").symlink_to(tmp_path / "A" / "loop.avi")
    (tmp_path / "A" / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    _, entries = find_videos(tmp_path)
    assert [entry.relative_path for entry in entries] == [
        "A/dangling.mp4",
        "A/fifo.avi",
        "A/good.avi",
        "A/loop.avi",
        "A/zero.avi",
    ]


def test_a_file_name_that_is_not_utf8_is_stored_escaped(tmp_path):
    touch(tmp_path / "B" / "good.avi")
    Path(os.fsdecode(os.fsencode(tmp_path / "B") + b"/bad\xff\xfe.avi")).write_bytes(b"x")
    _, entries = find_videos(tmp_path)
    assert [entry.relative_path for entry in entries] == ["B/bad\\xff\\xfe.avi", "B/good.avi"]
    assert os.fsencode(entries[0].path).endswith(b"B/bad\xff\xfe.avi")
    assert storable_relative_path("B/caf\u00e9.avi") == "B/caf\u00e9.avi"  # valid UTF-8 stays as it is
