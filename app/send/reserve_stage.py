"""The reserve stage: an account for each recipient to send now, shared round trips first, then one at a time.

A campaign's first attempts and follow-ups share the arbiter's batch reservation; a retry (which prefers another
account) and what the batch left over are reserved one at a time, until the campaign, or a follow-up's mailbox,
has no free account: the items waiting for it are released until then, with the reason.
"""

from __future__ import annotations

from datetime import datetime

from app.domain.models import Template
from app.domain.settlement import Outcome, release
from app.logging import get_logger
from app.send.items import Delivered, SendItem
from app.store.arbiter import Arbiter, NoAccountAvailable, Reservation


class Reserving:
    """Reservations for a batch's recipients, under the dispatcher's account filter."""

    def __init__(self, arbiter: Arbiter, account_filter: frozenset[str] | None) -> None:
        self.arbiter = arbiter
        self.account_filter = account_filter

    async def shared(
        self, items: list[tuple[SendItem, Template]], now: datetime, made: list[Reservation]
    ) -> tuple[list[tuple[SendItem, Template, Reservation]], list[tuple[SendItem, Template]]]:
        """Accounts for each campaign's first attempts and follow-ups, sharing round trips; (reserved, left over).
        Each reservation is also added to `made` as soon as it is made."""
        groups: dict[str, list[tuple[SendItem, Template]]] = {}
        for pair in items:
            groups.setdefault(pair[0].ctx.campaign.id, []).append(pair)
        reserved: list[tuple[SendItem, Template, Reservation]] = []
        rest: list[tuple[SendItem, Template]] = []
        for group in groups.values():
            # A retry prefers another account, one at a time; a follow-up keeps its mailbox, retried or not.
            shared: list[tuple[SendItem, Template]] = []
            for pair in group:
                (shared if pair[0].avoid is None or pair[0].pin is not None else rest).append(pair)
            if len(shared) < 2:
                rest += shared
                continue
            campaign = group[0][0].ctx.campaign
            pins = [item.pin for item, _ in shared]
            found = await self.arbiter.reserve_many(campaign, now, pins, only=self.account_filter)
            made += [r for r in found if r is not None]
            for (item, template), reservation in zip(shared, found, strict=True):
                if reservation is None:
                    rest.append((item, template))
                else:
                    reserved.append((item, template, reservation))
        return reserved, rest

    async def one_at_a_time(
        self, rest: list[tuple[SendItem, Template]], now: datetime, out: Delivered, made: list[Reservation]
    ) -> list[tuple[SendItem, Template, Reservation]]:
        """One at a time, until a campaign (or a follow-up's mailbox) has no free account: the items waiting for
        it are released until then, with the reason."""
        reserved: list[tuple[SendItem, Template, Reservation]] = []
        exhausted: dict[tuple[str, str | None], NoAccountAvailable] = {}
        for item, template in rest:
            campaign, key = item.ctx.campaign, (item.ctx.campaign.id, item.pin)
            found = exhausted.get(key) or await self._one(item, now)
            if isinstance(found, Reservation):
                made.append(found)
                reserved.append((item, template, found))
                continue
            if key not in exhausted:
                exhausted[key] = found
                _log_waiting(item, found)
            # Only a campaign without a free account makes the dispatcher hold its leads back ("no_account").
            kind = "no_account" if item.pin is None else "waiting"
            outcome = Outcome(kind, item.ctx.lead.id, campaign.id, next_due_at=found.retry_at)
            out.settled.append((item, release(item.ctx, item.skipped, found.retry_at, outcome, now)))
        return reserved

    async def _one(self, item: SendItem, now: datetime) -> Reservation | NoAccountAvailable:
        only = self.account_filter
        if item.pin is not None:
            return await self.arbiter.reserve(item.ctx.campaign, now, only=only, pin=item.pin)
        # After a failure, prefer a different account; fall back to the same one if it is the only one free.
        exclude = (item.avoid,) if item.avoid else ()
        found = await self.arbiter.reserve(item.ctx.campaign, now, exclude=exclude, only=only)
        if isinstance(found, NoAccountAvailable) and exclude:
            found = await self.arbiter.reserve(item.ctx.campaign, now, only=only)
        return found


def _log_waiting(item: SendItem, found: NoAccountAvailable) -> None:
    """Once per campaign without a free account (INFO), or per busy mailbox its follow-ups wait for (DEBUG)."""
    when = found.retry_at.isoformat()
    if item.pin is None:
        get_logger(campaign_id=item.ctx.campaign.id).info(
            "worker.waiting_for_account", retry_at=when, reason=found.reason
        )
    else:
        get_logger(campaign_id=item.ctx.campaign.id, account_id=item.pin).debug(
            "worker.waiting_for_mailbox", retry_at=when, reason=found.reason
        )
