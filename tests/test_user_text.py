"""The text files users hand us: video lists, split files and class texts all refuse the same bad bytes alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cache_fixtures import ucf101_like_cache
from conftest import numbered_frames, write_video
from typer.testing import CliRunner

from featcache.cache import read_cache_index
from featcache.cli import app
from featcache.config import TrainConfig
from featcache.errors import InputError
from featcache.text.wording import read_class_texts
from featcache.training.splits import choose_split
from featcache.user_text import read_user_csv, read_user_text
from featcache.video.find import find_videos


def read_split_file(path: Path) -> object:
    cache_path = ucf101_like_cache(path.parent / "split-test.h5", num_classes=2, num_groups=3, clips_per_group=1)
    return choose_split(read_cache_index(cache_path), TrainConfig(split_file=str(path)))


# (reader, file name, its valid text with a ¤ where the bad bytes go)
READERS: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "video list": (find_videos, "list.csv", "path,label\na.avi,Walk\nb.avi,Run¤\n"),
    "split CSV": (read_split_file, "split.csv", "path,subset\nx.avi,train\ny.avi,test¤\n"),
    "UCF101 split list": (read_split_file, "testlist01.txt", "Walk/a.avi 1\nWalk/c.avi 1\nRun/b.avi 2¤\n"),
    "class texts": (read_class_texts, "texts.csv", "class,text\nWalk,walking\nRun,running¤\n"),
}


# How each file is damaged (its ¤ replaced, or a quote opened on line 2), and what the error says.
DAMAGES = {
    "NUL": (lambda text: text.replace("¤", "\0").encode(), r"line 3: a NUL character \(0x00\).*save it as UTF-8"),
    "Latin-1": (lambda text: text.replace("¤", "\u00e9").encode("latin-1"), r"line 3: byte 0xE9 is not UTF-8"),
    "open quote": (lambda text: _open_a_quote_on_line_2(text).encode(), r"line 2: a quote is never closed; quote a"),
}


def _open_a_quote_on_line_2(text: str) -> str:
    """`a.avi,Walk` -> `a.avi,"Walk`: the quote runs on to the end of the file."""
    lines = text.replace("¤", "").split("\n")
    lines[1] = lines[1].replace(",", ',"', 1)
    return "\n".join(lines)


# A UCF101 list is not a CSV: quotes mean nothing in it.
CASES = [
    (reader, damage)
    for reader in READERS
    for damage in DAMAGES
    if (reader, damage) != ("UCF101 split list", "open quote")
]


@pytest.mark.parametrize(("reader", "damage"), CASES)
def test_every_reader_refuses_bad_text_naming_its_line(tmp_path: Path, reader: str, damage: str) -> None:
    read, file_name, text = READERS[reader]
    damaged, message = DAMAGES[damage]
    (tmp_path / "a.avi").write_bytes(b"x")
    (tmp_path / "b.avi").write_bytes(b"x")
    (tmp_path / file_name).write_bytes(damaged(text))
    with pytest.raises(InputError, match=rf"{file_name}, {message}"):
        read(tmp_path / file_name)


def test_a_utf16_export_is_named_as_such(tmp_path: Path) -> None:
    """UTF-16 without a byte-order mark decodes as UTF-8 with a NUL after each letter; the error says what to do."""
    path = tmp_path / "list.csv"
    path.write_bytes("path,label\na.avi,Walk\n".encode("utf-16-le"))
    with pytest.raises(InputError, match=r"line 1: a NUL character .*UTF-16 export.*iconv -f utf-16 -t utf-8"):
        read_user_text(path)


def test_the_byte_order_mark_is_dropped_from_class_texts(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 byte-order mark hid the class texts' header row (it was read as a class)."""
    path = tmp_path / "texts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"class,text\nWalk,walking\n")
    assert read_class_texts(path) == {"Walk": "walking"}


def test_embed_refuses_a_list_with_a_nul_label_before_any_work(tmp_path: Path) -> None:
    """What the fuzz test found: a label "\\0" reached the HDF5 index write and ended in a ValueError."""
    for name in ("a.avi", "b.avi"):
        write_video(tmp_path / name, numbered_frames(6, size=24))
    (tmp_path / "list.csv").write_bytes(b"path,label\na.avi,Walk\nb.avi,\x00\n")
    cache_path = tmp_path / "cache.h5"
    arguments = ["--extractor", "scratch_cnn", "--weights", "random", "--image-size", "16", "--frames", "3"]
    result = CliRunner().invoke(app, ["embed", str(tmp_path / "list.csv"), "--out", str(cache_path), *arguments])
    assert result.exit_code == 2, result.output
    assert result.output.count("Error: ") == 1 and "line 3: a NUL character" in result.output, result.output
    assert not cache_path.exists()


def test_a_quote_left_open_in_a_long_list_is_named_at_the_csv_field_limit(tmp_path: Path) -> None:
    """Past 131072 characters the csv module gives up before the file's end: still the row's line, and why."""
    path = tmp_path / "list.csv"
    path.write_text('path,label\na.avi,"Walk\n' + "".join(f"clip_{row:05d}.avi,Run\n" for row in range(20_000)))
    with pytest.raises(InputError, match=r"line 2: a field longer than 131072 characters \(a quote left open\?\)"):
        read_user_csv(path)


def test_line_numbers_count_a_lone_carriage_return_as_csv_does(tmp_path: Path) -> None:
    path = tmp_path / "old-mac.csv"
    path.write_bytes(b"path,label\ra.avi,Walk\r\nb.avi,\x00\r")
    with pytest.raises(InputError, match=r"old-mac\.csv, line 3: a NUL character"):
        read_user_text(path)


def test_a_split_csv_row_without_its_subset_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text(" path , subset \nWalk/a.avi,train\nWalk/b.avi\n")
    with pytest.raises(InputError, match=r"split\.csv, line 3: every row needs a path and a subset"):
        read_split_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path,label\na.avi,"\nb.avi,Run\n', r"line 2: a quote is never closed"),
        ('path,label\na.avi,"Walk\nb.avi",Run\n', r"line 2: a field holds a line break \(a quote left open\?\)"),
        ('path,label\na.avi,"Walk"ing\n', r"line 2: text after a closing quote"),
    ],
)
def test_a_quote_left_open_cannot_swallow_the_rows_after_it(tmp_path: Path, text: str, message: str) -> None:
    """Read loosely, `a.avi,"` took every later row into its label: those videos went missing from the cache
    without a word (what the fuzz test found with a label `"`)."""
    (tmp_path / "a.avi").write_bytes(b"x")
    (tmp_path / "b.avi").write_bytes(b"x")
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(InputError, match=rf"list\.csv, {message}.*quote a field that holds a comma"):
        find_videos(tmp_path / "list.csv")


def test_quoted_fields_commas_quotes_and_blank_lines_read_as_a_spreadsheet_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    path.write_text('class,text\n\nYoYo,"playing with a ""yo-yo"", a toy"\n\nWalk,walking\n')
    assert read_user_csv(path) == [
        (1, ["class", "text"]),
        (3, ["YoYo", 'playing with a "yo-yo", a toy']),
        (5, ["Walk", "walking"]),
    ]
    assert read_class_texts(path) == {"YoYo": 'playing with a "yo-yo", a toy', "Walk": "walking"}
