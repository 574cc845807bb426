"""What `run-dispatcher` asks of a dispatcher, what one run counted, and who a dispatcher is."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field


def default_owner() -> str:
    """A dispatcher identity that is unique per process and readable in `show-lead-details`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class DispatcherOptions:
    """What `run-dispatcher` was asked to do."""

    campaign_id: str | None = None
    batch_size: int = 20
    concurrency: int = 40
    poll_interval: float = 5.0
    lease_seconds: float = 120.0
    shutdown_grace_seconds: float = 30.0
    once: bool = False


@dataclass
class DispatcherStats:
    """Counters of one run, by outcome kind."""

    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    db_errors: int = 0
