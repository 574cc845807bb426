"""`/dashboard/uncertain`: the sends nobody can vouch for, each with its two buttons, "it was sent" and "it
was not sent: send it again" (`outbound resolve-send --sent | --resend`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.ops import account_views, sends
from app.web.auth import Principal, Role, require_page
from app.web.dashboard.actions import back_to, database, now_utc, run_action
from app.web.templating import render

PAGE_SIZE = 100
UNCERTAIN_PAGE = "/dashboard/uncertain"


@dataclass(frozen=True)
class UncertainRow:
    """One uncertain send as the page lists it; a field the ledger document lacks is None."""

    send_key: str
    lead_id: str | None
    email: str | None
    campaign_id: str | None
    step_order: int | None
    message_id: str | None
    since: datetime | None
    why: str | None


def uncertain_row(doc: Mapping[str, Any]) -> UncertainRow:
    """The row of one `sends` document (pure)."""

    def text(name: str) -> str | None:
        value = doc.get(name)
        return None if value is None else str(value)

    step, since = doc.get("step_order"), doc.get("updated_at")
    return UncertainRow(
        send_key=str(doc["_id"]),
        lead_id=text("lead_id"),
        email=text("email"),
        campaign_id=text("campaign_id"),
        step_order=step if isinstance(step, int) else None,
        message_id=text("message_id"),
        since=since if isinstance(since, datetime) else None,
        why=text("last_error"),
    )


def resolved_text(result: sends.ResolvedSend) -> str:
    """The flash after a resolve, in the operator's words."""
    who = result.email or "the recipient"
    if result.state == "sent":
        return f"Recorded as sent to {who}; the lead goes on with its sequence."
    return f"Queued to be sent to {who} again (they may receive it twice)."


def uncertain_router() -> APIRouter:
    """The uncertain sends and the resolve action."""
    router = APIRouter(include_in_schema=False)

    @router.get(UNCERTAIN_PAGE, response_class=HTMLResponse)
    async def uncertain(
        request: Request,
        campaign: str | None = Query(None, max_length=100),
        after: str | None = Query(None, max_length=300),
        _: Principal = Depends(require_page(Role.VIEWER)),
    ) -> HTMLResponse:
        """Uncertain sends, longest uncertain first (one campaign's, with ?campaign=)."""
        db = database(request)
        docs = await sends.list_uncertain(db, campaign or None, PAGE_SIZE + 1, after=after or None)
        page, more = [uncertain_row(d) for d in docs[:PAGE_SIZE]], len(docs) > PAGE_SIZE
        names = await account_views.campaign_names(db, sorted({r.campaign_id for r in page if r.campaign_id}))
        return render(
            request,
            "dashboard/uncertain.html",
            sends=page,
            names=names,
            campaign=campaign or "",
            next_after=page[-1].send_key if more and page else None,
        )

    @router.post(f"{UNCERTAIN_PAGE}/resolve")
    async def resolve(
        request: Request,
        send_key: str = Form(..., max_length=300),
        outcome: Literal["sent", "resend"] = Form(...),
        back: str | None = Form(None),
        principal: Principal = Depends(require_page(Role.OPERATOR)),
    ) -> RedirectResponse:
        """Settle one uncertain send as delivered (`sent`) or not delivered (`resend`)."""
        return await run_action(
            request,
            principal,
            "send.resolve",
            {"send_key": send_key},
            lambda: sends.resolve_send(database(request), send_key, outcome, now_utc()),
            resolved_text,
            back_to(back, UNCERTAIN_PAGE),
            details={"outcome": outcome},
        )

    return router
