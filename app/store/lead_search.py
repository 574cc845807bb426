"""Finding leads by a recipient's address or name, or by company, a page at a time in `_id` order.

The text matches anywhere in a recipient's email, first or last name, case-insensitively; the company matches
the recipients' company name, company or website. Pages follow `_id`, so a lead is listed once however leads
change between pages; `after` is the `_id` (its string form) of the last lead of the page before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

from app.domain.models import InvalidDocument, Lead
from app.logging import get_logger
from app.store import schema
from app.store.client import Database

MAX_LIMIT = 200
TEXT_FIELDS = ("lead_data.email", "lead_data.first_name", "lead_data.last_name")
COMPANY_FIELDS = ("lead_data.company_name", "lead_data.company", "lead_data.website")
MAX_TERM = 200


@dataclass(frozen=True)
class LeadPage:
    """The valid leads of one page and the `after` of the next one (None: this was the last page)."""

    leads: tuple[Lead, ...]
    next_after: str | None


def _matching(fields: tuple[str, ...], term: str) -> dict[str, Any]:
    pattern = {"$regex": re.escape(term.strip()), "$options": "i"}
    return {"$or": [{name: pattern} for name in fields]}


def after_filter(after: str) -> dict[str, Any]:
    """The `_id`s after `after` in ascending `_id` order: ObjectIds sort after strings, so after a string id
    come the greater strings and then every ObjectId."""
    if ObjectId.is_valid(after):
        return {"_id": {"$gt": ObjectId(after)}}
    return {"$or": [{"_id": {"$gt": after}}, {"_id": {"$type": "objectId"}}]}


def search_filter(text: str | None, company: str | None, after: str | None) -> dict[str, Any]:
    """The query of `search_leads` (every given condition must hold; blank ones are ignored)."""
    parts: list[dict[str, Any]] = []
    if text and text.strip():
        parts.append(_matching(TEXT_FIELDS, text[:MAX_TERM]))
    if company and company.strip():
        parts.append(_matching(COMPANY_FIELDS, company[:MAX_TERM]))
    if after is not None:
        parts.append(after_filter(after))
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


async def search_leads(
    db: Database, *, text: str | None, company: str | None, after: str | None, limit: int
) -> LeadPage:
    """Up to `limit` (1 to MAX_LIMIT) leads matching `text` and `company`, after the lead `after`, in `_id` order.

    A malformed lead is logged and left out; it still moves the page on, so one bad document never stops paging.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    coll = db[schema.CAMPAIGN_LEADS]
    found = coll.find(search_filter(text, company, after), sort=[("_id", ASCENDING)], limit=limit + 1)
    docs = [doc async for doc in found]
    more = len(docs) > limit
    page = docs[:limit]
    leads: list[Lead] = []
    for doc in page:
        try:
            leads.append(Lead.from_doc(doc))
        except InvalidDocument as exc:
            get_logger().warning(
                "store.invalid_document", collection=exc.collection, doc_id=str(exc.doc_id), reason=str(exc)
            )
    return LeadPage(tuple(leads), str(page[-1]["_id"]) if more and page else None)
