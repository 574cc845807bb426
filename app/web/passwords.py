"""Dashboard passwords: argon2id hashes (argon2-cffi's defaults), checked in the same time for unknown users.

A hash made with older parameters is replaced on the next successful login (`needs_rehash`), so raising the
parameters in a release upgrades every active user without a reset.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
# argon2 reads the whole input: a cap keeps a megabyte "password" from costing more than a login should.
MAX_LENGTH = 1024


class WeakPassword(ValueError):
    """A password that is refused before it is stored."""


@cache
def hasher() -> PasswordHasher:
    """The one hasher (its parameters decide `needs_rehash`)."""
    return PasswordHasher()


@cache
def _decoy_hash() -> str:
    # Compared against when the email is unknown, so that answer takes as long as a wrong password.
    return hasher().hash("an unknown user's password is never this one")


def check_new(password: str) -> str:
    """The password when it may be stored; WeakPassword saying why otherwise."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters (it has {len(password)})")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise WeakPassword("the password must not be only spaces")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash to store."""
    return hasher().hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash`; None (an unknown user) is checked against a decoy."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return hasher().verify(stored_hash or _decoy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than today's."""
    return hasher().check_needs_rehash(stored_hash)
