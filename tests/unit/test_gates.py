"""Gates admit a recipient, skip them for good, or defer them; the first objection wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.gates import (
    DEFAULT_GATES,
    Defer,
    GateContext,
    Skip,
    judge,
    stop_policy_gate,
    suppression_gate,
    suppression_keys,
)
from app.domain.models import Recipient

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("email", "keys"),
    [
        ("Ann@Acme.Example", ("ann@acme.example", "acme.example")),
        ("bo@x.example", ("bo@x.example", "x.example")),
    ],
)
def test_an_address_is_blocked_by_itself_or_by_its_domain(email: str, keys: tuple[str, str]) -> None:
    assert suppression_keys(email) == keys


@pytest.mark.parametrize(
    ("recipient", "suppressed", "verdict"),
    [
        (Recipient("ann@acme.example"), {}, None),
        (Recipient("ann@acme.example", status="contacted"), {}, None),
        (Recipient("ann@acme.example", status="replied"), {}, Skip("recipient is replied")),
        (Recipient("ann@acme.example", status="bounced"), {}, Skip("recipient is bounced")),
        (
            Recipient("ann@acme.example"),
            {"ann@acme.example": "hard_bounce"},
            Skip("suppressed (hard_bounce): ann@acme.example"),
        ),
        (Recipient("Ann@ACME.example"), {"acme.example": "complaint"}, Skip("suppressed (complaint): acme.example")),
        # The stop policy speaks first: an unsubscribed and suppressed address is skipped as unsubscribed.
        (
            Recipient("ann@acme.example", status="unsubscribed"),
            {"acme.example": "complaint"},
            Skip("recipient is unsubscribed"),
        ),
    ],
)
def test_default_gates(recipient: Recipient, suppressed: dict[str, str], verdict: Skip | None) -> None:
    assert judge(recipient, GateContext(NOW, suppressed)) == verdict


def test_a_new_gate_plugs_in_without_touching_the_others() -> None:
    later = NOW + timedelta(hours=3)

    def outside_hours(_: Recipient, ctx: GateContext) -> Defer | None:
        return Defer(later, "outside the sending window") if ctx.now.hour < 12 else None

    gates = (*DEFAULT_GATES, outside_hours)
    assert judge(Recipient("ann@acme.example"), GateContext(NOW), gates) == Defer(later, "outside the sending window")
    assert judge(Recipient("ann@acme.example", status="replied"), GateContext(NOW), gates) == Skip(
        "recipient is replied"
    )
    assert judge(Recipient("ann@acme.example"), GateContext(NOW.replace(hour=13)), gates) is None


def test_each_default_gate_alone() -> None:
    ctx = GateContext(NOW, {"x.example": "listed"})
    assert stop_policy_gate(Recipient("a@x.example"), ctx) is None
    assert suppression_gate(Recipient("a@x.example"), ctx) == Skip("suppressed (listed): x.example")
