"""Pure summaries for the inspection commands: lead states and campaign progress.

Nothing here does I/O or reads the clock: callers pass validated views (or raw documents of our own
collections) and `now`, so every rule is tested with plain values. An account's limits and usage for a day are
in account_usage.py (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from app.domain import planning

# An account's limits, usage and state live in account_usage.py; re-exported so callers keep one import.
from app.domain.account_usage import AccountState as AccountState
from app.domain.account_usage import AccountUsage as AccountUsage
from app.domain.account_usage import account_limits as account_limits
from app.domain.account_usage import account_state as account_state
from app.domain.account_usage import day_limit as day_limit
from app.domain.account_usage import remaining_sends as remaining_sends
from app.domain.account_usage import today_of as today_of
from app.domain.account_usage import usage_from_doc as usage_from_doc
from app.domain.models import Lead
from app.domain.scheduling import utc_day as utc_day  # re-exported: one definition of the day

# A lead is in exactly one of these states; the order is the precedence when several could apply.
COMPLETED = "completed"
STOPPED = "stopped"
IN_PROGRESS = "in_progress"  # a dispatcher holds an unexpired lease on it
DUE = "due"
WAITING = "waiting"
LEAD_STATES = (COMPLETED, STOPPED, IN_PROGRESS, DUE, WAITING)

PROCESSED_OUTCOMES = ("sent", "failed", "uncertain")
K = TypeVar("K")


def parse_day(text: str) -> str:
    """Validate a "YYYY-MM-DD" day given by an operator; raise ValueError saying what is expected."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ValueError(f"day {text!r} is not a date: expected a day as YYYY-MM-DD, e.g. 2025-01-31") from None


def lease_is_active(lead: Lead, now: datetime) -> bool:
    """True while a dispatcher holds the lead (a lease that has not expired)."""
    until = lead.progress.lease_until
    return until is not None and until > now


def lead_state(lead: Lead, now: datetime) -> str:
    """Where a lead stands at `now`: completed, stopped, in_progress, due or waiting."""
    progress = lead.progress
    if progress.completed:
        return COMPLETED
    if progress.stopped:
        return STOPPED
    if lease_is_active(lead, now):
        return IN_PROGRESS
    if progress.next_due_at is not None and progress.next_due_at <= now:
        return DUE
    return WAITING


def pending_recipients(lead: Lead) -> list[int]:
    """Indexes of the recipients the lead's current step has not processed yet (the plan's own rule)."""
    return list(planning.pending_recipients(lead, lead.progress.current_step_order))


@dataclass(frozen=True)
class LeadCounts:
    """How many leads of a campaign are in each state."""

    total: int = 0
    completed: int = 0
    stopped: int = 0
    in_progress: int = 0
    due: int = 0
    waiting: int = 0

    @classmethod
    def from_states(cls, counts: Mapping[str, int]) -> LeadCounts:
        """Counts per state (missing states are zero); the total is their sum."""
        values = {state: int(counts.get(state, 0)) for state in LEAD_STATES}
        return cls(total=sum(values.values()), **values)


@dataclass(frozen=True)
class StepProgress:
    """One sequence step: leads currently at it and the outcomes of its recipients so far."""

    step_order: int
    leads_at_step: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0


@dataclass(frozen=True)
class CampaignProgress:
    """A campaign's progress at `now`."""

    steps: tuple[StepProgress, ...]
    counts: LeadCounts
    percent_complete: float  # share of (lead, step) pairs finished; see `campaign_progress`


def _step_of_entry(key: str) -> int | None:
    # "step_3_recipient_0" -> 3; anything else is not ours to count.
    parts = key.split("_")
    if len(parts) == 4 and parts[0] == "step" and parts[2] == "recipient" and parts[1].isdigit():
        return int(parts[1])
    return None


# Addresses so plain that `normalize_email` always accepts them: ASCII dot-atoms under 65 characters, a domain
# of letter-digit-hyphen labels ending in a letters-only top-level label, no "--" (punycode) and none of the
# special-use top-level names. The server counts a lead whose addresses all match without sending it here;
# a lead with any other address is read and validated in Python, as before.
PLAIN_ADDRESS_PATTERN = (
    r"^(?=[^@]{1,64}@)(?=.{6,254}$)(?!.*@.*--)(?!.*\.(arpa|invalid|local|localhost|onion|test)$)"
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def _steps_done(lead: Lead, step_count: int) -> int:
    return _done_at(lead.progress.completed, lead.progress.current_step_order, step_count)


def _done_at(completed: bool, step: int, step_count: int) -> int:
    return step_count if completed else min(max(step - 1, 0), step_count)


def entry_outcome(entry: Any) -> str | None:
    """What a `processed_recipients` entry records: its status (seed 001's entries may carry none: a send);
    None for an entry that is not an object."""
    return str(entry.get("status", "sent")) if isinstance(entry, Mapping) else None


@dataclass(frozen=True)
class ProgressTally:
    """A campaign's progress before it is laid out per step: sums over some of its leads, so the tallies of
    the leads counted on the server and of those read here add up."""

    states: Mapping[str, int] = field(default_factory=dict)
    at_step: Mapping[int, int] = field(default_factory=dict)  # open leads per current step
    outcomes: Mapping[tuple[int, str], int] = field(default_factory=dict)  # (step, sent|failed|uncertain)
    steps_done: int = 0  # finished (lead, step) pairs; see `campaign_progress`
    leads: int = 0

    def __add__(self, other: ProgressTally) -> ProgressTally:
        return ProgressTally(
            states=_sum_maps(self.states, other.states),
            at_step=_sum_maps(self.at_step, other.at_step),
            outcomes=_sum_maps(self.outcomes, other.outcomes),
            steps_done=self.steps_done + other.steps_done,
            leads=self.leads + other.leads,
        )


def _sum_maps(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + n
    return out


def tally_leads(leads: Iterable[Lead], step_count: int, now: datetime) -> ProgressTally:
    """The tally of validated leads at `now` for a sequence of `step_count` steps."""
    states: dict[str, int] = {}
    at_step: dict[int, int] = {}
    outcomes: dict[tuple[int, str], int] = {}
    done = count = 0
    for lead in leads:
        state = lead_state(lead, now)
        states[state] = states.get(state, 0) + 1
        if state != COMPLETED:
            step = lead.progress.current_step_order
            at_step[step] = at_step.get(step, 0) + 1
        for key, entry in lead.progress.processed_recipients.items():
            order, outcome = _step_of_entry(key), entry_outcome(entry)
            if order is not None and outcome in PROCESSED_OUTCOMES:
                outcomes[(order, outcome)] = outcomes.get((order, outcome), 0) + 1
        done += _steps_done(lead, step_count)
        count += 1
    return ProgressTally(states, at_step, outcomes, done, count)


@dataclass(frozen=True)
class ProgressRows:
    """Leads grouped as the server groups them: how many per (state, current step), and how many recipients'
    entries per (entry key, outcome), the outcome being None when the entry is not an object."""

    leads: Mapping[tuple[str, int], int] = field(default_factory=dict)
    entries: Mapping[tuple[str, str | None], int] = field(default_factory=dict)

    def __sub__(self, other: ProgressRows) -> ProgressRows:
        """These rows without `other`'s (leads the server grouped that are counted another way)."""
        return ProgressRows(_minus(self.leads, other.leads), _minus(self.entries, other.entries))


def _minus(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    out = dict(a)
    for key, n in b.items():
        left = out.get(key, 0) - n
        if left < 0:
            raise ValueError(f"progress rows: {key!r} has {out.get(key, 0)}, cannot take away {n}")
        out[key] = left
    return {key: n for key, n in out.items() if n}


def tally_from_rows(rows: ProgressRows, step_count: int) -> ProgressTally:
    """The tally of grouped leads, by the rules `tally_leads` applies to leads one by one."""
    states: dict[str, int] = {}
    at_step: dict[int, int] = {}
    done = count = 0
    for (state, step), n in rows.leads.items():
        states[state] = states.get(state, 0) + n
        if state != COMPLETED:
            at_step[step] = at_step.get(step, 0) + n
        done += n * _done_at(state == COMPLETED, step, step_count)
        count += n
    outcomes: dict[tuple[int, str], int] = {}
    for (key, outcome), n in rows.entries.items():
        order = _step_of_entry(key)
        if order is not None and outcome in PROCESSED_OUTCOMES:
            outcomes[(order, outcome)] = outcomes.get((order, outcome), 0) + n
    return ProgressTally(states, at_step, outcomes, done, count)


def progress_of(tally: ProgressTally, step_orders: Sequence[int]) -> CampaignProgress:
    """Lay a tally out per step: every step of the sequence, and steps leads reached that it no longer has."""
    orders = set(step_orders) | set(tally.at_step) | {step for step, _ in tally.outcomes}
    steps = tuple(
        StepProgress(
            step_order=order,
            leads_at_step=tally.at_step.get(order, 0),
            **{outcome: tally.outcomes.get((order, outcome), 0) for outcome in PROCESSED_OUTCOMES},
        )
        for order in sorted(orders)
    )
    total = tally.leads * len(step_orders)
    percent = round(100.0 * tally.steps_done / total, 1) if total else 0.0
    return CampaignProgress(steps=steps, counts=LeadCounts.from_states(tally.states), percent_complete=percent)


def campaign_progress(leads: Iterable[Lead], step_orders: Sequence[int], now: datetime) -> CampaignProgress:
    """Per step: leads at it and sent/failed/uncertain recipients; lead states; percentage complete.

    The percentage counts each (lead, step) pair once: a completed lead has finished every step, any other
    lead the steps before its current one. Steps a lead reached that the sequence no longer has are listed too.
    """
    return progress_of(tally_leads(leads, len(step_orders), now), step_orders)
