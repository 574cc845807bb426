"""The SMTP stage: ledger entries, one message per open connection at a time, classification, recording.

Sends go out in rounds: each round takes at most one message per account (the transport keeps one connection
per account), moves those to the ledger's `sending` state with one write, and hands them to SMTP together. So
a crash can leave at most one send per open connection `sending` (later `uncertain`), and a stop between
rounds starts nothing new: what was not begun is given back, its reservation returned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.domain import ledger_states as lstate
from app.domain.outcomes import Failure, Verdict, classify
from app.domain.settlement import Outcome, Settlement, release, settle
from app.logging import get_logger
from app.metrics import registry as metrics
from app.send.compose import variant_of
from app.send.connections import ConnectionLocks, HeldConnections
from app.send.exchange import durably, exchange
from app.send.round_outcomes import after_send, from_ledger, ledger_state, reclaimed, with_message
from app.store import ledger, schema, suppressions
from app.store.arbiter import Arbiter, Reservation
from app.store.client import Database
from app.store.documents import NotFound
from app.store.leases import Lease
from app.transport.base import (
    Sender,
    ValidatedMessage,
    validated,
)

if TYPE_CHECKING:
    from app.send.items import SendItem
    from app.send.pipeline import PipelineConfig


@dataclass(frozen=True)
class Ready:
    """A composed message with its reservation, ready for a round."""

    item: SendItem
    lease: Lease
    reservation: Reservation
    message: ValidatedMessage


@dataclass(frozen=True)
class _Sent:
    ready: Ready
    attempt: ledger.Attempt
    verdict: Verdict
    ended: datetime  # when its round's SMTP exchanges were over
    recorded: bool = True  # False: another dispatcher declared it uncertain meanwhile


class Rounds:
    """Hands ready messages to SMTP, a round at a time, and turns what happened into settlements."""

    def __init__(
        self,
        db: Database,
        *,
        arbiter: Arbiter,
        sender: Sender,
        config: PipelineConfig,
        stopping: asyncio.Event,
        clock: Callable[[], datetime],
    ) -> None:
        self.sends = db[schema.SENDS]
        self.suppressions = db[schema.SUPPRESSIONS]
        self.arbiter = arbiter
        self.sender = sender
        self.config = config
        self.stopping = stopping
        self.lost: dict[int, Outcome] = {}
        # id() of the items whose messages were handed to SMTP and count: their domain slots are kept.
        self.handed: set[int] = set()
        # Tokens of the reservations already given back, or given to `mark_in_flight` (from then on this stage
        # settles them): a batch that fails part way gives back only the others (`Delivery._return_owed`).
        self.closed_tokens: set[str] = set()
        self.clock = clock
        self._connections = ConnectionLocks()

    async def run(self, ready: list[Ready], now: datetime) -> list[tuple[SendItem, Settlement]]:
        """Send every ready message (rounds of one per account) and settle each."""
        by_account: dict[str, list[Ready]] = {}
        for r in ready:
            by_account.setdefault(r.reservation.account.id, []).append(r)
        queues = list(by_account.values())
        settled: list[tuple[SendItem, Settlement]] = []
        finished: list[_Sent] = []
        try:
            while any(queues):
                batch = [q.pop(0) for q in queues if q]
                if self.stopping.is_set():
                    settled += await self._give_back(batch + [r for q in queues for r in q], now)
                    break
                sent, unsent = await self._round(batch, now)
                finished += sent
                settled += unsent
        except BaseException:
            # A later round failed: the sends of the earlier ones still count (or are given back) as they ended.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._settle_usage(finished, now))
            raise
        settled += await self._record(finished, now)
        return settled

    async def _give_back(self, ready: list[Ready], now: datetime) -> list[tuple[SendItem, Settlement]]:
        """Stopping: nothing of these reached SMTP; return their reservations and hand the leads back."""
        self.closed_tokens.update(r.reservation.token for r in ready)
        with contextlib.suppress(Exception):
            await self.arbiter.rollback_many([r.reservation for r in ready], now, reason="dispatcher stopping")
        out = []
        for r in ready:
            outcome = Outcome("inactive", r.item.ctx.lead.id, r.item.ctx.campaign.id, next_due_at=now)
            out.append((r.item, release(r.item.ctx, r.item.skipped, now, outcome, now)))
        return out

    async def _round(self, batch: list[Ready], now: datetime) -> tuple[list[_Sent], list[tuple[SendItem, Settlement]]]:
        # The account's connection first (another batch may be using it): only then is a send in the exchange.
        held = await self._connections.take(sorted({r.reservation.account.id for r in batch}))
        try:
            if self.stopping.is_set():
                return [], await self._give_back(batch, now)
            return await self._start_and_send(batch, now, held)
        finally:
            held.release_all()

    async def _start_and_send(
        self, batch: list[Ready], now: datetime, held: HeldConnections
    ) -> tuple[list[_Sent], list[tuple[SendItem, Settlement]]]:
        # In flight from here: a reservation returned meanwhile (this process was taken for gone) sends nothing.
        batch, unsent = await self._mark_in_flight(batch, now, held)
        if not batch:
            return [], unsent
        go, settled = await self._take_entries(batch, now, held)
        unsent += settled
        try:
            failures = await asyncio.gather(*(_exchange(self.sender, r) for r, _ in go))
        except asyncio.CancelledError:
            # Stopped past the grace period mid-send: these may have gone out; say so before giving up.
            await asyncio.shield(self._interrupted(go, now))
            raise
        # The accounts' wait windows run from when the messages were handed over, not from the batch's start.
        ended = max(now, self.clock())
        verdicts = [
            classify(f, a.attempts, now, self.config.retry.for_campaign(r.item.ctx.campaign.settings.max_attempts))
            for (r, a), f in zip(go, failures, strict=True)
        ]
        for (r, _), v in zip(go, verdicts, strict=True):
            _count(r, v)
        # Recorded before the connections are given up, so only sends really in the exchange are ever `sending`.
        finishes = [
            ledger.Finish(a, ledger_state(v), v.error, v.smtp_code) for (_, a), v in zip(go, verdicts, strict=True)
        ]
        recorded = await durably(lambda: ledger.finish_many(self.sends, finishes, now)) if finishes else []
        sent = [_Sent(r, a, v, ended, ok) for ((r, a), v, ok) in zip(go, verdicts, recorded, strict=True)]
        return sent, unsent

    async def _mark_in_flight(
        self, batch: list[Ready], now: datetime, held: HeldConnections
    ) -> tuple[list[Ready], list[tuple[SendItem, Settlement]]]:
        """The round's reservations marked in flight (one write): those still open, and the leads of the others
        (returned meanwhile: their emails are not sent) handed back."""
        self.closed_tokens.update(r.reservation.token for r in batch)
        try:
            flying = await self.arbiter.mark_in_flight([r.reservation for r in batch])
        except PyMongoError:
            await self._return_all(batch, now)
            raise
        returned = [r for r, ok in zip(batch, flying, strict=True) if not ok]
        for r in returned:
            held.release(r.reservation.account.id)
        kept = [r for r, ok in zip(batch, flying, strict=True) if ok]
        return kept, [(r.item, reclaimed(r, now)) for r in returned]

    async def _take_entries(
        self, batch: list[Ready], now: datetime, held: HeldConnections
    ) -> tuple[list[tuple[Ready, ledger.Attempt]], list[tuple[SendItem, Settlement]]]:
        """The round's ledger entries moved to `sending` (one insert for the new ones), and the settlements of the
        sends another attempt already settled: those are not sent, their reservations go back."""
        new = [
            ledger.NewSend(
                r.item.ctx.lead.id,
                r.item.ctx.step.step_order,
                r.item.index,
                r.item.ctx.campaign.id,
                r.item.ctx.lead.recipients[r.item.index].email,
                r.message.message.message_id,
                r.reservation.account.id,
                variant=variant_of(r.message.message),
            )
            for r in batch
        ]
        try:
            attempts = await ledger.start_many(self.sends, new, now)
        except PyMongoError:
            await self._return_all(batch, now)
            raise
        go: list[tuple[Ready, ledger.Attempt]] = []
        settled: list[tuple[SendItem, Settlement]] = []
        for r, attempt in zip(batch, attempts, strict=True):
            if isinstance(attempt, ledger.Settled):
                # Another attempt (a crash's leftover, a racing dispatcher) already has the outcome.
                held.release(r.reservation.account.id)
                await self.arbiter.rollback(r.reservation, now, reason=f"already {attempt.state}")
                known = with_message(from_ledger(attempt.doc), r.message.message)
                settled.append((r.item, settle(r.item.ctx, [*r.item.skipped, (r.item.index, known)], now)))
                continue
            message = r.message
            if attempt.message_id != message.message.message_id:
                # A retry keeps the Message-ID of the first attempt, whichever account sends it now.
                message = validated(replace(message.message, message_id=attempt.message_id))
            go.append((replace(r, message=message), attempt))
        return go, settled

    async def _return_all(self, batch: list[Ready], now: datetime) -> None:
        """A database error before anything was sent: give the reservations back (best effort, one write)."""
        with contextlib.suppress(Exception):
            await self.arbiter.rollback_many(
                [r.reservation for r in batch], now, reason="database error before sending"
            )

    async def _interrupted(self, go: list[tuple[Ready, ledger.Attempt]], now: datetime) -> None:
        error = "dispatcher stopped during the SMTP exchange"
        with contextlib.suppress(Exception):
            await ledger.finish_many(self.sends, [ledger.Finish(a, lstate.UNCERTAIN, error) for _, a in go], now)
            await self.arbiter.commit_many([r.reservation for r, _ in go], now)

    async def _record(self, finished: list[_Sent], now: datetime) -> list[tuple[SendItem, Settlement]]:
        """Usage and side effects for the sends of all rounds (their ledger outcomes are recorded), a write per kind."""
        if not finished:
            return []
        self.handed.update(id(s.ready.item) for s in finished if s.verdict.counts)
        await self._settle_usage(finished, now)
        await self._side_effects(finished, now)
        out = []
        for s in finished:
            if not s.recorded:
                get_logger(lead_id=str(s.ready.lease.lead_id)).warning(
                    "worker.lease_lost", reason="the send was declared uncertain by another dispatcher"
                )
                self.lost[s.ready.item.position] = Outcome("lease_lost", s.ready.lease.lead_id)
                continue
            r = s.ready
            out.append(
                (
                    r.item,
                    after_send(r.item, r.reservation.account.id, r.message.message, s.verdict, s.attempt.attempts, now),
                )
            )
        return out

    async def _settle_usage(self, finished: list[_Sent], now: datetime) -> None:
        """Commit the reservations of the sends that count, give back the others' (a write per kind)."""
        if not finished:
            return
        counted = [s.ready.reservation for s in finished if s.verdict.counts]
        # Wait windows run from when the messages were handed over: the end of the last round is never earlier.
        ended = max(s.ended for s in finished)
        try:
            await self.arbiter.commit_many(counted, ended)
        except PyMongoError as exc:
            # A lost commit only leaves the sends counted as reserved (commit is not idempotent: no retry).
            get_logger().warning("worker.db_error", error=str(exc), phase="commit_many")
        by_reason: dict[str, list[Reservation]] = {}
        for s in finished:
            if not s.verdict.counts:
                by_reason.setdefault(s.verdict.error or "not sent", []).append(s.ready.reservation)
        for reason, returned in by_reason.items():
            await self.arbiter.rollback_many(returned, now, reason=reason)

    async def _side_effects(self, finished: list[_Sent], now: datetime) -> None:
        for s in finished:
            reason = s.verdict.account_out
            if reason:
                with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to take out of rotation
                    await self.arbiter.disable(s.ready.reservation.account.id, reason)
                get_logger(account_id=s.ready.reservation.account.id).error(
                    "worker.account_error",
                    error=s.verdict.error,
                    action="account taken out of rotation; fix its credentials, then run reset-account-limits",
                )
        bounced = [
            (s.ready.message.message.to_email, "hard_bounce", s.verdict.error or "")
            for s in finished
            if s.verdict.suppress
        ]
        await suppressions.add(self.suppressions, bounced, now)


def _count(r: Ready, v: Verdict) -> None:
    """One email's outcome for the metrics: a hard bounce (5xx, suppressed) apart from other failures."""
    outcome = "bounced" if v.status == "failed" and v.suppress else v.status
    campaign = r.item.ctx.campaign
    metrics.current().email(outcome, metrics.campaign_label(campaign.id, campaign.job_id), r.reservation.account.id)


def _exchange(sender: Sender, r: Ready) -> Awaitable[Failure | None]:
    lead_id, campaign_id = str(r.item.ctx.lead.id), r.item.ctx.campaign.id
    return exchange(sender, r.reservation.account, r.message, lead_id=lead_id, campaign_id=campaign_id)
