"""`make demo` keeps working: seeds, dry-runs, sends to its local mailbox, reports limits, and shows prospects'
answers read from a demo inbox stopping their sequences."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bson import ObjectId

ROOT = Path(__file__).resolve().parents[2]


def test_demo_sends_to_its_local_mailbox_and_reports_limits_respected(mongo_uri, db_name, sync_db, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOUND_", "MONGO_", "DB_NAME"))}
    env.update(MONGO_URI=mongo_uri, OUTBOUND_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), COLUMNS="200")
    mailbox = tmp_path / "mail"
    result = subprocess.run(
        [sys.executable, "scripts/demo.py", "--seconds", "8", "--db-name", db_name, "--mailbox", str(mailbox)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Dry run" in out and "Limits, measured at the SMTP server" in out
    assert " NO " not in out  # every account's limits were respected
    sent = list(mailbox.glob("*.eml"))
    assert len(sent) >= 5
    assert f"{len(sent)} messages written to" in out
    assert sync_db["sends"].count_documents({"state": "sent"}) == len(sent)
    # The first prospect to answer replied: the demo inbox was read and that lead stopped.
    assert "Answers read from alex.carter@outreach.example.net's inbox" in out
    replied = sync_db["activities"].find_one({"type": "replied"})
    assert replied is not None and replied["inbound"]["matched_by"] == "message-id"
    lead = sync_db["campaign_leads"].find_one({"_id": ObjectId(replied["lead_id"])})
    assert lead is not None and lead["progress"]["stopped"] is True and lead["progress"]["stopped_reason"] == "replied"
    assert "show-lead-details" in out


def test_demo_serves_its_dashboard_and_prints_a_password_that_signs_in(mongo_uri, db_name, sync_db, tmp_path) -> None:
    from argon2 import PasswordHasher

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOUND_", "MONGO_", "DB_NAME"))}
    env.update(MONGO_URI=mongo_uri, OUTBOUND_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), COLUMNS="400")
    command = [sys.executable, "scripts/demo.py", "--seconds", "3", "--db-name", db_name, "--linger", "0"]
    runs = [
        subprocess.run(
            [*command, "--mailbox", str(tmp_path / f"mail{i}")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        for i in range(2)
    ]
    passwords = []
    for result in runs:
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert any(line.startswith("Dashboard at http://127.0.0.1:") for line in lines), result.stdout
        line = next(line for line in lines if line.startswith("Sign in as admin@outreach.example.net with"))
        passwords.append(line.split("one-time password ")[1].strip())
    user = sync_db["users"].find_one({"email": "admin@outreach.example.net"})
    assert user is not None and user["role"] == "admin"
    assert PasswordHasher().verify(user["password_hash"], passwords[1])
    # Each run replaces the password: the one printed by the first run no longer signs in.
    assert passwords[0] != passwords[1]
    assert "password" not in {k.lower() for k in user} - {"password_hash", "password_changed_at"}
