"""Logs: JSON for services, and passwords never reach them."""

from __future__ import annotations

import io
import json

from app.logging import configure_logging, get_logger


def test_json_logs_carry_bound_context_and_redact_secrets() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = get_logger(campaign_id="c1", lead_id="l1", account_id="a1")
    log.info("worker.sent", smtp_password="hunter2", account={"email": "a@example.com", "password": "hunter2"})
    log.debug("worker.hidden")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # DEBUG is below the configured level
    event = json.loads(lines[0])
    assert event["event"] == "worker.sent"
    assert (event["campaign_id"], event["lead_id"], event["account_id"]) == ("c1", "l1", "a1")
    assert "hunter2" not in lines[0]
    assert event["smtp_password"] == "***" and event["account"]["password"] == "***"


def test_console_format_is_readable_text() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "console", stream=out)
    get_logger(lead_id="l1").debug("worker.recipient_processed", outcome="sent")
    text = out.getvalue()
    assert "worker.recipient_processed" in text and "lead_id" in text
    assert not text.lstrip().startswith("{")
