"""Metric definitions: every label is from the allowed set, label values stay bounded, names are prefixed."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from app.domain.gates import GateContext, sending_window_gate
from app.domain.models import Recipient
from app.domain.sending_windows import parse_schedule
from app.metrics import registry
from app.metrics.registry import ALLOWED_LABELS, OTHER, ClusterGauges, Metrics


def _metric_objects(metrics: Metrics) -> list[MetricWrapperBase]:
    found = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    found += [m for m in vars(metrics.gauges).values() if isinstance(m, MetricWrapperBase)]
    return found


def test_every_metric_is_prefixed_and_labelled_only_with_allowed_labels() -> None:
    metrics = Metrics()
    objects = _metric_objects(metrics)
    assert len(objects) == 11
    for metric in objects:
        # The label names a metric was declared with (prometheus_client keeps them on the wrapper).
        labels = set(metric._labelnames)
        assert labels <= ALLOWED_LABELS, f"{metric._name} has labels {labels - ALLOWED_LABELS}"
        assert metric._name.startswith("outbound_")


def test_cluster_gauges_are_the_same_metrics_in_every_registry() -> None:
    first, second = Metrics(), Metrics()
    assert [m._name for m in _metric_objects(first)] == [m._name for m in _metric_objects(second)]
    assert isinstance(first.gauges, ClusterGauges)


def test_unforeseen_label_values_are_counted_as_other() -> None:
    metrics = Metrics()
    metrics.email("exploded", "c1", "a1")
    metrics.email("sent", "c1", "a1")
    metrics.refused("because I said so")
    metrics.refused("max_daily_sends")
    metrics.inbound("newsletter", "a1")
    samples = _samples(metrics)
    assert samples[("outbound_emails_total", (("account_id", "a1"), ("campaign_id", "c1"), ("outcome", OTHER)))] == 1
    assert samples[("outbound_emails_total", (("account_id", "a1"), ("campaign_id", "c1"), ("outcome", "sent")))] == 1
    assert samples[("outbound_reservations_refused_total", (("reason", OTHER),))] == 1
    assert samples[("outbound_reservations_refused_total", (("reason", "max_daily_sends"),))] == 1
    assert samples[("outbound_inbound_messages_total", (("account_id", "a1"), ("class", OTHER)))] == 1


def test_a_skipped_recipient_has_no_account_label_value() -> None:
    metrics = Metrics()
    metrics.email("skipped", "c1", None)
    samples = _samples(metrics)
    assert samples[("outbound_emails_total", (("account_id", ""), ("campaign_id", "c1"), ("outcome", "skipped")))] == 1


def test_early_sends_count_as_on_time_in_the_lateness_histogram() -> None:
    metrics = Metrics()
    metrics.sent_late(-3.0)
    metrics.sent_late(42.0)
    samples = _samples(metrics)
    assert samples[("outbound_scheduling_lateness_seconds_count", ())] == 2
    assert samples[("outbound_scheduling_lateness_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("outbound_scheduling_lateness_seconds_sum", ())] == 42.0


def test_the_sending_window_gates_wait_is_recognised_as_window_closed() -> None:
    schedule = parse_schedule({"timezone": "UTC", "days": ["mon"], "start": "09:00", "end": "10:00"})
    sunday_noon = datetime(2025, 3, 9, 12, tzinfo=UTC)
    verdict = sending_window_gate(Recipient(email="a@x.example"), GateContext(sunday_noon, schedule=schedule))
    assert verdict is not None
    assert registry.waits_for_window(verdict.reason)
    assert not registry.waits_for_window("an uncertain send of step 1 awaits resolve-send (or counts as sent then)")
    assert not registry.waits_for_window(None)


def test_each_registry_is_its_own_and_install_swaps_the_current_one() -> None:
    fresh = Metrics()
    previous = registry.install(fresh)
    try:
        registry.current().email("sent", "c1", "a1")
        assert (
            _samples(fresh)[
                ("outbound_emails_total", (("account_id", "a1"), ("campaign_id", "c1"), ("outcome", "sent")))
            ]
            == 1
        )
        assert not any(name == "outbound_emails_total" for name, _ in _samples(Metrics()))
    finally:
        registry.install(previous)


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.text().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
