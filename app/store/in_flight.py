"""The in-flight mark of reservations, with the commit folded in where nothing is left for a commit to do.

Just before its SMTP exchange a holder marks its reservations in flight, fenced on their open records: a record
reclaimed meanwhile (its holder was taken for gone) matches nothing, and the email is not sent. From then on the
count is never given back by a reclaim (the message may have been delivered), so for a reservation without a wait
window the later commit would only close the record and add one to `committed`. The mark does both at once
instead (`$unset` the record, `$inc committed`): one `account_usage` write per round and none at the commit. A
reservation with a wait window keeps its record, flagged `flown`, until its commit moves the window (a reclaim
needs the record to leave the window's long hold in place). Should such an early-committed send turn out not to
have been sent after all (the server refused it before any data), `uncommit_op` gives the count back.

Each mark also sets `flights.<owner>` to an id of its own, so that when a bulk mark lands only partly (some
records were reclaimed) one read tells which documents it changed. A holder marks one account's reservations one
round at a time (it holds that account's connection), so no mark of its own can overwrite the id meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.store.reclaim import open_key, open_path

if TYPE_CHECKING:
    from app.store.account_usage import Reservation


def owner_field(owner: str) -> str:
    """The `flights.<key>` field of one dispatcher (owners hold host names, whose dots would break the path)."""
    return "flights." + hashlib.sha1(owner.encode(), usedforsecurity=False).hexdigest()[:16]


def commits_at_flight(reservation: Reservation) -> bool:
    """True when the in-flight mark also commits the reservation: it has no wait window to move later."""
    return not reservation.limits.waits


def flight_filter(key: str, group: list[Reservation]) -> dict[str, Any]:
    """The filter of one document's mark: every record of `group` still open."""
    return {"_id": key, **{open_path(r.token): {"$exists": True} for r in group}}


def flight_update(group: list[Reservation], owner: str) -> dict[str, Any]:
    """The update of one document's mark: records with a wait window flagged `flown`, the others committed and
    closed, and this mark's id under the owner's `flights` field."""
    early = [r for r in group if commits_at_flight(r)]
    update: dict[str, Any] = {
        "$set": {
            owner_field(owner): mark_id(group),
            **{f"{open_path(r.token)}.flown": True for r in group if not commits_at_flight(r)},
        }
    }
    if early:
        update["$inc"] = {"committed": len(early)}
        update["$unset"] = {open_path(r.token): "" for r in early}
    return update


def mark_id(group: list[Reservation]) -> str:
    """An id for one document's mark: its first reservation's key (unique: tokens are random)."""
    return open_key(group[0].token)


def landed(doc: Mapping[str, Any] | None, group: list[Reservation], owner: str) -> bool:
    """Whether this owner's mark of `group` changed `doc` (read after a bulk mark that landed only partly)."""
    if doc is None:
        return False
    flights = doc.get("flights")
    return isinstance(flights, Mapping) and flights.get(owner_field(owner).partition(".")[2]) == mark_id(group)


def uncommit_op(reservation: Reservation, paths: list[str], key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (filter, update) giving back the count of a reservation committed at its in-flight mark whose email was
    certainly not sent after all: `paths` (day's and hour's counters) and `committed` down by one, never below 0.
    Only its holder knows it was not sent, and it gives it back once, so no record fences this write."""
    flt: dict[str, Any] = {"_id": key, "committed": {"$gt": 0}, **{p: {"$gt": 0} for p in paths}}
    return flt, {"$inc": {"committed": -1, **{p: -1 for p in paths}}}
