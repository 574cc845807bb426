"""Deliver the recipients a batch's plans chose: template -> reserve -> compose -> (rounds: ledger, SMTP) -> verdicts.

Everything here takes the batch's list and returns a settlement per item; `records.py` writes them. The
SMTP part (ledger entries, one message per open connection at a time, classification) is in `rounds.py`.

A follow-up is pinned to its recipient's mailbox (the account that sent the recipient's first message): it
waits for that account rather than switching, unless the account may no longer send for the campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.domain.models import Template, recipient_key
from app.domain.settlement import Outcome, RecipientResult, Settlement, release, retry, settle
from app.domain.templating import Renderer
from app.logging import get_logger
from app.metrics import registry as metrics
from app.send.compose import ComposeError, compose
from app.send.items import Delivered, SendItem
from app.send.lease_keeper import LeaseKeeper
from app.send.reserve_stage import Reserving
from app.send.rounds import Ready, Rounds
from app.store import leases, schema
from app.store.arbiter import Arbiter, Reservation
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.domain_limits import DomainSlot, DomainSlots
from app.store.leases import Lease, LeaseLost
from app.transport.base import Sender
from app.transport.dns_check import DnsChecker

if TYPE_CHECKING:
    from app.send.pipeline import PipelineConfig

LEASE_MARGIN_SECONDS = 10.0
MX_TIMEOUT_SECONDS = 2.0  # a domain limit grouped by MX waits no longer for DNS; without an answer it counts alone


class Delivery:
    """Reserve, compose and send a batch's chosen recipients."""

    def __init__(
        self,
        db: Database,
        *,
        arbiter: Arbiter,
        sender: Sender,
        catalog: Catalog,
        renderer: Renderer,
        config: PipelineConfig,
        pause: Callable[[str, str, datetime], Awaitable[None]],
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.pause = pause
        self.leads = db[schema.CAMPAIGN_LEADS]
        self.arbiter = arbiter
        self.reserving = Reserving(arbiter, config.account_filter)
        self.catalog = catalog
        self.renderer = renderer
        self.config = config
        self.clock = clock
        self.stopping = asyncio.Event()
        self.rounds = Rounds(db, arbiter=arbiter, sender=sender, config=config, stopping=self.stopping, clock=clock)
        dns = DnsChecker(config.dns_servers, timeout=MX_TIMEOUT_SECONDS)
        self.domains = DomainSlots(db, default_limit=config.default_domain_limit, mx_hosts=dns.mx_hosts)

    async def run(self, items: Sequence[SendItem], now: datetime, keeper: LeaseKeeper) -> Delivered:
        """Deliver `items`; every item ends with a settlement or a final outcome. `keeper` holds their leases."""
        out = Delivered()
        if not items:
            return out
        if self.stopping.is_set():
            out.settled += [(it, _back(it, "inactive", now)) for it in items]
            return out
        with_template: list[tuple[SendItem, Template]] = []
        for item in items:
            template = await self.catalog.template(item.ctx.step.template_id)
            if isinstance(template, Template):
                with_template.append((item, template))
            else:
                reason = f"template {item.ctx.step.template_id} not found" if template is None else str(template)
                out.settled.append((item, await self._config_error(item, reason, now)))
        with_template, slots = await self._take_domain_slots(with_template, now, out)
        made: list[Reservation] = []
        # Shared reservations first; what they left over is reserved one at a time after those sends, when
        # their commits have moved the accounts' wait windows to where they really are.
        try:
            reserved, rest = await self.reserving.shared(with_template, now, made)
            await self._send(reserved, now, out, keeper)
            await self._send(await self.reserving.one_at_a_time(rest, now, out, made), now, out, keeper)
            await self._give_back_domain_slots(slots)
        except BaseException:
            await asyncio.shield(self._return_owed(made, now))
            raise
        finally:
            self.rounds.handed.difference_update(id(item) for item in items)
            self.rounds.closed_tokens.difference_update(r.token for r in made)
        return out

    async def _return_owed(self, made: list[Reservation], now: datetime) -> None:
        """The batch failed (a database error, a stop past the grace period): give back the reservations never
        handed to SMTP, so that they do not hold their accounts' counts and wait windows for the rest of the day.
        Those handed over are the SMTP stage's to settle, and those already given back are not given back again."""
        owed = [r for r in made if r.token not in self.rounds.closed_tokens]
        if owed:
            with contextlib.suppress(Exception):
                await self.arbiter.rollback_many(owed, now, reason="the batch failed before these were sent")

    async def _take_domain_slots(
        self, pairs: list[tuple[SendItem, Template]], now: datetime, out: Delivered
    ) -> tuple[list[tuple[SendItem, Template]], dict[int, DomainSlot]]:
        """Per-domain limits, one write for the batch: a recipient whose domain is full waits for its next slot
        (the next hour), the others go on."""
        domains = [item.ctx.lead.recipients[item.index].email.rpartition("@")[2] for item, _ in pairs]
        decisions = await self.domains.reserve(domains, now)
        kept: list[tuple[SendItem, Template]] = []
        slots: dict[int, DomainSlot] = {}
        for (item, template), decision in zip(pairs, decisions, strict=True):
            if decision.wait_until is not None:
                metrics.current().refused(metrics.DOMAIN_LIMIT)
                get_logger(campaign_id=item.ctx.campaign.id, lead_id=str(item.ctx.lead.id)).debug(
                    "worker.waiting_for_domain", retry_at=decision.wait_until.isoformat(), reason=decision.reason
                )
                outcome = Outcome("waiting", item.ctx.lead.id, item.ctx.campaign.id, next_due_at=decision.wait_until)
                out.settled.append((item, release(item.ctx, item.skipped, decision.wait_until, outcome, now)))
                continue
            if decision.slot is not None:
                slots[id(item)] = decision.slot
            kept.append((item, template))
        return kept, slots

    async def _give_back_domain_slots(self, slots: dict[int, DomainSlot]) -> None:
        """The slots of recipients whose messages were not handed to SMTP (no account, compose error, stopping)."""
        unused = [slot for key, slot in slots.items() if key not in self.rounds.handed]
        try:
            await self.domains.give_back(unused)
        except PyMongoError as exc:  # they stay counted: the limit errs toward fewer sends
            get_logger().warning("worker.db_error", error=str(exc), phase="domain_slots_give_back")

    async def _config_error(self, item: SendItem, reason: str, now: datetime) -> Settlement:
        """The operator's error: pause the campaign with the reason and hand the lead back untouched."""
        get_logger(campaign_id=item.ctx.campaign.id, lead_id=str(item.ctx.lead.id)).error(
            "worker.template_error", template_id=item.ctx.step.template_id, reason=reason
        )
        await self.pause(item.ctx.campaign.id, reason, now)
        return _back(item, "paused", now)

    async def _send(
        self,
        reserved: list[tuple[SendItem, Template, Reservation]],
        now: datetime,
        out: Delivered,
        keeper: LeaseKeeper,
    ) -> None:
        ready = await self._compose(reserved, now, out, keeper)
        out.settled += await self.rounds.run(ready, now)
        out.outcomes.update(self.rounds.lost)
        self.rounds.lost.clear()

    async def _compose(
        self,
        reserved: list[tuple[SendItem, Template, Reservation]],
        now: datetime,
        out: Delivered,
        keeper: LeaseKeeper,
    ) -> list[Ready]:
        ready: list[Ready] = []
        for item, template, reservation in reserved:
            account = reservation.account
            general = await self.catalog.general_settings(account.id)
            ctx = item.ctx
            if item.pin is not None and item.pin != account.id:
                get_logger(campaign_id=ctx.campaign.id, lead_id=str(ctx.lead.id), account_id=account.id).warning(
                    "worker.mailbox_unavailable",
                    mailbox=item.pin,
                    reason="the recipient's mailbox may not send for this campaign (not active, no longer assigned, "
                    "or outside this dispatcher's account filter): the follow-up goes from another account",
                )
            message = compose(
                self.renderer,
                template,
                campaign=ctx.campaign,
                lead=ctx.lead,
                step_order=ctx.step.step_order,
                index=item.index,
                account=account,
                general=general,
                thread=ctx.step.thread,
                previous=ctx.thread_before(item.index),
                links=self.config.unsubscribe,
            )
            if isinstance(message, ComposeError):
                self.rounds.closed_tokens.add(reservation.token)
                await self.arbiter.rollback(reservation, now, reason=message.reason)
                out.settled.append((item, await self._unsendable(item, message, account.id, now)))
                continue
            lease = await self._fresh_lease(item, reservation, now, out, keeper)
            if lease is not None:
                ready.append(Ready(item, lease, reservation, message))
        return ready

    async def _unsendable(self, item: SendItem, error: ComposeError, account_id: str, now: datetime) -> Settlement:
        if error.kind == "template":
            return await self._config_error(item, error.reason, now)
        if error.kind == "account":
            # This account cannot send this campaign's template: the recipient goes to another account.
            get_logger(account_id=account_id, campaign_id=item.ctx.campaign.id).error(
                "worker.template_error", template_id=error.template_id, reason=error.reason
            )
            key = recipient_key(item.ctx.step.step_order, item.index)
            previous = item.ctx.lead.progress.retries.get(key)
            tries = int(previous.get("attempts", 0)) + 1 if isinstance(previous, Mapping) else 1
            if tries >= self.config.retry.for_campaign(item.ctx.campaign.settings.max_attempts).max_attempts:
                reason = f"no sending account of this campaign can render its template: {error.reason}"
                return await self._config_error(item, reason, now)
            failed = RecipientResult("failed", None, account_id=account_id, error=error.reason)
            due = now + timedelta(seconds=self.config.retry.base_seconds * tries / 2)
            return retry(item.ctx, item.skipped, item.index, failed, tries, due, now)
        result = RecipientResult("failed", "failed", account_id=account_id, error=error.reason, activity="failed")
        return settle(item.ctx, [*item.skipped, (item.index, result)], now)

    async def _fresh_lease(
        self, item: SendItem, reservation: Reservation, now: datetime, out: Delivered, keeper: LeaseKeeper
    ) -> Lease | None:
        """The lease as the keeper holds it, extended first when it might run out during the SMTP exchange (None:
        it was lost, and the reservation is given back). Measured on the clock, not the batch's `now`: a batch may
        have been at work for longer than its lease."""
        lease = keeper.current(item.lease)
        if lease is not None:
            at = self.clock()
            if (lease.until - at).total_seconds() >= self.config.send_timeout_seconds + LEASE_MARGIN_SECONDS:
                return lease
            try:
                renewed = await leases.renew(self.leads, lease, now=at, lease_seconds=self.config.lease_seconds)
                keeper.renewed(renewed, item.lease)
                return renewed
            except LeaseLost:
                keeper.renewed(None, item.lease)
        self.rounds.closed_tokens.add(reservation.token)
        with contextlib.suppress(Exception):
            await self.arbiter.rollback(reservation, now, reason="lease lost before sending")
        get_logger(lead_id=str(item.lease.lead_id)).warning("worker.lease_lost", reason="lost before sending")
        out.outcomes[item.position] = Outcome("lease_lost", item.lease.lead_id)
        return None


def _back(item: SendItem, kind: str, now: datetime) -> Settlement:
    """Hand the lead back due now, untouched but for recorded skips."""
    outcome = Outcome(kind, item.ctx.lead.id, item.ctx.campaign.id, next_due_at=now)
    return release(item.ctx, item.skipped, now, outcome, now)
