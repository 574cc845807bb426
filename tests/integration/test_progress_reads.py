"""Campaign progress and lead counts grouped on the server give the numbers the pure path gives, lead for lead.

The leads are varied on purpose: every state, entries with and without a status, keys that are not ours,
steps the sequence no longer has, leads only Python can judge (non-ASCII or padded addresses, a float step)
and malformed ones, which are reported with their field and counted nowhere.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from app.domain import reports
from app.domain.models import InvalidDocument, Lead
from app.ops import campaign_views
from app.store import lead_queries, progress_reads, schema
from app.store.client import Database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CID = "65f0000000000000000000c1"
STEPS = [1, 2, 3]

ENTRIES: list[Any] = [
    {"status": "sent"},
    {"status": "failed"},
    {"status": "uncertain"},
    {"status": "skipped"},
    {"status": None},
    {},  # seed 001's entry without a status: a send
    "sent",  # not an object: not counted
]
KEYS = ["step_{}_recipient_0", "step_{}_recipient_1", "step_0{}_recipient_", "note_{}", "step_{}_recipient_0_x"]
WHEN = [None, NOW - timedelta(hours=1), NOW, NOW + timedelta(hours=1)]


def _random_progress(rng: random.Random) -> dict[str, Any]:
    progress: dict[str, Any] = {}
    choices: dict[str, list[Any]] = {
        "current_step_order": [None, 1, 2, 3, 5],
        "completed": [None, False, True, False],
        "stopped": [None, False, False, True],
        "next_due_at": WHEN,
        "lease_until": WHEN,
    }
    for name, values in choices.items():
        value = rng.choice(values)
        if value is not None or rng.random() < 0.3:
            progress[name] = value
    entries = {rng.choice(KEYS).format(rng.randint(1, 4)): rng.choice(ENTRIES) for _ in range(rng.randint(0, 4))}
    if entries or rng.random() < 0.5:
        progress["processed_recipients"] = entries
    return progress


def _plain_leads(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        {
            "campaign_id": CID if i % 3 else ObjectId(CID),
            "lead_data": [{"email": f"p{i}.{j}@c{i}.example.com"} for j in range(rng.randint(1, 3))],
            **({"progress": _random_progress(rng)} if rng.random() < 0.9 else {}),
        }
        for i in range(count)
    ]


_numbers = itertools.count()


def _lead(email: Any = None, **progress: Any) -> dict[str, Any]:
    address = f"x{next(_numbers)}@mail.example.com" if email is None else email
    return {"campaign_id": CID, "lead_data": [{"email": address}], "progress": progress}


def valid_suspects() -> list[dict[str, Any]]:
    """Leads the server leaves to Python that are valid: counted all the same."""
    return [
        _lead("Renée@Müller.example", current_step_order=2),
        _lead("  padded@mail.example.com ", completed=True),
        _lead(current_step_order=2.0, next_due_at=NOW - timedelta(minutes=1)),
        _lead("ann@xn--mller-kva.example", lease_until=NOW + timedelta(minutes=1)),
        _lead("Ünal@mail.example.com", stopped=True),
        _lead(lease_owner=ObjectId(), lease_until=NOW),  # an id where a string is expected: accepted
        _lead(stopped=True, stopped_reason=ObjectId()),
    ]


def malformed() -> dict[str, dict[str, Any]]:
    """Malformed leads by the field they are reported with: counted nowhere."""
    return {
        "lead_data.0.email": _lead("not an address"),
        "lead_data": {"campaign_id": CID, "lead_data": [], "progress": {"completed": True}},
        "progress.completed": _lead(completed="yes"),
        "progress.next_due_at": _lead(next_due_at="2026-03-01"),
        "progress.current_step_order": _lead(current_step_order=0),
        "progress.processed_recipients": _lead(processed_recipients=[{"status": "sent"}]),
        "progress": {"campaign_id": CID, "lead_data": [{"email": "w@mail.example.com"}], "progress": "started"},
    }


async def _seed(db: Database) -> list[dict[str, Any]]:
    docs = _plain_leads(random.Random(11), 300) + valid_suspects() + list(malformed().values())
    docs.append(_lead("q@b.test"))  # a special-use domain: email_validator refuses it
    docs.append(
        {"campaign_id": CID, "lead_data": [{"email": "y@mail.example.com", "status": "replied", "last_step": 1}]}
    )
    await db[schema.CAMPAIGN_LEADS].insert_many(docs)
    await db[schema.CAMPAIGN_LEADS].insert_one({**_lead(completed=True), "campaign_id": "another campaign"})
    return docs


def _pure(docs: list[dict[str, Any]]) -> tuple[reports.CampaignProgress, dict[str, str]]:
    valid, invalid = [], {}
    for doc in docs:
        try:
            valid.append(Lead.from_doc(doc))
        except InvalidDocument as exc:
            invalid[str(doc["_id"])] = exc.field
    return reports.campaign_progress(valid, STEPS, NOW), invalid


async def test_grouped_progress_equals_the_pure_progress_of_the_valid_leads(db: Database) -> None:
    docs = await _seed(db)
    problems: list[InvalidDocument] = []

    grouped = await campaign_views.lead_progress(db, CID, STEPS, NOW, problems.append)

    expected, invalid = _pure(docs)
    assert grouped == expected
    assert all(getattr(expected.counts, state) > 0 for state in reports.LEAD_STATES)
    assert {4, 5} <= {s.step_order for s in expected.steps}  # steps the sequence does not have
    assert all(sum(getattr(s, o) for s in expected.steps) > 0 for o in reports.PROCESSED_OUTCOMES)
    assert 0 < expected.percent_complete < 100
    assert {str(p.doc_id): p.field for p in problems} == invalid
    assert set(invalid.values()) >= set(malformed())
    assert grouped.counts.total == len(docs) - len(invalid)


async def test_the_server_counts_plain_leads_and_hands_only_the_others_to_python(db: Database) -> None:
    docs = await _seed(db)

    rows, suspects = await progress_reads.grouped_progress(db, campaign_views.campaign_ref(CID), NOW)

    assert len(suspects) == len(valid_suspects()) + len(malformed()) + 1
    streamed = progress_reads.suspect_leads(db, campaign_views.campaign_ref(CID))
    assert sorted([doc["_id"] async for doc in streamed]) == sorted(doc["_id"] for doc in suspects)
    plain = rows - progress_reads.rows_of_docs(suspects, NOW)
    assert reports.tally_from_rows(plain, len(STEPS)).leads == len(docs) - len(suspects)


async def test_more_suspects_than_one_pass_returns_are_all_read_in_a_second(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = await _seed(db)
    monkeypatch.setattr(progress_reads, "MAX_SUSPECTS", 3)
    problems: list[InvalidDocument] = []

    grouped = await campaign_views.lead_progress(db, CID, STEPS, NOW, problems.append)

    expected, invalid = _pure(docs)
    assert grouped == expected
    assert {str(p.doc_id) for p in problems} == set(invalid)


async def test_a_lead_malformed_in_a_field_progress_does_not_count_is_still_reported_and_left_out(
    db: Database,
) -> None:
    recipient = {"email": "z@mail.example.com", "status": "weird"}
    await db[schema.CAMPAIGN_LEADS].insert_many(
        [
            _lead(current_step_order=2),
            {"campaign_id": CID, "lead_data": [recipient]},
            {**_lead(), "progress": {"retries": 3}},
            {**_lead(), "lead_key": 7},
        ]
    )
    problems: list[InvalidDocument] = []

    progress = await campaign_views.lead_progress(db, CID, STEPS, NOW, problems.append)

    assert (progress.counts.total, progress.counts.waiting) == (1, 1)
    assert [s.leads_at_step for s in progress.steps] == [0, 1, 0]
    assert sorted(p.field for p in problems) == ["lead_data.0.status", "lead_key", "progress.retries"]


async def test_grouped_progress_of_a_campaign_without_leads_or_steps_is_empty(db: Database) -> None:
    progress = await campaign_views.lead_progress(db, CID, [], NOW, lambda exc: None)

    assert progress == reports.CampaignProgress(steps=(), counts=reports.LeadCounts(), percent_complete=0.0)


async def _counts_one_query_per_state(db: Database, campaign_id: str) -> reports.LeadCounts:
    """How lead_counts counted before: one count_documents per state filter, waiting the rest."""
    leads, scope = db[schema.CAMPAIGN_LEADS], campaign_views.campaign_ref(campaign_id)
    total = await leads.count_documents(scope)
    counts = {
        state: await leads.count_documents({"$and": [scope, flt]})
        for state, flt in lead_queries.state_filters(NOW).items()
    }
    counts[reports.WAITING] = max(total - sum(counts.values()), 0)
    return reports.LeadCounts.from_states(counts)


async def test_lead_counts_in_one_read_equal_one_count_per_state_malformed_leads_included(db: Database) -> None:
    await _seed(db)
    await db[schema.CAMPAIGN_LEADS].insert_many(
        [_lead(lease_until="soon", next_due_at=NOW), _lead(stopped=1, next_due_at=NOW), _lead(completed="true")]
    )

    counts = await campaign_views.lead_counts(db, CID, NOW)

    assert counts == await _counts_one_query_per_state(db, CID)
    assert counts.total == await db[schema.CAMPAIGN_LEADS].count_documents(campaign_views.campaign_ref(CID))
