"""Every Prometheus metric Outbound exposes, defined once, in a registry of its own (never the global one).

Label sets stay small and free of personal data: campaigns and accounts appear by id, never by name or address,
and no lead id or recipient address is ever a label. A job's executions (a campaign each) share one label value,
`job:<job id>`, so a recurring job cannot grow a series per run. Label values that are not in a metric's known set (an
outcome, a reason, a message class) are counted as `other`, so an unexpected value cannot grow a series.

The counters and histograms are the process's own (a dispatcher's sends, its SMTP exchanges); the gauges are
read from the database (`app/metrics/gauges.py`): a dispatcher refreshes them every few seconds, `outbound
serve` reads them at each scrape, so one scrape of the web service gives the whole cluster's view.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from app.domain import inbound as inbound_kinds
from app.domain import limits

# The only label names a metric may carry (tests/unit/test_metrics_labels.py holds every metric to it).
ALLOWED_LABELS = frozenset({"campaign_id", "account_id", "outcome", "reason", "class"})
OTHER = "other"
# The campaign label of a job's executions: `job:<job id>` (see campaign_label).
JOB_LABEL_PREFIX = "job:"

# What happened to one email: the send stage's verdicts (a 5xx bounce is `bounced`, other failures `failed`),
# and `skipped` for recipients a gate passed over for good (stop rules, suppressions).
OUTCOMES = ("sent", "retry", "failed", "bounced", "uncertain", "skipped")
# Why no account could take an email (the arbiter's reasons, the limits' names), or why it had to wait.
NO_ACCOUNT = "no_account"  # the campaign has no account that may send at all
DOMAIN_LIMIT = "domain_limit"
WINDOW_CLOSED = "window_closed"
REFUSAL_REASONS = (
    limits.MAX_DAILY_SENDS,
    limits.DAILY_LIMIT,
    limits.MAX_HOURLY_SENDS,
    limits.HOURLY_LIMIT,
    limits.MIN_WAIT_TIME,
    limits.TAKEN,
    limits.LIMIT_RACED,
    limits.INVALID_SETTINGS,
    limits.INVALID_ACCOUNT,
    NO_ACCOUNT,
    DOMAIN_LIMIT,
    WINDOW_CLOSED,
)
INBOUND_CLASSES = inbound_kinds.KINDS
# How late a lead is sent: seconds to a day, since a dispatcher that was down leaves leads hours late.
LATENESS_BUCKETS = (0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
SMTP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)


# How the sending-window gate (`app/domain/gates.py`) words its deferral; a unit test keeps the two in step.
WINDOW_WAIT_PREFIX = "waiting for the sending window"


def waits_for_window(reason: str | None) -> bool:
    """True when a plan's wait is the campaign's sending window being closed (not an uncertain send's hold)."""
    return reason is not None and reason.startswith(WINDOW_WAIT_PREFIX)


def campaign_label(campaign_id: object, job_id: object = None) -> str:
    """The `campaign_id` label value of a campaign: `job:<job id>` for a job's execution, so a job running every
    minute adds one series, not one per execution (each execution is a campaign of its own)."""
    if job_id:
        return f"{JOB_LABEL_PREFIX}{job_id}"
    return "" if campaign_id is None else str(campaign_id)


def known(value: str, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed`, else `other`: a label never takes an unforeseen value."""
    return value if value in allowed else OTHER


class ClusterGauges:
    """The gauges read from the database: they describe every dispatcher, not one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.due_backlog = Gauge(
            "outbound_due_backlog",
            "Leads due now per active campaign (counted up to the cap, see README).",
            ["campaign_id"],
            registry=registry,
        )
        self.uncertain_sends = Gauge(
            "outbound_uncertain_sends", "Sends whose delivery is uncertain, awaiting resolve-send.", registry=registry
        )
        self.paused_campaigns = Gauge("outbound_paused_campaigns", "Campaigns with status paused.", registry=registry)
        self.accounts_out_of_rotation = Gauge(
            "outbound_accounts_out_of_rotation",
            "Sending accounts taken out of rotation by an authentication failure (status auth_failed).",
            registry=registry,
        )
        self.inbox_sync_lag = Gauge(
            "outbound_inbox_sync_lag_seconds",
            "Seconds since the account's mailbox was last read successfully.",
            ["account_id"],
            registry=registry,
        )
        self.dispatchers_alive = Gauge(
            "outbound_dispatchers_alive", "Dispatchers whose heartbeat is current.", registry=registry
        )


class Metrics:
    """One process's metrics: its counters and histograms, and the cluster gauges it refreshes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.emails = Counter(
            "outbound_emails", "Emails by outcome.", ["outcome", "campaign_id", "account_id"], registry=r
        )
        self.reservations_refused = Counter(
            "outbound_reservations_refused",
            "Emails that found no account free to send them (or had to wait), by reason.",
            ["reason"],
            registry=r,
        )
        self.scheduling_lateness = Histogram(
            "outbound_scheduling_lateness_seconds",
            "How long after its due time a lead's email was sent.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.smtp_latency = Histogram(
            "outbound_smtp_send_seconds",
            "Duration of one SMTP send (connection, MAIL, RCPT, DATA), by account.",
            ["account_id"],
            buckets=SMTP_BUCKETS,
            registry=r,
        )
        self.inbound_messages = Counter(
            "outbound_inbound_messages",
            "Messages read from the accounts' mailboxes, by class.",
            ["class", "account_id"],
            registry=r,
        )
        self.gauges = ClusterGauges(r)

    def email(self, outcome: str, campaign_id: str | None, account_id: str | None) -> None:
        """Count one email's outcome."""
        self.emails.labels(known(outcome, OUTCOMES), campaign_id or "", account_id or "").inc()

    def refused(self, reason: str) -> None:
        """Count one email that found no account (or slot, or open window) for it now."""
        self.reservations_refused.labels(known(reason, REFUSAL_REASONS)).inc()

    def sent_late(self, seconds: float) -> None:
        """Observe how long after its due time a lead's email went out (early counts as on time)."""
        self.scheduling_lateness.observe(max(0.0, seconds))

    def smtp_send(self, account_id: str, seconds: float) -> None:
        """Observe the duration of one SMTP send."""
        self.smtp_latency.labels(account_id).observe(seconds)

    def inbound(self, kind: str, account_id: str) -> None:
        """Count one message read from a mailbox."""
        self.inbound_messages.labels(known(kind, INBOUND_CLASSES), account_id).inc()

    def text(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


_current = Metrics()


def current() -> Metrics:
    """The process's metrics, where the instrumentation points count."""
    return _current


def install(metrics: Metrics) -> Metrics:
    """Count into `metrics` from now on (tests start from zero); return the previous ones."""
    global _current
    previous, _current = _current, metrics
    return previous
