"""The gauges read from the database: due backlog, uncertain sends, paused campaigns, accounts out of rotation,
inbox sync lag and live dispatchers. A job's executions share their job's backlog series (`job:<job id>`).

`read` runs one bounded query per gauge (`app/store/metric_reads.py`); `apply` sets them, dropping the series of
campaigns and accounts that are gone, so a scrape never shows a stale one. A dispatcher refreshes them every
`REFRESH_SECONDS` (`refresh_until`); `outbound serve` reads them at each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Gauge
from pymongo.errors import PyMongoError

from app.logging import get_logger
from app.metrics.registry import ClusterGauges, campaign_label
from app.store import metric_reads
from app.store.client import Database

REFRESH_SECONDS = 30.0
STOP_WAIT_SECONDS = 5.0
# The due backlog counts at most this many leads per campaign: past a million, "very many" is all an alert needs,
# and the count's cost stays bounded (the due index is read up to here and no further).
BACKLOG_CAP = 1_000_000
# The dispatcher's refresh waits at least this many times as long as its last read took, so counting a large
# backlog never takes more than a tenth of the database's time.
REFRESH_COST_FACTOR = 10.0
# An account never read successfully is shown this far behind, so that an alert on the lag fires for it too.
NEVER_SYNCED = float("inf")


@dataclass(frozen=True)
class Readings:
    """What the database says now, as plain values."""

    due_backlog: Mapping[str, int] = field(default_factory=dict)
    uncertain_sends: int = 0
    paused_campaigns: int = 0
    accounts_out_of_rotation: int = 0
    sync_lag: Mapping[str, float] = field(default_factory=dict)
    dispatchers_alive: int = 0


async def read(db: Database, now: datetime, *, cap: int = BACKLOG_CAP) -> Readings:
    """Read every database-derived gauge at `now`: one query each (the backlog: one per active campaign)."""
    active, paused = await metric_reads.campaign_statuses(db)
    backlog = await metric_reads.due_backlog(db, active, now, cap)
    synced = await metric_reads.last_synced(db)
    return Readings(
        due_backlog=backlog_by_label(active, backlog),
        uncertain_sends=await metric_reads.uncertain_sends(db),
        paused_campaigns=paused,
        accounts_out_of_rotation=await metric_reads.accounts_out_of_rotation(db),
        sync_lag={
            account_id: NEVER_SYNCED if when is None else max(0.0, (now - when).total_seconds())
            for account_id, when in synced.items()
        },
        dispatchers_alive=await metric_reads.dispatchers_alive(db, now),
    )


def backlog_by_label(active: Mapping[str, str | None], backlog: Mapping[str, int]) -> dict[str, int]:
    """The due backlog per label value: one series per active sequence campaign, and one per job summing its
    active executions' backlogs (`job:<job id>`).

    Every active campaign (or job) has a series, 0 when nothing is due, so "backlog stays high" reads plainly.
    """
    found: dict[str, int] = {}
    for campaign_id, job_id in active.items():
        label = campaign_label(campaign_id, job_id)
        found[label] = found.get(label, 0) + backlog.get(campaign_id, 0)
    return found


def apply(gauges: ClusterGauges, readings: Readings) -> None:
    """Set the gauges to `readings`; campaigns and accounts no longer there lose their series."""
    _labelled(gauges.due_backlog, readings.due_backlog)
    _labelled(gauges.inbox_sync_lag, readings.sync_lag)
    gauges.uncertain_sends.set(readings.uncertain_sends)
    gauges.paused_campaigns.set(readings.paused_campaigns)
    gauges.accounts_out_of_rotation.set(readings.accounts_out_of_rotation)
    gauges.dispatchers_alive.set(readings.dispatchers_alive)


def _labelled(gauge: Gauge, values: Mapping[str, float]) -> None:
    """Set one series per key, then drop the others (not clear-then-set: a scrape in between would see none)."""
    for key, value in values.items():
        gauge.labels(key).set(value)
    stale = {v for family in gauge.collect() for sample in family.samples for v in sample.labels.values()}
    for key in stale - set(values):
        gauge.remove(key)


async def refresh(db: Database, gauges: ClusterGauges, now: datetime) -> bool:
    """Read and set the gauges once; False (gauges left as they were) when the database did not answer."""
    try:
        readings = await read(db, now)
    except PyMongoError as exc:
        get_logger().warning("metrics.refresh_failed", error=str(exc))
        return False
    apply(gauges, readings)
    return True


async def refresh_until(
    db: Database,
    gauges: ClusterGauges,
    stop: asyncio.Event,
    *,
    every: float = REFRESH_SECONDS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Refresh the gauges at once, then every `every` seconds (longer after a slow read) until `stop` is set."""
    while not stop.is_set():
        started = time.monotonic()
        await refresh(db, gauges, clock())
        pause = max(every, REFRESH_COST_FACTOR * (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=pause)


@asynccontextmanager
async def refreshed(db: Database, gauges: ClusterGauges, enabled: bool = True) -> AsyncIterator[None]:
    """Keep the gauges refreshed in the background while the block runs (nothing when not `enabled`)."""
    if not enabled:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(refresh_until(db, gauges, stop), name="metrics-gauges")
    try:
        yield
    finally:
        stop.set()
        try:
            # A refresh waiting on a database that does not answer is not worth holding the stop up for.
            await asyncio.wait_for(task, timeout=STOP_WAIT_SECONDS)
        except TimeoutError:
            get_logger().warning("metrics.refresh_abandoned", reason="the database did not answer in time")
