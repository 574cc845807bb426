"""`outbound serve`: one-click unsubscribe links (RFC 8058) against the real app under uvicorn on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.domain.inbound import SendRef
from app.domain.unsubscribe import ONE_CLICK_POST, sign
from app.store import schema
from tests.web_server import START_SECONDS, running_web

KEY = "test-secret-key-" + "k" * 32
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Db = SyncDatabase[dict[str, Any]]


@pytest.fixture
def web(sync_db: Db, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """The app under uvicorn on loopback, as `outbound serve` runs it; a client for it."""
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key=KEY)
    with running_web(settings) as client:
        yield client


def _lead(db: Db, emails: list[str], *, sent: bool = True) -> SendRef:
    """A lead whose step 1 went to every recipient (with their ledger entries); the ref of its first send."""
    campaign_id = str(db[schema.CAMPAIGNS].insert_one({"name": "C", "status": "active", "settings": {}}).inserted_id)
    lead_id = ObjectId()
    now = datetime.now(UTC)
    status = "contacted" if sent else "not_contacted"
    db[schema.CAMPAIGN_LEADS].insert_one(
        {
            "_id": lead_id,
            "campaign_id": campaign_id,
            "lead_key": f"email:{emails[0]}",
            "lead_data": [{"email": e, "status": status} for e in emails],
            "progress": {"current_step_order": 2, "stopped": False, "processed_recipients": {}, "next_due_at": now},
        }
    )
    for index, email in enumerate(emails):
        db[schema.SENDS].insert_one(
            {
                "_id": f"{lead_id}:1:{index}",
                "lead_id": lead_id,
                "step_order": 1,
                "recipient_index": index,
                "campaign_id": campaign_id,
                "email": email,
                "message_id": f"<outbound.{lead_id}.1.{index}@example.com>",
                "state": "sent",
            }
        )
    return SendRef(str(lead_id), 1, 0)


def _snapshot(db: Db) -> dict[str, list[dict[str, Any]]]:
    return {
        name: list(db[name].find({}, sort=[("_id", 1)]))
        for name in (schema.CAMPAIGN_LEADS, schema.SUPPRESSIONS, schema.ACTIVITIES, schema.SENDS)
    }


def _unsubscribe_activities(db: Db) -> list[dict[str, Any]]:
    return list(db[schema.ACTIVITIES].find({"type": "unsubscribed"}))


def test_one_click_post_unsubscribes_the_recipient_suppresses_the_address_and_records_it(
    web: httpx.Client, sync_db: Db
) -> None:
    ref = _lead(sync_db, ["jane.doe@example.com"])
    response = web.post(f"/u/{sign(ref, KEY)}", content=ONE_CLICK_POST, headers=FORM)
    assert response.status_code == 200
    assert "You have been unsubscribed" in response.text
    assert "j***@example.com" in response.text and "jane.doe" not in response.text
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": ObjectId(ref.lead_id)})
    assert lead is not None
    assert lead["lead_data"][0]["status"] == "unsubscribed"
    assert lead["progress"]["stopped"] is True  # nobody is left to write to
    assert sync_db[schema.SUPPRESSIONS].find_one({"value": "jane.doe@example.com"}) is not None
    [activity] = _unsubscribe_activities(sync_db)
    assert activity["email"] == "jane.doe@example.com" and activity["lead_id"] == ref.lead_id


def test_posting_twice_unsubscribes_once(web: httpx.Client, sync_db: Db) -> None:
    ref = _lead(sync_db, ["jane@example.com", "joe@example.com"])
    url = f"/u/{sign(ref, KEY)}"
    first = web.post(url, content=ONE_CLICK_POST, headers=FORM)
    after_first = _snapshot(sync_db)
    second = web.post(url, content=ONE_CLICK_POST, headers=FORM)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "already unsubscribed" in second.text
    assert _snapshot(sync_db) == after_first
    assert len(_unsubscribe_activities(sync_db)) == 1
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": ObjectId(ref.lead_id)})
    assert lead is not None
    assert [r["status"] for r in lead["lead_data"]] == ["unsubscribed", "contacted"]
    assert lead["progress"]["stopped"] is False  # the other recipient is still in the sequence


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (None, {}),  # the confirm button of a browser that sends no field, or a bare POST
        (b"", FORM),
        (
            b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
    ],
)
def test_an_empty_or_multipart_body_unsubscribes_too(
    web: httpx.Client, sync_db: Db, body: bytes | None, headers: dict[str, str]
) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    response = web.post(f"/u/{sign(ref, KEY)}", content=body, headers=headers)
    assert response.status_code == 200
    assert len(_unsubscribe_activities(sync_db)) == 1


def test_get_and_head_show_the_confirm_page_and_change_nothing(web: httpx.Client, sync_db: Db) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    url = f"/u/{sign(ref, KEY)}"
    before = _snapshot(sync_db)
    page = web.get(url)
    head = web.head(url)
    assert page.status_code == 200 and head.status_code == 200
    assert '<form method="post">' in page.text and "Unsubscribe" in page.text
    assert "jane" not in page.text
    assert head.content == b""
    assert _snapshot(sync_db) == before


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # altered signature
        lambda token: sign(SendRef("665f1c2e9b1e8a3d4c5b6a70", 1, 0), "another-key-" + "x" * 32),
        lambda token: token.split(".")[0],  # signature cut off
        lambda token: "not-a-token",
    ],
)
def test_a_forged_or_altered_link_is_refused_and_changes_nothing(web: httpx.Client, sync_db: Db, forge: Any) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    token = forge(sign(ref, KEY))
    before = _snapshot(sync_db)
    for response in (web.post(f"/u/{token}", content=ONE_CLICK_POST, headers=FORM), web.get(f"/u/{token}")):
        assert response.status_code == 400
        assert "nothing was changed" in response.text
    assert _snapshot(sync_db) == before


def test_a_post_while_a_dispatcher_holds_the_lead_suppresses_at_once_and_says_an_email_may_still_arrive(
    web: httpx.Client, sync_db: Db
) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    held = {"progress.lease_owner": "other", "progress.lease_until": datetime.now(UTC) + timedelta(minutes=10)}
    sync_db[schema.CAMPAIGN_LEADS].update_one({"_id": ObjectId(ref.lead_id)}, {"$set": held})
    response = web.post(f"/u/{sign(ref, KEY)}", content=ONE_CLICK_POST, headers=FORM)
    assert response.status_code == 200
    assert "You have been unsubscribed" in response.text and "may still arrive" in response.text
    assert sync_db[schema.SUPPRESSIONS].find_one({"value": "jane@example.com"}) is not None
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": ObjectId(ref.lead_id)})
    assert lead is not None and lead["lead_data"][0]["status"] == "contacted"  # written when the lease ends


def test_a_link_whose_lead_was_deleted_still_suppresses_the_address_from_the_ledger(
    web: httpx.Client, sync_db: Db
) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    sync_db[schema.CAMPAIGN_LEADS].delete_one({"_id": ObjectId(ref.lead_id)})
    response = web.post(f"/u/{sign(ref, KEY)}", content=ONE_CLICK_POST, headers=FORM)
    assert response.status_code == 200
    assert "You have been unsubscribed" in response.text
    assert sync_db[schema.SUPPRESSIONS].find_one({"value": "jane@example.com"}) is not None


def test_a_genuine_link_with_no_record_left_answers_200_and_says_so(web: httpx.Client, sync_db: Db) -> None:
    ref = SendRef(str(ObjectId()), 1, 0)
    response = web.post(f"/u/{sign(ref, KEY)}", content=ONE_CLICK_POST, headers=FORM)
    assert response.status_code == 200
    assert "Nothing left to unsubscribe" in response.text
    assert sync_db[schema.SUPPRESSIONS].count_documents({}) == 0


def test_every_response_carries_strict_security_headers_and_unsubscribe_pages_are_not_cached(
    web: httpx.Client, sync_db: Db
) -> None:
    ref = _lead(sync_db, ["jane@example.com"])
    token = sign(ref, KEY)
    responses = [
        web.get(f"/u/{token}"),
        web.post(f"/u/{token}", content=ONE_CLICK_POST, headers=FORM),
        web.get("/u/forged.token"),
        web.get("/health"),
        web.get("/no-such-page"),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'none';") and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers
    assert responses[1].status_code == 200  # answered in place, never a redirect


def test_health_answers_ok(web: httpx.Client) -> None:
    response = web.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_serve_refuses_to_start_without_a_secret_key(cli: Any) -> None:
    result = cli("serve", env={"OUTBOUND_SECRET_KEY": "", "OUTBOUND_PUBLIC_URL": ""})
    assert result.exit_code != 0
    assert "OUTBOUND_SECRET_KEY" in result.output
    assert "no unsubscribe link can be verified" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_listens_on_loopback_logs_unsubscribes_without_addresses_and_sigterm_exits_0(
    cli_env: dict[str, str], sync_db: Db, tmp_path: Path
) -> None:
    ref = _lead(sync_db, ["jane.doe@example.com"])
    port = _free_port()
    env = {
        **os.environ,
        **cli_env,
        "LOG_LEVEL": "INFO",
        "OUTBOUND_SECRET_KEY": KEY,
        "OUTBOUND_PUBLIC_URL": "https://out.example.com",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + START_SECONDS
        while status != 200 and proc.poll() is None and time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200, "outbound serve did not answer /health"
        url = f"http://127.0.0.1:{port}/u/{sign(ref, KEY)}"
        assert httpx.post(url, content=ONE_CLICK_POST, headers=FORM, timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=START_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=START_SECONDS)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in out
    assert "https://out.example.com/u/" in out
    assert "web.started" in err and "web.stopped" in err
    [logged] = [line for line in err.splitlines() if "web.unsubscribed" in line]
    assert ref.lead_id in logged and "jane" not in err
