"""A dry run's copy of a due lead: its document, settled in memory as the store would settle it.

`run-dispatcher --dry-run` writes nothing, yet a claim's settlement decides what happens next to the lead (the
next recipient, the next step). The settlement's `$set` and `$unset` paths and its next due time are applied to
this copy, and the lead is read again from it, so the next claim plans from what the real write would leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.models import Lead
from app.domain.settlement import Settlement

_UNSET = object()


@dataclass
class LeadCopy:
    """One due lead of a dry run: its place in due order, its document and the lead read from it."""

    position: int
    doc: dict[str, Any]
    lead: Lead

    def settle(self, settlement: Settlement) -> None:
        """Apply a claim's settlement to the document, and read the lead again from it."""
        apply_settlement(self.doc, settlement)
        self.lead = Lead.from_doc(self.doc)


def apply_settlement(doc: dict[str, Any], settlement: Settlement) -> None:
    """Apply a settlement's `$set` and `$unset` paths and its next due time to a lead document, in memory."""
    changes = [*settlement.set.items(), *((p, _UNSET) for p in settlement.unset)]
    for path, value in [*changes, ("progress.next_due_at", settlement.next_due_at)]:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is _UNSET:
            node.pop(last, None)
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
