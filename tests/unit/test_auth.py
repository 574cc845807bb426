"""The pure parts of who may do what: role order, cookie signatures, CSRF tokens, login limits, redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from app.store.api_tokens import new_token, token_hash
from app.web import passwords
from app.web.auth import Principal, Role
from app.web.login_limits import ADDRESS_LIMIT, EMAIL_LIMIT, Limit, retry_after
from app.web.login_routes import safe_next
from app.web.sessions import csrf_for, csrf_matches, purpose_key, sign, unsign

NOW = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
KEY = purpose_key("k" * 40, "session cookie")


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.VIEWER, Role.ADMIN, False),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.OPERATOR, Role.OPERATOR, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.VIEWER, True),
        (Role.ADMIN, Role.OPERATOR, True),
        (Role.ADMIN, Role.ADMIN, True),
    ],
)
def test_each_role_may_do_what_the_roles_below_it_may(held: Role, needed: Role, allowed: bool) -> None:
    assert Principal(kind="token", id="t1", name="ci", role=held).may(needed) is allowed


def test_roles_parse_in_any_case_and_an_unknown_one_names_the_choices() -> None:
    assert Role.parse(" Operator ") is Role.OPERATOR
    assert [role.rank for role in Role] == [0, 1, 2]
    with pytest.raises(ValueError, match="choose one of viewer, operator, admin"):
        Role.parse("root")


def test_a_signed_value_comes_back_and_any_change_is_refused() -> None:
    signed = sign("session-id-123", KEY)
    assert unsign(signed, KEY) == "session-id-123"
    value, _, signature = signed.rpartition(".")
    assert unsign(f"session-id-124.{signature}", KEY) is None
    tampered = signature[:-1] + ("B" if signature.endswith("A") else "A")
    assert unsign(f"{value}.{tampered}", KEY) is None
    assert unsign(signed, purpose_key("k" * 40, "csrf")) is None, "another purpose's key"
    assert unsign(signed, purpose_key("j" * 40, "session cookie")) is None, "another secret"
    assert unsign("no-signature", KEY) is None and unsign(".abc", KEY) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    key = purpose_key("k" * 40, "csrf")
    mine, theirs = csrf_for("session-a", key), csrf_for("session-b", key)
    assert mine != theirs and mine == csrf_for("session-a", key)
    assert csrf_matches(mine, mine)
    assert not csrf_matches(theirs, mine)
    assert not csrf_matches(None, mine) and not csrf_matches("", mine)
    assert csrf_for("login:nonce", key) != csrf_for("nonce", key)


def _fails(*minutes_ago: float) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes_ago]


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([], None),
        (_fails(1, 2, 3, 4), None),  # four of five: one more try
        (_fails(1, 2, 3, 4, 5), 10 * 60),  # the oldest of the five leaves the window in 10 minutes
        (_fails(5, 4, 3, 2, 1), 10 * 60),  # order does not matter
        (_fails(1, 2, 3, 4, 14.5), 30),
        (_fails(1, 2, 3, 4, 15), None),  # exactly 15 minutes ago no longer counts
        (_fails(1, 2, 3, 4, 20, 30), None),  # old failures do not count
        (_fails(0, 0, 0, 0, 0, 0, 0), 15 * 60),  # the five most recent decide
        (_fails(1, 2, 3, 4, 5, 6), 10 * 60),
        ([NOW + timedelta(minutes=1), *_fails(1, 2, 3, 4)], None),  # a clock ahead of ours is ignored
    ],
)
def test_retry_after_counts_the_failures_inside_the_window(failures: list[datetime], expected: int | None) -> None:
    assert retry_after(failures, EMAIL_LIMIT, NOW) == expected


def test_the_address_limit_allows_twenty_and_a_wait_is_at_least_a_second() -> None:
    assert retry_after(_fails(*[i / 10 for i in range(19)]), ADDRESS_LIMIT, NOW) is None
    assert retry_after(_fails(*[i / 10 for i in range(20)]), ADDRESS_LIMIT, NOW) == 15 * 60 - 114
    tight = Limit("email", 1, timedelta(seconds=1))
    assert retry_after([NOW - timedelta(milliseconds=999)], tight, NOW) == 1
    assert EMAIL_LIMIT.key("ann@example.com") == "email:ann@example.com"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/dashboard/campaigns/65a?tab=leads", "/dashboard/campaigns/65a?tab=leads"),
        ("/", "/"),
        (None, "/dashboard"),
        ("", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("\\\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("dashboard", "/dashboard"),
        ("/a\r\nSet-Cookie: x=1", "/dashboard"),
        ("/a\tb", "/dashboard"),
    ],
)
def test_next_is_a_path_on_this_site_or_the_dashboard(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    first, second = new_token(), new_token()
    assert first != second and first.startswith("obt_") and len(first) == 4 + 43
    assert token_hash(first) == token_hash(first) != token_hash(second)
    assert first not in token_hash(first)


def test_passwords_are_checked_for_length_and_verified_against_argon2_hashes() -> None:
    with pytest.raises(passwords.WeakPassword, match="at least 12 characters"):
        passwords.check_new("short")
    with pytest.raises(passwords.WeakPassword, match="only spaces"):
        passwords.check_new(" " * 12)
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterx")
    assert not passwords.verify(None, "correct horse battery"), "an unknown user never signs in"
    assert not passwords.verify("not a hash", "correct horse battery")
    assert not passwords.needs_rehash(stored)
    weaker = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse battery")
    assert passwords.needs_rehash(weaker) and passwords.verify(weaker, "correct horse battery")
