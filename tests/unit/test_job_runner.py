"""The job runner's pure parts: what a due job runs, an execution's campaign settings and leads, its counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from app.domain.campaigns import Campaign, Lead
from app.domain.job_recipients import Recipient, RecipientSource
from app.domain.outcomes import RetryPolicy
from app.jobs import documents
from app.jobs.loop import check_seconds
from app.jobs.runner import decide
from app.store.job_executions import Counts

NOW = datetime(2026, 3, 10, 9, 30, 15, tzinfo=UTC)


def test_a_one_off_job_runs_at_its_time_and_has_no_next_run() -> None:
    job = {"next_run_at": NOW - timedelta(seconds=5)}
    assert decide(job, NOW) == (NOW - timedelta(seconds=5), None)


def test_a_recurring_job_runs_its_due_tick_and_moves_to_the_next_one_in_its_zone() -> None:
    berlin_eight = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)  # 08:00 in Berlin (UTC+1 in March)
    job = {"next_run_at": berlin_eight, "cron": "0 8 * * *", "timezone": "Europe/Berlin", "misfire": "run_once"}
    run, following = decide(job, NOW)
    assert run == berlin_eight and following == berlin_eight + timedelta(days=1)


def test_a_recurring_job_not_yet_due_runs_nothing() -> None:
    later = NOW + timedelta(minutes=1)
    assert decide({"next_run_at": later, "cron": "* * * * *", "timezone": "UTC"}, NOW) == (None, later)


@pytest.mark.parametrize(
    ("counts", "percentage"),
    [
        (Counts(total=0), 100.0),
        (Counts(total=200, sent=50, pending=150), 25.0),
        (Counts(total=3, sent=1, failed=1, pending=1), 66.7),
        (Counts(total=4, sent=2, skipped=2), 100.0),
    ],
)
def test_the_percentage_is_the_share_of_recipients_done(counts: Counts, percentage: float) -> None:
    assert counts.percentage == percentage
    assert counts.as_doc()["percentage"] == percentage


def test_an_execution_campaign_copies_limits_and_window_and_takes_the_jobs_retry_budget() -> None:
    base = {
        "daily_limit": 40,
        "min_wait_time": 2,
        "account_ids": ["a1"],
        "schedule": {"timezone": "UTC", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"},
        "sequence_only": "ignored",
    }
    settings = documents.campaign_settings({"max_retries": 2}, base)
    assert settings["daily_limit"] == 40 and settings["min_wait_time"] == 2 and settings["account_ids"] == ["a1"]
    assert "sequence_only" not in settings and settings["max_attempts"] == 3
    assert settings["uncertain_after_hours"] == 0


def test_an_execution_campaign_with_accounts_uses_them_and_the_default_budget() -> None:
    settings = documents.campaign_settings({"account_ids": ["x", "y"], "max_retries": None}, None)
    assert settings == {"account_ids": ["x", "y"], "uncertain_after_hours": 0}


def test_the_execution_campaign_is_a_valid_campaign_that_the_pipeline_reads_with_its_budget() -> None:
    job = {"_id": ObjectId(), "name": "Digest", "template_id": "t1", "max_retries": 0}
    execution = {"_id": ObjectId(), "scheduled_for": NOW}
    doc = documents.execution_campaign(job, execution, documents.campaign_settings(job, None), NOW)
    campaign = Campaign.from_doc({**doc, "status": "active"})
    assert campaign.id == str(execution["_id"]) and campaign.sequence_id == f"job-{job['_id']}"
    assert RetryPolicy(max_attempts=5).for_campaign(campaign.settings.max_attempts).max_attempts == 1
    assert RetryPolicy(max_attempts=5).for_campaign(None).max_attempts == 5


def test_one_lead_per_address_whatever_its_case_with_its_fields_for_the_template() -> None:
    recipients = [
        Recipient("ann@a.example", {"first_name": "Ann", "status": "vip"}),
        Recipient("ANN@a.example", {"first_name": "Again"}),
        Recipient("bob@b.example"),
    ]
    docs = documents.lead_documents("job1", "exec1", recipients, NOW)
    assert [d["lead_data"][0]["email"] for d in docs] == ["ann@a.example", "bob@b.example"]
    lead = Lead.from_doc({"_id": 1, **docs[0]})
    assert lead.campaign_id == "exec1" and lead.progress.next_due_at == NOW
    assert lead.recipients[0].fields["first_name"] == "Ann" and lead.recipients[0].status == "not_contacted"


def test_a_stored_source_reads_back_as_it_was_given() -> None:
    source = RecipientSource("file", path="/data/people.csv", filters=(("country", "DE"),), encoding="cp1252")
    assert documents.source_of({"source": documents.source_document(source)}) == source


@pytest.mark.parametrize(("poll", "interval"), [(0.05, 0.5), (1.0, 1.0), (5.0, 2.0), (60.0, 2.0)])
def test_the_runner_looks_for_due_jobs_every_few_seconds_at_most(poll: float, interval: float) -> None:
    assert check_seconds(poll) == interval
