"""Reading mailboxes over IMAP against a real IMAP server process (pymap) on loopback: security, login, errors,
folders, fetching newer messages read-only, and UIDVALIDITY."""

from __future__ import annotations

import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.accounts import ImapSettings
from app.transport.imap import FolderState, ImapError, ImapPool, Mailbox, check
from tests.certificates import TestAuthority, self_signed
from tests.imap_server import IMAP_PASSWORD, IMAP_USER, ImapServer, StartImapServer, free_port, silent_port

SEEN = b"\\Seen"


def message(n: int) -> bytes:
    headers = f"From: lead{n}@acme.example\r\nSubject: reply {n}\r\nMessage-ID: <r{n}@acme.example>\r\n"
    return f"{headers}\r\nbody {n}\r\n".encode()


def settings(port: int, security: str = "none", **fields: Any) -> ImapSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "username": IMAP_USER,
        "password": IMAP_PASSWORD,
        "folders": ("INBOX",),
        "timeout": 10.0,
    }
    return ImapSettings(**{**values, **fields})


def failure(imap: ImapSettings, tls_context: ssl.SSLContext | None = None) -> ImapError:
    with pytest.raises(ImapError) as caught, Mailbox(imap, tls_context=tls_context):
        pass
    return caught.value


@pytest.fixture
def tls_server(start_imap_server: StartImapServer, imap_authority: TestAuthority) -> ImapServer:
    """pymap with a certificate for 127.0.0.1 from the test authority: STARTTLS on `port`, implicit TLS on
    `tls_port`."""
    certificate = imap_authority.issue("imap-loopback", ["127.0.0.1", "localhost"])
    return start_imap_server(certificate=certificate, implicit_tls=True)


# --- security and login ----------------------------------------------------------------------------------------


def test_implicit_tls_verifies_the_certificate_then_logs_in(
    tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    steps: list[tuple[str, str]] = []
    imap = settings(tls_server.tls_port, "tls")

    with Mailbox(imap, tls_context=imap_authority.client_context(), on_step=lambda *s: steps.append(s)) as box:
        assert box.folders() == ["INBOX"]

    assert [name for name, _ in steps] == ["connect", "secure", "login"]
    assert "implicit TLS: TLSv1" in steps[1][1] and "certificate verified" in steps[1][1]
    assert steps[2][1] == f"logged in as {IMAP_USER}"


def test_starttls_upgrades_the_connection_before_logging_in(
    tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    steps: list[tuple[str, str]] = []
    imap = settings(tls_server.port, "starttls")

    with Mailbox(imap, tls_context=imap_authority.client_context(), on_step=lambda *s: steps.append(s)) as box:
        assert box.folders() == ["INBOX"]

    assert steps[1][0] == "secure" and steps[1][1].startswith("STARTTLS: TLSv1")


def test_starttls_is_refused_when_the_server_does_not_offer_it(imap_server: ImapServer) -> None:
    error = failure(settings(imap_server.port, "starttls"))

    assert error.stage == "tls"
    assert "does not offer STARTTLS" in error.what
    assert "imap_security tls" in error.fix


def test_plain_text_is_allowed_when_the_account_says_none(imap_server: ImapServer) -> None:
    steps: list[tuple[str, str]] = []

    with Mailbox(settings(imap_server.port, "none"), on_step=lambda *s: steps.append(s)) as box:
        assert box.folders() == ["INBOX"]

    assert steps[1] == ("secure", "no TLS (imap_security none): the password and the mail are not encrypted")


def test_wrong_password_is_a_login_error_that_points_at_the_app_password(imap_server: ImapServer) -> None:
    error = failure(settings(imap_server.port, password="not-the-password"))

    assert error.stage == "login"
    assert "AUTHENTICATIONFAILED" in error.what and IMAP_USER in error.what
    assert "imap_username and imap_password" in error.fix and "app password" in error.fix
    assert "not-the-password" not in str(error)


def test_refused_connection_is_a_connect_error_naming_host_and_port() -> None:
    port = free_port()

    error = failure(settings(port))

    assert error.stage == "connect"
    assert f"127.0.0.1:{port} refused the connection" in error.what
    assert "imap_host and imap_port" in error.fix


def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    with silent_port() as port:
        started = time.monotonic()
        error = failure(settings(port, timeout=0.5))
        elapsed = time.monotonic() - started

    assert error.stage == "connect"
    assert "did not answer within 0.5 s" in error.what
    assert elapsed < 5


def test_certificate_for_another_host_is_refused(
    start_imap_server: StartImapServer, imap_authority: TestAuthority
) -> None:
    server = start_imap_server(
        certificate=imap_authority.issue("imap-other", ["imap.other.example"]), implicit_tls=True
    )

    error = failure(settings(server.tls_port, "tls"), imap_authority.client_context())

    assert error.stage == "tls"
    assert f"certificate of 127.0.0.1:{server.tls_port} is not trusted" in error.what
    assert "another host name" in error.fix and "imap_host" in error.fix


def test_expired_certificate_is_refused(start_imap_server: StartImapServer, imap_authority: TestAuthority) -> None:
    past = datetime.now(UTC) - timedelta(days=3)
    certificate = imap_authority.issue("imap-expired", ["127.0.0.1"], not_before=past, not_after=past + timedelta(1))
    server = start_imap_server(certificate=certificate)

    error = failure(settings(server.port, "starttls"), imap_authority.client_context())

    assert error.stage == "tls"
    assert "expired" in error.what and "expired" in error.fix


def test_self_signed_certificate_is_not_trusted_by_default(start_imap_server: StartImapServer, tmp_path: Path) -> None:
    server = start_imap_server(certificate=self_signed(tmp_path / "self"), implicit_tls=True)

    error = failure(settings(server.tls_port, "tls"))  # the system's trusted authorities

    assert error.stage == "tls"
    assert "not trusted" in error.what
    assert "self-signed" in error.fix


def test_implicit_tls_on_a_starttls_port_suggests_starttls(
    tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    error = failure(settings(tls_server.port, "tls"), imap_authority.client_context())

    assert error.stage == "tls"
    assert "answered in plain text" in error.what
    assert "imap_security starttls" in error.fix and "143" in error.fix


# --- folders and messages --------------------------------------------------------------------------------------


def test_folders_lists_what_the_server_has(imap_server: ImapServer) -> None:
    imap_server.create_folder("Replies")
    imap_server.create_folder("Bounces")

    with Mailbox(settings(imap_server.port)) as box:
        assert sorted(box.folders()) == ["Bounces", "INBOX", "Replies"]


def test_open_reports_uidvalidity_next_uid_and_count(imap_server: ImapServer) -> None:
    uids = [imap_server.append("INBOX", message(n)) for n in range(3)]

    with Mailbox(settings(imap_server.port)) as box:
        state = box.open("INBOX")

    assert state == FolderState(uidvalidity=imap_server.uidvalidity("INBOX"), uidnext=uids[-1] + 1, exists=3)


def test_opening_a_missing_folder_is_a_select_error(imap_server: ImapServer) -> None:
    with Mailbox(settings(imap_server.port)) as box, pytest.raises(ImapError) as caught:
        box.open("Nope")

    assert caught.value.stage == "select"
    assert "'Nope' cannot be opened" in caught.value.what
    assert "imap_folders" in caught.value.fix


def test_fetch_after_returns_only_newer_messages_oldest_first_at_most_limit(imap_server: ImapServer) -> None:
    uids = [imap_server.append("INBOX", message(n)) for n in range(5)]

    with Mailbox(settings(imap_server.port)) as box:
        box.open("INBOX")
        everything = box.fetch_after(0, 100)
        middle = box.fetch_after(uids[1], 2)
        # `UID SEARCH UID n:*` matches the last message even when n is above every UID: nothing is newer.
        after_last = box.fetch_after(uids[-1], 10)
        far_beyond = box.fetch_after(uids[-1] + 1000, 10)

    assert everything == [(uid, message(n)) for n, uid in enumerate(uids)]
    assert middle == [(uids[2], message(2)), (uids[3], message(3))]
    assert after_last == [] and far_beyond == []


def test_fetch_after_sees_messages_that_arrive_while_the_folder_is_open(imap_server: ImapServer) -> None:
    first = imap_server.append("INBOX", message(1))

    with Mailbox(settings(imap_server.port)) as box:
        box.open("INBOX")
        assert [uid for uid, _ in box.fetch_after(0, 10)] == [first]
        second = imap_server.append("INBOX", message(2))
        assert box.fetch_after(first, 10) == [(second, message(2))]


def test_fetching_leaves_every_flag_as_it_was(imap_server: ImapServer) -> None:
    unread = imap_server.append("INBOX", message(1))
    read = imap_server.append("INBOX", message(2), flags=[SEEN])

    with Mailbox(settings(imap_server.port)) as box:
        box.open("INBOX")
        assert len(box.fetch_after(0, 10)) == 2

    assert imap_server.flags_of("INBOX", unread) == ()
    assert imap_server.flags_of("INBOX", read) == (SEEN,)
    with Mailbox(settings(imap_server.port)) as box:
        assert box.open("INBOX").exists == 2  # nothing moved or deleted


def test_fetch_after_needs_an_open_folder_and_a_positive_limit(imap_server: ImapServer) -> None:
    with Mailbox(settings(imap_server.port)) as box:
        with pytest.raises(RuntimeError, match="open"):
            box.fetch_after(0, 10)
        box.open("INBOX")
        with pytest.raises(ValueError, match="limit"):
            box.fetch_after(0, 0)


def test_uidvalidity_changes_when_the_folder_is_recreated(imap_server: ImapServer) -> None:
    imap_server.create_folder("Replies")
    old_uid = imap_server.append("Replies", message(1))
    with Mailbox(settings(imap_server.port)) as box:
        before = box.open("Replies")

    new_validity = imap_server.recreate_folder("Replies")
    new_uid = imap_server.append("Replies", message(2))

    with Mailbox(settings(imap_server.port)) as box:
        after = box.open("Replies")
        fetched = box.fetch_after(0, 10)
    assert after.uidvalidity == new_validity != before.uidvalidity
    assert fetched == [(new_uid, message(2))]
    assert new_uid <= old_uid  # UIDs of the old folder mean nothing in the new one


def test_uidvalidity_of_the_inbox_changes_when_it_is_replaced(imap_server: ImapServer) -> None:
    imap_server.append("INBOX", message(1))
    with Mailbox(settings(imap_server.port)) as box:
        before = box.open("INBOX")

    new_validity = imap_server.recreate_folder("INBOX")

    with Mailbox(settings(imap_server.port)) as box:
        after = box.open("INBOX")
        assert sorted(box.folders()) == ["INBOX"]
    assert after == FolderState(uidvalidity=new_validity, uidnext=after.uidnext, exists=0)
    assert new_validity != before.uidvalidity


# --- the thread pool -------------------------------------------------------------------------------------------


def _read_inbox(imap: ImapSettings) -> tuple[str, list[int]]:
    with Mailbox(imap) as box:
        box.open("INBOX")
        return threading.current_thread().name, [uid for uid, _ in box.fetch_after(0, 10)]


async def test_pool_reads_mailboxes_off_the_event_loop(imap_server: ImapServer) -> None:
    uid = imap_server.append("INBOX", message(1))

    async with ImapPool(max_workers=2) as pool:
        results = [await pool.run(_read_inbox, settings(imap_server.port)) for _ in range(3)]

    assert all(name.startswith("imap") and name != threading.current_thread().name for name, _ in results)
    assert [uids for _, uids in results] == [[uid]] * 3


async def test_pool_raises_what_the_call_raises() -> None:
    pool = ImapPool(max_workers=1)
    try:
        with pytest.raises(ImapError) as caught:
            await pool.run(_read_inbox, settings(free_port()))
    finally:
        pool.close()
    assert caught.value.stage == "connect"


# --- check -----------------------------------------------------------------------------------------------------


def test_check_reports_each_step_and_examines_each_configured_folder(
    tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    tls_server.create_folder("Replies")
    uid = tls_server.append("INBOX", message(1))
    imap = settings(tls_server.tls_port, "tls", folders=("INBOX", "Replies"))

    steps = check(imap, imap_authority.client_context())

    assert [(s.name, s.ok) for s in steps] == [
        ("connect", True),
        ("secure", True),
        ("login", True),
        ("folders", True),
        ("folder", True),
        ("folder", True),
    ]
    assert steps[4].detail.startswith("INBOX: 1 messages, UIDVALIDITY ")
    assert steps[5].detail.startswith("Replies: 0 messages")
    assert tls_server.flags_of("INBOX", uid) == ()


def test_check_stops_at_the_first_failure_with_its_fix(imap_server: ImapServer) -> None:
    steps = check(settings(imap_server.port, password="wrong"))

    assert [(s.name, s.ok) for s in steps] == [("connect", True), ("secure", True), ("login", False)]
    assert steps[-1].hint is not None and "app password" in steps[-1].hint


def test_check_names_configured_folders_the_server_does_not_have(imap_server: ImapServer) -> None:
    steps = check(settings(imap_server.port, folders=("INBOX", "Replies")))

    assert (steps[-1].name, steps[-1].ok, steps[-1].detail) == ("folders", False, "Replies not found on the server")
    assert steps[-1].hint == "set imap_folders to folders the server has (it has: INBOX)"


def test_check_of_a_failed_tls_handshake_still_reports_the_connection(
    tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    steps = check(settings(tls_server.port, "tls"), imap_authority.client_context())

    assert [(s.name, s.ok) for s in steps] == [("connect", True), ("secure", False)]
