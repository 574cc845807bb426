"""Lead import columns and values: header names as document fields, addresses, and the lead key a row joins."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from app.domain.models import normalize_email

EMAIL_COLUMN = "email"
DEFAULT_GROUP_COLUMNS = ("website", "company_name")
# Fields the dispatcher owns on a recipient; an imported column must not pre-set them.
RESERVED_FIELDS = frozenset({"status", "last_contacted_at", "last_step"})

_SPACES = re.compile(r"\s+")
_NOT_NAME = re.compile(r"[\W_]+")


def normalize_column(name: str) -> str:
    """A header as a document field a template can name: lower-case, every run of spaces and punctuation one `_`.

    `First Name`, `first-name` and `First.Name` are all `first_name`; `.` and `$` would be unsafe in a document.
    """
    return _NOT_NAME.sub("_", name.lower()).strip("_")


def normalize_website(raw: str) -> str | None:
    """A website's host without `www.`, lower-case (`https://www.Acme.com/about` -> `acme.com`)."""
    text = raw.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text if "//" in text else f"//{text}")
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host or None


def normalize_group_value(column: str, raw: object) -> str | None:
    """The comparable form of a grouping value: a website's host, otherwise case- and space-insensitive text."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw)
    if column == "website":
        return normalize_website(text)
    value = _SPACES.sub(" ", text).strip().casefold()
    return value or None


def import_email(raw: object) -> str:
    """The address as stored and compared by the import; raise InvalidAddress.

    Lower-cased as a whole: mailbox names are case-insensitive in practice, and a person must never be mailed
    twice because two spreadsheets capitalised their address differently.
    """
    return normalize_email(raw).lower()


def lead_key_for(fields: Mapping[str, Any], email: str, group_by: str | None = None) -> str:
    """`<column>:<normalised value>` of the grouping column, or `email:<address>` when the row has none."""
    columns = (group_by,) if group_by else DEFAULT_GROUP_COLUMNS
    for column in columns:
        value = normalize_group_value(column, fields.get(column))
        if value:
            return f"{column}:{value}"
    return f"{EMAIL_COLUMN}:{email}"
