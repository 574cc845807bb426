"""The outcome of a lead import, as the operator reads it: counts, how the file was read, what each column
became, the rejections and, for a dry run, the first rows as they would be stored and the leads they form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.import_headers import ColumnMapping
from app.domain.import_rows import Candidate, Rejection

REPORTED_REJECTIONS = 20
PREVIEW_ROWS = 5
PREVIEW_LEADS = 10
PREVIEW_RECIPIENTS = 5


@dataclass
class LeadPreview:
    """One lead a dry run would create or extend, with its first recipients' rows and addresses."""

    key: str
    new: bool
    rows: list[int] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    recipients: int = 0


@dataclass
class ImportPreview:
    """What a dry run shows of its plan: the first rows as stored and the first leads they form (bounded)."""

    rows: list[Candidate] = field(default_factory=list)
    leads: dict[str, LeadPreview] = field(default_factory=dict)

    def add(self, groups: Mapping[str, Iterable[Candidate]], existing: set[str]) -> None:
        """Note one batch's groups (lead key -> its new recipients); `existing` are the keys already stored."""
        for key, candidates in groups.items():
            lead = self.leads.get(key)
            if lead is None and len(self.leads) < PREVIEW_LEADS:
                lead = self.leads[key] = LeadPreview(key, key not in existing)
            for candidate in candidates:
                if len(self.rows) < PREVIEW_ROWS:
                    self.rows.append(candidate)
                if lead is not None:
                    lead.recipients += 1
                    if len(lead.emails) < PREVIEW_RECIPIENTS:
                        lead.rows.append(candidate.row)
                        lead.emails.append(candidate.email)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "rows": [{"row": c.row, "lead_key": c.lead_key, "recipient": dict(c.recipient)} for c in self.rows],
            "leads": [
                {"lead_key": p.key, "new": p.new, "recipients": p.recipients, "rows": p.rows, "emails": p.emails}
                for p in self.leads.values()
            ],
        }


@dataclass
class ImportReport:
    """The outcome of an import, for the operator."""

    campaign_id: str
    format: str = "csv"
    dry_run: bool = False
    rows_read: int = 0
    leads_created: int = 0
    leads_updated: int = 0
    recipients_added: int = 0
    duplicates_skipped: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    ignored_columns: set[str] = field(default_factory=set)
    keep_rejections: int | None = REPORTED_REJECTIONS
    encoding: str | None = None
    delimiter: str | None = None
    group_by: tuple[str, ...] = ()
    columns: list[ColumnMapping] = field(default_factory=list)
    preview: ImportPreview = field(default_factory=ImportPreview)

    def reject(self, rejection: Rejection) -> None:
        """Count a rejected row, keeping its details while under the reporting limit."""
        self.rejected += 1
        if self.keep_rejections is None or len(self.rejections) < self.keep_rejections:
            self.rejections.append(rejection)

    @property
    def all_rejected(self) -> bool:
        """Every row read was rejected (the command then exits non-zero)."""
        return self.rows_read > 0 and self.rejected >= self.rows_read

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        summary: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "leads_created": self.leads_created,
            "leads_updated": self.leads_updated,
            "recipients_added": self.recipients_added,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": self.rejected,
            "rejections": [{"row": r.row, "reason": r.reason} for r in self.rejections],
            "ignored_columns": sorted(self.ignored_columns),
            "group_by": list(self.group_by),
            "columns": [{"source": c.source, "field": c.field, "how": c.how} for c in self.columns],
        }
        if self.dry_run:
            summary["preview"] = self.preview.to_dict()
        return summary
