"""An account's IMAP settings: defaults, what is refused (naming the field and what it accepts), never the password."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from app.domain.accounts import ImapSettings
from app.domain.models import EmailAccount, InvalidDocument


def account_doc(**fields: Any) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "email": "sender@example.com",
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_username": "sender@example.com",
        "smtp_password": "smtp-app-password",
        "status": "active",
        **fields,
    }


def refused(doc: dict[str, Any]) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        EmailAccount.from_doc(doc)
    return caught.value


def test_an_account_without_imap_host_does_not_read_its_inbox() -> None:
    account = EmailAccount.from_doc(account_doc())

    assert not account.reads_inbox
    with pytest.raises(ValueError, match=r"set imap_host \(and imap_port, imap_security\) on the account"):
        account.imap_settings()


def test_imap_defaults_implicit_tls_on_993_the_inbox_and_the_smtp_login() -> None:
    account = EmailAccount.from_doc(account_doc(imap_host="imap.example.com"))

    assert account.reads_inbox
    assert account.imap_settings(timeout=12.5) == ImapSettings(
        host="imap.example.com",
        port=993,
        security="tls",
        username="sender@example.com",
        password="smtp-app-password",
        folders=("INBOX",),
        timeout=12.5,
    )


@pytest.mark.parametrize(("security", "port"), [("tls", 993), ("starttls", 143), ("none", 143)])
def test_imap_port_defaults_to_the_usual_port_of_its_security(security: str, port: int) -> None:
    account = EmailAccount.from_doc(account_doc(imap_host="imap.example.com", imap_security=security))

    assert (account.imap_security, account.imap_port) == (security, port)


def test_imap_fields_given_are_used() -> None:
    doc = account_doc(
        imap_host="imap.example.com",
        imap_port=1143,
        imap_security="starttls",
        imap_username="reader",
        imap_password="imap-app-password",
        imap_folders=["INBOX", "Replies", "INBOX"],
    )

    imap = EmailAccount.from_doc(doc).imap_settings()

    assert (imap.address, imap.security, imap.username, imap.password) == (
        "imap.example.com:1143",
        "starttls",
        "reader",
        "imap-app-password",
    )
    assert imap.folders == ("INBOX", "Replies")  # each folder read once


def test_imap_password_is_in_no_repr() -> None:
    account = EmailAccount.from_doc(account_doc(imap_host="imap.example.com", imap_password="imap-app-password"))

    assert "imap-app-password" not in repr(account)
    assert "imap-app-password" not in repr(account.imap_settings())
    assert "smtp-app-password" not in repr(
        EmailAccount.from_doc(account_doc(imap_host="i.example.com")).imap_settings()
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("imap_host", "imap.example.com\r\nX: y", "is not a host name"),
        ("imap_host", "imap example.com", "is not a host name"),
        ("imap_host", 993, "must be a string"),
        ("imap_port", 70000, "must be a TCP port (1-65535), got 70000"),
        ("imap_port", 0, "must be >= 1, got 0"),
        ("imap_port", "993", "must be a whole number"),
        ("imap_security", "ssl", "must be one of tls, starttls, none, got 'ssl'"),
        ("imap_username", ["reader"], "must be a string"),
        ("imap_password", 1234, "must be a string"),
        ("imap_folders", [], 'must be a non-empty list of folder names such as ["INBOX"]'),
        ("imap_folders", "INBOX", "must be a non-empty list"),
        ("imap_folders", ["INBOX", ""], "must hold folder names (non-empty strings, one line each), got ''"),
        ("imap_folders", ["INBOX", "  "], "must hold folder names"),
        ("imap_folders", ["INBOX", 7], "must hold folder names"),
        ("imap_folders", ["INBOX\r\nA1 DELETE INBOX"], "one line each"),
    ],
)
def test_malformed_imap_field_is_refused_naming_it_and_what_it_accepts(field: str, value: Any, reason: str) -> None:
    doc = account_doc(**{"imap_host": "imap.example.com", field: value})

    error = refused(doc)

    assert (error.collection, error.doc_id, error.field) == ("email_accounts", doc["_id"], field)
    assert reason in error.reason


def test_a_malformed_imap_field_is_refused_even_without_imap_host() -> None:
    assert refused(account_doc(imap_port="993")).field == "imap_port"
