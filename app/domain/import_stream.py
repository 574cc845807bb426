"""Opening a lead file: detect its format, encoding and delimiter, read the header at once, yield rows lazily.

`open_file` takes the file opened in binary and does everything: a workbook is read with openpyxl; text is
first read through once to check that it decodes (so a wrong encoding is reported before anything is written,
naming the row and the byte), then parsed. `open_stream` parses an already decoded text source (io.StringIO in
tests). Either way rows come one at a time, so a file of any size is read with memory bounded by one batch.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Protocol

from app.domain.import_csv import open_csv, sniff_delimiter
from app.domain.import_encoding import SCAN_CHUNK_BYTES, choose_encoding, first_undecodable, undecodable_message
from app.domain.import_headers import ColumnMapping
from app.domain.import_json import KeyMapper, json_array_rows, json_lines_rows
from app.domain.import_rows import ImportFileError, RawRow, Rejection
from app.domain.import_xlsx import open_xlsx

FORMATS = ("auto", "csv", "json", "xlsx")
READ_CHUNK_CHARS = 65_536

_LINE = re.compile(r".*?(?:\r\n|\r|\n)|.+\Z", re.DOTALL)
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls), and any workbook saved with a password


@dataclass(frozen=True)
class ImportOptions:
    """How to read a file: each option None (or `auto`) to detect it; `mapping` is --map's {field: column}."""

    format: str = "auto"
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RowStream:
    """An opened import: the detected format, the stored columns of a header (None for JSON) and the lazy rows.

    `mappings` is what each column became: a header's, or for JSON every key met so far (it grows while the rows
    are read). `encoding` and `delimiter` are as detected or given (None where they do not apply).
    """

    format: str
    columns: tuple[str, ...] | None
    rows: Iterator[RawRow | Rejection]
    header: list[ColumnMapping] | None = None
    keys: KeyMapper | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @property
    def mappings(self) -> list[ColumnMapping]:
        """What each column (or JSON key met so far) became."""
        if self.header is not None:
            return self.header
        return list(self.keys.seen.values()) if self.keys else []


class TextSource(Protocol):
    """What the parsers read from: an open text file (or io.StringIO in tests)."""

    def read(self, size: int = -1, /) -> str: ...

    def readline(self, size: int = -1, /) -> str: ...


def detect_format(requested: str, filename: str, first_text: str) -> str:
    """`csv`, `json` (an array) or `jsonl`, from --format, the file name and the first non-blank character."""
    if requested not in FORMATS:
        raise ImportFileError(f"unknown format {requested!r}: use one of {', '.join(FORMATS)}")
    name = filename.lower()
    looks_json = first_text[:1] in ("[", "{")
    if requested == "csv" or (requested == "auto" and name.endswith((".csv", ".tsv", ".tab"))):
        return "csv"
    if requested == "json" or name.endswith((".json", ".jsonl", ".ndjson")) or looks_json:
        return "json" if first_text[:1] == "[" else "jsonl"
    return "csv"


def open_file(handle: IO[bytes], filename: str = "", options: ImportOptions | None = None) -> RowStream:
    """Open a lead file given in binary (seekable): a workbook, or text in the encoding detected or given."""
    options = options or ImportOptions()
    head = handle.read(READ_CHUNK_CHARS)
    if options.format == "xlsx" or (options.format == "auto" and _is_workbook(filename, head)):
        if options.encoding or options.delimiter:
            raise ImportFileError("--encoding and --delimiter are for text files; a workbook has neither")
        handle.seek(0)
        mappings, rows = open_xlsx(handle, options.sheet, options.mapping)
        return RowStream("xlsx", tuple(m.field for m in mappings), rows, header=mappings)
    if head.startswith(_OLE) or filename.lower().endswith(".xls"):
        raise ImportFileError("this is an Excel 97-2003 (.xls) or password-protected workbook: save it as .xlsx")
    if options.sheet is not None:
        raise ImportFileError("--sheet is for .xlsx workbooks")
    encoding = choose_encoding(head, options.encoding)
    handle.seek(0)
    found = first_undecodable(iter(lambda: handle.read(SCAN_CHUNK_BYTES), b""), encoding.codec)
    if found is not None:
        unit = "line" if filename.lower().endswith((".json", ".jsonl", ".ndjson")) else "row"
        raise ImportFileError(undecodable_message(found, encoding, unit))
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding=encoding.codec, errors="surrogateescape", newline="")
    stream = open_stream(text, options.format, filename, delimiter=options.delimiter, mapping=options.mapping)
    stream.encoding = encoding.label
    return stream


def _is_workbook(filename: str, head: bytes) -> bool:
    return filename.lower().endswith((".xlsx", ".xlsm")) or head.startswith(_ZIP)


def open_stream(
    source: TextSource,
    requested: str = "auto",
    filename: str = "",
    *,
    delimiter: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> RowStream:
    """Detect the format and read the header now (so header errors come before any write); rows stay lazy.

    Delimited text and JSON Lines are read line by line; a JSON array in fixed-size chunks, so even a file
    written on one line never has to fit in memory.
    """
    head = ""
    while not head.lstrip("\ufeff \t\r\n"):
        chunk = source.read(READ_CHUNK_CHARS)
        if not chunk:
            raise ImportFileError(f"{filename or 'the file'} is empty: expected a header row or JSON")
        head += chunk
    fmt = detect_format(requested, filename, head.lstrip("\ufeff \t\r\n"))
    if delimiter is not None and fmt != "csv":
        raise ImportFileError(f"--delimiter is for delimited text, and this file is {fmt.upper()}")
    if fmt == "json":
        keys = KeyMapper(mapping)
        chunks = chain([head], iter(lambda: source.read(READ_CHUNK_CHARS), ""))
        return RowStream(fmt, None, json_array_rows(chunks, keys), keys=keys)
    # Split only where a file read would (\n, \r, \r\n): a quoted CSV cell may hold other line separators.
    first = _LINE.findall(head + source.readline())
    lines = chain(first, iter(source.readline, ""))
    if fmt == "jsonl":
        keys = KeyMapper(mapping)
        return RowStream(fmt, None, json_lines_rows(lines, keys), keys=keys)
    # The sample is what was read already; its last line may be cut short, unless the file ended there.
    separator = delimiter or sniff_delimiter(first[:-1] or first)
    mappings, rows = open_csv(lines, separator, mapping)
    return RowStream(fmt, tuple(m.field for m in mappings), rows, header=mappings, delimiter=separator)
