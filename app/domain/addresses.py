"""Email addresses as Outbound accepts them: valid syntax, no line breaks; a non-ASCII local part is allowed.

An address such as `zoë@müller.example` is sent with SMTPUTF8 (RFC 6531) where the account's server offers
it; the transport fails that one recipient where it does not.
"""

from __future__ import annotations

import functools
import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Most addresses are plain ASCII: a dot-atom local part and a host name of letters, digits and inner hyphens
# ending in a letter. For those email_validator's answer is the address with its domain lower-cased, and
# `_plain_ascii` gives it without the library's full walk (tests/unit/test_addresses.py compares the two over
# generated addresses); anything else (Unicode, quoted local parts, Punycode or "--" labels, special-use
# names, lengths near the limits) goes to email_validator.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z])?")
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)


class InvalidAddress(ValueError):
    """An email address that cannot be mailed."""


def has_line_break(value: str) -> bool:
    """True when `value` contains CR, LF or any other line break (header injection)."""
    return bool(_LINE_BREAKS.search(value))


def normalize_email(raw: object) -> str:
    """Validate an address's syntax and return it normalised; raise InvalidAddress.

    The domain is lower-cased and in its Unicode form (`xn--mller-kva.example` reads `müller.example`), a
    non-ASCII local part in Unicode normal form C; an ASCII local part keeps its case.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidAddress("address is empty")
    return _normalized(raw.strip())


# Documents are parsed again on every read (the arbiter reads the same accounts for every reservation), and
# validation is pure: remember recent answers instead of validating the same address again.
@functools.lru_cache(maxsize=65536)
def _normalized(text: str) -> str:
    if has_line_break(text):
        raise InvalidAddress(f"address {text!r} contains a line break")
    plain = _plain_ascii(text)
    if plain is not None:
        return plain
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{text!r} is not a valid address: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


def clear_address_cache() -> None:
    """Forget the remembered answers (benchmarks measure a first sight; tests that change validation rules)."""
    _normalized.cache_clear()


def _plain_ascii(text: str) -> str | None:
    """`text` normalised when it is a plain ASCII address email_validator accepts unchanged but for the domain's
    case; None when it is not that simple (the library decides)."""
    local, at, domain = text.rpartition("@")
    if not at or len(text) > 200 or len(local) > 60 or not text.isascii() or "--" in domain:
        return None
    domain = domain.lower()
    if not _PLAIN_LOCAL.fullmatch(local) or not _PLAIN_DOMAIN.fullmatch(domain):
        return None
    if any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE):
        return None
    return f"{local}@{domain}"
