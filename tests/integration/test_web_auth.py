"""Dashboard sign-in against the real app under uvicorn: sessions, CSRF, the login rate limit, redirects, cookies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.store.audit import AUDIT
from app.store.sessions import SESSIONS
from app.store.users import USERS
from app.web.passwords import hash_password
from app.web.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_for, purpose_key, unsign
from tests.web_server import running_web

Db = SyncDatabase[dict[str, Any]]
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    return Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="s" * 40)


@pytest.fixture
def web(sync_db: Db, settings: Settings) -> Iterator[httpx.Client]:
    with running_web(settings) as client:
        yield client


def add_user(db: Db, email: str, role: str, password: str = PASSWORD) -> str:
    """A user as `outbound user add` stores it; its id."""
    now = datetime.now(UTC)
    user_id = ObjectId()
    doc = {"_id": user_id, "email": email, "role": role, "password_hash": hash_password(password), "created_at": now}
    db[USERS].insert_one(doc)
    return str(user_id)


def form_token(client: httpx.Client, path: str = "/login") -> str:
    """The CSRF token of the form on `path` (for /login, its nonce cookie lands in the client's jar)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def sign_in(
    client: httpx.Client, email: str, password: str = PASSWORD, next_path: str = "/dashboard"
) -> httpx.Response:
    token = form_token(client)
    form = {"email": email, "password": password, "csrf_token": token, "next": next_path}
    return client.post("/login", data=form)


def session_csrf(client: httpx.Client, secret_key: str) -> str:
    """The CSRF token the dashboard's pages carry for this client's session (an HMAC of the session id)."""
    session_id = unsign(client.cookies[SESSION_COOKIE], purpose_key(secret_key, "session cookie"))
    assert session_id is not None
    return csrf_for(session_id, purpose_key(secret_key, "csrf"))


def test_a_correct_password_signs_in_with_a_session_cookie_and_a_303(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "admin")
    response = sign_in(web, "Ann@Example.com", next_path="/dashboard/campaigns?status=active")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard/campaigns?status=active"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags, "plain http on loopback: no Secure flag"
    assert sync_db[SESSIONS].count_documents({}) == 1
    stored = sync_db[SESSIONS].find_one()
    assert stored is not None and stored["hash"] not in cookie, "the cookie's id is stored only hashed"
    assert web.get("/api/v1/tokens").status_code == 200, "an admin's session reads the admin API"

    (entry,) = sync_db[AUDIT].find({"action": "login"})
    assert (entry["outcome"], entry["actor"]["name"], entry["client"]["address"]) == (
        "ok",
        "ann@example.com",
        "127.0.0.1",
    )
    assert PASSWORD not in json.dumps(entry, default=str)


def test_the_cookie_is_secure_behind_a_proxy_speaking_https(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    https = {"X-Forwarded-Proto": "https"}
    page = web.get("/login", headers=https)
    nonce_cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith(LOGIN_CSRF_COOKIE))
    assert "secure" in nonce_cookie.lower()
    token = _CSRF.search(page.text)
    assert token
    # httpx keeps Secure cookies for https only: hand the nonce back as the browser would over https.
    nonce = nonce_cookie.split(";")[0].split("=", 1)[1]
    form = {"email": "ann@example.com", "password": PASSWORD, "csrf_token": token.group(1), "next": "/dashboard"}
    response = web.post("/login", data=form, headers={**https, "Cookie": f"{LOGIN_CSRF_COOKIE}={nonce}"})
    assert response.status_code == 303, response.text
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax"} <= flags


def test_unknown_email_and_wrong_password_get_the_same_answer(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    wrong = sign_in(web, "ann@example.com", "not the password at all")
    unknown = sign_in(web, "bob@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text
    assert SESSION_COOKIE not in web.cookies
    outcomes = [(e["target"]["email"], e["outcome"]) for e in sync_db[AUDIT].find({"action": "login"}).sort("_id")]
    assert outcomes == [("ann@example.com", "failed"), ("bob@example.com", "failed")]
    assert "not the password" not in json.dumps(list(sync_db[AUDIT].find()), default=str)


def test_after_five_failures_even_the_right_password_is_refused_with_429(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    for attempt in range(5):
        assert sign_in(web, "ann@example.com", f"wrong password {attempt}").status_code == 401
    limited = sign_in(web, "ann@example.com", PASSWORD)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins" in limited.text
    assert SESSION_COOKIE not in web.cookies
    assert sign_in(web, "ANN@example.com", PASSWORD).status_code == 429, "one email, whatever its case"
    refused = [e["outcome"] for e in sync_db[AUDIT].find({"action": "login"})]
    assert refused == ["failed"] * 5 + ["refused"] * 2
    # The address has 5 of its 20 failures: another user signs in from it.
    add_user(sync_db, "bob@example.com", "viewer")
    assert sign_in(web, "bob@example.com", PASSWORD).status_code == 303


def test_login_form_without_or_with_a_forged_csrf_token_is_refused(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    form_token(web)
    bare = web.post("/login", data={"email": "ann@example.com", "password": PASSWORD})
    assert bare.status_code == 403
    forged = web.post("/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    with httpx.Client(base_url=str(web.base_url)) as other:
        theirs = form_token(other)
    foreign = web.post("/login", data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": theirs})
    assert foreign.status_code == 403, "a token made for another browser's nonce"
    assert sync_db[SESSIONS].count_documents({}) == 0


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/a\r\nX: y", ""]
)
def test_next_never_leads_off_the_site(web: httpx.Client, sync_db: Db, target: str) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    response = sign_in(web, "ann@example.com", next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"


def test_a_cookie_request_that_changes_something_needs_its_sessions_csrf_token(
    web: httpx.Client, sync_db: Db, settings: Settings
) -> None:
    add_user(sync_db, "ann@example.com", "admin")
    add_user(sync_db, "bob@example.com", "admin")
    assert sign_in(web, "ann@example.com").status_code == 303
    with httpx.Client(base_url=str(web.base_url)) as bob:
        assert sign_in(bob, "bob@example.com").status_code == 303
        bobs = session_csrf(bob, settings.secret_key or "")
    made = web.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    assert made.status_code == 403 and "CSRF" in made.json()["detail"]
    wrong = web.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    foreign = web.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers={"X-CSRF-Token": bobs})
    assert foreign.status_code == 403, "another session's token"
    assert sync_db["api_tokens"].count_documents({}) == 0

    mine = session_csrf(web, settings.secret_key or "")
    ok = web.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers={"X-CSRF-Token": mine})
    assert ok.status_code == 201, ok.text
    assert web.get("/api/v1/tokens").status_code == 200, "reads need no CSRF token"


def test_logout_ends_the_session_in_the_database(web: httpx.Client, sync_db: Db, settings: Settings) -> None:
    add_user(sync_db, "ann@example.com", "admin")
    assert sign_in(web, "ann@example.com").status_code == 303
    cookie = web.cookies[SESSION_COOKIE]
    assert web.post("/logout").status_code == 403, "logout needs the CSRF token too"
    out = web.post("/logout", data={"csrf_token": session_csrf(web, settings.secret_key or "")})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert sync_db[SESSIONS].count_documents({}) == 0
    # The old cookie, replayed by someone who kept a copy, is worth nothing now.
    with httpx.Client(base_url=str(web.base_url), cookies={SESSION_COOKIE: cookie}) as replay:
        assert replay.get("/api/v1/tokens").status_code == 401
    assert [e["action"] for e in sync_db[AUDIT].find().sort("_id")] == ["login", "logout"]


def test_an_expired_session_is_refused(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "admin")
    assert sign_in(web, "ann@example.com").status_code == 303
    assert web.get("/api/v1/tokens").status_code == 200
    sync_db[SESSIONS].update_many({}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}})
    expired = web.get("/api/v1/tokens")
    assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == "Bearer"
    assert web.get("/login").status_code == 200, "the sign-in form again, not a redirect"


def test_a_forged_cookie_is_no_session(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "admin")
    assert sign_in(web, "ann@example.com").status_code == 303
    session_id = web.cookies[SESSION_COOKIE].rpartition(".")[0]
    with httpx.Client(base_url=str(web.base_url), cookies={SESSION_COOKIE: f"{session_id}.forged"}) as forged:
        assert forged.get("/api/v1/tokens").status_code == 401


def test_a_role_changed_meanwhile_applies_to_the_open_session_at_its_next_request(
    web: httpx.Client, sync_db: Db
) -> None:
    user_id = add_user(sync_db, "ann@example.com", "admin")
    assert sign_in(web, "ann@example.com").status_code == 303
    assert web.get("/api/v1/tokens").status_code == 200

    # `outbound user role ann@example.com --role viewer` while she is signed in.
    sync_db[USERS].update_one({"_id": ObjectId(user_id)}, {"$set": {"role": "viewer"}})
    assert web.get("/api/v1/tokens").status_code == 403, "an admin route, refused at once"
    assert web.get("/api/v1/campaigns").status_code == 200, "a viewer's read, still signed in"


def test_many_wrong_passwords_at_once_get_no_more_checks_than_the_limit(web: httpx.Client, sync_db: Db) -> None:
    add_user(sync_db, "ann@example.com", "viewer")
    base = str(web.base_url)

    def guess(n: int) -> int:
        with httpx.Client(base_url=base, timeout=30) as client:  # its own login nonce cookie
            return sign_in(client, "ann@example.com", f"wrong password {n}").status_code

    # Twelve guesses in flight together: each is recorded before its password is checked, so they see each
    # other, and at most five (the email's limit) reach the check.
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(guess, range(12)))

    assert set(codes) <= {401, 429}, codes
    assert 1 <= codes.count(401) <= 5, codes
    stored = sync_db["login_attempts"].count_documents({"key": "email:ann@example.com"})
    assert stored == codes.count(401), "refused attempts are taken back; failed ones stay"
    outcomes = [e["outcome"] for e in sync_db[AUDIT].find({"action": "login"})]
    assert outcomes.count("failed") == codes.count(401) and outcomes.count("refused") == codes.count(429)
    assert sign_in(web, "ann@example.com", PASSWORD).status_code == (429 if codes.count(401) == 5 else 303)
