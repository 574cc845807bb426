"""Open reservations and their reclaim: what a gone dispatcher held is given back, or kept if it may have flown.

Each counted reservation is recorded in its `account_usage` document as `open.<key>` = `{owner, campaign, at,
hour, flown}` by the same upsert that counts it (`app/store/account_usage.py`); commit and rollback remove the
record, and `Arbiter.mark_in_flight` sets `flown` just before the SMTP exchange. When the owner is gone (it stopped, or
stopped beating: `app/domain/liveness.py`):

- an unflown record was certainly never handed to SMTP: its count (`sent`, `campaigns.<id>`, and its hour's
  `hours.<HH>`, `hours_campaigns.<HH>.<id>`) is given back and
  the account's wait window reopened if this reservation still holds it;
- a flown one may have been delivered: the record is closed but the count stays, and so does the window's long
  hold (only the token is dropped, so waiting leads expect the hold instead of an early end).

Every write is conditional on the records it read, so racing reclaims (every dispatcher runs one on each beat)
and a holder that was only paused (its `mark_in_flight` then finds the record gone) never give a count back
twice nor send on a returned reservation.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.store.documents import Collection as MongoCollection
from app.store.documents import id_values

GoneCheck = Callable[[set[str]], Awaitable[set[str]]]
_HOUR = re.compile(r"^\d{2}$")


def open_key(token: str) -> str:
    """The key of a reservation's record under `account_usage.open`: its token's random part.

    Tokens are `<owner>:<uuid hex>`, and owners hold host names, whose dots would break a dotted field path.
    """
    return token.rpartition(":")[2]


def open_path(token: str) -> str:
    """The `account_usage.open.<key>` field recording one open reservation."""
    return f"open.{open_key(token)}"


def open_entry(owner: str, campaign_id: str, now: datetime, *, flown: bool = False) -> dict[str, Any]:
    """The record of a reservation just counted. `flown` starts True for a holder that never marks its sends in
    flight: nothing then proves its message did not go out."""
    return {"owner": owner, "campaign": campaign_id, "at": now, "flown": flown}


def records(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The open reservation records of an `account_usage` document (malformed ones left out)."""
    return list(_records(doc).values())


@dataclass(frozen=True)
class Reclaimed:
    """What one reclaim pass did with the open reservations of gone dispatchers."""

    returned: int = 0  # never handed to SMTP: count given back
    in_flight: int = 0  # may have been delivered: record closed, count and hold kept
    windows: int = 0  # wait windows reopened
    owners: frozenset[str] = field(default_factory=frozenset)  # the gone owners whose records were closed

    def __bool__(self) -> bool:
        return bool(self.returned or self.in_flight)


@dataclass(frozen=True)
class _Closing:
    """The records of gone owners found in one usage document."""

    doc_id: Any
    account_id: str
    unflown: dict[str, Mapping[str, Any]]
    flown: dict[str, Mapping[str, Any]]


async def reopen_windows(accounts: MongoCollection, held: Collection[tuple[str, str]], now: datetime) -> int:
    """Reopen at `now` the wait windows these (account id, token) reservations still hold, in one write; return
    how many were reopened. Tokens are unique, so a window another reservation holds is left alone."""
    if not held:
        return 0
    result = await accounts.update_many(
        {"_id": {"$in": _id_forms(a for a, _ in held)}, "reservation_token": {"$in": sorted({t for _, t in held})}},
        {"$set": {"next_available_at": now}, "$unset": {"reservation_token": "", "reserved_wait_end": ""}},
    )
    return int(result.modified_count)


async def reclaim(
    usage: MongoCollection,
    accounts: MongoCollection,
    keys: Collection[str],
    now: datetime,
    gone: GoneCheck | Collection[str],
    *,
    keep: str,
) -> Reclaimed:
    """Close the open reservations of the `account_usage` documents `keys` whose owner is gone; never those of
    `keep`.

    `gone` is the set of gone owners, or an async check given the owners found (it then reads only those).
    """
    if not keys:
        return Reclaimed()
    docs = [
        doc
        async for doc in usage.find(
            {"_id": {"$in": sorted(keys)}, "open": {"$gt": {}}}, projection={"open": 1, "account_id": 1}
        )
    ]
    found = {
        str(entry.get("owner"))
        for doc in docs
        for entry in _records(doc).values()
        if entry.get("owner") not in (None, keep)
    }
    if not found:
        return Reclaimed()
    dead = (await gone(found)) & found if callable(gone) else found & set(gone)
    dead.discard(keep)
    closing = [c for c in (_closing(doc, dead) for doc in docs) if c.unflown or c.flown]
    if not closing:
        return Reclaimed()
    landed = await asyncio.gather(*(_close(usage, c) for c in closing))
    done = [c for c, ok in zip(closing, landed, strict=True) if ok]
    returned = [(c.account_id, _token(key, entry)) for c in done for key, entry in c.unflown.items()]
    flown = [(c.account_id, _token(key, entry)) for c in done for key, entry in c.flown.items()]
    windows = await reopen_windows(accounts, returned, now)
    if flown:
        # The hold stays (the message may arrive late); without the token, waiting leads expect it in full.
        await accounts.update_many(
            {"_id": {"$in": _id_forms(a for a, _ in flown)}, "reservation_token": {"$in": sorted(t for _, t in flown)}},
            {"$unset": {"reservation_token": "", "reserved_wait_end": ""}},
        )
    owners = frozenset(str(e.get("owner")) for c in done for e in (*c.unflown.values(), *c.flown.values()))
    return Reclaimed(returned=len(returned), in_flight=len(flown), windows=windows, owners=owners)


def _records(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    entries = doc.get("open")
    if not isinstance(entries, Mapping):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, Mapping)}


def _closing(doc: Mapping[str, Any], dead: set[str]) -> _Closing:
    records = {k: e for k, e in _records(doc).items() if e.get("owner") in dead}
    return _Closing(
        doc_id=doc["_id"],
        account_id=str(doc.get("account_id")),
        # Only a record that says it never flew gives its count back; anything else may have been delivered.
        unflown={k: e for k, e in records.items() if e.get("flown") is False},
        flown={k: e for k, e in records.items() if e.get("flown") is not False},
    )


async def _close(usage: MongoCollection, closing: _Closing) -> bool:
    """Give back the unflown records' counts and remove every record found, in one write that lands only if
    none of the unflown ones flew or was settled meanwhile (then the next beat looks again)."""
    flt: dict[str, Any] = {"_id": closing.doc_id, **{f"open.{k}.flown": False for k in closing.unflown}}
    update: dict[str, Any] = {"$unset": {f"open.{k}": "" for k in (*closing.unflown, *closing.flown)}}
    if closing.unflown:
        update["$inc"] = _given_back(closing.unflown.values())
    result = await usage.update_one(flt, update)
    return result.modified_count == 1


def _given_back(unflown: Collection[Mapping[str, Any]]) -> dict[str, int]:
    """The `$inc` returning the counts of unflown records: the day's, and the hour's of those that name one."""
    per_campaign = Counter(str(e.get("campaign")) for e in unflown)
    hours = [e for e in unflown if isinstance(e.get("hour"), str) and _HOUR.match(e["hour"])]
    per_hour = Counter(str(e["hour"]) for e in hours)
    per_campaign_hour = Counter((str(e["hour"]), str(e.get("campaign"))) for e in hours)
    return {
        "sent": -len(unflown),
        **{f"campaigns.{c}": -n for c, n in per_campaign.items()},
        **{f"hours.{h}": -n for h, n in per_hour.items()},
        **{f"hours_campaigns.{h}.{c}": -n for (h, c), n in per_campaign_hour.items()},
    }


def _token(key: str, entry: Mapping[str, Any]) -> str:
    return f"{entry.get('owner')}:{key}"


def _id_forms(ids: Any) -> list[Any]:
    return [form for i in sorted(set(ids)) for form in id_values(i)]
