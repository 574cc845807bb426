"""The pure half of server-side progress: the server's grouped rows laid out as `campaign_progress` lays out
leads, tallies that add up, and the pattern of addresses the server counts without reading them."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain import reports
from app.domain.addresses import InvalidAddress, normalize_email
from app.domain.models import Lead
from app.store import progress_reads

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def lead(n: int, **progress: Any) -> Lead:
    return Lead.from_doc(
        {"_id": n, "campaign_id": "c", "lead_data": [{"email": f"p{n}@x.example"}], "progress": progress}
    )


SERVER_ROWS: dict[str, Any] = {
    "leads": [
        {"_id": {"state": "completed", "step": 3}, "n": 2},
        {"_id": {"state": "due", "step": 1}, "n": 3},
        {"_id": {"state": "waiting"}, "n": 3},  # no current step: the first
        {"_id": {"state": "waiting", "step": 2.0}, "n": 1.0},  # the server's whole doubles are whole numbers
        {"_id": {"state": "waiting", "step": 4}, "n": 1},
    ],
    "entries": [
        {"_id": {"key": "step_1_recipient_0", "status": "sent", "type": "object"}, "n": 5},
        {"_id": {"key": "step_1_recipient_1", "type": "object"}, "n": 2},  # no status: a send
        {"_id": {"key": "step_1_recipient_0", "status": "failed", "type": "object"}, "n": 2},
        {"_id": {"key": "step_2_recipient_0", "status": "uncertain", "type": "object"}, "n": 1},
        {"_id": {"key": "step_2_recipient_0", "status": None, "type": "object"}, "n": 4},
        {"_id": {"key": "step_2_recipient_0", "status": "skipped", "type": "object"}, "n": 4},
        {"_id": {"key": "step_3_recipient_0", "type": "string"}, "n": 4},
        {"_id": {"key": "note", "status": "sent", "type": "object"}, "n": 4},
    ],
}


def test_rows_are_laid_out_per_step_with_states_and_the_share_of_steps_done() -> None:
    rows = progress_reads.rows_of_groups(SERVER_ROWS)

    progress = reports.progress_of(reports.tally_from_rows(rows, 3), [1, 2, 3])

    assert progress.steps == (
        reports.StepProgress(1, leads_at_step=6, sent=7, failed=2),
        reports.StepProgress(2, leads_at_step=1, uncertain=1),
        reports.StepProgress(3),
        reports.StepProgress(4, leads_at_step=1),  # a step the sequence no longer has
    )
    assert progress.counts == reports.LeadCounts(total=10, completed=2, due=3, waiting=5)
    assert progress.percent_complete == 33.3  # (2 x 3 + 1 + 3) of 10 leads x 3 steps


def test_no_rows_is_a_campaign_without_leads() -> None:
    progress = reports.progress_of(reports.tally_from_rows(progress_reads.rows_of_groups({}), 2), [1, 2])

    assert progress == reports.CampaignProgress(
        steps=(reports.StepProgress(1), reports.StepProgress(2)), counts=reports.LeadCounts(), percent_complete=0.0
    )


def test_a_server_row_that_is_not_a_count_is_refused() -> None:
    with pytest.raises(ValueError, match="progress rows: expected a whole number >= 0, got '6'"):
        progress_reads.rows_of_groups({"leads": [{"_id": {"state": "due", "step": 1}, "n": "6"}]})


def test_the_rows_of_some_leads_are_taken_away_and_never_below_zero() -> None:
    rows = reports.ProgressRows({("due", 1): 3, ("waiting", 2): 1}, {("step_1_recipient_0", "sent"): 2})
    some = reports.ProgressRows({("due", 1): 1, ("waiting", 2): 1}, {("step_1_recipient_0", "sent"): 2})

    assert rows - some == reports.ProgressRows({("due", 1): 2}, {})
    with pytest.raises(ValueError, match="cannot take away 2"):
        some - reports.ProgressRows({("due", 1): 2})


def test_the_twin_of_the_grouping_reads_documents_as_the_server_groups_them() -> None:
    docs: list[dict[str, Any]] = [
        {"progress": {"completed": True, "current_step_order": 3}},
        {"progress": {"completed": "yes", "next_due_at": NOW, "lease_until": "soon"}},  # not a date: no lease
        {"progress": {"lease_until": NOW.replace(tzinfo=None) + timedelta(minutes=1), "current_step_order": 2.0}},
        {"progress": "started"},
        {"progress": {"processed_recipients": {"step_1_recipient_0": {}, "k": "x", "step_2_recipient_0": {"a": 1}}}},
        {"progress": {"processed_recipients": [{"status": "sent"}], "stopped": True, "current_step_order": "2"}},
    ]

    rows = progress_reads.rows_of_docs(docs, NOW)

    assert rows.leads == {("completed", 3): 1, ("waiting", 1): 3, ("in_progress", 2): 1, ("stopped", 1): 1}
    assert rows.entries == {("step_1_recipient_0", "sent"): 1, ("k", None): 1, ("step_2_recipient_0", "sent"): 1}


def varied_leads() -> list[Lead]:
    entries = [{"status": "sent"}, {"status": "failed"}, {"status": "uncertain"}, {}, {"status": "skipped"}, "x"]
    return [
        lead(
            n,
            current_step_order=1 + n % 4,
            completed=n % 7 == 0,
            stopped=n % 11 == 0,
            next_due_at=NOW + timedelta(minutes=n % 5 - 2),
            lease_until=NOW + timedelta(minutes=1) if n % 13 == 0 else None,
            processed_recipients={f"step_{1 + n % 3}_recipient_0": entries[n % len(entries)], "note": {}},
        )
        for n in range(60)
    ]


def test_tallies_of_parts_add_up_to_the_tally_of_all_leads() -> None:
    leads = varied_leads()

    parts = reports.tally_leads(leads[:25], 3, NOW) + reports.tally_leads(leads[25:], 3, NOW)

    assert parts == reports.tally_leads(leads, 3, NOW)
    assert reports.progress_of(parts, [1, 2, 3]) == reports.campaign_progress(leads, [1, 2, 3], NOW)


def test_tally_counts_states_open_leads_per_step_outcomes_and_steps_done() -> None:
    leads = [
        lead(1, current_step_order=2, processed_recipients={"step_1_recipient_0": {}}),
        lead(
            2, completed=True, current_step_order=3, processed_recipients={"step_3_recipient_1": {"status": "failed"}}
        ),
        lead(3, next_due_at=NOW, processed_recipients={"step_1_recipient_0": {"status": None}}),
    ]

    tally = reports.tally_leads(leads, 3, NOW)

    assert tally == reports.ProgressTally(
        states={"waiting": 1, "completed": 1, "due": 1},
        at_step={2: 1, 1: 1},
        outcomes={(1, "sent"): 1, (3, "failed"): 1},  # a None status is no outcome
        steps_done=1 + 3 + 0,
        leads=3,
    )


PLAIN = [
    "ann@example.com",
    "Ann.Lee+news@mail.example.co.uk",
    "o'brien@x-y.example",
    "a_b!#$%&*/=?^`{|}~-c@a1.example.org",
    "x@" + "a" * 63 + ".example",
    "l" * 64 + "@example.com",
]
NOT_PLAIN = [
    "Renée@example.com",
    "ann@müller.example",
    " ann@example.com",
    "ann..lee@example.com",
    ".ann@example.com",
    "ann@example",
    "ann@-x.example",
    "ann@x--y.example",
    "ann@xn--mller-kva.example",
    "ann@example.test",
    "ann@host.localhost",
    "ann@example.123",
    "l" * 65 + "@example.com",
    "x@" + "a" * 64 + ".example",
    '"ann lee"@example.com',
    "ann@[127.0.0.1]",
]


@pytest.mark.parametrize("address", PLAIN)
def test_a_plain_address_is_one_the_address_check_accepts(address: str) -> None:
    assert re.match(reports.PLAIN_ADDRESS_PATTERN, address)
    assert normalize_email(address)


@pytest.mark.parametrize("address", NOT_PLAIN)
def test_an_address_only_the_full_check_can_judge_is_not_plain(address: str) -> None:
    assert not re.match(reports.PLAIN_ADDRESS_PATTERN, address)


def test_random_addresses_that_look_plain_always_pass_the_address_check() -> None:
    rng = random.Random(3)
    alphabet = "ab.-_+@x1Z'é"
    tried = plain = 0
    while tried < 20_000:
        tried += 1
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 14))) + rng.choice([".com", ".io", ""])
        if re.match(reports.PLAIN_ADDRESS_PATTERN, text):
            plain += 1
            try:
                normalize_email(text)
            except InvalidAddress as exc:
                pytest.fail(f"{text!r} matches the plain pattern but is refused: {exc}")
    assert plain > 100
