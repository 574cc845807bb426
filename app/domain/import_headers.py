"""Lead import headers: which column of a file becomes which recipient field.

A header is matched to one of the fields Outbound knows (`email`, `company_name`, `website`, ...) by its
spelling with case, spaces, underscores and hyphens ignored, so `Email Address`, `E-mail` and `email_address`
are one name. `--map FIELD=COLUMN` names a column the aliases do not know. Every other column is kept as a
custom field under its normalised name (`Lead Source` -> `lead_source`), which templates can use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.domain.import_columns import EMAIL_COLUMN, RESERVED_FIELDS, normalize_column
from app.domain.import_rows import ImportFileError

# Per field, the spellings recognised, best first: when two columns of one file match a field, the one with the
# earlier spelling takes it and the other stays a custom field (`--map` chooses otherwise).
ALIASES: Mapping[str, tuple[str, ...]] = {
    "email": (
        "email",
        "email address",
        "mail",
        "work email",
        "business email",
        "work email address",
        "primary email",
        "contact email",
    ),
    "first_name": ("first name", "firstname", "given name", "forename"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "name": ("name", "full name", "contact name"),
    "company_name": (
        "company name",
        "company",
        "organization",
        "organisation",
        "organization name",
        "organisation name",
        "account name",
        "business name",
    ),
    "website": ("website", "web site", "website url", "url", "company website", "domain", "company domain", "homepage"),
    "phone": ("phone", "phone number", "telephone", "mobile", "mobile phone", "work phone"),
    "title": ("title", "job title", "position"),
    "timezone": ("timezone", "time zone"),
}

_IGNORED_IN_KEY = re.compile(r"[\s_.\-\ufeff]+")


def header_key(name: str) -> str:
    """A header's spelling for matching: case, spaces, underscores, hyphens and dots ignored (`E-mail` = `email`).

    Dots too, so that a flattened JSON key matches as its parts read: `company.name` is `Company Name`.
    """
    return _IGNORED_IN_KEY.sub("", name).casefold()


def _known_spellings() -> dict[str, tuple[str, int]]:
    known: dict[str, tuple[str, int]] = {}  # header key -> (field, rank of that spelling)
    for column, aliases in ALIASES.items():
        for rank, alias in enumerate(aliases):
            known.setdefault(header_key(alias), (column, rank))
    return known


_KNOWN = _known_spellings()


def known_field(name: str) -> str | None:
    """The field a header spelling stands for (`Company` -> `company_name`), or None for a custom column."""
    found = _KNOWN.get(header_key(name))
    return found[0] if found else None


@dataclass(frozen=True)
class ColumnMapping:
    """Where one column of the file goes: `field` ('' when dropped) and how that was decided.

    `how` is `field` (already the field's name), `alias` (a known spelling), `--map`, `custom` (kept under its
    normalised name), `reserved` (dropped: the dispatcher sets it), `replaced` (dropped: `--map` stores another
    column under its name) or `unnamed` (dropped: no usable name).
    """

    source: str
    field: str
    how: str


def parse_map_options(values: Iterable[str]) -> dict[str, str]:
    """`--map FIELD=COLUMN` options as {field: column}; raise ImportFileError for a malformed or repeated one."""
    mapping: dict[str, str] = {}
    for value in values:
        target, sep, source = value.partition("=")
        column = known_field(target) or normalize_column(target)
        if not sep or not column or not source.strip():
            raise ImportFileError(f'--map {value!r}: expected FIELD=COLUMN, e.g. --map email="Work Email"')
        if column in mapping:
            raise ImportFileError(f"--map names {column!r} twice ({mapping[column]!r} and {source.strip()!r})")
        mapping[column] = source.strip()
    return mapping


def map_columns(names: Sequence[str], overrides: Mapping[str, str], *, strict: bool = True) -> list[ColumnMapping]:
    """Decide each column's field: `--map` first, then the aliases (best spelling wins), then custom fields.

    With `strict` (a file's header), a `--map` column the file lacks and two columns stored under one name are
    ImportFileErrors; without it (one JSON object's keys), absent `--map` columns are simply not there.
    """
    fields: list[str | None] = [None] * len(names)
    hows = ["custom"] * len(names)
    keys = [header_key(name) for name in names]
    for column, source in overrides.items():
        wanted = header_key(source)
        index = next((i for i, key in enumerate(keys) if key == wanted and fields[i] is None), None)
        if index is None:
            if strict:
                raise ImportFileError(f"--map {column}={source!r}: the file has no column {source!r}{_found(names)}")
            continue
        fields[index], hows[index] = column, "--map"
    _take_known_fields(names, keys, fields, hows)
    mapped = set(overrides)
    mappings = [_mapping(name, fields[i], hows[i], mapped) for i, name in enumerate(names)]
    if strict:
        check_unique(mappings)
    return mappings


def _take_known_fields(names: Sequence[str], keys: list[str], fields: list[str | None], hows: list[str]) -> None:
    best: dict[str, tuple[int, int]] = {}  # field -> (rank of the spelling, column index)
    taken = {f for f in fields if f}
    for index, key in enumerate(keys):
        known = _KNOWN.get(key)
        if fields[index] is None and known and known[0] not in taken:
            column, rank = known
            if column not in best or rank < best[column][0]:
                best[column] = (rank, index)
    for column, (_rank, index) in best.items():
        fields[index] = column
        hows[index] = "field" if normalize_column(names[index]) == column else "alias"


def _mapping(name: str, chosen: str | None, how: str, mapped: set[str]) -> ColumnMapping:
    column = chosen if chosen is not None else normalize_column(name)
    if not column:
        return ColumnMapping(name, "", "unnamed")
    if chosen is None and column in mapped:
        return ColumnMapping(name, "", "replaced")
    if column in RESERVED_FIELDS:
        return ColumnMapping(name, "", "reserved")
    return ColumnMapping(name, column, how)


def check_unique(mappings: Sequence[ColumnMapping]) -> None:
    """Raise ImportFileError when two columns would be stored under one field."""
    seen: dict[str, int] = {}
    for position, mapping in enumerate(mappings, start=1):
        if mapping.field and mapping.field in seen:
            raise ImportFileError(
                f"columns {seen[mapping.field]} and {position} are both named {mapping.field!r}: rename one"
                " (or choose with --map)"
            )
        seen[mapping.field] = position


def require_email(mappings: Sequence[ColumnMapping], delimiter: str | None = None) -> None:
    """Raise ImportFileError naming what was found when no column holds the address."""
    if any(m.field == EMAIL_COLUMN for m in mappings):
        return
    names = [m.source for m in mappings]
    hint = f"; name it with --map email=COLUMN (recognised: {', '.join(ALIASES[EMAIL_COLUMN][:4])}, ...)"
    for other in (";", "\t", "|", ","):
        if other != delimiter and any(other in name for name in names):
            hint = f"; the header looks separated by {other!r}: pass --delimiter {_shown(other)}"
            break
    found = ", ".join(repr(normalize_column(n)) for n in names if normalize_column(n)) or "none"
    raise ImportFileError(f"the required column 'email' is missing (columns found: {found}){hint}")


def resolve_column(name: str, mappings: Sequence[ColumnMapping] | None) -> str | None:
    """The stored field an operator means by `name` (`--group-by Company` -> `company_name`).

    With a header, `name` may be the field or any column's heading, and None means the file has no such column;
    without one (JSON), it is the field its spelling stands for.
    """
    column = normalize_column(name)
    if mappings is None:
        return known_field(name) or column or None
    stored = {m.field for m in mappings if m.field}
    if column in stored:
        return column
    wanted = header_key(name)
    for mapping in mappings:
        if mapping.field and header_key(mapping.source) == wanted:
            return mapping.field
    alias = known_field(name)
    return alias if alias in stored else None


def _shown(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _found(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names if n.strip())
    return f" (columns: {shown})" if shown else ""
