"""Setting the database-derived gauges: every reading shown, series of campaigns and accounts that left dropped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics.gauges import NEVER_SYNCED, Readings, apply
from app.metrics.registry import ClusterGauges


def _values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_readings_become_gauges_and_a_campaign_that_is_no_longer_active_loses_its_series() -> None:
    registry = CollectorRegistry()
    gauges = ClusterGauges(registry)
    apply(
        gauges,
        Readings(
            due_backlog={"c1": 7, "c2": 0},
            uncertain_sends=2,
            paused_campaigns=1,
            accounts_out_of_rotation=1,
            sync_lag={"a1": 12.5, "a2": NEVER_SYNCED},
            dispatchers_alive=3,
        ),
    )
    first = _values(registry)
    assert first[("outbound_due_backlog", (("campaign_id", "c1"),))] == 7
    assert first[("outbound_due_backlog", (("campaign_id", "c2"),))] == 0
    assert first[("outbound_inbox_sync_lag_seconds", (("account_id", "a1"),))] == 12.5
    assert first[("outbound_inbox_sync_lag_seconds", (("account_id", "a2"),))] == float("inf")
    assert first[("outbound_uncertain_sends", ())] == 2
    assert first[("outbound_paused_campaigns", ())] == 1
    assert first[("outbound_accounts_out_of_rotation", ())] == 1
    assert first[("outbound_dispatchers_alive", ())] == 3

    apply(gauges, Readings(due_backlog={"c2": 4}, sync_lag={"a1": 1.0}))
    second = _values(registry)
    assert ("outbound_due_backlog", (("campaign_id", "c1"),)) not in second
    assert second[("outbound_due_backlog", (("campaign_id", "c2"),))] == 4
    assert ("outbound_inbox_sync_lag_seconds", (("account_id", "a2"),)) not in second
    assert second[("outbound_uncertain_sends", ())] == 0
