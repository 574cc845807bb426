"""Classify: what one SMTP outcome means for the recipient, from plain values. Pure.

The transport has already sorted every failure into a class (`app/transport/base.py`); this turns the class,
the server's words and the attempt count into the verdict the pipeline records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.domain.scheduling import backoff_seconds

# Failure kinds, as the send stage reads them off the transport's error classes.
AUTH = "auth"  # the account's credentials or configuration were refused
PERMANENT = "permanent"  # 5xx for this recipient or message
TRANSIENT = "transient"  # 4xx, dropped before DATA, timeout
IN_DOUBT = "in_doubt"  # dropped while DATA was in flight, or an unexpected error: it may have been delivered
# The address is fine but this server cannot take it (a non-ASCII local part without SMTPUTF8): fail the
# recipient without calling it a bounce or suppressing it.
UNSENDABLE = "unsendable"


@dataclass(frozen=True)
class Failure:
    """A send that did not end with the server's acceptance."""

    kind: str
    code: int | None
    text: str


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a recipient is tried again."""

    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    max_attempts: int = 5

    def for_campaign(self, max_attempts: int | None) -> RetryPolicy:
        """This policy with a campaign's own retry budget (a job's --max-retries), when it has one."""
        return self if max_attempts is None else replace(self, max_attempts=max_attempts)


@dataclass(frozen=True)
class Verdict:
    """What to record for one send.

    `status`: sent, failed, uncertain or retry. `recipient_status` is the new `lead_data` status (None: keep).
    `retry_at` is set for a retry, `suppress` for a hard bounce, `account_out` when the account must leave
    the rotation (with the reason); the send's count goes back to the account unless `counts` is True.
    """

    status: str
    recipient_status: str | None
    error: str | None = None
    smtp_code: int | None = None
    retry_at: datetime | None = None
    suppress: bool = False
    account_out: str | None = None
    counts: bool = False


SENT = Verdict("sent", "contacted", counts=True)


def classify(
    failure: Failure | None,
    attempts: int,
    now: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float] | None = None,
) -> Verdict:
    """The verdict for a send's outcome (None: accepted) after `attempts` attempts (this one included)."""
    if failure is None:
        return SENT
    if failure.kind == IN_DOUBT:
        return Verdict("uncertain", "uncertain", f"delivery uncertain: {failure.text}", failure.code, counts=True)
    if failure.kind == PERMANENT:
        return Verdict("failed", "bounced", failure.text, failure.code, suppress=True)
    if failure.kind == UNSENDABLE:
        return Verdict("failed", "failed", failure.text, failure.code)
    out = None
    if failure.kind == AUTH:
        out = f"authentication failed: {failure.text}"
    if attempts >= policy.max_attempts:
        reason = f"gave up after {attempts} attempts; last error: {failure.text}"
        return Verdict("failed", "failed", reason, failure.code, account_out=out)
    # Another account may take it at once after an account failure; a server's 4xx waits with backoff.
    delay = 0.0
    if failure.kind != AUTH:
        kwargs = {"rand": rand} if rand is not None else {}
        delay = backoff_seconds(attempts, base=policy.base_seconds, cap=policy.cap_seconds, **kwargs)
    return Verdict("retry", None, failure.text, failure.code, retry_at=now + timedelta(seconds=delay), account_out=out)
