"""Reading the text files users hand us (video lists, split files, class texts, pipeline files) the one way.

UTF-8 with or without the byte-order mark spreadsheet programs write. A file in another encoding, or one that
holds a NUL character, is refused with the file, the line and the fix: a NUL cannot be stored in the cache's
HDF5 strings, and a NUL after every letter is what a UTF-16 export looks like when read as UTF-8.

A CSV is parsed strictly: a quote left open would otherwise swallow every row after it into one field, and those
videos would silently be missing from the cache. So an unclosed quote, text after a closing quote, and a field
holding a line break are refused, naming the line the row starts on.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from featcache.errors import InputError

_QUOTING_HINT = 'quote a field that holds a comma or a quote as "...", doubling its quotes'


def read_user_text(path: Path, described_as: str | None = None) -> str:
    """The text of a file the user wrote, for `csv` (pass it to `io.StringIO(text, newline="")`) or line reading.

    described_as: how the error names the file (default: its path), e.g. "--split-file / split_file PATH".
    Raises InputError naming the line for bytes that are not UTF-8 and for a NUL character.
    """
    name = described_as or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"{name}: cannot be read ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{name}, line {_line_of(data[: err.start].decode('utf-8', 'replace'))}: byte 0x{data[err.start]:02X} "
            "is not UTF-8 (the file looks like Latin-1 or another legacy encoding); save it as UTF-8, e.g. "
            "`iconv -f latin1 -t utf-8`"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise InputError(
            f"{name}, line {_line_of(text[:nul])}: a NUL character (0x00), which text cannot hold here "
            "(a UTF-16 export has one in every letter); save it as UTF-8 text, e.g. `iconv -f utf-16 -t utf-8`"
        )
    return text


def read_user_csv(path: Path, described_as: str | None = None) -> list[tuple[int, list[str]]]:
    """The rows of a user's CSV (read by `read_user_text`), each with the line it starts on; blank lines left out.

    Raises InputError naming the line for a quote left open, text after a closing quote, or a line break in a field.
    """
    name = described_as or str(path)
    reader = csv.reader(io.StringIO(read_user_text(path, described_as), newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    row_start = 1
    try:
        for fields in reader:
            if any("\n" in field or "\r" in field for field in fields):
                raise InputError(
                    f"{name}, line {row_start}: a field holds a line break (a quote left open?); {_QUOTING_HINT}"
                )
            if fields:
                rows.append((row_start, fields))
            row_start = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"{name}, line {row_start}: {_csv_problem(err)}; {_QUOTING_HINT}") from None
    return rows


def _csv_problem(err: csv.Error) -> str:
    """The csv module's complaint in the user's words. A quote left open reads to the end of the file, or, in a
    long list, until its one field passes the module's field size limit (131072 characters)."""
    message = str(err)
    if "unexpected end of data" in message:
        return "a quote is never closed"
    if "field larger than field limit" in message:
        return f"a field longer than {csv.field_size_limit()} characters (a quote left open?)"
    if "expected after" in message:
        return 'text after a closing quote (a field that starts with " must end with it)'
    return message


def _line_of(text_before: str) -> int:
    """The line number at the end of `text_before`, counting line breaks as csv does (\\n, \\r\\n or a lone \\r)."""
    return text_before.count("\n") + text_before.count("\r") - text_before.count("\r\n") + 1
