"""Suppression list entries as an operator writes them: an address or an `@domain`, one a line or in a CSV. Pure.

A value is stored exactly as the send-time check compares it (`gates.suppression_keys` of a recipient's
address as `normalize_email` reads it): an address in the form an import stores (lower-cased, the domain in
its Unicode form, so `Ann@XN--MLLER-KVA.example` and `ann@müller.example` are one entry), a domain alone as
the part after the `@` of such an address. A domain entry blocks that domain exactly, not its subdomains.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from app.domain.addresses import InvalidAddress, has_line_break, normalize_email

# Header names a CSV's address column may have, compared lower-cased with spaces, `_` and `-` as one space.
EMAIL_HEADERS = frozenset({"email", "email address", "e mail", "e mail address"})
CSV_DELIMITERS = (",", ";")
MAX_REASON_CHARS = 200

_SEPARATORS = re.compile(r"[\s_-]+")
_TRAILING_COMMENT = re.compile(r"\s+#.*\Z", re.DOTALL)


class InvalidEntry(ValueError):
    """A value that is neither an address nor an `@domain`; the message names the value and what to write."""


class SuppressionFileError(ValueError):
    """A suppression file that cannot be read as a list or a CSV (its encoding, a CSV without an email column)."""


def suppression_value(raw: str) -> str:
    """The stored `suppressions.value` of `raw`: `Ann@Example.COM` -> `ann@example.com`, `@Example.COM` ->
    `example.com`; raise InvalidEntry."""
    text = raw.strip()
    if not text:
        raise InvalidEntry("the value is empty: give an address (ann@example.com) or a domain (@example.com)")
    if has_line_break(text):
        raise InvalidEntry(f"{text!r} contains a line break")
    if text.startswith("@"):
        return _domain_value(text)
    if "@" not in text:
        raise InvalidEntry(f"{text!r} is not an address: write @{text} to suppress the whole domain")
    try:
        return normalize_email(text).lower()
    except InvalidAddress as exc:
        raise InvalidEntry(str(exc)) from None


def _domain_value(text: str) -> str:
    domain = text[1:]
    if not domain or "@" in domain:
        raise InvalidEntry(f"{text!r} is not a domain: write it as @example.com")
    try:
        # The domain as it reads in a normalised address, so it equals the part after a recipient's `@`.
        return normalize_email(f"postmaster@{domain}").rpartition("@")[2].lower()
    except InvalidAddress as exc:
        reason = str(exc).partition(": ")[2] or str(exc)
        raise InvalidEntry(f"{text!r} is not a valid domain: {reason}") from None


def display_value(value: str) -> str:
    """A stored value as the operator writes it: an address as it is, a domain as `@domain`."""
    return value if "@" in value else f"@{value}"


def check_reason(raw: str) -> str:
    """The reason recorded with an entry: one line of text, at most MAX_REASON_CHARS; raise InvalidEntry."""
    reason = raw.strip()
    if not reason:
        raise InvalidEntry("--reason is empty: say why, e.g. --reason complaint")
    if has_line_break(reason) or len(reason) > MAX_REASON_CHARS:
        raise InvalidEntry(f"--reason must be one line of at most {MAX_REASON_CHARS} characters")
    return reason


@dataclass(frozen=True)
class BadLine:
    """A line of a suppression file that holds no valid value: its number, the text and why."""

    line: int
    text: str
    reason: str


@dataclass
class ParsedFile:
    """A suppression file read whole: its values in file order (each once) and its bad lines."""

    format: str  # "list" or "csv"
    values: list[str] = field(default_factory=list)
    duplicates: int = 0
    bad: list[BadLine] = field(default_factory=list)


def decode_file(data: bytes) -> str:
    """A suppression file's text: UTF-8 (with or without a BOM), else Windows-1252; raise SuppressionFileError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise SuppressionFileError(
            f"the file is neither UTF-8 nor Windows-1252 text (byte {exc.start}): save it as UTF-8"
        ) from None


def parse_file(text: str) -> ParsedFile:
    """Read a suppression file: a CSV when its first line is a header with an email column, else one address
    or @domain a line, `#` comments and blank lines ignored; raise SuppressionFileError."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), 0)
    column = _csv_layout(lines[start] if lines else "")
    if column is None:
        return _collect("list", _list_values(lines))
    delimiter, index = column
    return _collect("csv", _csv_values(lines, start, delimiter, index))


def _header_name(cell: str) -> str:
    return _SEPARATORS.sub(" ", cell.strip().lstrip("\ufeff").strip().lower())


def _csv_layout(first: str) -> tuple[str, int] | None:
    """(delimiter, email column index) when `first` is a CSV header; None for a plain list."""
    for delimiter in CSV_DELIMITERS:
        cells = next(csv.reader([first], delimiter=delimiter))
        names = [_header_name(cell) for cell in cells]
        for index, name in enumerate(names):
            if name in EMAIL_HEADERS:
                return delimiter, index
    if any(delimiter in first for delimiter in CSV_DELIMITERS) and "@" not in first:
        raise SuppressionFileError(
            f"the first line looks like a CSV header without an email column ({first.strip()!r}): "
            "name the address column 'email' or 'Email Address'"
        )
    return None


def _list_values(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        text = _TRAILING_COMMENT.sub("", line).strip()
        if text and not text.startswith("#"):
            yield number, text


def _csv_values(lines: list[str], start: int, delimiter: str, index: int) -> Iterator[tuple[int, str]]:
    reader = csv.reader(lines[start:], delimiter=delimiter)
    next(reader, None)  # the header
    for cells in reader:
        if index < len(cells) and cells[index].strip():
            # line_num counts the lines read from the header on: the last line of this (perhaps quoted) record.
            yield start + reader.line_num, cells[index]


def _collect(fmt: str, items: Iterable[tuple[int, str]]) -> ParsedFile:
    parsed = ParsedFile(fmt)
    seen: set[str] = set()
    for number, text in items:
        try:
            value = suppression_value(text)
        except InvalidEntry as exc:
            parsed.bad.append(BadLine(number, text.strip(), str(exc)))
            continue
        if value in seen:
            parsed.duplicates += 1
            continue
        seen.add(value)
        parsed.values.append(value)
    return parsed
