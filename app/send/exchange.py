"""The SMTP exchange of one message, its failure as a plain value, and the retried writes that record sends.

Kept apart from the rounds (`rounds.py`) so that what can go wrong at the server, and how it is named, reads in
one place: `domain/outcomes.py` then classifies a `Failure` with the attempt count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import PyMongoError

from app.domain.models import EmailAccount
from app.domain.outcomes import AUTH, IN_DOUBT, PERMANENT, TRANSIENT, UNSENDABLE, Failure
from app.logging import get_logger
from app.metrics import registry as metrics
from app.transport.base import (
    AccountAuthError,
    PermanentSendError,
    Sender,
    SendError,
    UnsupportedAddressError,
    ValidatedMessage,
)

DURABLE_WRITE_ATTEMPTS = 6
T = TypeVar("T")


async def exchange(
    sender: Sender, account: EmailAccount, message: ValidatedMessage, *, lead_id: str, campaign_id: str
) -> Failure | None:
    """Hand one message to SMTP; its failure as a plain value (None: accepted)."""
    started = time.monotonic()
    try:
        await sender.send(account, message)
    except asyncio.CancelledError:
        raise
    except AccountAuthError as exc:
        return Failure(AUTH, exc.code, str(exc))
    except UnsupportedAddressError as exc:  # the server lacks SMTPUTF8: not a bounce, nothing to suppress
        return Failure(UNSENDABLE, exc.code, str(exc))
    except PermanentSendError as exc:
        return Failure(PERMANENT, exc.code, str(exc))
    except SendError as exc:
        return Failure(IN_DOUBT if exc.uncertain else TRANSIENT, exc.code, str(exc))
    except Exception as exc:  # unexpected, after the message may have reached the server: never resend
        get_logger(account_id=account.id).error("worker.smtp_error", error=repr(exc), exc_info=exc)
        return Failure(IN_DOUBT, None, repr(exc))
    finally:
        metrics.current().smtp_send(account.id, time.monotonic() - started)
    get_logger(lead_id=lead_id, campaign_id=campaign_id, account_id=account.id).info(
        "worker.sent", to=message.rcpt_to, message_id=message.message.message_id
    )
    return None


async def durably(write: Callable[[], Awaitable[T]]) -> T:
    """Run a write that records sends, retrying database errors with backoff (bounded) before giving up."""
    for attempt in range(1, DURABLE_WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except PyMongoError as exc:
            if attempt == DURABLE_WRITE_ATTEMPTS:
                raise
            delay = min(2.0, 0.05 * 2**attempt)
            get_logger().warning("worker.db_error", error=str(exc), attempt=attempt, retry_in=delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
