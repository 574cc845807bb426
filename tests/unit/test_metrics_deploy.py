"""deploy/prometheus.yml and deploy/alerts.yml: valid YAML, scraping where the units listen, and alerts that name
only metrics Outbound defines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

from app.cli.serve_cmds import DEFAULT_PORT
from app.metrics.registry import Metrics

ROOT = Path(__file__).resolve().parents[2]
# Recorded by Prometheus itself for every target, not by Outbound.
PROMETHEUS_OWN = {"up"}
# PromQL's functions, aggregations and keywords that can appear in our expressions.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "vector", "by", "without", "or", "and",
    "unless", "on", "ignoring", "absent", "histogram_quantile", "bool", "offset", "topk", "bottomk",
}  # fmt: skip


def _exposed_names() -> set[str]:
    """Every sample name the registry can expose (a counter's `_total`, a histogram's `_bucket`, ...)."""
    names: set[str] = set()
    families: list[Metric] = list(Metrics().registry.collect())
    for family in families:
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    return names


def _metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers outside label matchers, strings, ranges and numbers."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\bby\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", bare))
    return words - PROMQL_WORDS


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "deploy/alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_alert_names_only_metrics_the_registry_defines() -> None:
    exposed = _exposed_names()
    rules = _rules()
    assert rules
    for rule in rules:
        names = _metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - exposed - PROMETHEUS_OWN
        assert not unknown, f"{rule['alert']} names {sorted(unknown)}, not in app/metrics/registry.py"


def test_the_alerts_asked_for_are_there_with_a_severity_and_a_summary() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    for name in (
        "OutboundDispatcherDown",
        "OutboundBounceRateHigh",
        "OutboundUncertainSends",
        "OutboundAccountOutOfRotation",
    ):
        assert name in rules
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert "0.05" in rules["OutboundBounceRateHigh"]["expr"]


def test_the_scrape_targets_are_where_the_units_listen() -> None:
    doc = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    dispatcher_unit = (ROOT / "deploy/outbound-dispatcher.service").read_text()
    [port] = re.findall(r"run-dispatcher .*--metrics-port (\d+)", dispatcher_unit)
    assert targets["outbound-dispatcher"] == [f"127.0.0.1:{port}"]
    assert targets["outbound-web"] == [f"127.0.0.1:{DEFAULT_PORT}"]
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())
