"""The pure parts of the shared views: per-step totals of a campaign's progress and the lead search query."""

from __future__ import annotations

import re

from bson import ObjectId

from app.domain.reports import LeadCounts, StepProgress
from app.ops.campaign_views import step_totals
from app.store.lead_search import after_filter, search_filter


def test_step_totals_count_the_leads_that_reached_each_step_and_the_share_past_it() -> None:
    steps = (StepProgress(1, leads_at_step=4), StepProgress(2, leads_at_step=3), StepProgress(3, leads_at_step=1))
    counts = LeadCounts(total=10, completed=2, waiting=8)
    totals = step_totals(steps, counts)
    assert totals[1] == {"total": 10, "pending": 4, "percentage": 60.0}
    assert totals[2] == {"total": 6, "pending": 3, "percentage": 30.0}
    assert totals[3] == {"total": 3, "pending": 1, "percentage": 20.0}


def test_step_totals_of_a_campaign_without_leads_are_zero() -> None:
    assert step_totals((StepProgress(1),), LeadCounts()) == {1: {"total": 0, "pending": 0, "percentage": 0.0}}


def test_search_terms_are_matched_literally_and_case_insensitively() -> None:
    query = search_filter("a.b+c@x", None, None)
    conditions = [cond[name] for cond in query["$or"] for name in cond]
    assert {c["$options"] for c in conditions} == {"i"}
    (pattern,) = {c["$regex"] for c in conditions}
    assert re.search(pattern, "Ann.A.B+C@X.example", re.IGNORECASE)
    assert not re.search(pattern, "aXb+c@x") and not re.search(pattern, "abbbc@x")


def test_blank_terms_are_ignored_and_both_terms_must_hold() -> None:
    assert search_filter("  ", "", None) == {}
    both = search_filter("ann", "acme", None)
    assert len(both["$and"]) == 2


def test_after_an_object_id_come_greater_object_ids_and_after_a_string_every_object_id() -> None:
    oid = ObjectId()
    assert after_filter(str(oid)) == {"_id": {"$gt": oid}}
    assert after_filter("lead-7") == {"$or": [{"_id": {"$gt": "lead-7"}}, {"_id": {"$type": "objectId"}}]}
