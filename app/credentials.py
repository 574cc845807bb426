"""Passwords at rest: sealed with a key kept outside MongoDB, revealed only where a login needs them.

A password Outbound writes is stored as `enc:v1:<Fernet token>` (`cryptography`'s Fernet: AES-128-CBC with an
HMAC-SHA256, so a changed or foreign token is refused, never decrypted to garbage). Any other stored value is a
plain-text password written by another tool and is used as it is; `outbound account encrypt-passwords` seals
those.

The keys come from OUTBOUND_CREDENTIALS_KEY (comma-separated) or else from the key file `credentials.key` under
OUTBOUND_HOME (one key a line), created with mode 0600 the first time a password is sealed and refused while
other users may read it. The first key seals; every key reveals (MultiFernet), which is what lets a key
rotation keep both readable until every process has the new one.

Loading never raises for the processes that only reveal (the dispatcher, the inbox sync): a missing, unreadable
or wrong key is a `CredentialsError` for each account whose password needs it, naming the account and what to
do, so that account leaves rotation and the others go on. The commands that seal ask for the key up front.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import Settings
from app.domain.accounts import EmailAccount, ImapSettings

SEALED_PREFIX = "enc:v1:"
KEY_FILE_NAME = "credentials.key"
ENV_VARIABLE = "OUTBOUND_CREDENTIALS_KEY"


class CredentialsError(Exception):
    """A password cannot be sealed or revealed; the message says which and what to do."""


def is_sealed(stored: object) -> bool:
    """True when `stored` is a password sealed by Outbound (`enc:v1:...`)."""
    return isinstance(stored, str) and stored.startswith(SEALED_PREFIX)


def generate_key() -> str:
    """A new random Fernet key (44 characters of URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def check_key(key: str, where: str) -> str:
    """`key` stripped, or CredentialsError saying that `where` holds no Fernet key."""
    value = key.strip()
    try:
        Fernet(value)
    except ValueError:  # also binascii.Error
        raise CredentialsError(f"{where} is not a Fernet key (32 bytes in URL-safe base64, 44 characters)") from None
    return value


def _account_name(account: EmailAccount) -> str:
    return f"account {account.email} ({account.id})"


class Credentials:
    """Seal and reveal stored passwords with a set of keys (the first seals, all reveal).

    `origin` names where the keys came from, for messages. `problem`, when set, is why there are no usable keys
    (no key file, a key file others may read): revealing a sealed password then says so. With `key_file`, keys
    are read again from it when they do not reveal a password, so a rotation made by another process on this
    machine is picked up without a restart.
    """

    def __init__(
        self,
        keys: Sequence[str] = (),
        *,
        origin: str = "no key configured",
        problem: str | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.origin = origin
        self.problem = problem if keys or problem else f"no key is configured ({origin})"
        self.key_file = key_file
        self._keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys, the sealing one first (for a rotation; never print them)."""
        return self._keys

    def seal(self, password: str) -> str:
        """The stored form of `password`: `enc:v1:<token>` under the first key."""
        if self._fernet is None:
            raise CredentialsError(f"cannot encrypt a password: {self.problem}")
        return SEALED_PREFIX + self._fernet.encrypt(password.encode("utf-8")).decode("ascii")

    def reseal(self, stored: str) -> str:
        """A sealed value re-encrypted under the first key (MultiFernet.rotate); InvalidToken if no key reads it."""
        if self._fernet is None:
            raise CredentialsError(f"cannot re-encrypt a password: {self.problem}")
        token = stored.removeprefix(SEALED_PREFIX).encode("ascii")
        return SEALED_PREFIX + self._fernet.rotate(token).decode("ascii")

    def reveal(self, stored: str | None, account: EmailAccount, field: str = "smtp_password") -> str | None:
        """The password to log in with: a sealed value decrypted, anything else as stored.

        CredentialsError names the account and the field when a sealed value cannot be read with these keys.
        """
        if not is_sealed(stored):
            return stored
        assert stored is not None
        plain = self._open(stored)
        if plain is None and self._reload():
            plain = self._open(stored)
        if plain is not None:
            return plain
        raise CredentialsError(self._why(account, field))

    def for_smtp(self, account: EmailAccount) -> EmailAccount:
        """The account with its SMTP password revealed, to hand to the SMTP transport (and nowhere else)."""
        if not is_sealed(account.smtp_password):
            return account
        return replace(account, smtp_password=self.reveal(account.smtp_password, account))

    def for_imap(self, account: EmailAccount, timeout: float) -> ImapSettings:
        """The account's IMAP settings with the password revealed (ValueError without imap_host)."""
        settings = account.imap_settings(timeout)
        if not is_sealed(settings.password):
            return settings
        field = "imap_password" if account.imap_password != account.smtp_password else "smtp_password"
        return replace(settings, password=self.reveal(settings.password, account, field))

    def _open(self, stored: str) -> str | None:
        if self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX).encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None

    def _reload(self) -> bool:
        """Read the key file again; True when it now holds other keys than before."""
        if self.key_file is None:
            return False
        fresh = _from_key_file(self.key_file)
        if fresh.keys == self._keys or not fresh.keys:
            return False
        self._keys, self._fernet, self.problem = fresh._keys, fresh._fernet, None
        return True

    def _why(self, account: EmailAccount, field: str) -> str:
        resume = f"then `outbound account resume {account.id}` if it was taken out of rotation"
        if self._fernet is None:
            return (
                f"{_account_name(account)}: its {field} is encrypted and {self.problem}: {_fix(self.origin)}; {resume}"
            )
        return (
            f"{_account_name(account)}: its {field} is encrypted with a key this process does not have (keys from "
            f"{self.origin}): configure the key it was encrypted with (during a key rotation both keys, the new "
            f"one first), or set the password again with `outbound account edit {account.id} --password-prompt`; "
            f"{resume}"
        )


def _fix(origin: str) -> str:
    return (
        f"set {ENV_VARIABLE} to the key the passwords were encrypted with, or copy that machine's "
        f"{KEY_FILE_NAME} into OUTBOUND_HOME (mode 0600)"
        if origin != ENV_VARIABLE
        else f"set {ENV_VARIABLE} to the key the passwords were encrypted with"
    )


def key_file_path(settings: Settings) -> Path:
    """Where the key file is kept: `credentials.key` under OUTBOUND_HOME."""
    return settings.home / KEY_FILE_NAME


def credentials_for(settings: Settings) -> Credentials:
    """The keys this process reveals with; never raises (a problem is reported for each account it affects)."""
    if settings.credentials_key:
        return Credentials(settings.credentials_key.split(","), origin=ENV_VARIABLE)
    return _from_key_file(key_file_path(settings))


def _from_key_file(path: Path) -> Credentials:
    try:
        keys = read_key_file(path)
    except FileNotFoundError:
        problem = f"no key: {ENV_VARIABLE} is not set and {path} does not exist"
        return Credentials(origin=str(path), problem=problem, key_file=path)
    except CredentialsError as exc:
        return Credentials(origin=str(path), problem=str(exc), key_file=path)
    return Credentials(keys, origin=str(path), key_file=path)


def read_key_file(path: Path) -> list[str]:
    """The keys of a key file, one a line (blank lines and `#` comments ignored), the sealing one first.

    FileNotFoundError when it does not exist; CredentialsError when other users may read it, it cannot be read
    or a line is not a key.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CredentialsError(f"the key file {path} cannot be read ({exc.strerror or exc})") from None
    if mode & 0o077:
        raise CredentialsError(
            f"the key file {path} may be read by other users (mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`"
        )
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeError) as exc:
        raise CredentialsError(f"the key file {path} cannot be read ({exc})") from None
    wanted = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    keys = [check_key(line, f"{path} line {n}") for n, line in wanted]
    if not keys:
        raise CredentialsError(f"the key file {path} holds no key")
    return keys


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically with `keys` (the sealing one first), mode 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write("".join(f"{key}\n" for key in keys))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def sealing_credentials(settings: Settings) -> tuple[Credentials, bool]:
    """The keys a command seals with, and whether the key file was created just now.

    OUTBOUND_CREDENTIALS_KEY when set; else the key file, created with a new key (mode 0600) when it does not
    exist yet. CredentialsError when the key file cannot be used, saying what to do.
    """
    if settings.credentials_key:
        return Credentials(settings.credentials_key.split(","), origin=ENV_VARIABLE), False
    path = key_file_path(settings)
    created = _create_key_file(path)
    return Credentials(read_key_file(path), origin=str(path), key_file=path), created


def _create_key_file(path: Path) -> bool:
    """Write a new key to `path` unless it exists; True when this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # another command made it first, or it was there: read what is there
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(generate_key() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return True
