"""A sender that builds and logs each message but sends nothing (`run-dispatcher --dry-run`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from app.domain.models import EmailAccount
from app.logging import get_logger
from app.transport.base import OutgoingMessage, SendResult, ValidatedMessage, build_message, validated


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DryRunSender:
    """Records every message in `messages` (with the account in `accounts`) and logs `worker.dry_run`."""

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self.clock = clock
        self.messages: list[OutgoingMessage] = []
        self.accounts: list[str] = []

    async def send(self, account: EmailAccount, message: OutgoingMessage | ValidatedMessage) -> SendResult:
        """Validate and build the message exactly as a real send would (InvalidHeader), then record it."""
        checked = validated(message)
        build_message(checked, now=self.clock())
        outgoing = checked.message
        self.messages.append(outgoing)
        self.accounts.append(account.id)
        get_logger().info(
            "worker.dry_run",
            account_id=account.id,
            to=outgoing.to_email,
            subject=outgoing.subject,
            message_id=outgoing.message_id,
        )
        return SendResult(outgoing.message_id, 250, "dry run: not sent", self.clock())

    async def close(self) -> None:
        """Nothing to release."""
