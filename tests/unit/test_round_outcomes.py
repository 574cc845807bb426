"""What a round's outcomes settle to (`send/round_outcomes.py`): pure, one `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain import ledger_states as lstate
from app.domain.models import Campaign, Lead, SequenceStep
from app.domain.outcomes import SENT, Verdict
from app.domain.settlement import LeadContext, RecipientResult
from app.send.items import SendItem
from app.send.round_outcomes import after_send, from_ledger, ledger_state, with_message
from app.store.leases import Lease
from app.transport.outgoing_message import OutgoingMessage

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
UNSUBSCRIBED = RecipientResult("skipped", None, error="recipient is unsubscribed")
LATER = NOW + timedelta(minutes=30)
STEPS = {1: SequenceStep("st1", "s1", 1, "t1", 0), 2: SequenceStep("st2", "s1", 2, "t2", 1440)}
KEY = "progress.processed_recipients.step_1_recipient_1"
RETRY_KEY = "progress.retries.step_1_recipient_1"


def item(skipped: tuple[tuple[int, RecipientResult], ...] = ()) -> SendItem:
    campaign = Campaign.from_doc(
        {"_id": "c1", "name": "Spring", "status": "active", "sequence_id": "s1", "settings": {"min_wait_time": 10}}
    )
    data = [{"email": "ann@acme.example"}, {"email": "bob@acme.example"}]
    lead = Lead.from_doc({"_id": "l1", "campaign_id": "c1", "lead_data": data, "progress": {"current_step_order": 1}})
    lease = Lease("l1", "vm:1", "tok", NOW + timedelta(minutes=2))
    return SendItem(0, LeadContext(lead, campaign, STEPS, STEPS[1]), lease, 1, None, skipped)


MESSAGE = OutgoingMessage(
    "<m1@acme.example>",
    "sales@acme.example",
    "Sam",
    "bob@acme.example",
    None,
    "Hello Bob",
    "Hi",
    None,
    {"References": "<a@x.example> <b@x.example>"},
)


@pytest.mark.parametrize(
    ("verdict", "status", "recipient_status", "due", "completed"),
    [
        # the step is over for the lead (its other recipient was skipped): step 2 is due a day later
        (SENT, "sent", "contacted", NOW + timedelta(days=1), True),
        (
            Verdict("failed", "bounced", error="5.1.1 no such user", smtp_code=550, suppress=True),
            "failed",
            "bounced",
            NOW + timedelta(days=1),
            True,
        ),
        # an uncertain send holds the lead for `uncertain_after_hours` (24) or until resolve-send
        (
            Verdict("uncertain", "uncertain", error="dropped during DATA", counts=True),
            "uncertain",
            "uncertain",
            NOW + timedelta(hours=24),
            False,
        ),
        # tried again at its time, on another account preferably
        (Verdict("retry", None, error="4.2.1 try later", smtp_code=421, retry_at=LATER), "failed", None, LATER, False),
    ],
)
def test_a_send_settles_by_its_verdict(
    verdict: Verdict, status: str, recipient_status: str | None, due: datetime, completed: bool
) -> None:
    settled = after_send(item(((0, UNSUBSCRIBED),)), "a1", MESSAGE, verdict, 2, NOW)
    assert settled.next_due_at == due
    assert settled.step_completed is completed
    if verdict.status == "retry":
        assert settled.set[RETRY_KEY] == {"account_id": "a1", "attempts": 2, "error": "4.2.1 try later", "at": NOW}
        assert KEY not in settled.set and settled.outcome.kind == "retry"
        return
    entry = settled.set[KEY]
    assert entry["status"] == status and entry["account_id"] == "a1" and entry["message_id"] == "<m1@acme.example>"
    assert entry.get("error") == verdict.error and entry.get("smtp_code") == verdict.smtp_code
    assert settled.set.get("lead_data.1.status") == recipient_status


def test_a_settled_send_keeps_the_skips_made_before_it_and_waits_for_the_recipients_left() -> None:
    settled = after_send(item(((0, UNSUBSCRIBED),)), "a1", MESSAGE, SENT, 1, NOW)
    assert settled.set["progress.processed_recipients.step_1_recipient_0"]["status"] == "skipped"
    assert settled.set[KEY]["status"] == "sent"
    alone = after_send(item(), "a1", MESSAGE, SENT, 1, NOW)  # the first recipient is still to be sent
    assert not alone.step_completed and alone.next_due_at == NOW + timedelta(minutes=10)


def test_what_the_next_step_needs_of_a_message_is_recorded_with_its_result() -> None:
    result = with_message(RecipientResult("sent", "contacted", "a1", "<m1@acme.example>"), MESSAGE)
    assert result.subject == "Hello Bob"
    assert result.references == ("<a@x.example>", "<b@x.example>")


@pytest.mark.parametrize(
    ("verdict", "state"),
    [
        (SENT, lstate.SENT),
        (Verdict("retry", None, retry_at=LATER), lstate.RETRY_WAIT),
        (Verdict("failed", "bounced"), lstate.FAILED),
        (Verdict("uncertain", "uncertain"), lstate.UNCERTAIN),
    ],
)
def test_the_ledger_state_of_a_verdict(verdict: Verdict, state: str) -> None:
    assert ledger_state(verdict) == state


@pytest.mark.parametrize(
    ("doc", "outcome", "code"),
    [
        ({"state": "sent", "account_id": "a1", "message_id": "<m@x>"}, "sent", None),
        ({"state": "uncertain", "account_id": "a1", "last_error": "timeout"}, "uncertain", None),
        ({"state": "failed", "smtp_code": 550, "last_error": "no such user"}, "failed", 550),
        ({"state": "failed", "smtp_code": "550"}, "failed", None),  # a code that is not a number is not one
    ],
)
def test_a_ledger_entry_found_settled_stands_for_its_outcome(
    doc: dict[str, object], outcome: str, code: int | None
) -> None:
    result = from_ledger(doc)
    assert result.status == outcome and result.smtp_code == code
    assert result.error == doc.get("last_error")
