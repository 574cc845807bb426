"""Changing a live campaign's sequence without re-sending a step anyone already had. Pure.

A lead's progress is kept by step number: `progress.current_step_order`, the keys
`processed_recipients["step_N_recipient_I"]` and the ledger's `<lead>:<step>:<i>`. So a lead at step N goes on
with whatever step holds number N after the change. For each number that leads in flight are at, compare the
step they are at with the one that will hold their number:

- the same step: nothing changes for them (a content edit reaches the recipients not yet sent);
- a step they have not had (a step before theirs was removed, or theirs was): they go on with it, skipping
  one (the recipients who already had their step skip the new one, the others skip theirs): allowed with
  `force` only, and said;
- a step they already had, or theirs coming again later (a step inserted or moved before theirs): refused,
  even with `force`, because it would be sent to them a second time.

Steps are named by keys (a step document's id, or any label for a step still to be written); a key that is
in both sequences is the same step.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.campaigns import SequenceStep

UNCHANGED = "unchanged"
CONTINUES = "continues"  # goes on with another step at its number: needs force
REFUSED = "refused"  # would be sent a step again


@dataclass(frozen=True)
class StepSpec:
    """A step as configured: its template (an id, or a name in a campaign file), delay and threading."""

    template: str
    delay_minutes: float = 0.0
    thread: bool | None = None


def step_documents(sequence_id: str, specs: Sequence[StepSpec]) -> list[dict[str, Any]]:
    """The `sequence_steps` documents of a sequence (template ids in `spec.template`), checked by the model."""
    docs = []
    for order, spec in enumerate(specs, start=1):
        doc: dict[str, Any] = {
            "sequence_id": sequence_id,
            "step_order": order,
            "template_id": spec.template,
            "delay_minutes": spec.delay_minutes,
        }
        if spec.thread is not None:
            doc["thread"] = spec.thread
        SequenceStep.from_doc({"_id": f"{sequence_id}:{order}", **doc})
        docs.append(doc)
    return docs


@dataclass(frozen=True)
class PositionImpact:
    """What a change means for the leads in flight at one step number."""

    step_order: int
    leads: int
    before: str | None  # the step they are at (None: past the last step)
    after: str | None  # the step that holds their number afterwards (None: they complete)
    verdict: str
    again: tuple[str, ...] = ()  # REFUSED: the steps they would be sent again


@dataclass(frozen=True)
class EditedStep:
    """A step whose content changes: how many leads in flight have passed it, are at it, and will reach it."""

    key: str
    step_order: int
    passed: int
    at: int
    ahead: int


@dataclass(frozen=True)
class SequenceImpact:
    """Every consequence of replacing one sequence by another, for the leads in flight and those completed."""

    positions: tuple[PositionImpact, ...]
    edited: tuple[EditedStep, ...]
    added_at_end: int  # steps after the old last step
    completed_leads: int  # completed leads never get steps added at the end

    @property
    def refused(self) -> tuple[PositionImpact, ...]:
        """Positions whose leads would be sent a step again: the change is refused, even with force."""
        return tuple(p for p in self.positions if p.verdict == REFUSED)

    @property
    def needs_force(self) -> tuple[PositionImpact, ...]:
        """Positions whose leads would skip a step: allowed with force."""
        return tuple(p for p in self.positions if p.verdict == CONTINUES)

    @property
    def affected_leads(self) -> int:
        """Leads in flight for whom something changes (renumbered, edited, or completed leads missing a step)."""
        moved = sum(p.leads for p in self.positions if p.verdict != UNCHANGED)
        edited = sum(e.at + e.ahead for e in self.edited)
        return moved + edited + (self.completed_leads if self.added_at_end else 0)


def impact(
    old: Sequence[str],
    new: Sequence[str],
    leads_at: Mapping[int, int],
    *,
    edited: Sequence[str] = (),
    completed_leads: int = 0,
) -> SequenceImpact:
    """Compare sequence `old` with `new` (step keys in order) for the leads in flight, `leads_at[step_order]`."""
    positions = tuple(_position(old, new, order, count) for order, count in sorted(leads_at.items()) if count > 0)
    changes = []
    for key in edited:
        if key not in new:
            continue
        order = new.index(key) + 1
        changes.append(
            EditedStep(
                key=key,
                step_order=order,
                passed=sum(n for o, n in leads_at.items() if o > order),
                at=leads_at.get(order, 0),
                ahead=sum(n for o, n in leads_at.items() if o < order),
            )
        )
    tail = [k for k in new[len(old) :] if k not in old]
    return SequenceImpact(positions, tuple(changes), len(tail), completed_leads)


def _position(old: Sequence[str], new: Sequence[str], order: int, count: int) -> PositionImpact:
    before = old[order - 1] if order <= len(old) else None
    after = new[order - 1] if order <= len(new) else None
    if before == after:
        return PositionImpact(order, count, before, after, UNCHANGED)
    had = set(old[:order])  # including the step it is at: some of its recipients may have had it
    again = tuple(k for k in new[order - 1 :] if k in had)
    verdict = REFUSED if again else CONTINUES
    return PositionImpact(order, count, before, after, verdict, again)


def match_steps(old: Sequence[tuple[str, StepSpec]], new: Sequence[StepSpec], new_key: str = "new") -> list[str]:
    """Keys for the steps of `new`: an old step's key where it is the same step (kept, or edited in place where
    one replaces another), `<new_key>:<i>` for a step added."""
    specs = [spec for _key, spec in old]
    keys: list[str] = [f"{new_key}:{j}" for j in range(len(new))]
    matcher = difflib.SequenceMatcher(a=specs, b=list(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            for offset in range(min(i2 - i1, j2 - j1)):
                keys[j1 + offset] = old[i1 + offset][0]
    return keys


def describe(result: SequenceImpact, label: Mapping[str, str]) -> list[str]:
    """One sentence per consequence, naming steps by `label[key]` (e.g. "step 2 (intro)")."""
    lines = []
    for p in result.positions:
        name = label.get(p.before or "", f"step {p.step_order}")
        if p.verdict == REFUSED:
            again = ", ".join(label.get(k, k) for k in p.again)
            lines.append(
                f"{p.leads} lead(s) at {name} would be sent {again} again: their progress is "
                "kept by step number; add the step after the furthest step reached, or in a new campaign"
            )
        elif p.verdict == CONTINUES:
            then = label.get(p.after, p.after) if p.after else "nothing more (they complete)"
            lines.append(
                f"{p.leads} lead(s) at {name} go on with {then} at that number: recipients "
                "who already had it skip that one, the others skip it; nobody gets a step twice"
            )
    for e in result.edited:
        lines.append(
            f"{label.get(e.key, e.key)} changes: {e.ahead} lead(s) before it will get the new version, {e.at} at it "
            f"get it for the recipients not yet sent, {e.passed} past it are not affected"
        )
    if result.added_at_end and result.completed_leads:
        lines.append(f"{result.completed_leads} completed lead(s) will not get the step(s) added at the end")
    return lines
