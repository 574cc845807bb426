"""The dispatcher's own work per email, without I/O: reading the lead, composing, building the wire bytes, logging.

    .venv/bin/python scripts/bench_compose.py [--emails 3000]

Each figure is process CPU per email over `--emails` distinct leads shaped like the dispatch benchmark's (one
recipient, the benchmark's template, an account with general settings). The address cache is emptied before
each piece, so a figure that validates an address pays for it, as the first sight of a lead does. Figures go
to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bson import ObjectId

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.addresses import clear_address_cache
from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, Template
from app.domain.templating import Renderer
from app.logging import configure_logging, get_logger
from app.send.compose import compose
from app.transport.mime import build_message
from app.transport.outgoing_message import ValidatedMessage

T = TypeVar("T")

CAMPAIGN = Campaign.from_doc({"_id": "c1", "name": "Bench", "status": "active", "sequence_id": "s1", "settings": {}})
ACCOUNT = EmailAccount.from_doc(
    {"_id": "a1", "email": "sender1@bench-sender.example", "smtp_host": "127.0.0.1", "status": "active"}
)
GENERAL = GeneralSettings("a1", sender_name="Sam 1", signature="Sam, Example Ltd")
TEMPLATE = Template(
    id="t1",
    name="t1",
    subject="Hello {{ first_name | default('there') }}",
    body_text="Hi {{ first_name }},\n\nA short note for {{ email }} about {{ company_name }}.\n",
)


def lead_doc(number: int) -> dict[str, Any]:
    email = f"lead{number}.r0@acme{number % 97}.example"
    return {
        "_id": ObjectId(),
        "campaign_id": "c1",
        "lead_key": f"email:{email}",
        "lead_data": [{"email": email, "first_name": "Pat0", "company_name": "Acme", "status": "not_contacted"}],
        "progress": {"current_step_order": 1, "stopped": False, "processed_recipients": {}},
    }


def per_email(count: int, work: Callable[[int], T]) -> tuple[float, list[T]]:
    """Microseconds of process CPU per call of `work` over `count` calls, and what the calls returned."""
    clear_address_cache()
    started = time.process_time()
    out = [work(i) for i in range(count)]
    return 1e6 * (time.process_time() - started) / count, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=3000, help="distinct leads to go through (default 3000)")
    args = parser.parse_args(argv)
    if args.emails < 1:
        parser.error("--emails must be at least 1")
    count: int = args.emails
    docs = [lead_doc(n) for n in range(count)]
    renderer = Renderer()
    now = datetime.now(UTC)
    figures: dict[str, float] = {}
    figures["lead_from_doc_us"], leads = per_email(count, lambda i: Lead.from_doc(docs[i]))

    def composed(i: int) -> ValidatedMessage:
        message = compose(
            renderer,
            TEMPLATE,
            campaign=CAMPAIGN,
            lead=leads[i],
            step_order=1,
            index=0,
            account=ACCOUNT,
            general=GENERAL,
        )
        assert isinstance(message, ValidatedMessage), message
        return message

    figures["compose_us"], messages = per_email(count, composed)
    figures["build_message_us"], _ = per_email(count, lambda i: build_message(messages[i], now=now))
    with Path(os.devnull).open("w") as sink:
        configure_logging("INFO", "json", stream=sink)
        figures["two_info_events_us"], _ = per_email(
            count,
            lambda i: [
                get_logger(campaign_id="c1", lead_id=str(leads[i].id), account_id="a1").info(
                    event, step=1, recipient=leads[i].recipients[0].email, smtp_code=250
                )
                for event in ("worker.sent", "worker.step_completed")
            ],
        )
    logging.shutdown()
    figures["total_us"] = sum(figures.values())
    print(f"Per-email work without I/O, {count} emails (process CPU, microseconds per email)")
    for name, value in figures.items():
        print(f"  {name:22s} {value:8.1f}")
    print(json.dumps({"emails": count, "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
