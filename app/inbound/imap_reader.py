"""Read an account's folders over IMAP for the sync: what is new since the progress it was given.

Blocking (IMAPClient): the sync runs it in the transport's bounded pool. One login per account per pass; each
folder is opened read-only and read from the last UID seen, or from its start when the folder's UIDVALIDITY
is not the one that UID belongs to. A folder that cannot be opened is reported and the others are read. The
password is revealed here, just before the login; one that cannot be (no key, a wrong key) fails this mailbox's
pass with the reason, like a refused login, and the sync backs off.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from app.credentials import Credentials
from app.domain.models import EmailAccount
from app.inbound.sync_values import FolderRead, ReadMailbox
from app.store.inbound import FolderProgress
from app.transport.imap import ImapError, Mailbox


def read_mailbox(
    timeout: float,
    tls_context: Callable[[], ssl.SSLContext] | None = None,
    credentials: Credentials | None = None,
) -> ReadMailbox:
    """A reader for `InboxSync`: IMAP with `timeout` seconds per operation, certificates verified, passwords
    revealed with `credentials` (default: no key, so only plain-text passwords work)."""
    keys = credentials or Credentials()

    def read(account: EmailAccount, progress: dict[str, FolderProgress], limit: int) -> list[FolderRead]:
        settings = keys.for_imap(account, timeout)
        reads: list[FolderRead] = []
        with Mailbox(settings, tls_context=tls_context() if tls_context else None) as box:
            for folder in settings.folders:
                try:
                    state = box.open(folder)
                except ImapError as exc:
                    if exc.stage != "select":
                        raise
                    reads.append(FolderRead(folder, 0, [], error=str(exc)))
                    continue
                known = progress.get(folder, FolderProgress(None, 0))
                same = known.uidvalidity == state.uidvalidity
                after = known.last_uid if same else 0
                restarted = known.uidvalidity is not None and not same
                reads.append(FolderRead(folder, state.uidvalidity, box.fetch_after(after, limit), restarted))
        return reads

    return read
