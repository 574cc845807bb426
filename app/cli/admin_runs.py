"""Running an admin command's database work: a refused change or a bad document exits 1 with its reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from app.cli.common import fail, run_db, settings_of
from app.domain.models import InvalidDocument
from app.ops.errors import OpError
from app.store import campaign_admin
from app.store.client import Database

T = TypeVar("T")


def run_admin(ctx: typer.Context, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the database; a refused change (AdminError) or bad document exits 1 with its reason."""
    try:
        return run_db(settings_of(ctx), work)
    except (campaign_admin.AdminError, InvalidDocument, ValueError, OpError) as exc:
        fail(str(exc))
