"""`outbound user add|list|remove|passwd` and `outbound audit list` against a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database as SyncDatabase

from app.store.audit import AUDIT
from app.store.sessions import SESSIONS, session_hash
from app.store.users import USERS
from app.web.passwords import verify

Db = SyncDatabase[dict[str, Any]]
PASSWORD = "correct horse battery"


def _add(cli: Any, email: str = "Ann@Example.com", role: str = "operator", password: str = PASSWORD) -> Any:
    return cli("user", "add", "--email", email, "--role", role, input=f"{password}\n{password}\n")


def _session(db: Db, user_id: str) -> None:
    now = datetime.now(UTC)
    doc = {"hash": session_hash("s1"), "user_id": user_id, "created_at": now, "expires_at": now + timedelta(hours=1)}
    db[SESSIONS].insert_one(doc)


def test_user_add_asks_twice_and_stores_an_argon2_hash(cli: Any, sync_db: Db) -> None:
    result = _add(cli)
    assert result.exit_code == 0, result.output
    assert "Added ann@example.com (operator)" in result.stdout
    doc = sync_db[USERS].find_one({"email": "ann@example.com"})
    assert doc is not None and doc["role"] == "operator"
    assert doc["password_hash"].startswith("$argon2id$") and verify(doc["password_hash"], PASSWORD)
    assert PASSWORD not in json.dumps(doc, default=str)

    listed = cli("user", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert (row["email"], row["role"]) == ("ann@example.com", "operator")
    assert "password" not in json.dumps(row).replace("password_changed_at", "")
    (entry,) = sync_db[AUDIT].find({"action": "user.add"})
    assert entry["actor"]["kind"] == "cli" and PASSWORD not in json.dumps(entry, default=str)


def test_bad_input_is_refused_and_changes_nothing(cli: Any, sync_db: Db) -> None:
    mismatch = cli(
        "user", "add", "--email", "ann@example.com", "--role", "viewer", input=f"{PASSWORD}\nother one 12345\n"
    )
    assert mismatch.exit_code != 0
    short = _add(cli, password="short")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    role = _add(cli, role="root")
    assert role.exit_code == 2 and "viewer, operator, admin" in role.output
    email = _add(cli, email="not an address")
    assert email.exit_code == 2 and "--email" in email.output
    assert sync_db[USERS].count_documents({}) == 0

    assert _add(cli).exit_code == 0
    again = _add(cli, email="ann@EXAMPLE.com", role="admin")
    assert again.exit_code == 1 and "exists already" in again.output
    assert sync_db[USERS].count_documents({}) == 1


def test_passwd_from_stdin_changes_the_hash_and_ends_the_sessions(cli: Any, sync_db: Db) -> None:
    assert _add(cli).exit_code == 0
    user = sync_db[USERS].find_one()
    assert user is not None
    _session(sync_db, str(user["_id"]))
    changed = cli("user", "passwd", "ann@example.com", "--password-stdin", input="a brand new passphrase\n")
    assert changed.exit_code == 0, changed.output
    assert "1 open session(s) ended" in changed.stdout
    after = sync_db[USERS].find_one()
    assert after is not None and verify(after["password_hash"], "a brand new passphrase")
    assert not verify(after["password_hash"], PASSWORD)
    assert sync_db[SESSIONS].count_documents({}) == 0
    unknown = cli("user", "passwd", "bob@example.com", "--password-stdin", input="a brand new passphrase\n")
    assert unknown.exit_code == 1 and "no user bob@example.com" in unknown.output


def test_remove_deletes_the_user_and_their_sessions(cli: Any, sync_db: Db) -> None:
    assert _add(cli).exit_code == 0
    user = sync_db[USERS].find_one()
    assert user is not None
    _session(sync_db, str(user["_id"]))
    removed = cli("user", "remove", "ann@example.com", "--yes")
    assert removed.exit_code == 0, removed.output
    assert sync_db[USERS].count_documents({}) == 0 and sync_db[SESSIONS].count_documents({}) == 0


def test_audit_list_filters_by_action_and_actor(cli: Any, sync_db: Db) -> None:
    assert _add(cli).exit_code == 0
    assert cli("token", "create", "--name", "ci", "--role", "viewer").exit_code == 0
    everything = json.loads(cli("audit", "list", "--json").stdout)
    assert [e["action"] for e in everything] == ["token.create", "user.add"], "newest first"
    only = json.loads(cli("audit", "list", "--json", "--action", "user.add").stdout)
    assert [e["target"]["email"] for e in only] == ["ann@example.com"]
    actor = everything[0]["actor"]["name"]
    assert len(json.loads(cli("audit", "list", "--json", "--actor", actor, "--limit", "1").stdout)) == 1
    assert json.loads(cli("audit", "list", "--json", "--actor", "nobody").stdout) == []
    table = cli("audit", "list")
    assert table.exit_code == 0 and "token.create" in table.stdout


def test_role_changes_the_role_audits_it_and_keeps_the_sessions(cli: Any, sync_db: Db) -> None:
    assert _add(cli, role="viewer").exit_code == 0
    user = sync_db[USERS].find_one({"email": "ann@example.com"})
    assert user is not None
    _session(sync_db, str(user["_id"]))

    changed = cli("user", "role", "ANN@example.com", "--role", "operator")
    assert changed.exit_code == 0, changed.output
    assert "ann@example.com is now operator (was viewer)" in changed.stdout
    assert sync_db[USERS].find_one({"_id": user["_id"]})["role"] == "operator"  # type: ignore[index]
    assert sync_db[SESSIONS].count_documents({}) == 1  # the role is read on each request
    (entry,) = sync_db[AUDIT].find({"action": "user.role"})
    assert entry["details"] == {"before": "viewer", "after": "operator"}

    again = cli("user", "role", "ann@example.com", "--role", "operator")
    assert again.exit_code == 0 and "already operator; nothing was changed" in again.stdout
    assert sync_db[AUDIT].count_documents({"action": "user.role"}) == 1


def test_role_refuses_an_unknown_user_or_role_and_changes_nothing(cli: Any, sync_db: Db) -> None:
    assert _add(cli, role="viewer").exit_code == 0
    unknown = cli("user", "role", "bob@example.com", "--role", "admin")
    assert unknown.exit_code == 1 and "no user bob@example.com" in unknown.output
    bad = cli("user", "role", "ann@example.com", "--role", "root")
    assert bad.exit_code == 2 and "viewer, operator, admin" in bad.output
    assert sync_db[USERS].find_one({"email": "ann@example.com"})["role"] == "viewer"  # type: ignore[index]
    assert sync_db[AUDIT].count_documents({"action": "user.role"}) == 0
