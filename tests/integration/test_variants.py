"""Template variants and spintax through real dispatcher passes, the loopback SMTP server and the reports: each
recipient gets one variant, its message is worded as recorded, a retry is worded as the first attempt was."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from bson import ObjectId

from app.domain import inbound_effects as fx
from app.domain.inbound import SendRef
from app.domain.models import Template
from app.domain.variants import choose_variant
from app.inbound import effects
from app.store import schema
from app.store.client import Database
from app.transport.mailbox import Fault, MailboxServer
from tests.factories import add_account, add_campaign, add_lead
from tests.integration.test_cli_send import CAMPAIGN, LEAD, seed
from tests.integration.test_threaded_followups import Clock, run_once

VARIANTS = [
    {"name": "short", "subject": "{Quick|Short} question, {{ first_name }}", "body_text": "SHORT: {Hi|Hey} there."},
    {"name": "long", "body_text": "LONG: {Hello|Good day} {{ first_name }}, a longer note.", "weight": 1},
]
WORDING = {
    "short": (re.compile(r"^(Quick|Short) question, P\d+$"), re.compile(r"^SHORT: (Hi|Hey) there\.")),
    "long": (re.compile(r"^Intro for P\d+$"), re.compile(r"^LONG: (Hello|Good day) P\d+, a longer note\.")),
}


class RefuseOnce:
    """The SMTP server answers 451 to the first DATA of the first `count` messages, then accepts them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.refused: set[str] = set()

    def __call__(self, stage: str, value: str) -> Fault | None:
        if stage != "data" or value in self.refused or len(self.refused) >= self.count:
            return None
        self.refused.add(value)
        return Fault(451, "4.3.0 Try again later")


async def variant_campaign(db: Database) -> str:
    campaign = await add_campaign(db, steps=[{"subject": "Intro for {{ first_name }}", "body_text": "unused"}])
    sequence = (await db[schema.CAMPAIGNS].find_one({"_id": ObjectId(campaign)}))["sequence_id"]
    step = await db[schema.SEQUENCE_STEPS].find_one({"sequence_id": sequence, "step_order": 1})
    await db[schema.TEMPLATES].update_one({"_id": ObjectId(step["template_id"])}, {"$set": {"variants": VARIANTS}})
    return campaign


async def test_two_variants_over_forty_recipients_each_worded_as_recorded_and_retried_the_same(
    db: Database, smtp: MailboxServer, cli: Any
) -> None:
    clock = Clock()
    campaign = await variant_campaign(db)
    await add_account(db, smtp.port, email="s0@sender.example")
    leads = [
        await add_lead(db, campaign, [{"email": f"p{n}@acme{n}.example", "first_name": f"P{n}"}], due=clock.now)
        for n in range(40)
    ]
    smtp.fault = refuse = RefuseOnce(3)

    await run_once(db, clock)
    clock.advance(minutes=5)
    await run_once(db, clock)

    assert len(refuse.refused) == 3
    received = {r.message_id: r.parse() for r in smtp.messages}
    assert len(received) == 40
    chosen = {}
    for lead_id in leads:
        doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
        entry = doc["progress"]["processed_recipients"]["step_1_recipient_0"]
        sent = await db[schema.ACTIVITIES].find_one({"lead_id": lead_id, "type": "sent"})
        assert entry["variant"] == sent["variant"]
        message = received[entry["message_id"]]
        subject, body = WORDING[sent["variant"]]
        assert subject.match(message["Subject"]), (sent["variant"], message["Subject"])
        assert body.match(message.get_content()), (sent["variant"], message.get_content())
        chosen[lead_id] = sent["variant"]
        if entry["message_id"] in refuse.refused:
            retried = await db[schema.ACTIVITIES].find_one({"lead_id": lead_id, "type": "retry"})
            assert retried["variant"] == sent["variant"]
    assert set(chosen.values()) == {"short", "long"}

    # Replies to two recipients of each variant, matched to their sends as the inbox matches them.
    for name in ("short", "long"):
        for lead_id in [lead for lead, variant in chosen.items() if variant == name][:2]:
            doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
            email = doc["lead_data"][0]["email"]
            await effects.apply(
                db, effects.Answer(fx.REPLY, email, f"k:{lead_id}", SendRef(str(lead_id), 1, 0)), clock.now
            )

    result = await asyncio.to_thread(cli, "show-campaign-progress", campaign, "--json")
    assert result.exit_code == 0, result.output
    variants = {v["variant"]: v for v in json.loads(result.output)["steps"][0]["variants"]}
    counts = {name: sum(1 for v in chosen.values() if v == name) for name in ("short", "long")}
    for name in ("short", "long"):
        assert variants[name] == {
            "variant": name,
            "sent": counts[name],
            "replied": 2,
            "reply_rate": round(2 / counts[name], 4),
        }


def test_debug_template_shows_each_recipients_variant_and_spins_as_its_send_gets_them(cli: Any, sync_db: Any) -> None:
    seed(sync_db)
    sync_db.templates.update_one({"_id": "tpl1"}, {"$set": {"variants": VARIANTS}})
    template = Template.from_doc(sync_db.templates.find_one({"_id": "tpl1"}))

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--json")
    text = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--recipient", "0")

    assert result.exit_code == 0, result.output
    for row in json.loads(result.stdout)["recipients"]:
        key = f"{LEAD}:1:{row['recipient_index']}"
        variant = choose_variant(template.variants, key)
        assert variant is not None
        assert row["variant"] == variant.name
        assert row["spins"] and all(spin["text"] in row["subject"] + row["text"] for spin in row["spins"])
    first = json.loads(result.stdout)["recipients"][0]
    assert f"variant: {first['variant']}" in text.stdout
    assert f"option {first['spins'][0]['chosen'] + 1} of {first['spins'][0]['options']}" in text.stdout


def test_template_lint_and_show_cover_every_variant(cli: Any, sync_db: Any) -> None:
    sync_db.templates.insert_one(
        {"_id": "tv", "name": "intro", "subject": "Intro for {{ first_name }}", "body_text": "x", "variants": VARIANTS}
    )
    sync_db.templates.insert_one(
        {"_id": "tb", "name": "broken", "subject": "Hi", "body_text": "x", "variants": [{"body_text": "{a|b"}]}
    )

    lint = cli("template", "lint", "intro", "--json")
    broken = cli("template", "lint", "broken")
    show = cli("template", "show", "intro")

    assert lint.exit_code == 0, lint.output
    rendered = json.loads(lint.stdout)["variants"]
    assert WORDING["short"][1].match(rendered["short"]["text"])
    assert rendered["long"]["subject"] == "Intro for Ada"
    assert broken.exit_code == 1
    assert "variants[0].body_text: spintax: spintax at line 1, column 1" in broken.stdout
    assert "variants[1]: long, weight 1" in show.stdout
