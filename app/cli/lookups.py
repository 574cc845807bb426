"""Lookups the inspection and repair commands share: a campaign by id, its documents, ids in every stored form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.domain.models import Campaign
from app.store import schema
from app.store.client import Database
from app.store.documents import get_model, id_filter, id_values


def campaign_ref(campaign_id: str) -> dict[str, Any]:
    """A filter for the documents of one campaign (leads, activities) by their `campaign_id`."""
    # campaign_leads.campaign_id is a string, but older data may hold the ObjectId itself.
    return id_filter(campaign_id, "campaign_id")


async def load_campaign(db: Database, campaign_id: str) -> Campaign:
    """The campaign with this id; NotFound or InvalidDocument otherwise."""
    return await get_model(db[schema.CAMPAIGNS], "campaign", campaign_id, Campaign.from_doc)


def any_of(ids: Sequence[object]) -> list[Any]:
    """Every stored form of these ids, for an `$in` query."""
    return [value for raw in ids for value in id_values(raw)]
