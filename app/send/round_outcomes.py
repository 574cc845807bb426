"""What a round's plain outcomes settle to: a send made (its verdict), a send the ledger already knew, a
reservation reclaimed meanwhile, the ledger state of a verdict, and what a later step needs of a message. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.domain import ledger_states as lstate
from app.domain.outcomes import Verdict
from app.domain.recipient_status import recipient_status
from app.domain.settlement import Outcome, RecipientResult, Settlement, release, retry, settle
from app.logging import get_logger
from app.send.compose import variant_of
from app.transport.base import OutgoingMessage

if TYPE_CHECKING:
    from app.send.items import SendItem
    from app.send.rounds import Ready


def after_send(
    item: SendItem, account_id: str, message: OutgoingMessage, verdict: Verdict, attempts: int, now: datetime
) -> Settlement:
    """The lead's settlement for a send handed to SMTP by `account_id` (its `attempts`-th attempt) and classified
    as `verdict`: a retry is tried again at its time, anything else settles the recipient."""
    result = RecipientResult(
        verdict.status if verdict.status != "retry" else "failed",
        verdict.recipient_status,
        account_id,
        message.message_id,
        error=verdict.error,
        smtp_code=verdict.smtp_code,
    )
    result = with_message(result, message)
    if verdict.status == "retry" and verdict.retry_at is not None:
        return retry(item.ctx, item.skipped, item.index, result, attempts, verdict.retry_at, now)
    return settle(item.ctx, [*item.skipped, (item.index, result)], now)


def reclaimed(r: Ready, now: datetime) -> Settlement:
    """Our reservation was given back while we were taken for gone: send nothing, hand the lead back due now."""
    get_logger(lead_id=str(r.item.ctx.lead.id), account_id=r.reservation.account.id).warning(
        "worker.reservation_reclaimed", reason="this dispatcher was taken for gone; the send was not started"
    )
    outcome = Outcome("reclaimed", r.item.ctx.lead.id, r.item.ctx.campaign.id, next_due_at=now)
    return release(r.item.ctx, r.item.skipped, now, outcome, now)


def ledger_state(verdict: Verdict) -> str:
    return lstate.RETRY_WAIT if verdict.status == "retry" else verdict.status


def from_ledger(doc: dict[str, Any]) -> RecipientResult:
    """The recipient outcome a settled ledger document stands for (used after a crash or a race)."""
    state = str(doc.get("state"))
    outcome = state if state in ("sent", "uncertain") else "failed"
    code = doc.get("smtp_code") if isinstance(doc.get("smtp_code"), int) else None
    return RecipientResult(
        outcome,
        recipient_status(outcome, code),
        str(doc.get("account_id")) if doc.get("account_id") else None,
        str(doc.get("message_id")) if doc.get("message_id") else None,
        error=doc.get("last_error"),
        smtp_code=code,
        variant=str(doc["variant"]) if doc.get("variant") else None,
    )


def with_message(result: RecipientResult, message: OutgoingMessage) -> RecipientResult:
    """`result` with what the recipient's next step needs of the message: its subject and the thread it replied
    in (its References, oldest first), recorded in `progress.threads` when it was sent; and the template
    variant it was worded from, recorded with the send."""
    return replace(
        result,
        subject=message.subject,
        references=tuple(message.headers.get("References", "").split()),
        variant=variant_of(message) or result.variant,
    )
