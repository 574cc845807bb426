"""Passwords at rest: sealed with Fernet keys from OUTBOUND_CREDENTIALS_KEY or a 0600 key file, plain text kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken

from app.config import Settings
from app.credentials import (
    SEALED_PREFIX,
    Credentials,
    CredentialsError,
    credentials_for,
    generate_key,
    is_sealed,
    key_file_path,
    read_key_file,
    sealing_credentials,
    write_key_file,
)
from app.domain.models import EmailAccount

ACCOUNT = EmailAccount.from_doc(
    {"_id": "acc1", "email": "ann@example.com", "smtp_host": "smtp.example.com", "smtp_password": "x"}
)


def test_a_sealed_password_is_prefixed_and_reveals_to_the_original() -> None:
    credentials = Credentials([generate_key()])

    sealed = credentials.seal("s3cret pässword")

    assert sealed.startswith(SEALED_PREFIX) and "s3cret" not in sealed
    assert is_sealed(sealed)
    assert credentials.reveal(sealed, ACCOUNT) == "s3cret pässword"


def test_a_plain_text_password_from_another_tool_is_used_as_stored() -> None:
    assert Credentials().reveal("plain-pw", ACCOUNT) == "plain-pw"
    assert Credentials([generate_key()]).reveal(None, ACCOUNT) is None


def test_a_wrong_key_names_the_account_and_what_to_do() -> None:
    sealed = Credentials([generate_key()]).seal("pw")

    with pytest.raises(CredentialsError) as caught:
        Credentials([generate_key()], origin="OUTBOUND_CREDENTIALS_KEY").reveal(sealed, ACCOUNT, "imap_password")

    message = str(caught.value)
    assert "account ann@example.com (acc1)" in message and "imap_password" in message
    assert "OUTBOUND_CREDENTIALS_KEY" in message and "outbound account resume acc1" in message


def test_no_key_at_all_says_how_to_configure_one() -> None:
    sealed = Credentials([generate_key()]).seal("pw")

    with pytest.raises(CredentialsError, match="no key is configured"):
        Credentials().reveal(sealed, ACCOUNT)


def test_every_key_reveals_and_the_first_seals_during_a_rotation() -> None:
    old, new = generate_key(), generate_key()
    by_old = Credentials([old]).seal("pw")
    both = Credentials([new, old])

    resealed = both.reseal(by_old)

    assert both.reveal(by_old, ACCOUNT) == "pw"
    assert Credentials([new]).reveal(resealed, ACCOUNT) == "pw"
    with pytest.raises(InvalidToken):
        Credentials([generate_key()]).reseal(by_old)


def test_the_smtp_and_imap_views_carry_the_revealed_password() -> None:
    credentials = Credentials([generate_key()])
    account = EmailAccount.from_doc(
        {
            "_id": "acc2",
            "email": "bo@example.com",
            "smtp_host": "smtp.example.com",
            "smtp_username": "bo",
            "smtp_password": credentials.seal("smtp-pw"),
            "imap_host": "imap.example.com",
            "imap_password": credentials.seal("imap-pw"),
        }
    )

    assert credentials.for_smtp(account).smtp_password == "smtp-pw"
    assert credentials.for_imap(account, 5.0).password == "imap-pw"
    assert "smtp-pw" not in repr(credentials.for_smtp(account))


def test_the_key_file_is_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")

    credentials, created = sealing_credentials(settings)
    again, created_again = sealing_credentials(settings)

    path = key_file_path(settings)
    assert created and not created_again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert again.keys == credentials.keys and len(credentials.keys) == 1
    assert credentials_for(settings).reveal(credentials.seal("pw"), ACCOUNT) == "pw"


def test_a_key_file_others_may_read_is_refused_with_the_chmod_to_run(tmp_path: Path) -> None:
    path = tmp_path / "credentials.key"
    write_key_file(path, [generate_key()])
    path.chmod(0o644)

    with pytest.raises(CredentialsError, match=f"chmod 600 {path}"):
        read_key_file(path)
    with pytest.raises(CredentialsError, match="may be read by other users"):
        sealing_credentials(Settings(home=tmp_path))


def test_a_dispatcher_with_an_unsafe_key_file_fails_only_the_encrypted_accounts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    credentials, _ = sealing_credentials(settings)
    sealed = credentials.seal("pw")
    key_file_path(settings).chmod(0o640)

    loaded = credentials_for(settings)  # never raises: the problem is each account's

    assert loaded.reveal("plain", ACCOUNT) == "plain"
    with pytest.raises(CredentialsError, match="chmod 600"):
        loaded.reveal(sealed, ACCOUNT)
    key_file_path(settings).chmod(0o600)
    assert loaded.reveal(sealed, ACCOUNT) == "pw"  # read again once it is fixed, without a restart


def test_a_missing_key_file_is_not_created_by_a_process_that_only_reveals(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")

    loaded = credentials_for(settings)

    assert not key_file_path(settings).exists()
    assert loaded.problem is not None and "does not exist" in loaded.problem


def test_the_environment_key_wins_over_the_key_file(tmp_path: Path) -> None:
    first, second = generate_key(), generate_key()
    settings = Settings(home=tmp_path, credentials_key=f"{first},{second}")

    credentials, created = sealing_credentials(settings)

    assert not created and not key_file_path(settings).exists()
    assert credentials.keys == (first, second)
    assert Credentials([first]).reveal(credentials.seal("pw"), ACCOUNT) == "pw"


def test_a_key_file_line_that_is_no_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "credentials.key"
    write_key_file(path, [generate_key(), "not-a-key"])

    with pytest.raises(CredentialsError, match="line 2 is not a Fernet key"):
        read_key_file(path)
