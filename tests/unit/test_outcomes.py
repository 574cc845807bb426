"""Classify: the verdict recorded for one SMTP outcome, from the failure class, the attempt count and `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.outcomes import AUTH, IN_DOUBT, PERMANENT, SENT, TRANSIENT, Failure, RetryPolicy, Verdict, classify

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=60.0, cap_seconds=3600.0, max_attempts=5)


def test_an_accepted_send_is_sent_and_the_recipient_contacted() -> None:
    assert classify(None, 1, NOW, POLICY) == Verdict("sent", "contacted", counts=True)
    assert classify(None, 1, NOW, POLICY) is SENT


@pytest.mark.parametrize(
    ("attempts", "rand", "delay"),
    [
        pytest.param(1, 0.0, 30.0, id="attempt-1-shortest-is-half-the-base"),
        pytest.param(1, 0.5, 45.0, id="attempt-1-middle"),
        pytest.param(1, 1.0, 60.0, id="attempt-1-longest-is-the-base"),
        pytest.param(2, 0.0, 60.0, id="attempt-2-ceiling-doubles"),
        pytest.param(3, 1.0, 240.0, id="attempt-3"),
    ],
)
def test_a_4xx_is_retried_with_backoff(attempts: int, rand: float, delay: float) -> None:
    failure = Failure(TRANSIENT, 451, "4.7.1 try again later")
    verdict = classify(failure, attempts, NOW, POLICY, rand=lambda: rand)
    assert verdict == Verdict(
        "retry", None, "4.7.1 try again later", 451, retry_at=NOW + timedelta(seconds=delay), counts=False
    )


def test_the_backoff_is_capped() -> None:
    policy = RetryPolicy(base_seconds=60.0, cap_seconds=100.0, max_attempts=10)
    verdict = classify(Failure(TRANSIENT, None, "timed out"), 4, NOW, policy, rand=lambda: 1.0)
    assert verdict.retry_at == NOW + timedelta(seconds=100)


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_the_first_retry_waits_between_half_the_base_and_the_base(rand: float) -> None:
    verdict = classify(Failure(TRANSIENT, 421, "busy"), 1, NOW, POLICY, rand=lambda: rand)
    assert verdict.retry_at is not None
    assert NOW + timedelta(seconds=30) <= verdict.retry_at <= NOW + timedelta(seconds=60)


def test_an_account_failure_is_retried_at_once_and_takes_the_account_out() -> None:
    verdict = classify(Failure(AUTH, 535, "5.7.8 bad credentials"), 1, NOW, POLICY, rand=lambda: 1.0)
    assert verdict == Verdict(
        "retry",
        None,
        "5.7.8 bad credentials",
        535,
        retry_at=NOW,
        account_out="authentication failed: 5.7.8 bad credentials",
    )


def test_a_permanent_5xx_fails_the_recipient_as_bounced_and_suppresses_them() -> None:
    verdict = classify(Failure(PERMANENT, 550, "5.1.1 no such user"), 1, NOW, POLICY)
    assert verdict == Verdict("failed", "bounced", "5.1.1 no such user", 550, suppress=True, counts=False)


@pytest.mark.parametrize("attempts", [1, 5, 9])
def test_an_in_doubt_send_is_uncertain_and_counts_whatever_the_attempts(attempts: int) -> None:
    verdict = classify(Failure(IN_DOUBT, None, "connection lost during DATA"), attempts, NOW, POLICY)
    assert verdict == Verdict(
        "uncertain", "uncertain", "delivery uncertain: connection lost during DATA", None, counts=True
    )


@pytest.mark.parametrize(
    ("kind", "attempts", "account_out"),
    [
        pytest.param(TRANSIENT, 5, None, id="transient-at-max"),
        pytest.param(TRANSIENT, 7, None, id="transient-beyond-max"),
        pytest.param(AUTH, 5, "authentication failed: refused", id="auth-at-max-still-takes-the-account-out"),
    ],
)
def test_reaching_max_attempts_fails_the_recipient_naming_the_attempts(
    kind: str, attempts: int, account_out: str | None
) -> None:
    verdict = classify(Failure(kind, 421, "refused"), attempts, NOW, POLICY, rand=lambda: 0.0)
    assert verdict == Verdict(
        "failed",
        "failed",
        f"gave up after {attempts} attempts; last error: refused",
        421,
        account_out=account_out,
    )


def test_one_attempt_below_max_is_still_a_retry() -> None:
    assert classify(Failure(TRANSIENT, 421, "busy"), 4, NOW, POLICY, rand=lambda: 0.0).status == "retry"


@pytest.mark.parametrize(
    ("failure", "counts"),
    [
        pytest.param(None, True, id="sent"),
        pytest.param(Failure(IN_DOUBT, None, "dropped"), True, id="uncertain-may-have-been-delivered"),
        pytest.param(Failure(PERMANENT, 550, "no"), False, id="permanent"),
        pytest.param(Failure(TRANSIENT, 421, "busy"), False, id="retry"),
        pytest.param(Failure(AUTH, 535, "bad"), False, id="auth"),
    ],
)
def test_only_sends_that_may_have_reached_the_recipient_count_against_limits(
    failure: Failure | None, counts: bool
) -> None:
    assert classify(failure, 1, NOW, POLICY, rand=lambda: 0.0).counts is counts


def test_gave_up_sends_do_not_count() -> None:
    assert classify(Failure(TRANSIENT, 421, "busy"), 5, NOW, POLICY).counts is False


def test_an_address_the_server_cannot_take_fails_without_bouncing_or_suppressing() -> None:
    from app.domain.outcomes import UNSENDABLE

    text = "the recipient's address has a non-ASCII local part and mx.example does not offer SMTPUTF8 (RFC 6531)"
    verdict = classify(Failure(UNSENDABLE, None, text), 1, NOW, RetryPolicy())
    assert (verdict.status, verdict.recipient_status, verdict.suppress, verdict.counts) == (
        "failed",
        "failed",
        False,
        False,
    )
    assert verdict.error == text
