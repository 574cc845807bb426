"""Read-mostly configuration the workers need for every lead, cached briefly to save round trips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from app.domain.models import Campaign, GeneralSettings, InvalidDocument, SequenceStep, Template, id_str
from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter, iter_valid

T = TypeVar("T")


class _TtlCache(Generic[T]):
    """Values kept `ttl` seconds; concurrent misses of one key share a single load (a batch asks together)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, T]] = {}
        self._loading: dict[str, asyncio.Task[T]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        hit = self._items.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load, now))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        # Shielded: one waiter being cancelled must not cancel the load the others wait for.
        return await asyncio.shield(task)

    def put(self, key: str, value: T) -> None:
        """Keep a value read by another query, as of now."""
        self._items[key] = (time.monotonic(), value)

    async def _load(self, key: str, load: Callable[[], Awaitable[T]], now: float) -> T:
        value = await load()
        self._items[key] = (now, value)
        return value


class Catalog:
    """Campaigns, sequences, templates and sender settings, each cached for `ttl` seconds."""

    def __init__(self, db: Database, ttl: float = 30.0) -> None:
        self.db = db
        self._campaigns: _TtlCache[Campaign | None] = _TtlCache(min(ttl, 5.0))
        self._steps: _TtlCache[dict[int, SequenceStep]] = _TtlCache(ttl)
        self._templates: _TtlCache[Template | InvalidDocument | None] = _TtlCache(ttl)
        self._general: _TtlCache[dict[str, GeneralSettings]] = _TtlCache(ttl)

    async def active_campaigns(self, only: str | None = None) -> list[Campaign]:
        """Active campaigns (optionally just one), read fresh: pausing a campaign takes effect at once."""
        flt: dict[str, Any] = {"status": "active"}
        if only is not None:
            flt.update(id_filter(only))
        found = [c async for c in iter_valid(self.db[schema.CAMPAIGNS], flt, Campaign.from_doc)]
        # The same documents `campaign` reads: the workers' next look at one of them costs no round trip.
        for campaign in found:
            self._campaigns.put(campaign.id, campaign)
        return found

    async def campaign(self, campaign_id: str) -> Campaign | None:
        """One campaign (None when missing or malformed; malformed ones are logged)."""

        async def load() -> Campaign | None:
            async for c in iter_valid(self.db[schema.CAMPAIGNS], id_filter(campaign_id), Campaign.from_doc, limit=1):
                return c
            return None

        return await self._campaigns.get(campaign_id, load)

    async def steps(self, sequence_id: str | None) -> dict[int, SequenceStep]:
        """The sequence's valid steps by step_order."""
        if sequence_id is None:
            return {}

        async def load() -> dict[int, SequenceStep]:
            coll = self.db[schema.SEQUENCE_STEPS]
            found = iter_valid(coll, id_filter(sequence_id, "sequence_id"), SequenceStep.from_doc)
            return {s.step_order: s async for s in found}

        return await self._steps.get(sequence_id, load)

    async def template(self, template_id: str) -> Template | InvalidDocument | None:
        """The template; an InvalidDocument when it is malformed (so the recipient fails with that reason)."""

        async def load() -> Template | InvalidDocument | None:
            doc = await self.db[schema.TEMPLATES].find_one(id_filter(template_id))
            if doc is None:
                return None
            try:
                return Template.from_doc(doc)
            except InvalidDocument as exc:
                return exc

        return await self._templates.get(template_id, load)

    async def general_settings(self, account_id: str) -> GeneralSettings | None:
        """The account's signature and sender identity, if configured.

        Read as one snapshot of the (small) collection, so a batch spread over many accounts costs one query.
        Seed 001 stores `email_id` as an ObjectId or its string form: both find the account.
        """

        async def load() -> dict[str, GeneralSettings]:
            found: dict[str, GeneralSettings] = {}
            async for g in iter_valid(self.db[schema.EMAIL_GENERAL_SETTINGS], {}, GeneralSettings.from_doc):
                found.setdefault(id_str(g.email_id), g)
            return found

        return (await self._general.get("all", load)).get(id_str(account_id))
