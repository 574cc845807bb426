"""A batch keeps its leases while it works: one fenced write renews them all every third of the lease.

A batch may outlast its lease: twenty recipients sent a round at a time, a slow SMTP server, a connection
another batch is using. Renewing only just before each send leaves the leads of later rounds free for another
dispatcher to claim meanwhile, which then finds them already sent, and so on. The keeper renews every lead of
the batch still held, from the clock at the time of the write; a lead found lost is not sent (see
`Delivery._fresh_lease`) and its new holder decides for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from pymongo.errors import PyMongoError

from app.logging import get_logger
from app.store import leases
from app.store.documents import Collection
from app.store.leases import Lease

MIN_PERIOD_SECONDS = 0.1


class LeaseKeeper:
    """The current leases of one batch: renewed in the background while `kept()` is entered."""

    def __init__(
        self, leads: Collection, held: Sequence[Lease], *, lease_seconds: float, clock: Callable[[], datetime]
    ) -> None:
        self._leads = leads
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._current: dict[str, Lease | None] = {_key(lease): lease for lease in held}
        self.renewals = 0  # background renewal writes made

    @property
    def period(self) -> float:
        """Seconds between renewals: a third of the lease, so two may fail before it runs out."""
        return max(MIN_PERIOD_SECONDS, self._lease_seconds / 3)

    def current(self, lease: Lease) -> Lease | None:
        """The latest renewal of `lease` (with its `until`), or None once it is known to be lost."""
        return self._current.get(_key(lease), lease)

    def renewed(self, lease: Lease | None, original: Lease) -> None:
        """Record a renewal made elsewhere (None: it was found lost)."""
        self._current[_key(original)] = lease

    async def renew(self) -> None:
        """Renew every lease still held, in one write (nothing when none is)."""
        held = [lease for lease in self._current.values() if lease is not None]
        if not held:
            return
        renewed = await leases.renew_many(self._leads, held, now=self._clock(), lease_seconds=self._lease_seconds)
        self.renewals += 1
        for before, after in zip(held, renewed, strict=True):
            if self._current.get(_key(before)) is not None:  # not found lost meanwhile
                self._current[_key(before)] = after
            if after is None:
                get_logger(lead_id=str(before.lead_id)).warning(
                    "worker.lease_lost", reason="lost while its batch was working; it is not sent from here"
                )

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[LeaseKeeper]:
        """Renew in the background until the block ends (its writes then see the leases as they are)."""
        task = asyncio.create_task(self._keep(), name="lease-keeper")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.renew()
            except PyMongoError as exc:  # the next period tries again; a lease that runs out meanwhile is lost
                get_logger().warning("worker.db_error", error=str(exc), phase="lease_renewal")


def _key(lease: Lease) -> str:
    return f"{lease.token}:{lease.lead_id}"
