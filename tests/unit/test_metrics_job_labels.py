"""Jobs in the aggregates: a job's executions share one metrics label value, `job:<job id>` (a job running every
minute adds one series), and one row of the daily report, "Job: <name>"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from app.domain.daily_report import CampaignInfo, ReportInputs, build_report, render_text
from app.domain.models import Campaign
from app.jobs import documents
from app.metrics.gauges import Readings, apply, backlog_by_label
from app.metrics.registry import Metrics, campaign_label

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def _execution_campaigns(job_id: ObjectId, runs: int) -> list[Campaign]:
    """The campaigns of `runs` executions of one job, a minute apart, read as the pipeline reads them."""
    job = {"_id": job_id, "name": "Digest"}
    found = []
    for n in range(runs):
        execution = {"_id": ObjectId(), "scheduled_for": START + timedelta(minutes=n)}
        doc = documents.execution_campaign(job, execution, {}, START)
        found.append(Campaign.from_doc({**doc, "status": "active"}))
    return found


def _campaign_labels(metrics: Metrics, name: str) -> set[str]:
    return {
        sample.labels["campaign_id"]
        for family in text_string_to_metric_families(metrics.text().decode())
        for sample in family.samples
        if sample.name == name
    }


def test_an_execution_campaign_is_labelled_by_its_job_and_a_sequence_by_its_own_id() -> None:
    job_id = ObjectId()
    (execution,) = _execution_campaigns(job_id, 1)
    assert execution.job_id == str(job_id)
    assert campaign_label(execution.id, execution.job_id) == f"job:{job_id}"
    sequence = Campaign.from_doc({"_id": ObjectId(), "name": "Spring", "status": "active"})
    assert sequence.job_id is None
    assert campaign_label(sequence.id, sequence.job_id) == sequence.id
    assert campaign_label(None) == ""


def test_a_days_executions_of_a_job_every_minute_yield_one_email_label_value() -> None:
    metrics = Metrics()
    job_id = ObjectId()
    executions = _execution_campaigns(job_id, 1440)
    assert len({c.id for c in executions}) == 1440
    for campaign in executions:
        metrics.email("sent", campaign_label(campaign.id, campaign.job_id), "a1")
        metrics.email("skipped", campaign_label(campaign.id, campaign.job_id), None)
    assert _campaign_labels(metrics, "outbound_emails_total") == {f"job:{job_id}"}
    samples = {
        (s.labels["outcome"], s.labels["account_id"]): s.value
        for family in text_string_to_metric_families(metrics.text().decode())
        for s in family.samples
        if s.name == "outbound_emails_total"
    }
    assert samples == {("sent", "a1"): 1440, ("skipped", ""): 1440}


def test_the_backlog_of_a_jobs_executions_is_summed_into_its_one_series() -> None:
    job_a, job_b = ObjectId(), ObjectId()
    active = {"seq1": None, "seq2": None, "e1": str(job_a), "e2": str(job_a), "e3": str(job_a), "e4": str(job_b)}
    backlog = {"seq1": 5, "e1": 2, "e2": 3, "e4": 7}
    assert backlog_by_label(active, backlog) == {"seq1": 5, "seq2": 0, f"job:{job_a}": 5, f"job:{job_b}": 7}


def test_many_active_executions_of_one_job_make_one_backlog_series() -> None:
    metrics = Metrics()
    job_id = ObjectId()
    active: dict[str, str | None] = {str(ObjectId()): str(job_id) for _ in range(500)}
    apply(metrics.gauges, Readings(due_backlog=backlog_by_label(active, dict.fromkeys(active, 1))))
    assert _campaign_labels(metrics, "outbound_due_backlog") == {f"job:{job_id}"}
    families = text_string_to_metric_families(metrics.text().decode())
    (value,) = [s.value for f in families for s in f.samples if s.name == "outbound_due_backlog"]
    assert value == 500


def test_the_daily_report_sums_a_jobs_executions_into_one_row_under_its_name() -> None:
    job_id = str(ObjectId())
    executions = [
        CampaignInfo(
            f"e{n}",
            f"Digest (2026-12-01 {n // 60:02d}:{n % 60:02d} UTC)",
            "completed",
            job_id=job_id,
            job_name="Digest",
        )
        for n in range(1440)
    ]
    running = CampaignInfo("e-now", "Digest (2026-12-02 00:00 UTC)", "active", job_id=job_id, job_name="Digest")
    spring = CampaignInfo("spring", "Spring", "active")
    inputs = ReportInputs(
        campaigns=[spring, *executions, running],
        activity_counts={"spring": {"sent": 3}, **{f"e{n}": {"sent": 1} for n in range(1440)}},
        failures={"e7": 2},
        accounts=[],
        uncertain_total=0,
        uncertain_oldest=[],
    )
    report = build_report(inputs, START.date(), "UTC", START)
    rows = {r.campaign_id: r for r in report.campaigns}
    assert set(rows) == {"spring", f"job:{job_id}"}
    job_row = rows[f"job:{job_id}"]
    assert (job_row.name, job_row.status, job_row.sent, job_row.failed) == ("Job: Digest", "active", 1440, 2)
    assert report.totals.sent == 1443
    text = render_text(report)
    assert f"Job: Digest (job:{job_id})" in text
    assert "Digest (2026-12-0" not in text  # no execution has a row of its own
