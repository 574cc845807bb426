"""`outbound account ...` through the CLI, against the test database, a real SMTP server (aiosmtpd) on loopback
and, for mailboxes, a real IMAP server (pymap): accounts set up, changed and removed without writing documents
by hand, and their passwords never stored in plain text."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.credentials import SEALED_PREFIX, Credentials, generate_key, is_sealed, read_key_file
from app.domain.models import EmailAccount
from app.transport.mailbox import MailboxServer, background
from tests.imap_server import IMAP_PASSWORD, IMAP_USER, ImapServer

PASSWORD = "Sm7p-pa55word"
ANN = "ann@sender.example"


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    """A loopback SMTP server that only accepts Ann's login with PASSWORD (and IMAP_USER's with IMAP_PASSWORD)."""
    users = {ANN: PASSWORD, IMAP_USER: IMAP_PASSWORD, "bo@sender.example": "bo-pw"}
    with background(MailboxServer(tmp_path / "mail", users=users)) as server:
        yield server


def add_args(port: int, email: str = ANN, *extra: str) -> list[str]:
    return [
        *("account", "add", "--email", email, "--smtp-host", "127.0.0.1", "--smtp-port", str(port)),
        *("--smtp-security", "none", *extra),
    ]


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def counts(sync_db: Any) -> tuple[int, int, int]:
    return (
        sync_db.email_accounts.count_documents({}),
        sync_db.email_general_settings.count_documents({}),
        sync_db.email_campaign_settings.count_documents({}),
    )


def key_file(cli: Any) -> Path:
    return Path(cli.env["OUTBOUND_HOME"]) / "credentials.key"


def test_add_writes_the_three_documents_with_an_encrypted_password_and_checks_the_login(
    cli: Any, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    signature = tmp_path / "signature.txt"
    signature.write_text("Ann Lee\nAcme Ltd\n", encoding="utf-8")
    args = add_args(mailbox.port, ANN, "--sender-name", "Ann Lee", "--signature-file", str(signature))
    args += ["--max-daily-sends", "40", "--daily-limit", "15", "--min-wait", "2.5", "--provider", "custom"]

    result = ok(cli(*args, "--password-stdin", input=f"{PASSWORD}\n"))

    doc = sync_db.email_accounts.find_one({"email": ANN})
    assert doc["smtp_password"].startswith(SEALED_PREFIX) and PASSWORD not in str(doc)
    assert (doc["smtp_host"], doc["smtp_port"], doc["smtp_security"]) == ("127.0.0.1", mailbox.port, "none")
    assert (doc["smtp_username"], doc["status"], doc["provider"]) == (ANN, "active", "custom")
    account_id = str(doc["_id"])
    general = sync_db.email_general_settings.find_one({"email_id": account_id}, {"_id": 0})
    assert general == {"email_id": account_id, "sender_name": "Ann Lee", "signature": "Ann Lee\nAcme Ltd"}
    limits = sync_db.email_campaign_settings.find_one({"email_id": account_id}, {"_id": 0})
    assert limits == {"email_id": account_id, "max_daily_sends": 40, "daily_limit": 15, "min_wait_time": 2.5}
    assert f"Added account {ANN} with id {account_id}" in result.stdout
    assert f"authenticated as {ANN}" in result.stdout and "SMTP check passed." in result.stdout
    assert mailbox.logins == [ANN]
    assert PASSWORD not in result.output
    assert stat.S_IMODE(key_file(cli).stat().st_mode) == 0o600
    assert "Created the credentials key file" in result.stderr
    assert (
        Credentials(read_key_file(key_file(cli))).reveal(doc["smtp_password"], EmailAccount.from_doc(doc)) == PASSWORD
    )


def test_add_takes_the_password_from_an_environment_variable_and_defaults_the_limits(
    cli: Any, sync_db: Any, mailbox: MailboxServer
) -> None:
    ok(cli(*add_args(mailbox.port), "--password-env", "ANN_PW", env={"ANN_PW": PASSWORD}))

    doc = sync_db.email_accounts.find_one({"email": ANN})
    assert is_sealed(doc["smtp_password"])
    limits = sync_db.email_campaign_settings.find_one({"email_id": str(doc["_id"])})
    assert limits["max_daily_sends"] == 50 and "daily_limit" not in limits
    assert mailbox.logins == [ANN]


def test_an_account_without_a_login_stores_no_password_and_needs_no_key(cli: Any, sync_db: Any, tmp_path: Path) -> None:
    with background(MailboxServer(tmp_path / "relay")) as relay:
        result = ok(cli(*add_args(relay.port), "--no-auth"))

    doc = sync_db.email_accounts.find_one({"email": ANN})
    assert "smtp_username" not in doc and "smtp_password" not in doc
    assert "no smtp_username: authentication skipped" in result.stdout
    assert not key_file(cli).exists()


def test_a_failed_check_keeps_the_account_says_what_to_fix_and_exits_1(
    cli: Any, sync_db: Any, mailbox: MailboxServer
) -> None:
    result = cli(*add_args(mailbox.port), "--password-stdin", input="not-the-password\n")

    assert result.exit_code == 1
    doc = sync_db.email_accounts.find_one({"email": ANN})
    assert doc is not None and counts(sync_db) == (1, 1, 1)
    assert "SMTP check failed during auth" in result.stderr
    assert "check smtp_username and the password" in result.stderr
    assert f"outbound account edit {doc['_id']}" in result.stderr


def test_add_with_a_mailbox_also_runs_the_imap_check(
    cli: Any, sync_db: Any, mailbox: MailboxServer, imap_server: ImapServer
) -> None:
    args = add_args(mailbox.port, IMAP_USER, "--imap-host", "127.0.0.1", "--imap-port", str(imap_server.port))
    args += ["--imap-security", "none", "--imap-folder", "INBOX"]

    result = ok(cli(*args, "--password-stdin", input=f"{IMAP_PASSWORD}\n"))

    doc = sync_db.email_accounts.find_one({"email": IMAP_USER})
    assert doc["imap_folders"] == ["INBOX"] and "imap_password" not in doc  # the SMTP one is used
    assert f"✓ login: logged in as {IMAP_USER}" in result.stdout
    assert "IMAP check passed." in result.stdout
    assert IMAP_PASSWORD not in result.output


def test_a_different_imap_password_comes_from_the_second_line_of_stdin(
    cli: Any, sync_db: Any, mailbox: MailboxServer
) -> None:
    args = add_args(mailbox.port, ANN, "--imap-host", "127.0.0.1", "--no-test")

    ok(cli(*args, "--password-stdin", "--imap-password-stdin", input=f"{PASSWORD}\nimap-only-pw\n"))

    doc = sync_db.email_accounts.find_one({"email": ANN})
    credentials = Credentials(read_key_file(key_file(cli)))
    account = EmailAccount.from_doc(doc)
    assert credentials.for_imap(account, 5).password == "imap-only-pw"
    assert credentials.for_smtp(account).smtp_password == PASSWORD
    assert "imap-only-pw" not in str(doc)


def test_a_duplicate_address_is_refused_and_changes_nothing(cli: Any, sync_db: Any) -> None:
    ok(cli(*add_args(2525), "--no-test", "--password-env", "PW", env={"PW": PASSWORD}))
    before = counts(sync_db)

    result = cli(*add_args(2525, "Ann@Sender.Example"), "--no-test", "--password-env", "PW", env={"PW": PASSWORD})

    assert result.exit_code == 2
    assert "exists already" in result.stderr and "nothing was written" in result.stderr
    assert counts(sync_db) == before


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--smtp-port", "70000"], "--smtp-port: must be a TCP port (1-65535), got 70000"),
        (["--smtp-security", "ssl"], "--smtp-security: must be one of starttls, tls, none"),
        (["--imap-port", "993"], "--imap-port need --imap-host"),
        (["--max-daily-sends", "-1"], "--max-daily-sends: must be >= 0"),
        (["--sender-name", "Ann\nBcc: x@y"], "--sender-name must be one line"),
    ],
)
def test_a_bad_value_is_refused_naming_the_option_and_nothing_is_written(
    cli: Any, sync_db: Any, extra: list[str], said: str
) -> None:
    result = cli(*add_args(2525), *extra, "--password-env", "PW", env={"PW": PASSWORD})

    assert result.exit_code == 2, result.output
    assert said in result.stderr.replace("\n", " ") and "nothing was written" in result.stderr
    assert counts(sync_db) == (0, 0, 0)
    assert not key_file(cli).exists()


def test_a_bad_address_is_refused(cli: Any, sync_db: Any) -> None:
    result = cli(*add_args(2525, "not-an-address"), "--password-env", "PW", env={"PW": PASSWORD})

    assert result.exit_code == 2 and "--email: " in result.stderr
    assert counts(sync_db) == (0, 0, 0)


def test_without_a_password_source_or_a_terminal_add_is_refused(cli: Any, sync_db: Any) -> None:
    result = cli(*add_args(2525))

    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr and "never taken as an argument" in result.stderr
    assert counts(sync_db) == (0, 0, 0)
    assert not key_file(cli).exists()


def test_a_password_variable_that_is_not_set_is_refused(cli: Any, sync_db: Any) -> None:
    result = cli(*add_args(2525), "--password-env", "NOT_SET_ANYWHERE")

    assert result.exit_code == 2 and "NOT_SET_ANYWHERE" in result.stderr
    assert counts(sync_db) == (0, 0, 0)


def added(cli: Any, sync_db: Any, email: str = ANN, *extra: str) -> str:
    ok(cli(*add_args(2525, email, "--no-test", *extra), "--password-env", "PW", env={"PW": PASSWORD}))
    return str(sync_db.email_accounts.find_one({"email": email})["_id"])


def test_edit_changes_only_what_is_given(cli: Any, sync_db: Any, tmp_path: Path) -> None:
    account_id = added(cli, sync_db, ANN, "--sender-name", "Ann Lee", "--max-daily-sends", "40")
    before = sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})

    result = ok(cli("account", "edit", account_id, "--max-daily-sends", "80", "--provider", "gmail"))

    after = sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})
    assert after == {**before, "provider": "gmail"}
    limits = sync_db.email_campaign_settings.find_one({"email_id": account_id})
    assert limits["max_daily_sends"] == 80
    assert sync_db.email_general_settings.find_one({"email_id": account_id})["sender_name"] == "Ann Lee"
    assert "max_daily_sends -> 80" in result.stdout and "check passed" not in result.stdout


def test_edit_sets_a_new_password_encrypted_and_checks_it(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    account_id = added(cli, sync_db, "bo@sender.example")
    ok(cli("account", "edit", account_id, "--smtp-port", str(mailbox.port), "--no-test"))

    result = ok(cli("account", "edit", account_id, "--password-stdin", input="bo-pw\n"))

    doc = sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})
    assert is_sealed(doc["smtp_password"]) and "bo-pw" not in str(doc)
    assert "smtp_password replaced (encrypted)" in result.stdout
    assert mailbox.logins == ["bo@sender.example"]


def test_edit_refuses_a_bad_value_and_changes_nothing(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)
    before = sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})

    result = cli("account", "edit", account_id, "--imap-security", "ssl", "--imap-host", "127.0.0.1")

    assert result.exit_code == 2 and "--imap-security: must be one of" in result.stderr
    assert sync_db.email_accounts.find_one({"_id": ObjectId(account_id)}) == before


def test_edit_of_an_unknown_account_says_not_found(cli: Any, sync_db: Any) -> None:
    result = cli("account", "edit", "665f1c2a9b1e8a0012345678", "--provider", "x")

    assert result.exit_code == 1 and "not found" in result.stderr


def test_pause_resume_and_disable_set_the_status(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)

    def status() -> str:
        return str(sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})["status"])

    assert "status active -> paused" in ok(cli("account", "pause", account_id)).stdout
    assert status() == "paused"
    assert "is paused already; nothing changed" in ok(cli("account", "pause", account_id)).stdout
    assert "status paused -> active" in ok(cli("account", "resume", account_id)).stdout
    assert status() == "active"
    assert "status active -> disabled" in ok(cli("account", "disable", account_id)).stdout
    assert status() == "disabled"


def test_resume_brings_back_an_account_out_of_rotation_showing_the_reason_first(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)
    reason = "535 5.7.8 Authentication credentials invalid"
    sync_db.email_accounts.update_one(
        {"_id": ObjectId(account_id)}, {"$set": {"status": "auth_failed", "disabled_reason": reason}}
    )

    result = ok(cli("account", "resume", account_id))

    assert result.stdout.index(reason) < result.stdout.index("status auth_failed -> active")
    doc = sync_db.email_accounts.find_one({"_id": ObjectId(account_id)})
    assert doc["status"] == "active" and "disabled_reason" not in doc


def open_reservation(sync_db: Any, account_id: str) -> None:
    day = datetime.now(UTC).date().isoformat()
    entry = {"owner": "host:1", "campaign": "c1", "at": datetime.now(UTC), "flown": False}
    sync_db.account_usage.insert_one(
        {"_id": f"{account_id}:{day}", "account_id": account_id, "day": day, "sent": 1, "open": {"abc123": entry}}
    )


def test_remove_is_refused_while_a_reservation_is_open_and_changes_nothing(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)
    open_reservation(sync_db, account_id)

    result = cli("account", "remove", account_id, "--yes")

    assert result.exit_code == 1
    assert "1 open reservations and 0 uncertain sends" in result.stderr and "--force" in result.stderr
    assert counts(sync_db) == (1, 1, 1)


def test_remove_is_refused_while_a_send_is_uncertain(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)
    sync_db.sends.insert_one({"_id": "l:1:0", "account_id": account_id, "state": "uncertain"})

    result = cli("account", "remove", account_id, "--yes")

    assert result.exit_code == 1 and "0 open reservations and 1 uncertain sends" in result.stderr
    assert counts(sync_db) == (1, 1, 1)


def test_remove_with_force_takes_the_account_and_its_settings_and_names_campaigns_still_listing_it(
    cli: Any, sync_db: Any
) -> None:
    account_id = added(cli, sync_db)
    other = added(cli, sync_db, "bo@sender.example")
    open_reservation(sync_db, account_id)
    sync_db.campaigns.insert_one({"name": "Spring", "status": "active", "settings": {"account_ids": [account_id]}})

    result = ok(cli("account", "remove", account_id, "--force", "--yes"))

    assert counts(sync_db) == (1, 1, 1)
    assert sync_db.email_accounts.find_one({"_id": ObjectId(other)}) is not None
    assert f"Removed account {ANN}" in result.stdout and "Spring" in result.stderr


def test_remove_asks_for_confirmation_without_yes(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)

    result = cli("account", "remove", account_id)

    assert result.exit_code == 1 and "pass --yes" in result.stderr
    assert counts(sync_db) == (1, 1, 1)


# ---- the dispatcher and the inbox sync with encrypted passwords ----


def add_campaign_with_leads(sync_db: Any, leads: int) -> None:
    sync_db.campaigns.insert_one(
        {
            "_id": "camp1",
            "name": "Spring",
            "status": "active",
            "sequence_id": "seq1",
            "settings": {"daily_limit": 100, "min_wait_time": 0, "batch_size": 10},
        }
    )
    sync_db.sequence_steps.insert_one({"sequence_id": "seq1", "step_order": 1, "template_id": "t1", "delay_minutes": 0})
    sync_db.templates.insert_one({"_id": "t1", "name": "intro", "subject": "Hello", "body_text": "Hi {{ email }}"})
    due = datetime.now(UTC) - timedelta(minutes=1)
    sync_db.campaign_leads.insert_many(
        [
            {
                "campaign_id": "camp1",
                "lead_key": f"email:p{i}@acme.example",
                "lead_data": [{"email": f"p{i}@acme.example", "status": "not_contacted"}],
                "progress": {"current_step_order": 1, "stopped": False, "next_due_at": due + timedelta(seconds=i)},
            }
            for i in range(leads)
        ]
    )


def test_the_dispatcher_logs_in_with_the_encrypted_password_and_a_wrong_key_takes_only_that_account_out(
    cli: Any, sync_db: Any, mailbox: MailboxServer
) -> None:
    ok(cli(*add_args(mailbox.port), "--password-stdin", input=f"{PASSWORD}\n"))
    # Bo's password is sealed with a key this machine's dispatcher does not have.
    foreign = {"OUTBOUND_CREDENTIALS_KEY": generate_key()}
    ok(cli(*add_args(mailbox.port, "bo@sender.example", "--no-test"), "--password-stdin", input="bo-pw\n", env=foreign))
    add_campaign_with_leads(sync_db, 4)

    ok(cli("run-dispatcher", "--once", "--no-inbox", "--poll-interval", "0.05"))

    assert len(mailbox.messages) >= 3 and set(mailbox.logins) == {ANN}
    assert {m.login for m in mailbox.messages} == {ANN}
    bo = sync_db.email_accounts.find_one({"email": "bo@sender.example"})
    assert bo["status"] == "auth_failed"
    assert "account bo@sender.example" in bo["disabled_reason"]
    assert "encrypted with a key this process does not have" in bo["disabled_reason"]
    assert sync_db.email_accounts.find_one({"email": ANN})["status"] == "active"


def test_the_inbox_sync_of_a_mailbox_whose_password_no_key_reads_fails_with_the_reason_and_backs_off(
    cli: Any, sync_db: Any
) -> None:
    foreign = {"OUTBOUND_CREDENTIALS_KEY": generate_key()}
    args = add_args(2525, ANN, "--imap-host", "127.0.0.1", "--imap-port", "1", "--no-test")
    ok(cli(*args, "--password-stdin", input=f"{PASSWORD}\n", env=foreign))
    account_id = str(sync_db.email_accounts.find_one({"email": ANN})["_id"])

    result = cli("sync-inbox", "--once", "--json")

    assert result.exit_code == 1
    assert f"account {ANN} ({account_id})" in result.stdout and "smtp_password is encrypted" in result.stdout
    state = sync_db.inbound_sync.find_one({"account_id": account_id, "kind": "account"})
    assert state["failures"] == 1 and "no key: OUTBOUND_CREDENTIALS_KEY is not set" in state["last_error"]
    assert state["next_sync_at"].replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(seconds=60)


def test_test_smtp_says_which_account_cannot_be_decrypted(cli: Any, sync_db: Any) -> None:
    account_id = added(cli, sync_db)
    key_file(cli).write_text(generate_key() + "\n")

    result = cli("test-smtp", account_id)

    assert result.exit_code == 1
    assert "SMTP check failed before connecting" in result.stderr and ANN in result.stderr


# ---- encrypt-passwords and rotate-key ----


def plain_account(sync_db: Any, email: str, **fields: Any) -> ObjectId:
    doc = {"email": email, "smtp_host": "127.0.0.1", "smtp_port": 2525, "smtp_password": "plain-pw", **fields}
    inserted: ObjectId = sync_db.email_accounts.insert_one(doc).inserted_id
    return inserted


def revealed(cli: Any, sync_db: Any, account_id: ObjectId, keys: list[str] | None = None) -> tuple[Any, Any]:
    doc = sync_db.email_accounts.find_one({"_id": account_id})
    credentials = Credentials(keys or read_key_file(key_file(cli)))
    account = EmailAccount.from_doc(doc)
    return credentials.for_smtp(account).smtp_password, credentials.reveal(doc.get("imap_password"), account)


def test_encrypt_passwords_converts_every_plain_password_and_says_how_many(cli: Any, sync_db: Any) -> None:
    first = plain_account(sync_db, "a@sender.example", imap_host="127.0.0.1", imap_password="imap-plain")
    second = plain_account(sync_db, "b@sender.example")
    added(cli, sync_db)  # encrypted already

    result = ok(cli("account", "encrypt-passwords", "--yes"))

    assert "Encrypted 3 passwords of 2 accounts" in result.stdout and "1 were encrypted already" in result.stdout
    for doc in sync_db.email_accounts.find():
        assert "plain" not in str(doc)
    assert revealed(cli, sync_db, first) == ("plain-pw", "imap-plain")
    assert revealed(cli, sync_db, second)[0] == "plain-pw"
    assert "Encrypted 0 passwords" in ok(cli("account", "encrypt-passwords", "--yes")).stdout


def test_encrypt_passwords_asks_first_without_yes(cli: Any, sync_db: Any) -> None:
    plain_account(sync_db, "a@sender.example")

    result = cli("account", "encrypt-passwords")

    assert result.exit_code == 1 and "pass --yes" in result.stderr
    assert sync_db.email_accounts.find_one({})["smtp_password"] == "plain-pw"


def test_rotate_key_from_a_new_key_file_re_encrypts_every_password_and_keeps_the_old_key_readable(
    cli: Any, sync_db: Any, tmp_path: Path
) -> None:
    account_id = ObjectId(added(cli, sync_db, ANN, "--imap-host", "127.0.0.1", "--imap-password-env", "PW"))
    old = read_key_file(key_file(cli))
    before = sync_db.email_accounts.find_one({"_id": account_id})["smtp_password"]
    new = generate_key()
    new_file = tmp_path / "new.key"
    new_file.write_text(new + "\n")
    new_file.chmod(0o600)

    result = ok(cli("account", "rotate-key", "--new-key-file", str(new_file), "--yes"))

    assert "Re-encrypted 2 passwords of 1 accounts" in result.stdout and new not in result.output
    assert read_key_file(key_file(cli)) == [new, *old]
    stored = sync_db.email_accounts.find_one({"_id": account_id})["smtp_password"]
    assert stored != before and is_sealed(stored)
    assert revealed(cli, sync_db, account_id, [new]) == (PASSWORD, PASSWORD)  # the new key alone reads it


def test_rotate_key_generate_on_the_key_file_and_the_environment_key_refuses_it(cli: Any, sync_db: Any) -> None:
    account_id = ObjectId(added(cli, sync_db))
    old = read_key_file(key_file(cli))

    ok(cli("account", "rotate-key", "--generate", "--yes"))

    keys = read_key_file(key_file(cli))
    assert len(keys) == 2 and keys[1:] == old and stat.S_IMODE(key_file(cli).stat().st_mode) == 0o600
    assert revealed(cli, sync_db, account_id, keys[:1])[0] == PASSWORD
    refused = cli("account", "rotate-key", "--generate", "--yes", env={"OUTBOUND_CREDENTIALS_KEY": keys[0]})
    assert refused.exit_code == 2 and "--new-key-file" in refused.stderr


def test_rotate_key_refuses_a_new_key_file_others_may_read(cli: Any, sync_db: Any, tmp_path: Path) -> None:
    account_id = ObjectId(added(cli, sync_db))
    before = sync_db.email_accounts.find_one({"_id": account_id})
    new_file = tmp_path / "new.key"
    new_file.write_text(generate_key() + "\n")
    new_file.chmod(0o644)

    result = cli("account", "rotate-key", "--new-key-file", str(new_file), "--yes")

    assert result.exit_code == 2 and f"chmod 600 {new_file}" in result.stderr.replace("\n", "")
    assert sync_db.email_accounts.find_one({"_id": account_id}) == before


def test_a_world_readable_key_file_is_refused_when_adding_an_account(cli: Any, sync_db: Any) -> None:
    added(cli, sync_db)
    key_file(cli).chmod(0o644)

    result = cli(*add_args(2525, "bo@sender.example", "--no-test"), "--password-env", "PW", env={"PW": "x"})

    assert result.exit_code == 2 and "chmod 600" in result.stderr.replace("\n", "")
    assert counts(sync_db) == (1, 1, 1)
