"""The dashboard in a real browser: sign in, read a campaign's progress, pause and resume it, resolve an
uncertain send, watch a number change without a reload, and fit a phone's width.

Every test also proves (in the `site` fixture) that the browser requested nothing outside 127.0.0.1 and
logged no console error, so a script or style the Content-Security-Policy refused would fail it.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from playwright.sync_api import ViewportSize, expect
from pymongo.database import Database as SyncDatabase

from app.domain.models import recipient_key
from app.store import schema
from tests.browser.harness import OPERATOR, VIEWER, Site, sign_in
from tests.browser.seed import one

Db = SyncDatabase[dict[str, Any]]
PHONE: ViewportSize = {"width": 375, "height": 700}
LIVE_WAIT_MS = 20_000  # the page polls every 5 s; a missed poll or two still passes


def _live(site: Site, *parts: object) -> Any:
    key = ".".join(str(p) for p in ("campaign", site.world.campaign_id, *parts))
    return site.page.locator(f'[data-live="{key}"]').first


def _sent_at_step(db: Db, campaign_id: str, step: int) -> int:
    field = f"progress.processed_recipients.{recipient_key(step, 0)}.status"
    return db[schema.CAMPAIGN_LEADS].count_documents({"campaign_id": campaign_id, field: "sent"})


def test_signing_in_opens_the_campaigns_and_a_campaigns_numbers_match_the_database(site: Site, sync_db: Db) -> None:
    sign_in(site, VIEWER)
    expect(site.page.locator("h1")).to_have_text("Campaigns")
    site.screenshot("dashboard-overview")
    site.page.click("text=Spring launch")
    site.page.wait_for_url(site.url(f"/dashboard/campaigns/{site.world.campaign_id}"))
    cid = site.world.campaign_id
    leads = sync_db[schema.CAMPAIGN_LEADS]
    expect(_live(site, "leads", "total")).to_have_text(str(leads.count_documents({"campaign_id": cid})))
    completed = leads.count_documents({"campaign_id": cid, "progress.completed": True})
    expect(_live(site, "leads", "completed")).to_have_text(str(completed))
    expect(_live(site, "step", 1, "sent")).to_have_text(str(_sent_at_step(sync_db, cid, 1)))
    expect(_live(site, "step", 2, "sent")).to_have_text(str(_sent_at_step(sync_db, cid, 2)))
    replies = sync_db[schema.ACTIVITIES].count_documents({"campaign_id": cid, "type": "replied", "step_order": 1})
    expect(_live(site, "step", 1, "replied")).to_have_text(str(replies))
    expect(_live(site, "percent")).to_have_text("50%")  # finished (lead, step) pairs: 4 of 8
    assert site.page.locator("progress").first.get_attribute("value") == "50.0"
    expect(site.page.locator("svg.chart")).to_be_visible()
    # A viewer is shown no buttons.
    expect(site.page.locator("button", has_text="Pause")).to_have_count(0)
    site.screenshot("dashboard-campaign")

    site.page.click("button:has-text('Sign out')")
    site.page.wait_for_url(site.url("/login"))
    site.page.goto(site.url("/dashboard"))
    assert "/login?next=" in site.page.url


def test_an_operator_pauses_and_resumes_a_campaign(site: Site, sync_db: Db) -> None:
    cid = site.world.campaign_id
    sign_in(site, OPERATOR, f"/dashboard/campaigns/{cid}")
    site.page.fill("input[name=reason]", "waiting for legal")
    site.page.click("button:has-text('Pause')")
    expect(site.page.locator(".flash")).to_have_text("Campaign paused. Reason: waiting for legal")
    expect(_live(site, "status")).to_have_text("paused")
    doc = one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(cid)})
    assert (doc["status"], doc["paused_reason"]) == ("paused", "waiting for legal")
    site.screenshot("dashboard-paused")

    site.page.goto(site.url("/dashboard"))
    site.page.click("button:has-text('Resume Spring launch')")
    expect(site.page.locator(".flash")).to_contain_text("Campaign resumed")
    assert one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(cid)})["status"] == "active"
    audit = list(sync_db["audit"].find({"target.campaign_id": cid}, sort=[("at", 1)]))
    assert [(a["action"], a["outcome"], a["actor"]["name"]) for a in audit] == [
        ("campaign.pause", "ok", OPERATOR),
        ("campaign.resume", "ok", OPERATOR),
    ]
    assert all(a["client"]["address"] == "127.0.0.1" and "Chrome" in a["client"]["user_agent"] for a in audit)


def test_an_operator_resolves_an_uncertain_send(site: Site, sync_db: Db) -> None:
    sign_in(site, OPERATOR, "/dashboard/uncertain")
    expect(site.page.locator("table")).to_contain_text("connection dropped after DATA")
    site.screenshot("dashboard-uncertain")
    site.page.click("button:has-text('It was sent')")
    expect(site.page.locator(".flash")).to_contain_text("Recorded as sent to cat@acme.example")
    assert one(sync_db, schema.SENDS, {"_id": site.world.uncertain_send})["state"] == "sent"
    lead = one(sync_db, schema.CAMPAIGN_LEADS, {"_id": ObjectId(site.world.uncertain_lead)})
    assert lead["progress"]["processed_recipients"][recipient_key(2, 0)]["status"] == "sent"
    assert sync_db["audit"].count_documents({"action": "send.resolve", "outcome": "ok"}) == 1


def test_numbers_change_in_place_when_the_database_changes(site: Site, sync_db: Db) -> None:
    cid = site.world.campaign_id
    sign_in(site, VIEWER, f"/dashboard/campaigns/{cid}")
    expect(_live(site, "percent")).to_have_text("50%")
    site.page.evaluate("window.loadedOnce = true")
    navigations: list[str] = []
    site.page.on("framenavigated", lambda frame: navigations.append(frame.url))

    leads = sync_db[schema.CAMPAIGN_LEADS]
    leads.update_one({"_id": ObjectId(site.world.lead_ids[3])}, {"$set": {"progress.completed": True}})
    expect(_live(site, "percent")).to_have_text("75%", timeout=LIVE_WAIT_MS)
    expect(_live(site, "leads", "completed")).to_have_text("2")
    assert site.page.locator("progress").first.get_attribute("value") is not None
    assert site.page.evaluate("document.querySelector('progress').value") == 75
    assert site.page.evaluate("window.loadedOnce === true"), "the page was reloaded"
    assert navigations == []


def test_every_page_fits_a_phone_without_sideways_scrolling(site: Site) -> None:
    site.page.set_viewport_size(PHONE)
    sign_in(site, OPERATOR)
    pages = {
        "overview": "/dashboard",
        "campaign": f"/dashboard/campaigns/{site.world.campaign_id}",
        "accounts": "/dashboard/accounts",
        "leads": "/dashboard/leads?q=acme",
        "lead": f"/dashboard/leads/{site.world.lead_ids[1]}",
        "uncertain": "/dashboard/uncertain",
    }
    for name, path in pages.items():
        site.page.goto(site.url(path))
        width = site.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide on a {PHONE['width']}px screen"
        site.screenshot(f"phone-{name}")
