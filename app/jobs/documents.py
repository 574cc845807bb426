"""The stored forms of a job: its `jobs` document, the campaign behind each execution, its recipients' leads.

An execution is sent by the sequence engine as a campaign of its own: a `campaigns` document that shares the
execution's `_id` (`kind: "job"`), whose one-step sequence (`job-<job id>`) sends the job's template, and one
`campaign_leads` document per recipient. So every gate of a sequence (suppressions, sending windows, account
and domain limits, stop rules) applies unchanged, and the ledger key of a send, (lead, step 1, recipient 0),
is the job's (job, execution, recipient). One campaign per execution (rather than per job) is what lets one
address be mailed again by the next run: the leads' unique index allows an address once per campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.domain.job_recipients import Recipient, RecipientSource
from app.domain.job_schedule import Cron, Misfire
from app.domain.job_specs import JobSpec

JOB_KIND = "job"
# What a job's campaign takes over from the --campaign-id it names; the rest are the job's own.
COPIED_SETTINGS = (
    "daily_limit",
    "hourly_limit",
    "min_wait_time",
    "wait_jitter",
    "batch_size",
    "account_ids",
    "schedule",
    "stop_on_reply",
)


def sequence_id(job_id: object) -> str:
    """The one-step sequence of a job's executions."""
    return f"job-{job_id}"


def sequence_step(job: Mapping[str, Any]) -> dict[str, Any]:
    """The one step of a job's sequence: its template, at once."""
    return {
        "sequence_id": sequence_id(job["_id"]),
        "step_order": 1,
        "template_id": str(job["template_id"]),
        "delay_minutes": 0,
    }


def job_document(spec: JobSpec, first_run: datetime, now: datetime) -> dict[str, Any]:
    """The `jobs` document of a new, active job first due at `first_run`."""
    return {
        "name": spec.name,
        "template_id": spec.template_id,
        "source": source_document(spec.source),
        "schedule": spec.schedule,
        "run_at": spec.run_at,
        "cron": spec.cron.expression if spec.cron else None,
        "timezone": spec.timezone,
        "misfire": spec.misfire,
        "campaign_id": spec.campaign_id,
        "account_ids": list(spec.account_ids),
        "max_retries": spec.max_retries,
        "status": "active",
        "next_run_at": first_run,
        "created_at": now,
        "updated_at": now,
    }


def source_document(source: RecipientSource) -> dict[str, Any]:
    """A recipient source as stored."""
    return {
        "kind": source.kind,
        "addresses": list(source.addresses),
        "path": source.path,
        "filters": [list(pair) for pair in source.filters],
        "encoding": source.encoding,
    }


def source_of(job: Mapping[str, Any]) -> RecipientSource:
    """The stored recipient source of a job."""
    raw = job.get("source") or {}
    return RecipientSource(
        raw.get("kind", "static"),
        addresses=tuple(raw.get("addresses") or ()),
        path=raw.get("path"),
        filters=tuple((str(k), str(v)) for k, v in raw.get("filters") or ()),
        encoding=raw.get("encoding"),
    )


def cron_of(job: Mapping[str, Any]) -> tuple[Cron, ZoneInfo, Misfire] | None:
    """A recurring job's cron, zone and misfire policy (None for a one-off job)."""
    if not job.get("cron"):
        return None
    misfire: Misfire = "skip" if job.get("misfire") == "skip" else "run_once"
    return Cron(str(job["cron"])), ZoneInfo(str(job.get("timezone") or "UTC")), misfire


def campaign_settings(job: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings of an execution's campaign: `base`'s (the --campaign-id's) limits and window, or the job's
    --accounts, with the job's retry budget.

    An uncertain send counts as sent at once: a job has no follow-up step for it to hold back, and holding it
    would keep the execution running for a day.
    """
    settings = {k: v for k, v in (base or {}).items() if k in COPIED_SETTINGS}
    if job.get("account_ids"):
        settings["account_ids"] = list(job["account_ids"])
    settings["uncertain_after_hours"] = 0
    if job.get("max_retries") is not None:
        settings["max_attempts"] = int(job["max_retries"]) + 1
    return settings


def execution_campaign(
    job: Mapping[str, Any], execution: Mapping[str, Any], settings: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The campaign document behind one execution, not yet active (its leads are being written)."""
    when = execution["scheduled_for"]
    return {
        "_id": execution["_id"],
        "name": f"{job['name']} ({when:%Y-%m-%d %H:%M} UTC)",
        "kind": JOB_KIND,
        "job_id": job["_id"],
        "status": "draft",
        "sequence_id": sequence_id(job["_id"]),
        "settings": dict(settings),
        "created_at": now,
    }


def lead_documents(
    job_id: object, execution_id: object, recipients: Iterable[Recipient], now: datetime
) -> list[dict[str, Any]]:
    """One lead per recipient (an address once, whatever its case), due at `now`."""
    docs: dict[str, dict[str, Any]] = {}
    for r in recipients:
        email = r.email.strip().lower()
        if email in docs:
            continue
        fields = {k: v for k, v in r.fields.items() if k not in ("email", "status")}
        docs[email] = {
            "campaign_id": str(execution_id),
            "job_id": str(job_id),
            "lead_key": f"job:{email}",
            "lead_data": [{**fields, "email": email, "status": "not_contacted"}],
            "progress": {
                "current_step_order": 1,
                "stopped": False,
                "processed_recipients": {},
                "next_due_at": now,
            },
            "created_at": now,
        }
    return list(docs.values())
