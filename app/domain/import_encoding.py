"""Lead import encodings: which one a file is read in, and where a file stops being valid in it.

Decided only where that is unambiguous: a byte-order mark (UTF-8, UTF-16), otherwise UTF-8 as long as every
byte is valid UTF-8. A Windows export (cp1252) or a Latin-1 file is valid in several encodings at once, so the
operator names it with `--encoding`; until then the import stops before writing, naming the row and the byte.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.import_rows import ImportFileError

SCAN_CHUNK_BYTES = 1 << 18

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
# What a byte-order mark allows --encoding to say (any spelling Python knows, compared by codec name).
_BOM_FAMILIES = {"utf-8-sig": {"utf-8", "utf-8-sig"}, "utf-16": {"utf-16", "utf-16-le", "utf-16-be"}}


@dataclass(frozen=True)
class Encoding:
    """The codec a file is read with, and how the report names it (`utf-8 (BOM)`, `cp1252 (--encoding)`)."""

    codec: str
    label: str


@dataclass(frozen=True)
class Undecodable:
    """The first byte a file cannot be read at: its line (1-based), offset in the file and value."""

    line: int
    offset: int
    byte: int


def codec_name(requested: str) -> str:
    """The codec Python knows by `requested` (`latin1` -> `iso8859-1`); raise ImportFileError if none."""
    try:
        name = codecs.lookup(requested.strip()).name
        b"a".decode(name, "ignore")  # a text encoding, not one of the bytes-to-bytes codecs (base64, zlib)
    except LookupError:
        raise ImportFileError(
            f"unknown --encoding {requested!r}: use utf-8, utf-16, cp1252 (Excel on Windows) or latin-1"
        ) from None
    return name


def choose_encoding(head: bytes, requested: str | None = None) -> Encoding:
    """The encoding to read a file with, from its first bytes and --encoding (None or `auto`: detect)."""
    bom = next(((codec, name) for mark, codec, name in _BOMS if head.startswith(mark)), None)
    if requested is None or requested.strip().lower() == "auto":
        if bom:
            return Encoding(bom[0], f"{bom[1].lower()} (BOM)")
        if b"\x00" in head:
            order = "le" if head[1::2].count(0) >= head[0::2].count(0) else "be"
            raise ImportFileError(
                "the file holds NUL bytes, as UTF-16 text without a byte-order mark does: "
                f"pass --encoding utf-16-{order}"
            )
        return Encoding("utf-8", "utf-8")
    codec = codec_name(requested)
    if bom is None:
        return Encoding(codec, f"{codec} (--encoding)")
    if codec not in _BOM_FAMILIES[bom[0]]:
        raise ImportFileError(
            f"the file starts with a {bom[1]} byte-order mark, so it is {bom[1]}, not {requested}: drop --encoding"
        )
    return Encoding(bom[0], f"{bom[1].lower()} (BOM)")


def first_undecodable(chunks: Iterable[bytes], codec: str) -> Undecodable | None:
    """Where `chunks` (a file read in pieces) first fail to decode with `codec`, or None when they never do."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    offset = 0  # bytes given to the decoder so far
    line = 1
    for chunk, final in _with_end(chunks):
        pending, state = decoder.getstate()
        try:
            line += decoder.decode(chunk, final).count("\n")
        except UnicodeDecodeError as exc:
            # The decoder saw its pending bytes followed by the chunk: `exc.start` counts from those.
            decoder.setstate((b"", state))
            valid = exc.object[: exc.start]
            line += decoder.decode(valid).count("\n")
            return Undecodable(line, offset - len(pending) + exc.start, exc.object[exc.start])
        offset += len(chunk)
    return None


def _with_end(chunks: Iterable[bytes]) -> Iterable[tuple[bytes, bool]]:
    for chunk in chunks:
        yield chunk, False
    yield b"", True


def undecodable_message(found: Undecodable, encoding: Encoding, unit: str = "row") -> str:
    """What the operator reads when the file is not valid in `encoding`: where, and the --encoding to try."""
    where = f"{unit} {found.line} has byte 0x{found.byte:02X} (file offset {found.offset:,})"
    if encoding.codec in ("utf-8", "utf-8-sig"):
        return (
            f"{where}, which is not valid UTF-8: the file is in another encoding; an Excel or Windows export is "
            "usually --encoding cp1252 (or latin-1)"
        )
    return (
        f"{where}, which {encoding.codec} cannot decode: pass the file's encoding with --encoding "
        "(latin-1 reads any byte)"
    )
