"""The outcome of a lead import, as the operator reads it: counts, the first rejections and ignored columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.import_rows import Rejection

REPORTED_REJECTIONS = 20


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

    def reject(self, rejection: Rejection) -> None:
        """Count a rejected row, keeping its details while under the reporting limit."""
        self.rejected += 1
        if self.keep_rejections is None or len(self.rejections) < self.keep_rejections:
            self.rejections.append(rejection)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "campaign_id": self.campaign_id,
            "format": self.format,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "leads_created": self.leads_created,
            "leads_updated": self.leads_updated,
            "recipients_added": self.recipients_added,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": self.rejected,
            "rejections": [{"row": r.row, "reason": r.reason} for r in self.rejections],
            "ignored_columns": sorted(self.ignored_columns),
        }
