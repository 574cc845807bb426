"""A dispatcher's heartbeat: its beats in `dispatchers`, the last error they carry, its clean stop, and the reclaim.

Every `beat_seconds(lease_seconds)` the dispatcher writes `dispatchers.beat_at` and, on each beat, gives back
what gone dispatchers reserved but never handed to SMTP (`Arbiter.reclaim`). Separate from the loop
(`dispatcher.py`) because it talks only to `dispatchers` and the reclaim, never to leads: the loop only asks it
to beat, to reclaim, and to remember its errors for `outbound status`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from datetime import datetime

from pymongo.errors import PyMongoError

from app import __version__
from app.domain.collections import DISPATCHERS
from app.domain.liveness import beat_seconds
from app.logging import get_logger
from app.store import dispatchers
from app.store.arbiter import Arbiter
from app.store.client import Database


class DispatcherHeartbeat:
    """The heartbeat of dispatcher `owner`; its database errors go to `on_db_error(exc, phase)`, never raised."""

    def __init__(
        self,
        db: Database,
        owner: str,
        *,
        lease_seconds: float,
        clock: Callable[[], datetime],
        on_db_error: Callable[[Exception, str], None],
    ) -> None:
        self.owner = owner
        self.beat_seconds = beat_seconds(lease_seconds)
        self.last_error: dispatchers.LastError | None = None  # written with the next beat
        self._heartbeats = db[DISPATCHERS]
        self._reclaimer = Arbiter(db, owner=owner)  # only reclaims: reservations are the pipeline's
        self._clock = clock
        self._on_db_error = on_db_error

    def note_error(self, message: str) -> None:
        """Keep `message` as the last error, with the time, for the next beat (`outbound status` shows it)."""
        self.last_error = dispatchers.LastError(message, self._clock())

    async def beat(self, leads_in_flight: int) -> bool:
        """Record that this dispatcher is alive and works on `leads_in_flight` leads; False when the write failed."""
        try:
            await dispatchers.beat(
                self._heartbeats,
                self.owner,
                self._clock(),
                beat_seconds=self.beat_seconds,
                host=socket.gethostname(),
                pid=os.getpid(),
                version=__version__,
                leads_in_flight=leads_in_flight,
                last_error=self.last_error,
            )
            return True
        except PyMongoError as exc:
            # Missed beats only make peers take this dispatcher for gone: its unsent reservations are then
            # returned and mark_in_flight refuses their sends, so nothing is doubled.
            self._on_db_error(exc, "heartbeat")
            return False

    async def prune(self) -> None:
        """Forget old heartbeats; a failure is harmless (the next start prunes again) and is not reported."""
        with contextlib.suppress(PyMongoError):
            await dispatchers.prune(self._heartbeats, self._clock())

    async def reclaim(self) -> bool:
        """Give back what gone dispatchers reserved but never sent; True when anything was given back."""
        now = self._clock()

        async def gone(owners: set[str]) -> set[str]:
            return await dispatchers.gone(self._heartbeats, owners, now, beat_seconds=self.beat_seconds)

        try:
            reclaimed = await self._reclaimer.reclaim(now, gone)
        except PyMongoError as exc:
            self._on_db_error(exc, "reclaim")
            return False
        return bool(reclaimed.returned)

    async def stopped(self) -> None:
        """Record a clean stop, so that peers need not wait for missed beats to take this dispatcher for gone."""
        try:
            await dispatchers.stopped(self._heartbeats, self.owner, self._clock())
        except PyMongoError as exc:
            # Peers then take this dispatcher for gone once its beats are missed.
            get_logger(dispatcher=self.owner).warning("dispatcher.db_error", error=str(exc), phase="stopped")
