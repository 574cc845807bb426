"""The arbiter's snapshot of `email_campaign_settings`: each account's own limits, re-read every few seconds.

The collection is small and changes rarely, so it is read whole and kept for `settings_ttl` seconds; an account
the snapshot has not seen makes it re-read at once, so a new account's limits apply from its first reservation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from app.domain.limits import merge_settings
from app.domain.models import AccountCampaignSettings, InvalidDocument, id_str
from app.logging import get_logger
from app.store.documents import Collection


class SettingsSnapshot:
    """Each account's email_campaign_settings, or the error that makes them unreadable."""

    def __init__(self, settings: Collection, *, settings_ttl: float) -> None:
        self._settings = settings
        # Limits change rarely; caching them briefly saves a round trip on most reservations.
        self._settings_ttl = settings_ttl
        self._settings_expiry = 0.0
        self._settings_known: set[str] = set()  # accounts the snapshot answers for, with or without settings
        self._settings_snapshot: dict[str, AccountCampaignSettings | InvalidDocument] = {}

    async def settings_for(self, ids: list[str]) -> dict[str, AccountCampaignSettings | InvalidDocument | None]:
        """Each account's email_campaign_settings from a snapshot of the (small) collection.

        The snapshot is re-read when it is older than `settings_ttl` or an account it has not seen appears, so
        a new account's limits apply at once and a changed limit within `settings_ttl` seconds.
        """
        clock = time.monotonic()
        if clock >= self._settings_expiry or not self._settings_known.issuperset(ids):
            parsed: dict[str, list[AccountCampaignSettings | InvalidDocument]] = {}
            async for doc in self._settings.find({}, sort=[("_id", 1)]):
                parsed.setdefault(id_str(doc.get("email_id")), []).append(_parse_settings(doc))
            snapshot: dict[str, AccountCampaignSettings | InvalidDocument] = {}
            for key, items in parsed.items():
                # Several documents for one account: the strictest of each limit, as the reports show them.
                valid = merge_settings(s for s in items if isinstance(s, AccountCampaignSettings))
                snapshot[key] = valid if valid is not None else items[0]
            self._settings_snapshot = snapshot
            self._settings_known = set(snapshot) | set(ids)
            self._settings_expiry = clock + self._settings_ttl
        return {i: self._settings_snapshot.get(i) for i in ids}


def log_invalid(exc: InvalidDocument) -> None:
    """Report a malformed document the arbiter skips, with what an operator needs to fix it."""
    get_logger().warning(
        "store.invalid_document",
        collection=exc.collection,
        doc_id=str(exc.doc_id),
        field=exc.field,
        reason=exc.reason,
    )


def _parse_settings(doc: Mapping[str, Any]) -> AccountCampaignSettings | InvalidDocument:
    try:
        return AccountCampaignSettings.from_doc(doc)
    except InvalidDocument as exc:
        log_invalid(exc)
        return exc
