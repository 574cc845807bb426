"""Demo data: four campaigns, five local SMTP accounts and about forty leads that move within minutes.

The fourth campaign has a sending window in each recipient's own time zone: its recipients live where it is
mid-day now (sent) or the middle of the night (waiting for the window to open).

`build_demo` is pure (fixed ids, times from `now`); demo_seed.py validates it and writes it. Every address is
on example.com/.org/.net.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId

from app.store import schema

DEMO_SMTP_HOST = "127.0.0.1"
DEMO_SMTP_PORT = 2525
# Fixed ids: a timestamp prefix (2024-01-13) plus a kind and a number, so every run writes the same documents.
_ID_PREFIX = "65a1de00"


def demo_id(kind: int, number: int) -> ObjectId:
    """The fixed ObjectId of demo document `number` of a kind (1 campaign, 2 template, 3 account, ...)."""
    return ObjectId(f"{_ID_PREFIX}{kind:04x}{number:012x}")


@dataclass(frozen=True)
class DemoData:
    """Every demo document, by collection."""

    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def ids(self, collection: str) -> list[Any]:
        """The `_id`s of one collection's demo documents."""
        return [doc["_id"] for doc in self.documents.get(collection, [])]


_SIGN_OFF = "{{ account_signature }}"

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Demo: agency intro",
        "body_text": (
            "Subject: A quick idea for {{ company_name }}\n"
            'Hi {{ first_name | default("there") }},\n\n'
            "I spent a few minutes on {{ website }} and noticed a couple of easy wins for {{ company_name }}.\n"
            "Would a 15-minute call next week be useful?\n\n"
            "{{ sender_name }}\n" + _SIGN_OFF
        ),
    },
    {
        "name": "Demo: agency follow-up",
        "subject": "Re: {{ company_name }} (step {{ step_order }})",
        "body_text": (
            'Hi {{ first_name | default("there") }},\n\n'
            "Following up on my note about {{ website }}. Happy to send a short audit instead of a call.\n\n"
            "{{ sender_name }}"
        ),
        # No account_signature here: the renderer appends the signature to both the text and the HTML part.
        "body_html": (
            '<p>Hi {{ first_name | default("there") }},</p>'
            '<p>Following up on my note about <a href="{{ website }}">{{ website }}</a>. '
            "Happy to send a short audit of <strong>{{ company_name }}</strong> instead of a call.</p>"
            "<p>{{ sender_name }}</p>"
        ),
    },
    {
        "name": "Demo: agency last note",
        "subject": "Closing the loop, {{ first_name | default('team') }}",
        "body_text": (
            'Hi {{ first_name | default("there") }},\n\n'
            "This is my last note (step {{ step_order }}). If {{ company_name }} ever wants a second pair of eyes "
            "on {{ website }}, just reply.\n\n" + _SIGN_OFF
        ),
    },
    {
        "name": "Demo: SaaS trial",
        "subject": "{{ company_name }} + a faster onboarding",
        "body_text": (
            'Hello {{ first_name | default("there") }},\n\n'
            "Teams like {{ company_name }} cut onboarding time in half with our tool. Want a trial account?\n\n"
            "{{ sender_name }}\n" + _SIGN_OFF
        ),
    },
    {
        "name": "Demo: SaaS nudge",
        "subject": "Any thoughts, {{ first_name | default('there') }}?",
        "body_text": "Just bumping this up for {{ company_name }} (step {{ step_order }}).\n\n" + _SIGN_OFF,
    },
    {
        "name": "Demo: webinar invite",
        "subject": "Webinar seat for {{ company_name }}",
        "body_text": (
            'Hi {{ first_name | default("there") }}, we saved a seat for {{ company_name }} at Thursday\'s '
            "webinar.\n\n" + _SIGN_OFF
        ),
    },
    {
        "name": "Demo: webinar reminder",
        "subject": "Reminder: webinar tomorrow",
        "body_text": 'Hi {{ first_name | default("there") }}, the webinar is tomorrow.\n\n' + _SIGN_OFF,
    },
]

# Every day rather than Monday to Friday, so that the demo shows the same thing whenever it is run.
OFFICE_HOURS: dict[str, Any] = {
    "timezone": "Europe/London",
    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "start": "09:00",
    "end": "17:00",
    "recipient_timezone": True,
}
# (name, status, sequence id, [(template index, delay minutes)], settings, account numbers or None for all)
CAMPAIGNS: list[tuple[str, str, str, list[tuple[int, float]], dict[str, Any], list[int] | None]] = [
    (
        "Demo: Agency outreach",
        "active",
        "demo-seq-agency",
        [(0, 0), (1, 0.5), (2, 1)],
        {"daily_limit": 30, "min_wait_time": 0.05, "batch_size": 10},
        None,
    ),
    (
        "Demo: SaaS trial",
        "active",
        "demo-seq-saas",
        [(3, 0), (4, 0.5)],
        {"daily_limit": 20, "min_wait_time": 0.05, "batch_size": 10},
        [1, 2, 3],
    ),
    (
        "Demo: Webinar (paused)",
        "paused",
        "demo-seq-webinar",
        [(5, 0), (6, 1)],
        {"daily_limit": 10, "min_wait_time": 0.1, "batch_size": 5},
        None,
    ),
    (
        "Demo: Office hours (recipient's time zone)",
        "active",
        "demo-seq-office",
        [(3, 0), (4, 0.5)],
        {"daily_limit": 10, "min_wait_time": 0.05, "batch_size": 10, "schedule": OFFICE_HOURS},
        [3, 4],
    ),
]
LEADS_PER_CAMPAIGN = (16, 14, 10, 4)
WINDOWED_CAMPAIGN = 4
# Spread around the world so that at any moment one is mid-day (10:00-15:59) and one in the night (00:00-05:59).
DEMO_TIME_ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)

ACCOUNTS = [
    ("alex.carter", "Alex", "Carter", 40),
    ("blair.quinn", "Blair", "Quinn", 40),
    ("casey.moreno", "Casey", "Moreno", 30),
    ("devon.price", "Devon", "Price", 30),
    ("emery.lang", "Emery", "Lang", 6),  # small on purpose: the demo shows a daily limit being reached
]

COMPANIES = [
    "Acme Analytics", "Northwind Traders", "Globex Labs", "Initech Systems", "Umbrella Health", "Stark Metalworks",
    "Wayne Logistics", "Hooli Cloud", "Pied Piper", "Vandelay Imports", "Soylent Foods", "Tyrell Robotics",
    "Cyberdyne Security", "Wonka Confections", "Gringotts Finance", "Oceanic Air", "Monarch Studios",
    "Blue Sun Energy", "Aperture Research", "Black Mesa Labs", "Massive Dynamic", "Dunder Paper",
    "Prestige Worldwide", "Bluth Homes", "Sterling Cooper", "Los Pollos Foods", "Krusty Kitchens",
    "Duff Brewing", "Nakatomi Trading", "Oscorp Biotech", "Gekko Capital", "Rekall Travel", "Spacely Sprockets",
    "Cogswell Cogs", "Virtucon Media", "Weyland Mining", "Zorg Industries", "Ollivander Crafts",
    "Paper Street Soap", "Sirius Cybernetics", "Initrode Software", "Hanso Foundation", "Primatech Paper",
    "Yoyodyne Propulsion",
]  # fmt: skip
PEOPLE = [
    ("Ana", "Silva"), ("Ben", "Okafor"), ("Chloé", "Martin"), ("Dmitri", "Ivanov"), ("Eva", "Nowak"),
    ("Farid", "Haddad"), ("Greta", "Lind"), ("Hiro", "Tanaka"), ("Ines", "García"), ("Jonas", "Berg"),
    ("Kemi", "Adeyemi"), ("Lena", "Fischer"), ("Marco", "Rossi"), ("Nora", "Kelly"),
]  # fmt: skip
TLDS = ("example.com", "example.org", "example.net")


def build_demo(now: datetime, smtp_port: int = DEMO_SMTP_PORT) -> DemoData:
    """Every demo document; times are relative to `now` and ids are fixed."""
    templates = [{"_id": demo_id(2, i + 1), **t} for i, t in enumerate(TEMPLATES)]
    accounts, general, limits = _accounts(smtp_port)
    campaigns: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    leads: list[dict[str, Any]] = []
    company = 0
    for number, (name, status, sequence_id, sequence, settings, allowed) in enumerate(CAMPAIGNS, start=1):
        campaign_id = demo_id(1, number)
        chosen = {"account_ids": [str(accounts[n - 1]["_id"]) for n in allowed]} if allowed else {}
        campaigns.append(
            {
                "_id": campaign_id,
                "name": name,
                "status": status,
                "created_at": now,
                "sequence_id": sequence_id,
                "settings": {**settings, **chosen},
            }
        )
        for order, (template, delay) in enumerate(sequence, start=1):
            steps.append(
                {
                    "_id": demo_id(7, number * 10 + order),
                    "sequence_id": sequence_id,
                    "step_order": order,
                    "template_id": str(templates[template]["_id"]),
                    "delay_minutes": delay,
                }
            )
        first_due = now + timedelta(minutes=sequence[0][1])
        for n in range(LEADS_PER_CAMPAIGN[number - 1]):
            lead = _lead(company, str(campaign_id), now, first_due)
            if number == WINDOWED_CAMPAIGN:
                # Alternately mid-day and night where the recipients are: half sent now, half waiting.
                zone = demo_time_zones(now)[n % 2]
                lead["lead_data"] = [{**r, "timezone": zone} for r in lead["lead_data"]]
            leads.append(lead)
            company += 1
    return DemoData(
        {
            schema.CAMPAIGNS: campaigns,
            schema.SEQUENCE_STEPS: steps,
            schema.TEMPLATES: templates,
            schema.EMAIL_ACCOUNTS: accounts,
            schema.EMAIL_GENERAL_SETTINGS: general,
            schema.EMAIL_CAMPAIGN_SETTINGS: limits,
            schema.CAMPAIGN_LEADS: leads,
        }
    )


def demo_time_zones(now: datetime) -> tuple[str, str]:
    """A zone where it is mid-day at `now` (the window is open for hours) and one where it is night (closed)."""
    hours = {name: now.astimezone(ZoneInfo(name)).hour for name in DEMO_TIME_ZONES}
    day = next(name for name, hour in hours.items() if 10 <= hour < 16)
    night = next(name for name, hour in hours.items() if hour < 6)
    return day, night


def _accounts(smtp_port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    accounts, general, limits = [], [], []
    for number, (local, first, last, max_daily) in enumerate(ACCOUNTS, start=1):
        account_id = demo_id(3, number)
        email = f"{local}@outreach.example.net"
        # No credentials: the demo's local SMTP server takes mail without AUTH, over plain TCP on loopback.
        accounts.append(
            {
                "_id": account_id,
                "email": email,
                "smtp_host": DEMO_SMTP_HOST,
                "smtp_port": smtp_port,
                "smtp_security": "none",
                "status": "active",
                "provider": "Demo",
                "sender_name": f"{first} {last}",
            }
        )
        general.append(
            {
                "_id": demo_id(4, number),
                "email_id": str(account_id),
                "signature": f"{first} {last}\nGrowth team, Outbound Demo\nhttps://outbound.example.org",
                "sender_name": f"{first} {last}",
                "sender_first_name": first,
                "sender_last_name": last,
            }
        )
        limits.append(
            {
                "_id": demo_id(5, number),
                "email_id": str(account_id),
                "daily_limit": 25,
                "min_wait_time": 0.05,
                "max_daily_sends": max_daily,
            }
        )
    return accounts, general, limits


def _lead(index: int, campaign_id: str, now: datetime, first_due: datetime) -> dict[str, Any]:
    name = COMPANIES[index % len(COMPANIES)]
    domain = f"{name.split()[0].lower()}.{TLDS[index % len(TLDS)]}"
    recipients = []
    for offset in range(1 + index % 3):
        first, last = PEOPLE[(index * 3 + offset) % len(PEOPLE)]
        recipient: dict[str, Any] = {
            "email": f"{first.lower()}.{last.lower()}@{domain}".replace("é", "e").replace("í", "i"),
            "company_name": name,
            "website": f"https://www.{domain}",
            "status": "not_contacted",
        }
        # Every fifth recipient has no first name, so the templates' `default("there")` shows up in the demo.
        if (index + offset) % 5 != 4:
            recipient.update(first_name=first, last_name=last, name=f"{first} {last}")
        recipients.append(recipient)
    return {
        "_id": demo_id(6, index + 1),
        "campaign_id": campaign_id,
        "lead_key": f"website:{domain}",
        "created_at": now,
        "lead_data": recipients,
        "progress": {
            "current_step_order": 1,
            "stopped": False,
            "processed_recipients": {},
            "next_due_at": first_due,
        },
    }
