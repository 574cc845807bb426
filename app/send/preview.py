"""`run-dispatcher --dry-run`: what a real run would do now, decided as the real run decides, writing nothing.

Each active campaign's due leads are read oldest first, as the dispatcher claims them, with what planning them
needs: the campaign's sequence, its accounts as the arbiter would see them (`store/capacity.py`, read without
writing), the suppressions of their addresses and the ledger entries they may reach. `campaign_dry_run.py`
claims them; `preview_rows.py` holds the rows it reports.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.domain.gates import GateContext
from app.domain.models import SequenceStep
from app.domain.templating import Renderer
from app.send.campaign_dry_run import CampaignDryRun
from app.send.compose import MAILTO_ONLY, UnsubscribeLinks
from app.send.preview_rows import ADVANCE as ADVANCE
from app.send.preview_rows import COMPLETE as COMPLETE
from app.send.preview_rows import FAIL as FAIL
from app.send.preview_rows import PAUSE as PAUSE
from app.send.preview_rows import RECORDED as RECORDED
from app.send.preview_rows import RETRY as RETRY
from app.send.preview_rows import SEND as SEND
from app.send.preview_rows import SKIP as SKIP
from app.send.preview_rows import STOP as STOP
from app.send.preview_rows import UNSCHEDULE as UNSCHEDULE
from app.send.preview_rows import WAIT as WAIT
from app.send.preview_rows import Preview as Preview
from app.send.preview_rows import PreviewRow as PreviewRow
from app.store import leases, schema, suppressions
from app.store.capacity import Planned, read_accounts
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.ledger import send_id
from app.transport.base import Sender


async def dry_run(
    db: Database,
    catalog: Catalog,
    renderer: Renderer,
    sender: Sender | None = None,
    *,
    now: datetime,
    campaign_id: str | None = None,
    account_filter: Collection[str] | None = None,
    limit: int = 1000,
    batch_size: int = 20,
    unsubscribe: UnsubscribeLinks = MAILTO_ONLY,
) -> Preview:
    """What a real run would do at `now` with up to `limit` due leads per active campaign (or `campaign_id`).

    Would-be messages go to `sender` (a dry-run sender logs them); nothing is written. `unsubscribe` is the
    pipeline's (`PipelineConfig.unsubscribe`), so the messages carry the headers a real run's would.
    """
    out = Preview()
    planned = Planned()
    coll = db[schema.CAMPAIGN_LEADS]
    for campaign in await catalog.active_campaigns(campaign_id):
        docs = await leases.find_due(coll, now, campaign.id, limit)
        if len(docs) >= limit:
            due = await coll.count_documents(
                {"campaign_id": campaign.id, "progress.next_due_at": leases.due_range(now)}
            )
            if due > len(docs):
                out.capped.append((campaign.name, len(docs), due))
        steps = await catalog.steps(campaign.sequence_id)
        run = CampaignDryRun(
            catalog,
            renderer,
            sender,
            campaign,
            steps,
            await read_accounts(db, campaign, now, only=account_filter),
            planned,
            GateContext(now, await suppressions.load(db[schema.SUPPRESSIONS], _emails(docs))),
            await _ledger(db, docs, steps),
            campaign.settings.batch_size or batch_size,
            out,
            links=unsubscribe,
        )
        await run.run(docs)
        run.flush()
    return out


async def preview(
    db: Database,
    catalog: Catalog,
    renderer: Renderer,
    sender: Sender | None = None,
    *,
    now: datetime,
    campaign_id: str | None = None,
    limit: int = 1000,
    unsubscribe: UnsubscribeLinks = MAILTO_ONLY,
) -> list[PreviewRow]:
    """Only the emails `dry_run` says would be sent now (every active campaign's, or `campaign_id`'s)."""
    found = await dry_run(
        db, catalog, renderer, sender, now=now, campaign_id=campaign_id, limit=limit, unsubscribe=unsubscribe
    )
    return [row for row in found.rows if row.action == SEND]


def _emails(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    recipients = [r for doc in docs for r in doc.get("lead_data") or [] if isinstance(r, dict)]
    return [r["email"] for r in recipients if isinstance(r.get("email"), str)]


async def _ledger(
    db: Database, docs: Sequence[Mapping[str, Any]], steps: Mapping[int, SequenceStep]
) -> dict[str, Mapping[str, Any]]:
    """The ledger entries of every (lead, step, recipient) these leads may reach, by `_id`."""
    sizes = [(doc.get("_id"), len(doc.get("lead_data") or [])) for doc in docs]
    keys = [send_id(lead_id, order, index) for lead_id, size in sizes for order in steps for index in range(size)]
    if not keys:
        return {}
    found = db[schema.SENDS].find({"_id": {"$in": keys}}, projection={"state": 1, "account_id": 1})
    return {str(entry["_id"]): entry async for entry in found}
